"""matrix8x8: the 8x8 unit as a target, checked against independent references.

* The unit's C model (runtime/mxu_model.c) wraps like int32 (numpy on Python ints mod 2^32),
  and the tiled kernel gives irt_linear_w8a8's floats bit for bit (the numpy reference).
* The tile, word and cycle counts the C driver makes equal `irtool estimate`'s formula for
  odd shapes (padded edges, partial token blocks, more output tiles than accumulator slots).
* The hw level (hw.accel mxu) equals the quant level exactly; stories260K W8A8 on qemu prints
  the quant-level interpreter's tokens, and the tile/word/cycle counts `irtool estimate`
  predicts for the same build.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
RUNTIME = ROOT / "targets" / "matrix8x8" / "runtime"
BIN = Path(sys.executable).parent
CLOCK = 100e6

needs_cc = pytest.mark.skipif(shutil.which("cc") is None, reason="no host C compiler (cc)")


def wrap32(x: int) -> int:
    x %= 1 << 32
    return x - (1 << 32) if x >= 1 << 31 else x


def c_array(kind: str, name: str, values) -> str:
    return f"static const {kind} {name}[] = {{{', '.join(str(int(v)) for v in values)}}};"


def run_c(tmp_path: Path, main: str) -> str:
    src = tmp_path / "main.c"
    src.write_text(main)
    exe = tmp_path / "a.out"
    subprocess.run(["cc", "-std=c11", "-O1", "-I", str(RUNTIME), str(src),
                    str(RUNTIME / "mxu_model.c"), str(RUNTIME / "mxu_linear.c"), "-o", str(exe)],
                   check=True, capture_output=True, text=True)
    return subprocess.run([str(exe)], check=True, capture_output=True, text=True).stdout


# --- the unit's C model ---------------------------------------------------------------------

@needs_cc
def test_c_model_wraps_like_int32_and_accumulates(tmp_path):
    rng = np.random.default_rng(1)
    a = rng.integers(-2**31, 2**31, 64)
    b = rng.integers(-2**31, 2**31, 64)
    b2 = rng.integers(-2**31, 2**31, 64)
    main = "\n".join([
        "#include <stdio.h>", '#include "mxu.h"', c_array("int32_t", "a", a),
        c_array("int32_t", "b", b), c_array("int32_t", "b2", b2),
        "int main(void) {",
        ("  for (int i = 0; i < 64; i++) { mxu_write(MXU_A_BASE + i, a[i]);"
        " mxu_write(MXU_B_BASE + i, b[i]); }"),
        "  mxu_start(3, 0); mxu_wait();",
        "  for (int i = 0; i < 64; i++) mxu_write(MXU_B_BASE + i, b2[i]);",
        "  mxu_start(3, 1); mxu_wait();",
        "  for (int i = 0; i < 64; i++)\n"
        "    printf(\"%ld\\n\", (long)mxu_read(MXU_C_BASE + 3 * 64 + i));",
        "  const mxu_counters_t *c = mxu_counters();",
        ("  printf(\"%llu %llu %llu %llu %llu\\n\", (unsigned long long)c->tiles,"
        " (unsigned long long)c->words_in, (unsigned long long)c->words_out,"
        " (unsigned long long)c->unit_cycles, (unsigned long long)c->axi_cycles);"),
        "  return 0; }"])
    out = run_c(tmp_path, main).split("\n")
    A, B, B2 = (np.array(v, dtype=object).reshape(8, 8) for v in (a, b, b2))
    want = [wrap32(int(sum(A[i, k] * (B[k, j] + B2[k, j]) for k in range(8))))
            for i in range(8) for j in range(8)]
    assert [int(x) for x in out[:64]] == want
    tiles, w_in, w_out, unit, axi = map(int, out[64].split())
    assert (tiles, w_in, w_out) == (2, 64 + 64 + 1 + 64 + 1, 2 + 64)
    assert unit == 2 * 532 and axi == 2 * (w_in + w_out)


SHAPES = [(1, 64, 64), (1, 20, 13), (3, 172, 64), (8, 64, 172), (11, 24, 80), (1, 768, 768)]


@needs_cc
@pytest.mark.parametrize("T,K,N", SHAPES)
def test_tiled_kernel_is_bit_exact_and_counts_what_the_estimate_predicts(tmp_path, T, K, N):
    from irtool.estimate import WorkOp
    from irtool.targets.matrix8x8.kernels import MXU_LINEAR_BIAS
    from irtool.targets.registry import load_target

    rng = np.random.default_rng(T * 1000 + K + N)
    xq = rng.integers(-128, 128, T * K)
    w = rng.integers(-128, 128, N * K)
    m = rng.uniform(1e-4, 1e-2, N).astype(np.float32)
    bias = rng.normal(size=N).astype(np.float32)
    zx = -7
    main = "\n".join([
        "#include <stdio.h>", "#include <string.h>", '#include "mxu.h"',
        c_array("int8_t", "xq", xq), c_array("int8_t", "w", w),
        f"static const uint32_t mbits[] = {{{', '.join(str(v) for v in m.view(np.uint32))}}};",
        f"static const uint32_t bbits[] = {{{', '.join(str(v) for v in bias.view(np.uint32))}}};",
        f"static float y[{T * N}], mf[{N}], bf[{N}];",
        "int main(void) {",
        "  memcpy(mf, mbits, sizeof mf); memcpy(bf, bbits, sizeof bf);",
        f"  mxu_linear_w8a8(xq, {zx}, w, mf, bf, y, {T}, {K}, {N});",
        "  uint32_t u;",
        (f"  for (int i = 0; i < {T * N}; i++) {{ memcpy(&u, &y[i], 4); printf(\"%lu\\n\","
        " (unsigned long)u); }"),
        "  const mxu_counters_t *c = mxu_counters();",
        ("  printf(\"%llu %llu %llu\\n\", (unsigned long long)c->tiles,"
         " (unsigned long long)c->words_in, (unsigned long long)c->words_out);"),
        "  return 0; }"])
    out = run_c(tmp_path, main).split("\n")
    got = np.array([int(v) for v in out[:T * N]], np.uint32).view(np.float32)
    # the numpy reference the interpreter runs for hw.accel
    y = np.zeros((T, N), np.float32)
    MXU_LINEAR_BIAS.reference({"xq": xq.astype(np.int8), "zx": np.array([zx], np.int32),
                               "w": w.reshape(N, K).astype(np.int8), "m": m, "b": bias,
                               "y": y}, {"T": T, "K": K, "N": N})
    assert np.array_equal(got, y.reshape(-1))
    # ... and the quantization contract written here: exact int sums, float32 mul then add
    acc = (xq.reshape(T, K).astype(np.int64) - zx) @ w.reshape(N, K).astype(np.int64).T
    assert np.array_equal(y, (acc.astype(np.float32) * m + bias).astype(np.float32))
    tiles, w_in, w_out = map(int, out[T * N].split())
    est = load_target("matrix8x8").cost_model("irtool").unit_linear(
        WorkOp("l", "x", "linear", K=K, N=N, quantized=True), T).extra
    assert (tiles, w_in, w_out) == (est["tiles"], est["words_in"], est["words_out"])
    assert tiles == -(-T // 8) * -(-K // 8) * -(-N // 8)


def test_reference_wraps_like_the_unit():
    from irtool.targets.matrix8x8.kernels import tiled_accumulate

    rng = np.random.default_rng(3)
    a = rng.integers(-2**31, 2**31, (3, 19))
    b = rng.integers(-2**31, 2**31, (19, 10))
    want = [[wrap32(sum(int(a[i, k]) * int(b[k, j]) for k in range(19))) for j in range(10)]
            for i in range(3)]
    assert tiled_accumulate(a, b).tolist() == want


# --- the hand figures and the better schedule -----------------------------------------------

def irtool(*args) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "irtool"), *map(str, args)], capture_output=True,
                          text=True, timeout=600, check=False)


def estimate_json(*args) -> dict:
    proc = irtool("estimate", *args, "--json")
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_the_768_wide_layer_reproduces_the_hand_figure_and_the_better_schedule():
    from irtool.estimate import WorkOp
    from irtool.targets.registry import load_target

    target = load_target("matrix8x8")
    layer = WorkOp("l", "fc", "linear", K=768, N=768, quantized=True)
    naive = target.cost_model("naive").unit_linear(layer, 1)
    assert naive.extra["tiles"] == 96 * 96 == 9216
    assert naive.extra["unit_cycles"] == 9216 * 532
    assert 47e-3 <= naive.extra["mac_cycles"] / CLOCK and naive.extra["unit_cycles"] / CLOCK \
        < 49.1e-3  # 47.2 ms of multiply-accumulates, 49.0 ms with the tile's control
    # the naive schedule moves A, B and C and a start/status for every tile
    assert naive.extra["words_in"] + naive.extra["words_out"] == 9216 * (64 * 3 + 2)
    best = target.cost_model("irtool")
    one = best.unit_linear(layer, 1).extra
    # one token: the same tiles; A once per group of 8 output tiles, C once, B every tile
    assert one["words_in"] == 12 * 96 * 8 + 9216 * 65 and one["words_out"] == 9216 + 96 * 8
    eight = best.unit_linear(layer, 8).extra
    assert eight["tiles"] == 9216  # 8 tokens in A's 8 rows: 8x fewer tiles per token
    assert naive.cycles / best.unit_linear(layer, 1).cycles > 1.3


LLAMA2_7B = {"model_type": "llama", "hidden_size": 4096, "intermediate_size": 11008,
             "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 32,
             "vocab_size": 32000, "hidden_act": "silu"}
TINYLLAMA = {"model_type": "llama", "hidden_size": 2048, "intermediate_size": 5632,
             "num_hidden_layers": 22, "num_attention_heads": 32, "num_key_value_heads": 4,
             "vocab_size": 32000, "hidden_act": "silu"}
PHI2 = {"model_type": "phi", "hidden_size": 2560, "intermediate_size": 10240,
        "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 32,
        "vocab_size": 51200, "hidden_act": "gelu_new"}


def _ops(report, schedule, phase):
    return report["schedules"][schedule][phase]["ops"]


def test_llama2_7b_from_its_config_hand_figure_and_both_schedules(tmp_path):
    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps(LLAMA2_7B))
    r = estimate_json(cfg, "--target", "matrix8x8", "--positions", 0, "--prefill", 8)
    naive = _ops(r, "naive", "decode")
    # the hand analysis: one 4096x4096 matrix per layer at 512 cycles per tile
    wq = [o for o in naive if o["op"] == "wq"]
    assert len(wq) == 32 and all(o["extra"]["tiles"] == 512 * 512 for o in wq)
    hand = sum(o["extra"]["mac_cycles"] for o in wq) / CLOCK
    assert hand == pytest.approx(32 * 512 * 512 * 512 / CLOCK) and round(hand, 1) == 42.9
    # the whole model with that schedule: seven projections per layer, I/O included
    per_layer_tiles = 4 * 512 * 512 + 3 * 512 * 1376
    unit = [o for o in naive if o["engine"] == "mxu"]
    assert sum(o["extra"]["tiles"] for o in unit) == 32 * per_layer_tiles
    assert sum(o["cycles"] for o in unit) == 32 * per_layer_tiles * (532 + 2 * 194)
    # irtool's schedule: same tiles for one token, a fraction of the words; 8-token prefill
    best = r["schedules"]["irtool"]
    assert best["decode"]["tiles"] == 32 * per_layer_tiles
    shapes = [(4096, 4096)] * 4 + [(4096, 11008)] * 2 + [(11008, 4096)]
    words_in = sum(-(-(n // 8) // 8) * (k // 8) * 8 + (k // 8) * -(-n // 8) * 65
                   for k, n in shapes)
    assert best["decode"]["words_in"] == 32 * words_in  # about half the naive schedule's
    assert best["decode"]["words_in"] < 0.55 * r["schedules"]["naive"]["decode"]["words_in"]
    assert best["prefill"]["tiles"] == 32 * per_layer_tiles  # 8 tokens share every tile
    assert best["prefill"]["cycles_per_token"] < best["decode"]["cycles_per_token"] / 4
    assert best["decode"]["utilisation"] == pytest.approx(
        sum(o["macs"] for o in _ops(r, "irtool", "decode") if o["engine"] == "mxu")
        / (32 * per_layer_tiles * 512))
    assert best["decode"]["utilisation"] < 1 / 8 + 1e-9
    assert best["decode"]["tokens_per_s"] == pytest.approx(
        CLOCK / best["decode"]["cycles_per_token"])


@pytest.mark.parametrize("cfg,linear_macs", [
    (TINYLLAMA, 22 * (2 * 2048 * 2048 + 2 * 2048 * 256 + 3 * 2048 * 5632) + 2048 * 32000),
    (PHI2, 32 * (4 * 2560 * 2560 + 2 * 2560 * 10240) + 2560 * 51200)])
def test_configs_alone_estimate_on_both_targets(tmp_path, cfg, linear_macs):
    path = tmp_path / "config.json"
    path.write_text(json.dumps(cfg))
    for target in ("riscv-ulp", "matrix8x8"):
        r = estimate_json(path, "--target", target, "--positions", 5)
        sched = next(iter(r["schedules"]))
        ops = _ops(r, sched, "decode")
        assert sum(o["macs"] for o in ops if o["op"] != "attention") == linear_macs
        att = [o for o in ops if o["op"] == "attention"]
        hd = cfg["hidden_size"] // cfg["num_attention_heads"]
        assert att[0]["macs"] == 2 * cfg["num_attention_heads"] * hd * 6
        assert r["schedules"][sched]["decode"]["tokens_per_s"] > 0


def test_riscv_ulp_estimate_is_instructions_times_mac_counts_at_32_mhz():
    r = estimate_json(ROOT / "irtool" / "data" / "stories260K.bin", "--target", "riscv-ulp")
    ops = _ops(r, "core", "decode")
    lin = [o for o in ops if o["macs"] and o["op"] != "attention"]
    # per layer wq wo 64x64, wk wv 32x64, w1 w3 w2 172x64, and the 512x64 classifier
    assert sum(o["macs"] for o in lin) == 5 * (2 * 64 * 64 + 2 * 32 * 64 + 3 * 172 * 64) + \
        512 * 64
    for o in lin:
        assert o["extra"]["instructions"] == round(o["macs"] * 2.44)
    dec = r["schedules"]["core"]["decode"]
    assert dec["tokens_per_s"] == pytest.approx(32e6 / dec["cycles_per_token"])


def test_plot_table_and_errors(tmp_path):
    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps(TINYLLAMA))
    png = tmp_path / "layers.png"
    proc = irtool("estimate", cfg, "--target", "matrix8x8", "--plot", png)
    assert proc.returncode == 0, proc.stderr
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "decode (1 token at position 128)" in proc.stdout and "tokens/s" in proc.stdout
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"hidden_size": 64}))
    proc = irtool("estimate", bad, "--target", "matrix8x8")
    assert proc.returncode == 1 and proc.stderr.startswith("error: config 'bad.json'")
    assert "Traceback" not in proc.stderr


# --- the compiled model: hw level, qemu, and the estimate of the same build ---------------------

CAPACITY = 64


@pytest.fixture(scope="module")
def w8a8(shared_models):
    """stories260K W8A8 prepared by the compiler's first half (the quant level)."""
    from irtool.compile import CompileOptions, prepare_for_target
    from irtool.frontend.load import import_model

    d = shared_models / "stories260K"
    opts = CompileOptions(target="matrix8x8", capacity=CAPACITY, quant="w8a8",
                          calibration=str(d / "eval_tokens.json"), time_limit=5)
    module, store = import_model(d / "stories260K.bin")
    module, store = prepare_for_target(module, store, opts)
    return module, store, opts


def test_hw_level_on_the_unit_equals_the_quant_level(w8a8, shared_models):
    import dataclasses

    from irtool.compile import lower_for_target
    from irtool.dialects import hw
    from irtool.interpreter.runner import ModelRunner

    module, store, opts = w8a8
    module = module.clone()
    golden = json.loads((shared_models / "stories260K" / "golden.json").read_text())
    ids = golden["prompt_ids"] + golden["new_ids"][:12]
    want = ModelRunner(module.clone(), store).forward(ids)
    lower_for_target(module, dataclasses.replace(opts, quant="none", calibration=None))
    accel = [op for op in module.walk() if isinstance(op, hw.AccelOp)]
    assert len(accel) == 35 and {op.engine.data for op in accel} == {"mxu"}
    calls = {op.kernel for op in module.walk() if isinstance(op, hw.CallOp)}
    assert "irt_linear_w8a8" not in calls and "irt_linear_f32" in calls  # lm_head on host
    got = ModelRunner(module, store).forward(ids)
    assert np.array_equal(got, want)


RV_TOOLS = ("riscv64-unknown-elf-gcc", "qemu-system-riscv32", "make")


@pytest.mark.skipif(any(shutil.which(t) is None for t in RV_TOOLS),
                    reason="RISC-V toolchain or qemu missing (bash scripts/setup.sh)")
def test_qemu_prints_the_interpreter_tokens_and_the_estimated_counts(w8a8, shared_models,
                                                                      tmp_path):
    import dataclasses

    from irtool.compile import compile_to_c
    from irtool.interpreter.runner import ModelRunner
    from irtool.tokenizer import load_tokenizer

    module, store, opts = w8a8
    d = shared_models / "stories260K"
    golden = json.loads((d / "golden.json").read_text())
    prompt, steps = golden["prompt_ids"], 10
    want = ModelRunner(module.clone(), store).generate(prompt, steps)
    compile_to_c(module.clone(), store, tmp_path, prompt=prompt, steps=steps,
                 tokenizer=load_tokenizer(d / "tok512.bin"),
                 opts=dataclasses.replace(opts, quant="none", calibration=None))
    proc = subprocess.run(["make", "-s", "run"], cwd=tmp_path, stdout=subprocess.PIPE, check=False,
                          stderr=subprocess.STDOUT, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:]
    out = proc.stdout
    line = re.search(r"^tokens: ([0-9,]*)$", out, re.MULTILINE).group(1)
    tokens = [int(t) for t in line.split(",")]
    assert tokens == want
    m = re.search(r"^mxu: forward calls (\d+) tiles (\d+) words in (\d+) words out (\d+) "
                  r"unit cycles (\d+) axi cycles (\d+)$", out, re.MULTILINE)
    assert m, out[-2000:]
    calls, tiles, w_in, w_out, unit, axi = map(int, m.groups())
    assert calls == len(prompt) + steps - 1
    est = estimate_json(d / "stories260K.bin", "--target", "matrix8x8", "--schedule",
                        "irtool")["schedules"]["irtool"]["decode"]
    assert (tiles, w_in, w_out, unit, axi) == (calls * est["tiles"], calls * est["words_in"],
                                               calls * est["words_out"],
                                               calls * est["unit_cycles"],
                                               calls * est["axi_cycles"])
    # and, independently, from the shapes: 720 tiles per layer (wq wo 8x8, wk wv 8x4,
    # w1 w3 w2 8x22 tiles), the lm_head on the host
    assert tiles == calls * 5 * (2 * 64 + 2 * 32 + 3 * 176)
    # minstret counts the MXU's C model too: no "modelled time" from it (it said 248 ms a
    # token where the estimate models 31)
    assert "modelled time per generated token" not in out


@pytest.mark.skipif(any(shutil.which(t) is None for t in RV_TOOLS),
                    reason="RISC-V toolchain or qemu missing (bash scripts/setup.sh)")
def test_riscv_ulp_instruction_model_is_near_the_count_on_qemu(shared_models, tmp_path):
    """The core model's instructions per decode token against minstret on qemu (float32
    stories260K), at the mean position of the generated tokens: within 25 %."""
    d = shared_models / "stories260K"
    golden = json.loads((d / "golden.json").read_text())
    steps = 24
    proc = irtool("compile", d / "stories260K.bin", "--target", "riscv-ulp", "-o", tmp_path,
                  "--capacity", 64, "--steps", steps, "--prompt", golden["prompt"])
    assert proc.returncode == 0, proc.stderr
    run = subprocess.run(["make", "-s", "run"], cwd=tmp_path, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True, timeout=600, check=False)
    m = re.search(r"^instructions per generated token: (\d+)$", run.stdout, re.MULTILINE)
    assert m, run.stdout[-2000:]
    n_prompt = len(golden["prompt_ids"])
    mean_pos = (n_prompt + n_prompt + steps - 2) // 2
    est = estimate_json(d / "stories260K.bin", "--target", "riscv-ulp", "--positions",
                        mean_pos)["schedules"]["core"]["decode"]["instructions"]
    assert est == pytest.approx(int(m.group(1)), rel=0.25)


def test_energy_per_token_where_the_description_states_it(tmp_path):
    """A description with energy per instruction, per MAC slot, per AXI word and per byte of
    each memory gets energy per token; the shipped ones state none and print none."""
    desc = json.loads((ROOT / "targets" / "matrix8x8" / "description.json").read_text())
    core, mxu = desc["engines"]
    core["cost"] = {"energy_pj_per_instruction": 10.0,
                    "energy_pj_per_byte": {"flash": 2.0, "sram": 1.0}}
    mxu["cost"].update(energy_pj_per_mac=0.5, energy_pj_per_axi_word=4.0)
    folder = tmp_path / "chip"
    shutil.copytree(ROOT / "targets" / "matrix8x8", folder)
    (folder / "description.json").write_text(json.dumps(desc))
    (folder / "target.py").write_text(
        "from irtool.targets.matrix8x8 import Matrix8x8Target, make_target as _make\n"
        "from irtool.targets.description import load_description\n"
        "def make_target(folder):\n"
        "    base = _make()\n"
        "    return Matrix8x8Target(load_description(folder / 'description.json'), base.rules,\n"
        "                           calls=base.calls, kernels=base.kernels)\n")
    r = estimate_json(ROOT / "irtool" / "data" / "stories260K.bin", "--target", folder,
                      "--schedule", "irtool", "--positions", 3)["schedules"]["irtool"]["decode"]
    want = 0.0
    for o in r["ops"]:
        want += o["extra"].get("instructions", 0) * 10.0
        want += o["bytes"].get("flash", 0) * 2.0 + o["bytes"].get("sram", 0) * 1.0
        if o["engine"] == "mxu":
            want += o["extra"]["tiles"] * 512 * 0.5
            want += (o["extra"]["words_in"] + o["extra"]["words_out"]) * 4.0
    assert r["energy_uj_per_token"] == pytest.approx(want / 1e6)
    plain = estimate_json(ROOT / "irtool" / "data" / "stories260K.bin", "--target", "matrix8x8",
                          "--schedule", "irtool")["schedules"]["irtool"]["decode"]
    assert "energy_uj_per_token" not in plain


def test_weights_over_the_planned_flash_are_refused_at_compile_time(tmp_path):
    """As on riscv-ulp (tests/test_riscv_ulp.py), with matrix8x8's own reserve."""
    from tests.requirements import need
    from tests.test_riscv_ulp import check_flash_reserve

    need("riscv", "qemu")
    check_flash_reserve("matrix8x8", ROOT / "targets" / "matrix8x8" / "description.json",
                        tmp_path, fits_hidden=374)
