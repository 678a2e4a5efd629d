"""`irtool-opt --check-numerics`: a pass that changes the numbers is caught and named, passes
that keep them pass, and output the interpreter cannot run is skipped with a note.

The wrong passes are test-only passes registered with the opt driver in Python (fixtures), so
the driver runs exactly as a user runs it, with one more pass to choose from.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pytest
from xdsl.context import Context
from xdsl.dialects import func
from xdsl.dialects.builtin import ModuleOp, StringAttr
from xdsl.passes import ModulePass
from xdsl.utils.arg_spec import parse_pipeline

from irtool.check_numerics import DEFAULT_TOLERANCE, with_default_tolerance
from irtool.diagnostics import run_reporting_errors
from irtool.frontend.load import DEFAULT_MODEL, import_model
from irtool.interpreter.runner import ModelRunner
from irtool.ir_names import FORWARD
from irtool.module_io import load_module, load_store, write_module
from irtool.opt import IrToolOptMain
from irtool.pipelines import expand_pipeline
from irtool.weights import WeightStore, set_store_reference

PROBE = [1, 171, 341, 511]  # what the default probe is for a 512-token vocabulary
EMBEDDING = "tok_embeddings"


@pytest.fixture(scope="module")
def stories(tmp_path_factory):
    """stories260K at the transformer level, written as .mlir + store."""
    path = tmp_path_factory.mktemp("model") / "stories.mlir"
    write_module(*import_model(DEFAULT_MODEL), path)
    return path


@pytest.fixture
def perturb_pass(tmp_path):
    """`perturb-weight{token=T delta=D}`: adds D to the embedding row of token T, in a new
    store beside the test's files (as quantize writes a new store)."""

    @dataclass(frozen=True)
    class PerturbWeight(ModulePass):
        name = "perturb-weight"
        token: int = 0
        delta: float = 0.05

        def apply(self, ctx: Context, op: ModuleOp) -> None:
            arrays = dict(load_store(op, "perturb-weight").arrays)
            emb = arrays[EMBEDDING].copy()
            emb[self.token] += np.float32(self.delta)
            arrays[EMBEDDING] = emb
            path = tmp_path / f"perturbed-{self.token}.weights.npz"
            WeightStore(arrays).save(path)
            set_store_reference(op, str(path))

    return PerturbWeight


@dataclass(frozen=True)
class RenameForward(ModulePass):
    """`rename-forward{to=NAME}`: the interpreter finds no entry point it knows in the
    output until a later rename-forward{to=forward}."""

    name = "rename-forward"
    to: str = "hidden"
    frm: str = FORWARD

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        for f in op.body.block.ops:
            if isinstance(f, func.FuncOp) and f.sym_name.data in (FORWARD, "hidden"):
                f.sym_name = StringAttr(self.to)


def run_opt(argv, capsys, *extra_passes) -> tuple[int, str]:
    """irtool-opt as main() runs it, with `extra_passes` registered: (exit code, stderr)."""

    class Opt(IrToolOptMain):
        def register_all_passes(self) -> None:
            super().register_all_passes()
            for p in extra_passes:
                self.register_pass(p.name, lambda p=p: p)

    args = with_default_tolerance([str(a) for a in argv])
    try:
        run_reporting_errors(lambda: Opt(args=args).run(), debug=False)
        code = 0
    except SystemExit as e:
        code = e.code
    return code, capsys.readouterr().err


def test_riscv_ulp_pipeline_keeps_the_logits(stories, tmp_path, capsys):
    spec = "riscv-ulp{capacity=128}"
    code, err = run_opt([stories, "--check-numerics", f"--pipeline={spec}",
                         "-o", tmp_path / "out.mlir"], capsys)
    assert code == 0, err
    # every pass (canonicalize, cse, extract-kv-cache, bufferize, allocate, lower-to-hw today)
    passes = list(parse_pipeline(expand_pipeline(spec)))
    assert "lower-to-hw" in [p.name for p in passes]
    assert (f"{len(passes)} pass(es) kept the logits of the probe {','.join(map(str, PROBE))} "
            f"within {DEFAULT_TOLERANCE:g}") in err
    assert "error" not in err and "skipped" not in err


def test_a_pass_that_changes_a_weight_is_named(stories, tmp_path, capsys, perturb_pass):
    """The probe's last token gets a different embedding row after the second pass. The
    row is also the classifier's (tied embeddings), so every position moves a little, the
    last most: the error names the pass, that position and the change the interpreter
    computes at the forward level for that store."""
    last = PROBE[-1]
    pipeline = ("extract-kv-cache{prefill=token-by-token capacity=16},"
                f"perturb-weight{{token={last} delta=0.05}},bufferize")
    code, err = run_opt([stories, "--check-numerics", "-p", pipeline,
                         "-o", tmp_path / "out.mlir"], capsys, perturb_pass)
    assert code == 1
    m = re.fullmatch(r"error: pass 'perturb-weight' changed the logits by (\S+) "
                     r"\(tolerance 0\.0001\) at position (\d+)\n", err)
    assert m, err

    # the change, recomputed at the forward level with the perturbed store
    module, store = load_module(stories)
    ref = ModelRunner(module, store).forward(PROBE)
    arrays = dict(store.arrays)
    arrays[EMBEDDING] = arrays[EMBEDDING].copy()
    arrays[EMBEDDING][last] += np.float32(0.05)
    got = ModelRunner(module, WeightStore(arrays)).forward(PROBE)
    per_position = np.abs(got - ref).max(axis=1) / np.abs(ref).max()
    assert int(m[2]) == np.argmax(per_position) == len(PROBE) - 1
    assert float(m[1]) == pytest.approx(per_position.max(), rel=2e-3)


def test_a_change_within_the_tolerance_passes(stories, tmp_path, capsys, perturb_pass):
    pipeline = f"perturb-weight{{token={PROBE[0]} delta=0.05}}"
    code, err = run_opt([stories, "--check-numerics=0.5", "-p", pipeline,
                         "-o", tmp_path / "out.mlir"], capsys, perturb_pass)
    assert code == 0, err
    assert "1 pass(es) kept the logits" in err and "within 0.5" in err
    tiny = f"perturb-weight{{token={PROBE[0]} delta=0.000001}}"
    code, err = run_opt([stories, "--check-numerics", "--tokens", "5,6", "-p", tiny,
                         "-o", tmp_path / "out.mlir"], capsys, perturb_pass)
    assert code == 0 and "of the probe 5,6 within 0.0001" in err, err


def test_output_the_interpreter_cannot_run_is_skipped(stories, tmp_path, capsys):
    pipeline = "rename-forward{to=hidden},rename-forward{to=forward}"
    code, err = run_opt([stories, "--check-numerics", "-p", pipeline,
                         "-o", tmp_path / "out.mlir"], capsys, RenameForward)
    assert code == 0, err
    assert ("note: --check-numerics: skipped pass 'rename-forward': the interpreter cannot "
            "run its output (the module has neither @forward nor @decode") in err
    assert "1 pass(es) kept the logits" in err


@pytest.mark.parametrize("argv, message", [
    (["--check-numerics", "--tokens", "1,9999", "-p", "cse"],
     "error: --check-numerics: the interpreter cannot run the input module, so there is "
     "nothing to compare the passes with: tokens: token id 9999 (position 1) is outside the "
     "vocabulary 0..511"),
    (["--tokens", "1,2", "-p", "cse"],
     "error: --tokens is the probe of --check-numerics: give both"),
])
def test_bad_probe(stories, tmp_path, capsys, argv, message):
    code, err = run_opt([stories, *argv, "-o", tmp_path / "out.mlir"], capsys)
    assert code == 1 and err == message + "\n"


def test_bad_tolerance(stories, capsys):
    code, err = run_opt([stories, "--check-numerics=-1", "-p", "cse"], capsys)
    assert code == 1 and err.startswith("error: ")  # a usage error is a bad input: exit 1
    assert "the tolerance must be a positive number, got '-1'" in err


def test_the_quantize_pass_is_checked(stories, tmp_path, capsys):
    """quantize writes a new store, and the checker reads that store (this command's own
    output, not yet renamed into place) instead of skipping the pass: w4g32 moves the logits
    by what the written module computes, within the loose tolerance, beyond the default."""
    from irtool.check_numerics import relative_change

    out = tmp_path / "cn5.mlir"
    pipeline = "extract-kv-cache{capacity=64},quantize{scheme=w4g32}"
    code, err = run_opt([stories, "--check-numerics=0.5", "-p", pipeline, "-o", out], capsys)
    assert code == 0, err
    assert "skipped" not in err, err
    m = re.search(r"2 pass\(es\) kept the logits of the probe 1,171,341,511 within 0\.5 "
                  r"\(largest change (\S+), after 'quantize'\)", err)
    assert m, err
    reference = ModelRunner(*load_module(stories)).forward(PROBE)
    written = ModelRunner(*load_module(out)).forward(PROBE)
    change, _ = relative_change(written, reference)
    assert float(m[1]) == pytest.approx(change, rel=2e-3) and 1e-4 < change < 0.5
    code, err = run_opt([stories, "--check-numerics", "-p", pipeline,
                         "-o", tmp_path / "strict.mlir"], capsys)
    assert code == 1
    assert re.fullmatch(r"error: pass 'quantize' changed the logits by (\S+) \(tolerance "
                        r"0\.0001\) at position \d+\n", err), err
    assert not (tmp_path / "strict.mlir").exists()
    assert not (tmp_path / "strict.weights.npz").exists()
