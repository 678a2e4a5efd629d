"""siracusa: the 8-core cluster target, checked against independent references.

* The hw level (linears and attention by heads as cluster kernels with a team of 8, or
  linears on the NPU) equals the quant level in the interpreter (the kernels' references are
  the quant interpreter's own functions; exact but for the float lm_head's tiles).
* Natively (`make host`, the team simulated one core after another, ASan/UBSan on), and on
  qemu-system-riscv32 -M virt with 1 and with 8 harts (the target without its NPU: a copy of
  the folder whose description drops the engine), and with 8 harts + NPU (the shipped
  target), the program prints the quant-level interpreter's greedy tokens for stories260K
  W8A8 with an int8 KV cache.
* The NPU model's jobs, blocks and cycles equal the description's formula on the model's
  shapes, counted here from the layer sizes.
* The TCG plugin's per-hart counts: every worker hart ran its share in every decode step, the
  work split follows the row shares (4-row blocks of 172 channels: harts 0-2 own one block
  more of w1 and w3 than harts 3-7, at the portable kernel's ~4.25 instructions per MAC),
  and the modelled step (serial + slowest core per phase) is shorter than on one core.
"""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.requirements import need

CAPACITY = 64
STEPS = 10
BIN = Path(sys.executable).parent


def without_npu(folder: Path) -> Path:
    """A copy of the siracusa folder whose description has no NPU: the cluster alone."""
    from irtool.targets.siracusa.target import FOLDER

    shutil.copytree(FOLDER, folder, ignore=shutil.ignore_patterns("__pycache__"))
    desc = json.loads((folder / "description.json").read_text())
    desc["engines"] = [e for e in desc["engines"] if e["name"] != "npu"]
    desc["name"] = "siracusa-cluster"
    (folder / "description.json").write_text(json.dumps(desc))
    return folder


@pytest.fixture(scope="module")
def cluster_target(tmp_path_factory) -> str:
    return str(without_npu(tmp_path_factory.mktemp("target") / "siracusa_cluster"))


@pytest.fixture(scope="module")
def quant_level(shared_models, cluster_target):
    """stories260K W8A8 + int8 KV prepared by the compiler's first half (the quant level)."""
    from irtool.compile import CompileOptions, prepare_for_target
    from irtool.frontend.load import import_model

    d = shared_models / "stories260K"
    opts = CompileOptions(target=cluster_target, capacity=CAPACITY, quant="w8a8", kv="int8",
                          calibration=str(d / "eval_tokens.json"), time_limit=5)
    module, store = import_model(d / "stories260K.bin")
    module, store = prepare_for_target(module, store, opts)
    return module, store, opts


@pytest.fixture(scope="module")
def golden(shared_models):
    return json.loads((shared_models / "stories260K" / "golden.json").read_text())


@pytest.fixture(scope="module")
def want(quant_level, golden):
    """The quant-level interpreter's greedy tokens (the reference for every C run)."""
    from irtool.interpreter.runner import ModelRunner

    module, store, _ = quant_level
    return ModelRunner(module.clone(), store).generate(golden["prompt_ids"], STEPS)


def _project(quant_level, golden, shared_models, out: Path, target: str) -> Path:
    from irtool.compile import compile_to_c
    from irtool.tokenizer import load_tokenizer

    module, store, opts = quant_level
    compile_to_c(module.clone(), store, out, prompt=golden["prompt_ids"], steps=STEPS,
                 tokenizer=load_tokenizer(shared_models / "stories260K" / "tok512.bin"),
                 opts=dataclasses.replace(opts, target=target, quant="none", kv="none",
                                          calibration=None))
    return out


@pytest.fixture(scope="module")
def project(quant_level, golden, shared_models, tmp_path_factory, cluster_target):
    """The cluster alone (no NPU in the description)."""
    return _project(quant_level, golden, shared_models, tmp_path_factory.mktemp("cluster"),
                    cluster_target)


@pytest.fixture(scope="module")
def npu_project(quant_level, golden, shared_models, tmp_path_factory):
    """The shipped target: cluster + NPU."""
    return _project(quant_level, golden, shared_models, tmp_path_factory.mktemp("npu"),
                    "siracusa")


@pytest.mark.parametrize("with_npu", [False, True])
def test_hw_level_equals_the_quant_level(quant_level, golden, cluster_target, with_npu):
    from irtool.compile import lower_for_target
    from irtool.dialects import hw, memory
    from irtool.interpreter.runner import ModelRunner

    module, store, opts = quant_level
    module = module.clone()
    ids = golden["prompt_ids"] + golden["new_ids"][:6]
    ref = ModelRunner(module.clone(), store).forward(ids)
    lower_for_target(module, dataclasses.replace(
        opts, target="siracusa" if with_npu else cluster_target, quant="none", kv="none",
        calibration=None))
    calls = [op for op in module.walk() if isinstance(op, hw.CallOp)]
    accel = [op for op in module.walk() if isinstance(op, hw.AccelOp)]
    linears = [c for c in calls if c.kernel.startswith("sir_linear")]
    lm_head = [c for c in linears if c.kernel == "sir_linear_f32"]
    # the float lm_head [512, 64] streams through L1 in row tiles covering its 512 rows
    assert sum(c.param("N") for c in lm_head) == 512
    if with_npu:  # 7 projections x 5 layers on the NPU (its formula wins at T = 1)
        assert len(accel) == 35 and {(a.engine.data, a.kernel) for a in accel} == {
            ("npu", "npu_linear_w8a8")}
        assert len(linears) == len(lm_head)
    else:  # 7 projections x 5 layers in W8A8 on the cluster, in row tiles
        assert not accel
        w8a8 = [c for c in linears if c.kernel == "sir_linear_w8a8"]
        assert sum(c.param("N") for c in w8a8) == 5 * (64 + 32 + 32 + 64 + 172 + 172 + 64)
    assert {c.param("cores") for c in linears} == {8}
    attention = [c for c in calls if c.kernel == "sir_cached_attention_i8"]
    assert len(attention) == 5 and {c.param("cores") for c in attention} == {8}
    # the NPU's weights sit in its weight memory (the allocator, asked which engine reads
    # them); every weight left in L2 streams L2 -> L1 through the tile pass's windows
    starts = [op for op in module.walk() if isinstance(op, memory.DmaStartOp)]
    if with_npu:
        assert {memory.space_of(a.args[2].type) for a in accel} == {"wmem"}
    assert len(starts) == len(linears)  # one transfer per tile
    assert {(memory.space_of(op.source.type), memory.space_of(op.dest.type))
            for op in starts} == {("l2", "l1")}
    assert not any(c.kernel in ("irt_linear_w8a8", "irt_linear_f32", "irt_cached_attention_i8")
                   for c in calls)
    got = ModelRunner(module, store).forward(ids)
    # the W8A8 layers are exact; the float lm_head's row tiles are summed by numpy's BLAS in
    # another order than the whole matrix (the C kernel's order does not depend on the tile)
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-5)
    assert np.array_equal(got.argmax(-1), ref.argmax(-1))


def _tokens(out: str) -> list[int]:
    m = re.search(r"^tokens: ([0-9,]*)$", out, re.MULTILINE)
    assert m, out[-3000:]
    return [int(t) for t in m.group(1).split(",")]


def _make(project, *args, timeout=900) -> str:
    proc = subprocess.run(["make", "-s", *args], cwd=project, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-3000:]
    return proc.stdout


def test_the_library_archives_objects_and_cores_rebuilds_the_elf(tmp_path):
    """`make lib` archives the objects alone (the plugin and stamp were once appended to its
    `ar` line, meant for `clean`'s); a CORES change rebuilds the ELF, the same value does
    not; `make clean` removes the plugin and the stamps."""
    need("riscv", "cc")
    out = tmp_path / "sir"
    proc = subprocess.run([str(BIN / "irtool"), "compile", "--target", "siracusa", "-o",
                           str(out), "--capacity", "32", "--steps", "4"],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    _make(out, "lib", "irt_hartcount.so")
    members = subprocess.run(["riscv64-unknown-elf-ar", "t", "lib/libirtmodel.a"], cwd=out,
                             capture_output=True, text=True, check=True).stdout.split()
    assert members and all(m.endswith(".o") for m in members), members
    elf = out / "model.elf"
    _make(out, "model.elf", "CORES=2")
    assert (out / "build" / "CORES.stamp").read_text() == "2\n"
    built = elf.stat().st_mtime_ns
    _make(out, "model.elf", "CORES=2")
    assert elf.stat().st_mtime_ns == built
    _make(out, "model.elf")  # the default team of 8
    assert elf.stat().st_mtime_ns != built
    assert (out / "build" / "CORES.stamp").read_text() == "8\n"
    _make(out, "clean")
    assert not (out / "irt_hartcount.so").exists() and not (out / "build").exists()


def test_native_build_simulating_the_team_prints_the_interpreter_tokens(project, want):
    need("cc")
    assert _tokens(_make(project, "host", "SAN=1")) == want


def _hartcount(out: str) -> tuple[dict[int, tuple[int, int]], dict[str, int]]:
    harts = {int(h): (int(t), int(s)) for h, t, s in
             re.findall(r"^hartcount: hart (\d+) total (\d+) steps (\d+)$", out, re.MULTILINE)}
    m = re.search(r"^hartcount: steps (\d+) phases (\d+) serial (\d+) parallel-slowest (\d+) "
                  r"parallel-sum (\d+) device (\d+) per-step (\d+)$", out, re.MULTILINE)
    assert m, out[-3000:]
    keys = ("steps", "phases", "serial", "slowest", "parallel_sum", "device", "per_step")
    return harts, dict(zip(keys, map(int, m.groups()), strict=True))


def rows_of(n: int, quantum: int, core: int, cores: int = 8) -> int:
    """Rows of `n` core `core` computes: equal shares of `quantum`-row blocks, the first
    `blocks % cores` cores one block more (written here from the runtime's description)."""
    blocks = -(-n // quantum)
    per, extra = divmod(blocks, cores)
    b0 = core * per + min(core, extra)
    b1 = b0 + per + (1 if core < extra else 0)
    return min(b1 * quantum, n) - min(b0 * quantum, n)


# instructions per MAC (linears) or per value (elementwise), as the C kernels state them
PER_UNIT = {"sir_linear_w8a8": 4.25, "sir_linear_f32": 2.44, "sir_silu_f32": 50,
            "sir_quantize_act_i8": 12}


def share_difference(model_c: str, a: int, b: int) -> float:
    """Modelled instructions per step hart a does more than hart b, from the calls."""
    total = 0.0
    for m in re.finditer(r"^  (sir_linear_w8a8|sir_linear_f32)\(.*, 1, (\d+), (\d+), 8\);$",
                         model_c, re.MULTILINE):
        k, n = int(m.group(2)), int(m.group(3))
        total += (rows_of(n, 4, a) - rows_of(n, 4, b)) * k * PER_UNIT[m.group(1)]
    for m in re.finditer(r"^  (sir_silu_f32)\(.*, (\d+), 8\);$|"
                         r"^  (sir_quantize_act_i8)\(.*?\)\), (\d+), \(\(float", model_c,
                         re.MULTILINE):
        kernel, n = (m.group(1), m.group(2)) if m.group(1) else (m.group(3), m.group(4))
        total += (rows_of(int(n), 1, a) - rows_of(int(n), 1, b)) * PER_UNIT[kernel]
    return total


def test_qemu_one_and_eight_cores_print_the_interpreter_tokens_with_per_hart_counts(
        project, want, golden):
    need("riscv", "qemu", "cc")
    one = _make(project, "run", "CORES=1")
    eight = _make(project, "run", "CORES=8")
    assert _tokens(one) == want
    assert _tokens(eight) == want

    steps = len(golden["prompt_ids"]) + STEPS - 1
    harts1, total1 = _hartcount(one)
    harts8, total8 = _hartcount(eight)
    assert set(harts1) == {0} and set(harts8) == set(range(8))
    assert total1["steps"] == total8["steps"] == steps
    assert total1["phases"] == 0
    assert total1["serial"] + total1["device"] == harts1[0][1]  # the DMA memcpy is device work
    assert total1["device"] == total8["device"] > 0
    forks = (project / "model.c").read_text().count("  sir_")
    assert total8["phases"] == forks * steps  # one fork/join per linear (tile) and attention
    # every worker hart works inside the decode steps only
    assert all(harts8[h][0] == harts8[h][1] > 0 for h in range(1, 8))
    # the split follows the shares: from the calls in model.c, the rows (4-row blocks of
    # linears, values of SiLU/quantization) harts 1 and 3 get, at the kernels' stated
    # instructions per MAC / value, predict how much more hart 1 works than hart 3
    predicted = steps * share_difference((project / "model.c").read_text(), 1, 3)
    extra = harts8[1][1] - harts8[3][1]
    assert abs(extra - predicted) < 0.2 * abs(predicted) + 500 * steps, (extra, predicted)
    # the same work on 8 harts as on one, plus the fork/barrier code (< 400 per hart/phase)
    work8 = sum(s for _, s in harts8.values())
    assert harts1[0][1] < work8 < harts1[0][1] + 400 * 8 * total8["phases"]
    # modelled step: serial + slowest per phase, at least 3x faster than one core here
    assert total8["per_step"] == (total8["serial"] + total8["slowest"]) // steps
    assert total8["per_step"] * 3 < total1["per_step"]


def test_qemu_eight_cores_and_the_npu_print_the_interpreter_tokens(npu_project, want,
                                                                    golden):
    need("riscv", "qemu", "cc")
    out = _make(npu_project, "run", "CORES=8")
    assert _tokens(out) == want
    steps = len(golden["prompt_ids"]) + STEPS - 1
    m = re.search(r"^npu: jobs (\d+) blocks (\d+) macs (\d+) cycles (\d+); per step: jobs (\d+) "
                  r"cycles (\d+)$", out, re.MULTILINE)
    assert m, out[-3000:]
    jobs, blocks, macs, cycles, step_jobs, step_cycles = map(int, m.groups())
    # per layer, 32x32 blocks of (K, N): wq, wo 64x64 -> 4; wk, wv 64x32 -> 2; w1, w3 64x172
    # -> 12; w2 172x64 -> 12; the description's formula: 200 + 9 per block and token
    per_layer = 4 + 2 + 2 + 4 + 12 + 12 + 12
    assert jobs == 35 * steps and step_jobs == 35
    assert blocks == 5 * per_layer * steps
    assert macs == 5 * (2 * 64 * 64 + 2 * 64 * 32 + 3 * 64 * 172) * steps
    assert cycles == jobs * 200 + blocks * 9 and step_cycles == cycles // steps
    harts, total = _hartcount(out)
    model_c = (npu_project / "model.c").read_text()
    lm_tiles = model_c.count("  sir_linear_f32(")
    assert model_c.count("  sir_cached_attention_i8(") == 5
    # the float lm_head's tiles, and per layer attention, SiLU, the quantization of w2's
    # 172-wide input (the 64-wide quantizations are not worth a fork/join), RoPE of the query
    # (by its 8 heads) and the two int8 KV writes (by kv heads) fork (tests/test_siracusa_rows.py)
    assert model_c.count("  sir_silu_f32(") == model_c.count("  sir_quantize_act_i8(") == 5
    assert model_c.count("  sir_rope_f32(") == 5 and model_c.count("  sir_kv_write_i8(") == 10
    assert total["phases"] == (lm_tiles + 6 * 5) * steps
    assert total["device"] > 0 and total["serial"] + total["device"] < harts[0][1]
    # the W8A8 weights are in the NPU's weight memory: only the float lm_head (the 512 x 64
    # embedding table) streams L2 -> L1 once per step, timed on the description's link formula
    m = re.search(r"^dma l2->l1: transfers (\d+) bytes (\d+) link cycles (\d+); per step: "
                  r"transfers (\d+) bytes (\d+) link cycles (\d+)$", out, re.MULTILINE)
    assert m, out[-3000:]
    transfers, nbytes, link, step_transfers, step_bytes, _ = map(int, m.groups())
    assert step_transfers == lm_tiles and transfers == step_transfers * steps
    assert step_bytes == 512 * 64 * 4
    assert nbytes == step_bytes * steps
    assert abs(link - (30 * transfers + nbytes / 8)) <= 1


def _variant(folder: Path, **sizes) -> Path:
    """A copy of the siracusa folder with other memory sizes."""
    from irtool.targets.siracusa.target import FOLDER

    shutil.copytree(FOLDER, folder, ignore=shutil.ignore_patterns("__pycache__"))
    desc = json.loads((folder / "description.json").read_text())
    for m in desc["memories"]:
        m["size"] = sizes.get(m["name"], m["size"])
    (folder / "description.json").write_text(json.dumps(desc))
    return folder


@pytest.mark.parametrize("sizes, capacity, says", [
    # L1 too small for two windows of the largest weight row (the lm_head's 256 bytes)
    ({"l1": 600}, 64, [r"^error: siracusa: L1 \(l1, 600 bytes, \d+ used by the plan while "
                       r"decode runs\) leaves two DMA windows of \d+ bytes; the \d+ matrices "
                       r"left in L2 stream in at most 64 tiles in all, and windows of \d+ bytes "
                       r"(need \d+ tiles|do not hold one row of each): give l1 at least about "
                       r"\d+ bytes"]),
    # L2 holds the float lm_head (the NPU weight memory the rest) but not the 512-position
    # int8 KV cache beside it
    ({"l1": 65536, "l2": 131072 + 200000}, 512,
     [r"^error: the model does not fit target 'siracusa'", r"@state\.kcache",
      r"KV cache.* (320 bytes per position|positions instead of 512)"]),
])
def test_does_not_fit_reports(shared_models, tmp_path, sizes, capacity, says):
    import subprocess
    import sys

    target = _variant(tmp_path / "target", **sizes)
    d = shared_models / "stories260K"
    args = ["compile", str(d / "stories260K.bin"), "--target", str(target), "--quant", "w8a8",
            "--calibration", str(d / "eval_tokens.json"), "--kv", "int8", "--capacity",
            str(capacity), "-o", str(tmp_path / "out"), "--steps", "2"]
    proc = subprocess.run([sys.executable, "-m", "irtool.cli", *args], capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    for pattern in says:
        assert re.search(pattern, proc.stderr, re.MULTILINE), proc.stderr[-2000:]


def test_estimate_cost_model_hand_figures_and_the_npu_choice():
    from irtool.estimate import WorkOp, estimate, workload_from_config
    from irtool.targets.registry import load_target

    target = load_target("siracusa")
    wq = WorkOp("layers.0", "wq", "linear", K=64, N=64, quantized=True)
    # 8 cores: 64 rows = 16 blocks of 4 -> 2 blocks (8 rows) per core, 64 x 4.25 per row,
    # plus 300 for the fork/join; the 4,096-byte weight moves in one tile: 30 + 4096 / 8
    c = target.cost_model("cluster").op_cost(wq, 1, 0)
    assert c.engine == "cluster" and c.compute_cycles == 8 * 64 * 4.25 + 300
    assert c.movement_cycles == 30 + 4096 / 8 and c.cycles == c.compute_cycles
    one = target.cost_model("single").op_cost(wq, 1, 0)
    assert one.compute_cycles == 64 * 64 * 4.25
    # the NPU: 200 + 2 x 2 blocks x 9, + 8 instructions of requantization per output; it
    # wins, and the cluster's cost is kept as the alternative
    n = target.cost_model("npu").op_cost(wq, 1, 0)
    assert n.engine == "npu" and n.compute_cycles == 200 + 4 * 9 + 8 * 64
    assert n.extra["alternative_cycles"] == c.compute_cycles
    assert n.cycles == max(n.compute_cycles, 30 + 4096 / 8)
    # whole model: more cores and the NPU only ever help
    work = workload_from_config({"hidden_size": 64, "intermediate_size": 256,
                                 "num_hidden_layers": 8, "num_attention_heads": 16,
                                 "head_dim": 4, "vocab_size": 1}, "micro", quantized=True)
    per = {s: estimate(work, target.cost_model(s), 64, 64) for s in ("single", "cluster", "npu")}
    for phase in ("prefill", "decode"):
        assert per["npu"][phase].cycles < per["cluster"][phase].cycles \
            < per["single"][phase].cycles


# --- a MicroLlama-shaped model (Deeploy's test: dim 64, 8 layers, 16 heads of 4) -------------

MICRO = {"dim": 64, "hidden": 256, "layers": 8, "heads": 16, "kv": 16, "vocab": 96, "seq": 64}


def write_microllama(path: Path, seed: int = 0) -> Path:
    """A llama2.c checkpoint of MicroLlama's shape with random weights (the MLP width of 256
    and the 96-token vocabulary are this test's choices)."""
    import struct

    m, rng = MICRO, np.random.default_rng(seed)
    d, h, L, hd = m["dim"], m["hidden"], m["layers"], m["dim"] // m["heads"]
    shapes = [(m["vocab"], d), (L, d), (L, d, d), (L, d, d), (L, d, d), (L, d, d), (L, d),
              (L, h, d), (L, d, h), (L, h, d), (d,), (m["seq"], hd // 2), (m["seq"], hd // 2)]
    parts = []
    for i, shape in enumerate(shapes):
        if i in (1, 6, 10):  # norms' gains
            parts.append(1 + 0.1 * rng.standard_normal(shape))
        else:
            parts.append(rng.standard_normal(shape) / np.sqrt(shape[-1]))
    data = np.concatenate([p.ravel() for p in parts]).astype("<f4")
    header = (d, h, L, m["heads"], m["kv"], m["vocab"], m["seq"])
    path.write_bytes(struct.pack("<7i", *header) + data.tobytes())
    return path


@pytest.mark.parametrize("with_npu", [False, True])
def test_microllama_shape_on_qemu_prints_the_interpreter_tokens(tmp_path, cluster_target,
                                                                with_npu):
    need("riscv", "qemu", "cc")
    from irtool.compile import CompileOptions, compile_to_c, prepare_for_target
    from irtool.frontend.load import import_model
    from irtool.interpreter.runner import ModelRunner

    model = write_microllama(tmp_path / "micro.bin")
    rng = np.random.default_rng(1)
    calib = tmp_path / "calib.json"
    calib.write_text(json.dumps([rng.integers(0, MICRO["vocab"], 24).tolist()
                                 for _ in range(4)]))
    opts = CompileOptions(target="siracusa" if with_npu else cluster_target, capacity=32,
                          quant="w8a8", kv="int8", calibration=str(calib), time_limit=5)
    module, store = prepare_for_target(*import_model(model), opts)
    prompt, steps = [1, 17, 42, 5], 8
    want = ModelRunner(module.clone(), store).generate(prompt, steps)
    out = tmp_path / "out"
    compile_to_c(module, store, out, prompt=prompt, steps=steps, tokenizer=None,
                 opts=dataclasses.replace(opts, quant="none", kv="none", calibration=None))
    text = _make(out, "run", "CORES=8")
    assert _tokens(text) == want
    harts, total = _hartcount(text)
    assert set(harts) == set(range(8)) and total["steps"] == len(prompt) + steps - 1
    model_c = (out / "model.c").read_text()
    assert model_c.count("  sir_cached_attention_i8(") == 8  # 16 heads: 2 per core
    assert model_c.count("npu_linear_w8a8(") == (7 * 8 if with_npu else 0)
