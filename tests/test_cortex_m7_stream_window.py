"""`irtool compile --stream-window BYTES`: the cap on the windows weights stream through
(the `window` of `allocate{tile=true}` and `tile`), from the command line to the plan.

stories260K fp32 on cortex-m7-256k streams through two windows of 7,936 B when left to the
plan; with the cap every window and every transfer into one is at most that many bytes. A
cap that is not positive, or one given to a target that streams nothing, is a clear error.
Needs the models only (no qemu run).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.requirements import need

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
MODEL = ROOT.parent / "shared" / "models" / "stories260K" / "stories260K.bin"
CAP = 4096  # the users' own 4 KB window


def irtool(*args) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "irtool"), *map(str, args)], capture_output=True,
                          text=True, timeout=900)


def compile_args(out: Path, target: str, cap) -> list:
    return ["compile", MODEL, "--target", target, "-o", out, "--capacity", 16, "--steps", 2,
            "--stream-window", cap]


def test_the_cap_bounds_every_window_and_transfer_of_the_plan(tmp_path):
    need("models")
    from xdsl.dialects.builtin import IntegerAttr

    from irtool.dialects import memory
    from irtool.ir_names import STREAM_ATTR
    from irtool.module_io import read_module

    proc = irtool(*compile_args(tmp_path / "p", "cortex-m7-256k", CAP))
    assert proc.returncode == 0, proc.stderr
    module = read_module(tmp_path / "p" / "model.hw.mlir")
    plan = {k: v.value.data for k, v in module.attributes[STREAM_ATTR].data.items()
            if isinstance(v, IntegerAttr)}
    assert 0 < plan["window"] <= CAP and plan["tiles"] > 0 and plan["bytes"] > 0
    transfers = [op for op in module.walk() if isinstance(op, memory.DmaStartOp)]
    assert len(transfers) == plan["tiles"]

    def nbytes(t) -> int:
        n = t.element_type.bitwidth // 8
        for d in t.get_shape():
            n *= d
        return n

    sizes = [nbytes(op.dest.type) for op in transfers]
    assert max(sizes) <= CAP and sum(sizes) == plan["bytes"]
    assert "--stream-window BYTES" in irtool("compile", "--help").stdout
    # irtool-opt's named pipeline of the target takes it too
    from irtool.pipelines import expand_pipeline

    spec = expand_pipeline(f"cortex-m7-256k{{stream-window={CAP}}}")
    assert f"tile=true window={CAP}}}" in spec
    assert f'tile{{target="cortex-m7-256k" window={CAP}}}' in spec


def test_a_cap_that_is_not_positive_or_has_nothing_to_cap_is_a_clear_error(tmp_path):
    need("models")
    for target, cap, says in (
            ("cortex-m7-256k", 0, "--stream-window 0: the cap on a weight window must be a "
                                  "positive number of bytes"),
            ("cortex-m7-256k", -64, "--stream-window -64: the cap on a weight window must be"),
            ("riscv-ulp", 4096, "--stream-window 4096: target 'riscv-ulp' streams no weights "
                                "through a window"),
            # siracusa does stream (L2 -> L1 tiles): it was refused as having no tile pass
            ("siracusa", 4096, "--stream-window 4096: target 'siracusa' sizes its L2 -> L1 "
                               "weight tiles itself (the tile pass")):
        proc = irtool(*compile_args(tmp_path / "x", target, cap))
        assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
        assert proc.stderr.startswith("error: ") and proc.stderr.count("\n") == 1, proc.stderr
        assert says in proc.stderr
