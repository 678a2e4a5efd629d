"""Property-based fuzzing of bad inputs (issue 15), with hypothesis.

One property for every input and command: exit 0 with a correct result, or exit 1 with a clear
first line `error: ...`; never an internal error ("this is a bug in irtool"), never a
traceback, never a modified input. The inputs are mutations of real models: the 7-int header
of the llama2.c stories260K checkpoint, the ONNX graph of nanogpt-tiny, the IR text of
stories260K at the transformer level and the memory plan (offsets) of its hw-level module.

"Correct" is judged against an independent reference: the unmutated model where the mutation
cannot change the model (a header with the same shape, a plan the verifier accepts must compute
the same logits as the allocator's plan), onnxruntime on the mutated ONNX graph. The drivers
run in-process and examples are few, so this stays fast.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import struct
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from irtool import cli, opt, run
from tests.test_bad_inputs import call

FUZZ = settings(max_examples=6, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow])


def sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def check_outcome(result) -> bool:
    """The property's common half: exit 0, or exit 1 with one clear `error:` first line.
    Returns whether the command succeeded."""
    code, _, err = result
    assert code in (0, 1), err
    assert "this is a bug" not in err and "Traceback" not in err, err
    if code == 1:
        assert err.startswith("error: ") and len(err.splitlines()[0]) > len("error: ") + 10, err
    return code == 0


def run_logits(path: Path, d: Path, tokens: str = "1,403") -> tuple[bool, np.ndarray | None]:
    out = d / "logits.npy"
    ok = check_outcome(call(run.main, path, "--tokens", tokens, "--dump-logits", out))
    return ok, (np.load(out) if ok else None)


@pytest.fixture(scope="module")
def work(shared_models, tmp_path_factory):
    """stories260K imported and lowered to hw once; the reference logits of both."""
    d = tmp_path_factory.mktemp("fuzz")
    model = shared_models / "stories260K" / "stories260K.bin"
    assert check_outcome(call(cli.main, "import", model, "-o", d / "m.mlir"))
    assert check_outcome(call(opt.main, d / "m.mlir", "--pipeline=riscv-ulp{capacity=16}",
                              "-o", d / "hw.mlir"))
    ok, ref = run_logits(d / "m.mlir", d)
    assert ok
    ok, ref_hw = run_logits(d / "hw.mlir", d)
    assert ok
    return {"dir": d, "bin": model, "ref": ref, "ref_hw": ref_hw,
            "onnx": shared_models / "nanogpt-tiny" / "nanogpt.onnx"}


# --- llama2.c headers -------------------------------------------------------------------------

HEADER_FIELDS = ("dim", "hidden_dim", "n_layers", "n_heads", "n_kv_heads", "vocab_size",
                 "seq_len")
SHAPE_FIELDS = HEADER_FIELDS[:6]


@FUZZ
@given(changes=st.dictionaries(st.sampled_from(HEADER_FIELDS),
                               st.one_of(st.integers(-2**31, 2**31 - 1),
                                         st.integers(-3, 1100)), min_size=1, max_size=3))
def test_llama2c_header_mutations(work, changes):
    data = work["bin"].read_bytes()
    header = dict(zip(HEADER_FIELDS, struct.unpack_from("<7i", data), strict=True))
    mutated = {**header, **changes}
    with tempfile.TemporaryDirectory() as t:
        d = Path(t)
        path = d / "model.bin"
        path.write_bytes(struct.pack("<7i", *mutated.values()) + data[28:])
        before = sha(path)
        ok, logits = run_logits(path, d)
        assert sha(path) == before
        if ok:
            same_shape = all(abs(mutated[k]) == abs(header[k]) for k in SHAPE_FIELDS)
            assert np.isfinite(logits).all() and logits.shape == (2, abs(mutated["vocab_size"]))
            if same_shape and mutated["vocab_size"] == header["vocab_size"]:
                np.testing.assert_allclose(logits, work["ref"], atol=1e-5)


# --- ONNX graph mutations ---------------------------------------------------------------------

def _mutate_onnx(model, kind: str, i: int, j: int):
    g = model.graph
    nodes, inits = g.node, g.initializer
    if kind == "drop_node":
        del nodes[i % len(nodes)]
    elif kind == "drop_initializer":
        del inits[i % len(inits)]
    elif kind == "rewire_input":
        node = nodes[i % len(nodes)]
        if node.input:
            others = [o for n in nodes for o in n.output] + [t.name for t in inits]
            node.input[j % len(node.input)] = others[(i * 7 + j) % len(others)]
    elif kind == "rename_output":
        g.output[0].name = f"renamed_{i}"
    elif kind == "op_type":
        nodes[i % len(nodes)].op_type = ("Relu", "Add", "Mul", "Identity", "Bogus")[j % 5]
    elif kind == "scale_initializer":
        from onnx import numpy_helper

        t = inits[i % len(inits)]
        arr = numpy_helper.to_array(t)
        if arr.dtype.kind == "f":
            t.CopyFrom(numpy_helper.from_array(arr * np.float32(1 + j % 3), t.name))


@settings(FUZZ, max_examples=4)  # an ONNX import is the slowest step of all
@given(kind=st.sampled_from(["drop_node", "drop_initializer", "rewire_input", "rename_output",
                             "op_type", "scale_initializer"]),
       i=st.integers(0, 10_000), j=st.integers(0, 100))
def test_onnx_graph_mutations(work, kind, i, j):
    import onnx
    import onnxruntime as ort

    model = onnx.load(work["onnx"])
    _mutate_onnx(model, kind, i, j)
    with tempfile.TemporaryDirectory() as t:
        d = Path(t)
        path = d / "model.onnx"
        onnx.save(model, path)
        before = sha(path)
        ok, logits = run_logits(path, d, "1,5,9")
        assert sha(path) == before
        if ok:  # then onnxruntime runs the same graph to the same logits
            sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
            want = sess.run(None, {sess.get_inputs()[0].name:
                                   np.array([[1, 5, 9]], dtype=np.int64)})[0][0]
            np.testing.assert_allclose(logits, want, atol=1e-4)


# --- IR text mutations ------------------------------------------------------------------------

@FUZZ
@given(kind=st.sampled_from(["drop_line", "duplicate_line", "swap_lines", "number", "truncate",
                             "delete_chars"]),
       i=st.integers(0, 10_000), j=st.integers(0, 10_000))
def test_ir_text_mutations(work, kind, i, j):
    text = (work["dir"] / "m.mlir").read_text()
    lines = text.splitlines(keepends=True)
    a, b = i % len(lines), j % len(lines)
    if kind == "drop_line":
        del lines[a]
    elif kind == "duplicate_line":
        lines.insert(a, lines[a])
    elif kind == "swap_lines":
        lines[a], lines[b] = lines[b], lines[a]
    elif kind == "number":
        nums = list(re.finditer(r"\b\d+\b", text))
        m = nums[i % len(nums)]
        text = text[:m.start()] + str([0, 1, 7, 2**31, 2**63, j][j % 6]) + text[m.end():]
        lines = [text]
    elif kind == "truncate":
        lines = [text[:i % len(text)]]
    else:
        lines = [text[:i % len(text)] + text[i % len(text) + 1 + j % 5:]]
    mutated = "".join(lines)
    with tempfile.TemporaryDirectory() as t:
        d = Path(t)
        shutil.copy(work["dir"] / "m.weights.npz", d / "m.weights.npz")
        path = d / "m.mlir"
        path.write_text(mutated)
        before = (sha(path), sha(d / "m.weights.npz"))
        ok, logits = run_logits(path, d)
        assert (sha(path), sha(d / "m.weights.npz")) == before
        if ok:
            assert logits.shape[0] == 2 and np.isfinite(logits).all()
            if mutated == text or kind == "swap_lines" and lines[a] == lines[b]:
                np.testing.assert_allclose(logits, work["ref"], atol=1e-5)


@FUZZ
@given(picks=st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 2**20)),
                      min_size=1, max_size=3))
def test_memory_plan_mutations(work, picks):
    """Any plan the verifier accepts computes exactly what the allocator's plan computes."""
    text = (work["dir"] / "hw.mlir").read_text()
    offsets = list(re.finditer(r"offset = (\d+) : i64", text))
    for which, value in picks:
        m = offsets[which % len(offsets)]
        new = value - value % 4 if which % 2 else int(m.group(1)) + (value % 64) * 4
        text = text[:m.start(1)] + str(new) + text[m.end(1):]
        offsets = list(re.finditer(r"offset = (\d+) : i64", text))
    with tempfile.TemporaryDirectory() as t:
        d = Path(t)
        shutil.copy(work["dir"] / "m.weights.npz", d / "m.weights.npz")
        path = d / "hw.mlir"
        path.write_text(text)
        ok, logits = run_logits(path, d)
        if ok:
            np.testing.assert_allclose(logits, work["ref_hw"], atol=0)
