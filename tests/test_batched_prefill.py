"""Batched prefill in C: the prompt in chunks of T tokens through one static `@prefill` call
(each linear a [T, d] GEMM, T rows written into the KV cache, cached attention of the T rows),
beside the one-token `@decode`, each mode mapped by the cost model.

References (independent of the batched path): the quant-level interpreter running the prompt
token by token through `@decode` (the module with its `@prefill` removed), and llama2.c's
fp32 golden tokens. Proved here:

* siracusa, stories260K W8A8 + int8 KV, prompt of 5 as one call of 5: the tokens on qemu with
  1 core, 8 cores, 8 cores + NPU; the plugin counts the prefill call apart from the decode
  steps, with parallel phases on 8 cores; the mapping report's cycles are the description's
  formulas, counted here from the layer shapes;
* a MicroLlama-shaped model (dim 64, 8 layers, 16 heads of 4, random weights), prompt of 6
  with T = 4: a call of 4 and one of the last 2 padded to 4, the same tokens;
* riscv-ulp and cortex-m7-256k fp32 with `--prefill batched` (chunks, a padded one, a tail
  through the decode step): llama2.c's golden tokens on qemu; the host library's irt_feed likewise.
"""

from __future__ import annotations

import dataclasses
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.requirements import need
from tests.test_siracusa import MICRO, _hartcount, _make, _tokens, without_npu, write_microllama

CAPACITY = 64
STEPS = 8


def token_by_token(module, store, prompt, steps) -> list[int]:
    """The quant-level interpreter's greedy tokens with the prompt through @decode only."""
    from irtool.interpreter.runner import ModelRunner
    from irtool.ir_names import PREFILL, PREFILL_TOKENS_ATTR, entry_points

    module = module.clone()
    module.body.block.erase_op(entry_points(module)[PREFILL])
    module.attributes.pop(PREFILL_TOKENS_ATTR)
    return ModelRunner(module, store).generate(prompt, steps)


@pytest.fixture(scope="module")
def cluster_target(tmp_path_factory) -> str:
    return str(without_npu(tmp_path_factory.mktemp("target") / "siracusa_cluster"))


@pytest.fixture(scope="module")
def golden(shared_models):
    return json.loads((shared_models / "stories260K" / "golden.json").read_text())


@pytest.fixture(scope="module")
def stories(shared_models, cluster_target, golden):
    """stories260K W8A8 + int8 KV at the quant level with a static @prefill of the prompt's
    5 tokens, and the token-by-token interpreter's tokens."""
    from irtool.compile import CompileOptions, prepare_for_target
    from irtool.frontend.load import import_model
    from irtool.interpreter.runner import ModelRunner

    d = shared_models / "stories260K"
    prompt = golden["prompt_ids"]
    opts = CompileOptions(target=cluster_target, capacity=CAPACITY, quant="w8a8", kv="int8",
                          calibration=str(d / "eval_tokens.json"), time_limit=5,
                          prefill="batched", prefill_tokens=len(prompt))
    module, store = prepare_for_target(*import_model(d / "stories260K.bin"), opts)
    want = token_by_token(module, store, prompt, STEPS)
    # the interpreter's own batched path agrees (its @prefill: one call of the 5 tokens)
    assert ModelRunner(module.clone(), store).generate(prompt, STEPS) == want
    return module, store, opts, want


def _compile(quant_level, out: Path, target: str, prompt, steps) -> Path:
    from irtool.compile import compile_to_c

    module, store, opts = quant_level
    compile_to_c(module.clone(), store, out, prompt=prompt, steps=steps, tokenizer=None,
                 opts=dataclasses.replace(opts, target=target, quant="none", kv="none",
                                          calibration=None))
    return out


def _prefill_line(out: str) -> dict[str, int]:
    m = re.search(r"^hartcount: prefill-calls (\d+) phases (\d+) serial (\d+) parallel-slowest "
                  r"(\d+) parallel-sum (\d+) device (\d+) per-call (\d+)$", out, re.MULTILINE)
    assert m, out[-3000:]
    keys = ("calls", "phases", "serial", "slowest", "parallel_sum", "device", "per_call")
    return dict(zip(keys, map(int, m.groups()), strict=True))


# per layer of stories260K: (K, N) of wq, wk, wv, wo, w1, w3, w2
STORIES_LINEARS = [(64, 64), (64, 32), (64, 32), (64, 64), (64, 172), (64, 172), (172, 64)]


def npu_cycles(T: int, K: int, N: int) -> float:
    """description.json's NPU: 200 + 9 per 32x32 block and token, + 8 per output (requant)."""
    return 200 + 9 * -(-K // 32) * -(-N // 32) * T + 8 * N * T


def cluster_cycles(T: int, K: int, N: int) -> float:
    """8 cores, 4-row blocks, 4.25 instructions per MAC, 300 per fork/join."""
    blocks = -(-N // 4)
    rows = min(N, -(-blocks // 8) * 4)
    return rows * K * T * 4.25 + 300


def test_stories260k_batched_prefill_on_qemu_1_8_cores_and_npu(stories, golden, tmp_path,
                                                                cluster_target):
    need("riscv", "qemu", "cc")
    module, store, opts, want = stories
    prompt = golden["prompt_ids"]
    cluster = _compile((module, store, opts), tmp_path / "cluster", cluster_target, prompt,
                       STEPS)
    npu = _compile((module, store, opts), tmp_path / "npu", "siracusa", prompt, STEPS)
    model_c = (cluster / "model.c").read_text()
    assert "const float *irt_prefill(const int32_t *tokens, int32_t pos)" in model_c
    # @prefill's linears are GEMMs of 5 rows on the 8 cores (T=5 in every call)
    prefill_c = model_c.split("irt_prefill(const int32_t *tokens")[1]
    assert len(re.findall(r"sir_linear_w8a8\(.*, 5, \d+, \d+, 8\);", prefill_c)) == 35
    # and its attention of 5 rows by heads over the cores (rows one by one, each causal)
    assert len(re.findall(r"sir_cached_attention_i8\(.*, 64, 5, \(pos \+ 5\), 0, .*, 8\);",
                          prefill_c)) == 5

    runs = {"1 core": _make(cluster, "run", "CORES=1"), "8 cores": _make(cluster, "run"),
            "8 cores + NPU": _make(npu, "run")}
    lines = {}
    for name, out in runs.items():
        assert _tokens(out) == want, name
        assert "batched prefill: 1 calls of 5 tokens" in out
        harts, decode = _hartcount(out)
        lines[name] = prefill = _prefill_line(out)
        assert prefill["calls"] == 1 and decode["steps"] == STEPS - 1
        in_prefill = {int(h): int(n) for h, n in
                      re.findall(r"^hartcount: hart (\d+) prefill (\d+)$", out, re.MULTILINE)}
        assert set(in_prefill) == set(harts)
        # every core works in the prefill call; hart 0's share is its serial work + its
        # share of the phases + the device models (NPU, DMA) it runs
        assert all(n > 0 for n in in_prefill.values())
        assert in_prefill[0] >= prefill["serial"] + prefill["device"]
    assert lines["1 core"]["phases"] == 0 and lines["8 cores"]["phases"] > 0
    # the modelled prefill call (serial + slowest core per phase) on 8 cores is at least 3x
    # shorter than on one core; the NPU shortens it further
    assert lines["8 cores"]["per_call"] * 3 < lines["1 core"]["per_call"]
    assert lines["8 cores + NPU"]["per_call"] < lines["8 cores"]["per_call"]

    # the mapping report: both modes' linears on the NPU, the cluster's cost beside
    text = (npu / "mapping.txt").read_text()
    for mode, T in (("prefill (5 tokens per call)", 5), ("decode (1 token)", 1)):
        npu_total = 5 * sum(npu_cycles(T, k, n) for k, n in STORIES_LINEARS)
        cluster_total = 5 * sum(cluster_cycles(T, k, n) for k, n in STORIES_LINEARS)
        assert (f"mapping of {mode}: W8A8 linears 35 on the NPU, 0 on the 8 cores: "
                f"{npu_total:,.0f} modelled cycles per call (alternatives: all on the 8 cores "
                f"{cluster_total:,.0f}, all on the NPU {npu_total:,.0f})") in text, text
    assert "35 on the NPU" not in (cluster / "mapping.txt").read_text()


@pytest.mark.parametrize("with_npu", [False, True])
def test_microllama_chunk_and_padded_chunk_on_qemu(tmp_path, cluster_target, with_npu):
    need("riscv", "qemu", "cc")
    from irtool.compile import CompileOptions, prepare_for_target
    from irtool.frontend.load import import_model
    from irtool.interpreter.runner import ModelRunner

    rng = np.random.default_rng(1)
    calib = tmp_path / "calib.json"
    calib.write_text(json.dumps([rng.integers(0, MICRO["vocab"], 24).tolist()
                                 for _ in range(4)]))
    target = "siracusa" if with_npu else cluster_target
    opts = CompileOptions(target=target, capacity=32, quant="w8a8", kv="int8",
                          calibration=str(calib), time_limit=5, prefill="batched",
                          prefill_tokens=4)
    module, store = prepare_for_target(*import_model(write_microllama(tmp_path / "m.bin")),
                                       opts)
    prompt, steps = [1, 17, 42, 5, 63, 8], 6
    want = token_by_token(module, store, prompt, steps)
    # the interpreter's batched path: a chunk of 4, then the last 2 padded to 4
    assert ModelRunner(module.clone(), store).generate(prompt, steps) == want
    out = _compile((module, store, opts), tmp_path / "out", target, prompt, steps)
    model_c = (out / "model.c").read_text()
    prefill_c = model_c.split("irt_prefill(const int32_t *tokens")[1]
    assert prefill_c.count("npu_linear_w8a8(") == (7 * 8 if with_npu else 0)
    for cores in ((8,) if with_npu else (1, 8)):
        text = _make(out, "run", f"CORES={cores}")
        assert _tokens(text) == want
        # a chunk of 4, the last 2 prompt tokens padded to a second call; decode steps for
        # all but the last generated token
        assert "batched prefill: 2 calls of 4 tokens" in text
        assert _hartcount(text)[1]["steps"] == steps - 1
        assert _prefill_line(text)["calls"] == 2


def test_a_long_prefill_leaves_decode_its_dma_windows(tmp_path, monkeypatch):
    """MicroLlama's shape with a 64-token batched prefill at cache 128 on siracusa (NPU): the
    prefill's activations take nearly all of L1, yet the decode step's lm_head streams L2 -> L1
    through windows in those bytes (the functions never run at the same time); the compile was
    refused for want of L1 room (bench/siracusa.py --qemu-prefill), and the tokens on qemu are
    the token-by-token interpreter's."""
    need("riscv", "qemu", "cc")
    import tests.test_siracusa as siracusa
    from irtool.compile import CompileOptions, prepare_for_target
    from irtool.frontend.load import import_model

    monkeypatch.setattr(siracusa, "MICRO", {**MICRO, "seq": 128})
    rng = np.random.default_rng(1)
    calib = tmp_path / "calib.json"
    calib.write_text(json.dumps([rng.integers(0, MICRO["vocab"], 64).tolist()
                                 for _ in range(2)]))
    prompt, steps = rng.integers(0, MICRO["vocab"], 64).tolist(), 4
    opts = CompileOptions(target="siracusa", capacity=128, quant="w8a8", kv="int8",
                          calibration=str(calib), time_limit=5, prefill="batched",
                          prefill_tokens=len(prompt))
    module, store = prepare_for_target(
        *import_model(siracusa.write_microllama(tmp_path / "m.bin")), opts)
    want = token_by_token(module, store, prompt, steps)
    out = _compile((module, store, opts), tmp_path / "out", "siracusa", prompt, steps)
    text = _make(out, "run", "CORES=8")
    assert _tokens(text) == want
    assert "batched prefill: 1 calls of 64 tokens" in text
    l1 = int(re.search(r"^memory \(planned arenas\): l1 (\d+) B", text, re.MULTILINE).group(1))
    lm_head = MICRO["vocab"] * MICRO["dim"] * 4  # float, streamed once per decode step
    assert l1 + lm_head > 262144  # no room above the prefill's bytes for even one window
    m = re.search(r"^dma l2->l1: transfers (\d+) bytes (\d+) ", text, re.MULTILINE)
    assert m, text[-3000:]
    assert int(m.group(2)) == lm_head * (steps - 1) and int(m.group(1)) >= steps - 1


@pytest.mark.parametrize("target, tools, tokens, calls", [
    ("riscv-ulp", ("riscv", "qemu"), 3, 2),  # 3 + 2 padded to 3
    ("cortex-m7-256k", ("arm", "qemu-arm"), 2, 2),  # 2 + 2, the fifth token decoded
])
def test_fp32_batched_prefill_prints_the_golden_tokens(shared_models, golden, tmp_path,
                                                       target, tools, tokens, calls):
    need(*tools)
    d = shared_models / "stories260K"
    out = tmp_path / "p"
    proc = subprocess.run(
        [sys.executable, "-m", "irtool.cli", "compile", str(d / "stories260K.bin"), "--target",
         target, "--prompt-tokens", ",".join(map(str, golden["prompt_ids"])), "--steps",
         "12", "--capacity", "64", "--prefill", "batched", "--prefill-tokens", str(tokens),
         "--tokenizer", str(d / "tok512.bin"), "-o", str(out), "--quiet", "--time-limit", "5"],
        capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert f"#define IRT_PREFILL_TOKENS {tokens}" in (out / "model.h").read_text()
    text = _make(out, "run")
    assert f"batched prefill: {calls} calls of {tokens} tokens" in text
    assert _tokens(text) == golden["new_ids"][:12]


def test_library_feeds_the_prompt_in_batched_chunks(tmp_path):
    """irt_feed (irt_generate.c) takes whole chunks through irt_prefill: the README's
    firmware loop on the host library, prompt of 5 in chunks of 2 + one decode step, prints
    llama2.c's golden tokens."""
    need("cc")
    from tests.test_library import GOLDEN, build_example, compile_project, make

    project = compile_project(tmp_path / "host", "host", "--prefill", "batched",
                              "--prefill-tokens", "2")
    assert "#define IRT_PREFILL_TOKENS 2" in (project / "model.h").read_text()
    make(project, "lib-host")
    proc = build_example(project, "lib/host/libirtmodel.a")
    assert proc.returncode == 0, proc.stderr
    out = subprocess.run([str(project / "firmware")], capture_output=True, text=True,
                         check=True).stdout
    assert [int(t) for t in out.split()] == GOLDEN["new_ids"]


def test_static_prefill_equals_decode_steps_row_for_row(shared_models, golden):
    """extract-kv-cache tokens=T: @prefill(tokens, pos) at pos 0 and pos 3 gives the logits
    and caches of T decode steps (stories260K fp32 at the transformer level); bad options are
    one clear error."""
    from xdsl.passes import PassPipeline

    from irtool.context import make_context
    from irtool.errors import IrtoolError
    from irtool.frontend.load import import_model
    from irtool.interpreter.runner import ModelRunner
    from irtool.passes import get_all_passes

    def extracted(spec: str):
        module, store = import_model(shared_models / "stories260K" / "stories260K.bin")
        PassPipeline.parse_spec(get_all_passes(), spec).apply(make_context(), module)
        return ModelRunner(module, store)

    ids = np.array(golden["prompt_ids"] + golden["new_ids"][:1], dtype=np.int32)  # 6 tokens
    static = extracted("extract-kv-cache{prefill=batched tokens=3 capacity=16}")
    steps = extracted("extract-kv-cache{prefill=token-by-token capacity=16}")
    state = static.initial_state()
    rows = []
    for pos in (0, 3):
        logits, *state = static.interpreter.call_op("prefill", (ids[pos:pos + 3], pos, *state))
        rows.append(np.array(logits))
    want, want_state = steps.prefill(ids)
    np.testing.assert_allclose(np.concatenate(rows), want, rtol=0, atol=2e-5)
    for got, ref in zip(state, want_state, strict=True):
        np.testing.assert_allclose(np.asarray(got), np.asarray(ref), rtol=0, atol=2e-5)
    for spec, says in (("prefill=batched tokens=17 capacity=16", "does not fit the KV cache"),
                       ("prefill=token-by-token tokens=3", "needs prefill=batched")):
        with pytest.raises(IrtoolError, match=says):
            extracted(f"extract-kv-cache{{{spec}}}")


def test_hw_level_prefill_equals_the_quant_level(stories, golden):
    """The lowered @prefill (GEMMs on the NPU, attention rows by heads on the cores) run by
    the interpreter gives the quant level's logits; the prompt of 5 and one generated token
    go in as a chunk of 5 and a decode step."""
    from irtool.compile import lower_for_target
    from irtool.dialects import hw
    from irtool.interpreter.runner import ModelRunner

    module, store, opts, _ = stories
    ids = golden["prompt_ids"] + golden["new_ids"][:1]
    ref = ModelRunner(module.clone(), store).forward(ids)
    lowered = lower_for_target(module.clone(), dataclasses.replace(
        opts, target="siracusa", quant="none", kv="none", calibration=None))
    prefill = next(op for op in lowered.ops if getattr(op, "sym_name", None) is not None
                   and op.sym_name.data == "prefill")
    attention = [op for op in prefill.walk() if isinstance(op, hw.CallOp)
                 and op.kernel == "sir_cached_attention_i8"]
    assert len(attention) == 5 and {a.param("T") for a in attention} == {5}
    got = ModelRunner(lowered, store).forward(ids)
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-5)


def test_ring_cache_chunks_only_while_they_fit_the_window(shared_models, tmp_path):
    """A ring of 8 positions, a prompt of 12 in chunks of 2: four calls fill the window, the
    rest goes through the decode step; the tokens are the interpreter's token by token."""
    need("cc")
    from xdsl.passes import PassPipeline

    from irtool.context import make_context
    from irtool.frontend.load import import_model
    from irtool.interpreter.runner import ModelRunner
    from irtool.passes import get_all_passes
    from tests.test_library import irtool, make

    d = shared_models / "stories260K"
    prompt = [1, 403, 407, 261, 378, 412, 306, 263, 404, 305, 300, 301]
    module, store = import_model(d / "stories260K.bin")
    PassPipeline.parse_spec(get_all_passes(), "extract-kv-cache{window=8 prefill=token-by-token}"
                            ).apply(make_context(), module)
    want = ModelRunner(module, store).generate(prompt, 16)
    out = tmp_path / "ring"
    irtool("compile", d / "stories260K.bin", "--target", "host", "--window", 8, "--steps", 16,
           "--prefill", "batched", "--prefill-tokens", 2, "--prompt-tokens",
           ",".join(map(str, prompt)), "-o", out, "--quiet")
    text = make(out, "run")
    assert "batched prefill: 4 calls of 2 tokens" in text
    assert _tokens(text) == want


def test_a_prefill_too_large_for_the_memories_says_so(shared_models, tmp_path):
    """riscv-ulp with 96 KiB of SRAM: the decode step fits, a batched prefill of 63 tokens
    ([63, 512] logits alone are 129,024 bytes) does not; the error names it and its need."""
    desc = json.loads(Path(__file__).resolve().parents[1].joinpath(
        "targets", "riscv_ulp", "description.json").read_text())
    for m in desc["memories"]:
        if m["name"] == "sram":
            m["size"] = 98304 + m.get("reserved", 0)
    desc["name"] = "riscv-ulp-small"
    target = tmp_path / "small.json"
    target.write_text(json.dumps(desc))
    prompt = ",".join(str(t) for t in [1, *range(300, 362)])
    proc = subprocess.run(
        [sys.executable, "-m", "irtool.cli", "compile",
         str(shared_models / "stories260K" / "stories260K.bin"), "--target", str(target),
         "--capacity", "64", "--steps", "1", "--prefill", "batched", "--prompt-tokens", prompt,
         "-o", str(tmp_path / "out"), "--time-limit", "2", "--quiet"],
        capture_output=True, text=True, timeout=600)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert "prefill/%alloc" in proc.stderr and "(activation, 129024 bytes)" in proc.stderr
    m = re.search(r"- a smaller batched prefill \(fewer --prefill-tokens, or --prefill token\): "
                  r"its activations need (\d+) bytes at once, the decode step's (\d+)$",
                  proc.stderr, re.MULTILINE)
    assert m, proc.stderr[-2000:]
    assert int(m.group(1)) >= 129024 > int(m.group(2))
