"""An output placed on top of its own still-needed input breaks the memory and hw levels.

stories260K after extract-kv-cache, bufferize and allocate (the memory level) and after
lower-to-hw (the hw level): one edit of one offset moves a kernel's out buffer onto an in
buffer of the same kernel that dies at that kernel (so the live ranges only touch, at the
kernel itself, and nothing else overlaps). The C kernel would write while it reads; numpy
computes the whole result before storing it, so without the interpreter's poisoning the edit
is invisible (shown here by switching the poisoning off). With it the logits are NaN, while the
unedited plan still gives the torch logits.
"""

from __future__ import annotations

import numpy as np
import pytest
from xdsl.dialects import func
from xdsl.dialects.builtin import IntegerAttr, ModuleOp, i64

from irtool.dialects import hw, memory
from irtool.liveness import top_level_order
from irtool.weights import numpy_dtype
from tests.plan_checker import check_plan, target_memories

CAPACITY = 32
PIPELINES = {
    "memory": f"extract-kv-cache{{prefill=token-by-token capacity={CAPACITY}}},bufferize,"
              "allocate{target=riscv-ulp}",
    "hw": f"extract-kv-cache{{prefill=token-by-token capacity={CAPACITY}}},bufferize,"
          "allocate{target=riscv-ulp},lower-to-hw{target=riscv-ulp}",
}
TOKENS = 12


@pytest.fixture(scope="module")
def reference(shared_models):
    ref = np.load(shared_models / "stories260K" / "golden_logits.npz")
    return ref["input_ids"][0][:TOKENS], ref["logits"][0][:TOKENS]


@pytest.fixture(scope="module", params=sorted(PIPELINES))
def placed(request, shared_models):
    from xdsl.passes import PassPipeline

    from irtool.context import make_context
    from irtool.frontend.load import import_model
    from irtool.passes import get_all_passes

    module, store = import_model(shared_models / "stories260K" / "stories260K.bin")
    PassPipeline.parse_spec(get_all_passes(), PIPELINES[request.param]).apply(make_context(),
                                                                              module)
    return request.param, module, store


def _nbytes(op: memory.AllocOp) -> int:
    t = op.result.type
    return numpy_dtype(t).itemsize * int(np.prod(t.get_shape()))


def _reads_and_writes(op) -> tuple[list, list]:
    """(read, written) buffer values of a kernel or a kernel call."""
    if isinstance(op, memory.KernelOp):
        return list(op.ins), list(op.outs)
    from irtool.kernels import checked_signature

    spec = checked_signature(op)
    named = list(zip(spec.operands, op.args, strict=True))
    return ([v for n, v in named if n not in spec.writes],
            [v for n, v in named if n in spec.writes])


def _out_onto_dying_in(module: ModuleOp) -> tuple[memory.AllocOp, memory.AllocOp]:
    """Move, in @decode, the out buffer of a kernel onto an in buffer that the kernel reads
    for the last time, such that the independent plan checker sees exactly that one overlap
    (the two live ranges touch at the kernel). Returns (in alloc, out alloc)."""
    decode = next(op for op in module.ops
                  if isinstance(op, func.FuncOp) and op.sym_name.data == "decode")
    order = top_level_order(decode)
    memories = target_memories("riscv-ulp")
    for op, i in order.items():
        if not isinstance(op, memory.KernelOp | hw.CallOp):
            continue
        reads, writes = _reads_and_writes(op)
        for r in reads:
            if not isinstance(r.owner, memory.AllocOp) or any(
                    order.get(u.operation, -1) > i for u in r.uses):
                continue  # not an alloc, or needed later
            for w in writes:
                src, dst = r.owner, w.owner
                if (not isinstance(dst, memory.AllocOp) or dst is src
                        or dst.placement[0] != src.placement[0] or _nbytes(dst) > _nbytes(src)):
                    continue
                old = dst.properties["offset"]
                dst.properties["offset"] = IntegerAttr(src.placement[1], i64)
                errors = check_plan(module, memories)
                if len(errors) == 1 and "overlap" in errors[0]:
                    return src, dst
                dst.properties["offset"] = old
    pytest.fail("no kernel whose out buffer fits on an in buffer that dies there")


def _logits(module: ModuleOp, store, ids) -> np.ndarray:
    from irtool.interpreter.runner import ModelRunner

    return ModelRunner(module, store).forward(ids)


def test_unedited_plan_gives_the_torch_logits(placed, reference):
    _, module, store = placed
    ids, want = reference
    assert check_plan(module, target_memories("riscv-ulp")) == []
    np.testing.assert_allclose(_logits(module.clone(), store, ids), want, rtol=0, atol=1e-4)


def test_out_on_its_own_dying_in_gives_nan_logits(placed, reference, monkeypatch):
    level, module, store = placed
    ids, want = reference
    broken = module.clone()
    src, dst = _out_onto_dying_in(broken)
    assert src.placement == dst.placement
    logits = _logits(broken.clone(), store, ids)
    assert np.isnan(logits).any(), f"{level}: the overlap went unnoticed"
    # the control: without the poisoning the edit is invisible at this level
    import irtool.interpreter.hw as hw_interp
    import irtool.interpreter.memory as mem_interp

    monkeypatch.setattr(mem_interp, "poison_overlapping_outs", lambda outs, ins: None)
    monkeypatch.setattr(hw_interp, "poison_overlapping_outs", lambda outs, ins: None)
    np.testing.assert_allclose(_logits(broken, store, ids), want, rtol=0, atol=1e-4)
