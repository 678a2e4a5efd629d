"""The planned memory level of real models, end to end.

After extract-kv-cache, bufferize and allocate, the plan passes the independent checker, and the
memory-level interpreter, which keeps every placed buffer at its offset inside one byte array
per memory space, still produces the golden greedy tokens. Moving one activation buffer onto
another live one must break the tokens: the test proves the offsets are really used.
"""

import json

import pytest
from xdsl.dialects.builtin import IntegerAttr, i64
from xdsl.passes import PassPipeline

from irtool.context import make_context
from irtool.dialects import memory
from irtool.errors import IrtoolError
from irtool.frontend.load import import_model
from irtool.interpreter.runner import ModelRunner
from irtool.passes import get_all_passes
from tests.plan_checker import assert_valid_plan, target_memories

CASES = {
    "stories260K": ("stories260K/stories260K.bin", "stories260K/golden.json", 128),
    "nanogpt-tiny": ("nanogpt-tiny/nanogpt.onnx", "nanogpt-tiny/golden.json", 80),
}


def planned(shared_models, model, capacity, target="riscv-ulp"):
    module, store = import_model(shared_models / model)
    spec = (f"extract-kv-cache{{prefill=token-by-token capacity={capacity}}},bufferize,"
            f"allocate{{target={target} time-limit=5}}")
    PassPipeline.parse_spec(get_all_passes(), spec).apply(make_context(), module)
    module.verify()
    return module, store


@pytest.mark.parametrize("name", sorted(CASES))
def test_planned_memory_level_reproduces_golden_tokens(shared_models, name):
    model, golden_file, capacity = CASES[name]
    golden = json.loads((shared_models / golden_file).read_text())
    module, store = planned(shared_models, model, capacity)
    assert_valid_plan(module, target_memories("riscv-ulp"))
    assert not any(isinstance(op, memory.KernelOp) and not op.ins for op in module.walk())
    tokens = ModelRunner(module, store).generate(golden["prompt_ids"], 64)
    assert tokens == golden["new_ids"]


def test_a_wrong_offset_breaks_the_tokens(shared_models):
    golden = json.loads((shared_models / "stories260K/golden.json").read_text())
    module, store = planned(shared_models, "stories260K/stories260K.bin", 128)
    allocs = [op for op in module.walk() if isinstance(op, memory.AllocOp)]
    # Put the first hidden-state buffer onto the offset of the first linear output: both are
    # live together (the residual stream outlives the attention block).
    residual, other = allocs[0], allocs[2]
    assert residual.placement[0] == other.placement[0]
    residual.properties["offset"] = IntegerAttr(other.placement[1], i64)
    try:
        tokens = ModelRunner(module, store).generate(golden["prompt_ids"], 16)
    except IrtoolError as e:  # the overlap poisons the logits to NaN: refused, not token 0
        assert "NaN/Inf logits" in str(e)
    else:
        assert tokens != golden["new_ids"][:16]
