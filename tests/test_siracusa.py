"""siracusa: the 8-core cluster target, checked against independent references.

* The hw level (linears as cluster kernels with a team of 8) equals the quant level exactly
  in the interpreter (the kernels' references are the quant interpreter's own functions).
* Natively (`make host`, the team simulated one core after another, ASan/UBSan on), and on
  qemu-system-riscv32 -M virt with 1 and with 8 harts, the program prints the quant-level
  interpreter's greedy tokens for stories260K W8A8 with an int8 KV cache.
* The TCG plugin's per-hart counts: every worker hart ran its share in every decode step, the
  work split follows the row shares (4-row blocks of 172 channels: harts 0-2 own one block
  more of w1 and w3 than harts 3-7, at the portable kernel's ~4.25 instructions per MAC),
  and the modelled step (serial + slowest core per phase) is shorter than on one core.
"""

from __future__ import annotations

import dataclasses
import json
import re
import subprocess

import numpy as np
import pytest

from tests.requirements import need

CAPACITY = 64
STEPS = 10


@pytest.fixture(scope="module")
def quant_level(shared_models):
    """stories260K W8A8 + int8 KV prepared by the compiler's first half (the quant level)."""
    from irtool.compile import CompileOptions, prepare_for_target
    from irtool.frontend.load import import_model

    d = shared_models / "stories260K"
    opts = CompileOptions(target="siracusa", capacity=CAPACITY, quant="w8a8", kv="int8",
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


@pytest.fixture(scope="module")
def project(quant_level, golden, shared_models, tmp_path_factory):
    from irtool.compile import compile_to_c
    from irtool.tokenizer import load_tokenizer

    module, store, opts = quant_level
    out = tmp_path_factory.mktemp("siracusa")
    compile_to_c(module.clone(), store, out, prompt=golden["prompt_ids"], steps=STEPS,
                 tokenizer=load_tokenizer(shared_models / "stories260K" / "tok512.bin"),
                 opts=dataclasses.replace(opts, quant="none", kv="none", calibration=None))
    return out


def test_hw_level_on_the_cluster_equals_the_quant_level(quant_level, golden):
    from irtool.compile import lower_for_target
    from irtool.dialects import hw
    from irtool.interpreter.runner import ModelRunner

    module, store, opts = quant_level
    module = module.clone()
    ids = golden["prompt_ids"] + golden["new_ids"][:6]
    ref = ModelRunner(module.clone(), store).forward(ids)
    lower_for_target(module, dataclasses.replace(opts, quant="none", kv="none",
                                                 calibration=None))
    calls = [op for op in module.walk() if isinstance(op, hw.CallOp)]
    linears = [c for c in calls if c.kernel.startswith("sir_linear")]
    # 7 projections x 5 layers in W8A8, plus the float lm_head
    assert sorted({c.kernel for c in linears}) == ["sir_linear_f32", "sir_linear_w8a8"]
    assert len(linears) == 36 and {c.param("cores") for c in linears} == {8}
    assert not any(c.kernel in ("irt_linear_w8a8", "irt_linear_f32") for c in calls)
    got = ModelRunner(module, store).forward(ids)
    assert np.array_equal(got, ref)


def _tokens(out: str) -> list[int]:
    m = re.search(r"^tokens: ([0-9,]*)$", out, re.MULTILINE)
    assert m, out[-3000:]
    return [int(t) for t in m.group(1).split(",")]


def _make(project, *args, timeout=900) -> str:
    proc = subprocess.run(["make", "-s", *args], cwd=project, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-3000:]
    return proc.stdout


def test_native_build_simulating_the_team_prints_the_interpreter_tokens(project, want):
    need("cc")
    assert _tokens(_make(project, "host", "SAN=1")) == want


def _hartcount(out: str) -> tuple[dict[int, tuple[int, int]], dict[str, int]]:
    harts = {int(h): (int(t), int(s)) for h, t, s in
             re.findall(r"^hartcount: hart (\d+) total (\d+) steps (\d+)$", out, re.MULTILINE)}
    m = re.search(r"^hartcount: steps (\d+) phases (\d+) serial (\d+) parallel-slowest (\d+) "
                  r"parallel-sum (\d+) per-step (\d+)$", out, re.MULTILINE)
    assert m, out[-3000:]
    keys = ("steps", "phases", "serial", "slowest", "parallel_sum", "per_step")
    return harts, dict(zip(keys, map(int, m.groups())))


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
    assert total1["phases"] == 0 and total1["serial"] == harts1[0][1]
    assert total8["phases"] == 36 * steps  # one fork/join per linear
    # every worker hart works inside the decode steps only
    assert all(harts8[h][0] == harts8[h][1] > 0 for h in range(1, 8))
    # the split follows the row shares: 172 channels = 43 blocks of 4 -> 6,6,6,5,5,5,5,5;
    # harts 1-2 own 4 rows more than harts 3-6 of w1 and w3 (K = 64): 512 MACs per layer
    extra_macs = 4 * 64 * 2 * 5 * steps
    extra = harts8[1][1] - harts8[3][1]
    assert harts8[2][1] == harts8[1][1]
    assert 3.5 * extra_macs < extra < 5.5 * extra_macs, (extra, extra_macs)
    # the same work on 8 harts as on one, plus the fork/barrier code (< 400 per hart/phase)
    work8 = sum(s for _, s in harts8.values())
    assert harts1[0][1] < work8 < harts1[0][1] + 400 * 8 * total8["phases"]
    # modelled step: serial + slowest per phase, at least 3x faster than one core here
    assert total8["per_step"] == (total8["serial"] + total8["slowest"]) // steps
    assert total8["per_step"] * 3 < total1["per_step"]
