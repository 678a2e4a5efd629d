"""The hw level, interpreted: stories260K after extract-kv-cache, bufferize, allocate and
lower-to-hw for riscv-ulp runs as a sequence of runtime-kernel calls on buffers that are views
into one arena per memory space, at the offsets the allocator chose.

It reproduces the golden greedy tokens (and the torch logits); moving one activation buffer
onto another live buffer breaks it, while moving it to free bytes does not: the placement is
really exercised at this level, not just carried along.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from xdsl.dialects import func
from xdsl.dialects.builtin import IntegerAttr, ModuleOp, i64

from irtool.dialects import hw, memory
from irtool.errors import IrtoolError
from irtool.ir_names import DECODE, entry_points
from irtool.weights import numpy_dtype
from tests.plan_checker import check_plan, target_memories

CAPACITY = 128  # the model's 512 positions do not fit riscv-ulp's SRAM
PIPELINE = (f"extract-kv-cache{{prefill=token-by-token capacity={CAPACITY}}},bufferize,"
            "allocate{target=riscv-ulp},lower-to-hw{target=riscv-ulp}")


@pytest.fixture(scope="module")
def golden(shared_models) -> dict:
    return json.loads((shared_models / "stories260K" / "golden.json").read_text())


@pytest.fixture(scope="module")
def hw_module(shared_models):
    from xdsl.passes import PassPipeline

    from irtool.context import make_context
    from irtool.frontend.load import import_model
    from irtool.passes import get_all_passes

    module, store = import_model(shared_models / "stories260K" / "stories260K.bin")
    PassPipeline.parse_spec(get_all_passes(), PIPELINE).apply(make_context(), module)
    module.verify()
    return module, store


def _decode(module: ModuleOp) -> func.FuncOp:
    return entry_points(module)[DECODE]


def _generate(module: ModuleOp, store, golden: dict) -> list[int]:
    from irtool.interpreter.runner import ModelRunner

    return ModelRunner(module, store).generate(golden["prompt_ids"], golden["n_new"])


def test_decode_is_kernel_calls_on_placed_buffers(hw_module):
    module, _ = hw_module
    assert module.attributes[hw.TARGET_ATTR] == hw.TargetAttr("riscv-ulp")
    decode = _decode(module)
    names = {op.name for op in decode.walk()}
    assert not any(n.startswith("transformer.") for n in names), names
    assert "memory.kernel" not in names
    calls = [op for op in decode.walk() if isinstance(op, hw.CallOp)]
    assert len(calls) > 50
    for op in decode.walk():
        if isinstance(op, memory.AllocOp):
            space, offset = op.placement
            assert space is not None and offset is not None
    assert check_plan(module, target_memories("riscv-ulp")) == []


def test_hw_level_reproduces_the_golden_tokens(hw_module, golden, shared_models):
    module, store = hw_module
    assert _generate(module.clone(), store, golden) == golden["new_ids"]
    # and every position's logits, against the torch reference
    from irtool.interpreter.runner import ModelRunner

    ref = np.load(shared_models / "stories260K" / "golden_logits.npz")
    logits = ModelRunner(module.clone(), store).forward(ref["input_ids"][0])
    np.testing.assert_allclose(logits, ref["logits"][0], rtol=0, atol=1e-4)


def _residual_and_neighbour(module: ModuleOp) -> tuple[memory.AllocOp, memory.AllocOp]:
    """The residual stream (the embedding's output, live until the final norm) and the next
    buffer the plan put in the same memory, written while the residual is still needed."""
    decode = _decode(module)
    emb = next(op for op in decode.walk()
               if isinstance(op, hw.CallOp)
               and op.kernel in ("irt_embedding_f32", "irt_embedding_packed_f32"))
    residual = emb.args[2].owner
    assert isinstance(residual, memory.AllocOp)
    space = residual.placement[0]
    allocs = [op for op in decode.walk() if isinstance(op, memory.AllocOp)]
    after = allocs[allocs.index(residual) + 1:]
    neighbour = next(op for op in after if op.placement[0] == space)
    return residual, neighbour


def _move(op: memory.AllocOp, offset: int) -> None:
    op.properties["offset"] = IntegerAttr(offset, i64)


def test_overlapping_a_live_buffer_breaks_the_hw_level(hw_module, golden):
    module, store = hw_module
    broken = module.clone()
    residual, victim = _residual_and_neighbour(broken)
    _move(victim, residual.placement[1])
    errors = check_plan(broken, target_memories("riscv-ulp"))
    assert any("overlap" in e for e in errors), errors
    try:
        tokens = _generate(broken, store, golden)
    except IrtoolError as e:  # the overlap poisons the logits to NaN: refused, not token 0
        assert "NaN/Inf logits" in str(e)
    else:
        assert tokens != golden["new_ids"]


def test_moving_a_buffer_to_free_bytes_keeps_the_tokens(hw_module, golden):
    """The control for the test above: the same edit to other free, aligned bytes (a valid
    plan by the independent checker) is harmless."""
    module, store = hw_module
    moved = module.clone()
    _, victim = _residual_and_neighbour(moved)
    space, original = victim.placement
    memories = target_memories("riscv-ulp")
    size = _nbytes(victim)
    align = max(victim.alignment.value.data if victim.alignment else 1, memories[space].alignment)
    # candidates: right after the end of any buffer of the space (or at its start)
    ends = {0} | {op.placement[1] + _nbytes(op) for op in moved.walk()
                  if isinstance(op, memory.AllocOp | memory.GlobalOp) and op.placement[0] == space}
    for end in sorted(ends):
        offset = (end + align - 1) // align * align
        if offset == original or offset + size > memories[space].size:
            continue
        _move(victim, offset)
        if not check_plan(moved, memories):
            break
    else:
        pytest.fail(f"no free {size} bytes in {space} for the moved buffer")
    assert _generate(moved, store, golden) == golden["new_ids"]


def _nbytes(op: memory.AllocOp | memory.GlobalOp) -> int:
    t = op.type if isinstance(op, memory.GlobalOp) else op.result.type
    return numpy_dtype(t).itemsize * int(np.prod(t.get_shape()))


# --- quantized modules: quant level == hw level, exactly ----------------------------------------

QUANT_CAPACITY = 64


@pytest.mark.parametrize("scheme,kv,per_tensor", [
    ("w8", "none", True), ("w8a8", "int8", False), ("w4g32", "none", False),
    ("w1", "int8", False), ("w1a4", "none", False)])
def test_quantized_hw_level_equals_the_quant_level(shared_models, golden, scheme, kv,
                                                   per_tensor):
    """The quantized stories260K after extract-kv-cache (the quant level) and after bufferize,
    allocate and lower-to-hw (the kernels of irt_quant.h on placed buffers, each run by its
    numpy reference from the kernel table) give the same logits bit for bit: the hw level
    runs the quantization contract's very functions, on arena views."""
    from xdsl.passes import PassPipeline

    from irtool.compile import CompileOptions, lower_for_target
    from irtool.context import make_context
    from irtool.frontend.load import import_model
    from irtool.interpreter.runner import ModelRunner
    from irtool.passes import get_all_passes
    from irtool.passes.calibrate import calibrate_module
    from irtool.passes.quantize import QuantOptions, quantize_module
    from irtool.quality import load_sequences

    d = shared_models / "stories260K"
    module, store = import_model(d / "stories260K.bin")
    if scheme == "w8a8":
        calibrate_module(module, store, load_sequences(d / "eval_tokens.json", "calib")[:8])
    PassPipeline.parse_spec(
        get_all_passes(),
        f"extract-kv-cache{{prefill=token-by-token capacity={QUANT_CAPACITY}}}").apply(
        make_context(), module)
    module, store = quantize_module(module, store, QuantOptions(scheme, kv, per_tensor))
    ids = golden["prompt_ids"] + golden["new_ids"][:16]
    want = ModelRunner(module.clone(), store).forward(ids)
    lower_for_target(module, CompileOptions(capacity=QUANT_CAPACITY, time_limit=5))
    decode = _decode(module)
    kernels = {op.kernel for op in decode.walk() if isinstance(op, hw.CallOp)}
    # riscv-ulp runs w8, w8a8 and w4g32 on 16-row panels (a storage layout: same reference),
    # w1a4 through its table of partial sums (the same contract)
    expected = {"w8": "irt_linear_w8_packed", "w8a8": "irt_linear_w8a8_packed",
                "w4g32": "irt_linear_w4g_packed", "w1": "irt_linear_w1",
                "w1a4": "irt_linear_w1a4_table"}[scheme]
    assert expected in kernels
    assert ("irt_kv_write_i8" in kernels) == (kv == "int8")
    assert not any(op.name.startswith("quant.") for op in decode.walk())
    assert check_plan(module, target_memories("riscv-ulp")) == []
    got = ModelRunner(module, store).forward(ids)
    assert np.array_equal(got, want)


# --- kernel signatures: hw.call is structural, its uses check it against the signature ----

SIGNATURE_CASES = [
    ("hw.call @irt_swish_f32(%x, %y) params {n = 4 : i64} : memref<1x8xf32>, memref<1x4xf32>",
     r"unknown kernel @irt_swish_f32"),
    ("hw.call @irt_linear_f32(%x, %w) params {T = 1 : i64, K = 8 : i64, N = 4 : i64} : "
     "memref<1x8xf32>, memref<4x8xf32>",
     r"hw.call @irt_linear_f32: takes 3 operands \(x, w, y\), got 2"),
    ("hw.call @irt_linear_f32(%x, %w, %y) params {T = 1 : i64, N = 4 : i64} : "
     "memref<1x8xf32>, memref<4x8xf32>, memref<1x4xf32>",
     r"hw.call @irt_linear_f32: missing parameter\(s\) K"),
]


@pytest.mark.parametrize("call, message", SIGNATURE_CASES)
def test_call_checked_against_its_signature(call, message):
    from xdsl.parser import Parser

    from irtool.context import make_context
    from irtool.dialects import hw
    from irtool.errors import IrtoolError
    from irtool.kernels import checked_signature

    text = ("func.func @f(%x: memref<1x8xf32>, %w: memref<4x8xf32>, %y: memref<1x4xf32>) {\n"
            f"  {call}\n  func.return\n}}")
    module = Parser(make_context(), text).parse_module()
    module.verify()  # structurally fine
    op = next(o for o in module.walk() if isinstance(o, hw.CallOp))
    with pytest.raises(IrtoolError, match=message):
        checked_signature(op)
