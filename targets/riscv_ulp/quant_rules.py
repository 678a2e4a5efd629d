"""riscv-ulp's lowering rules for quantized ops: 16-row panel linears, 8-wide int8 attention.

A `quant.wlinear` with 8-bit weights or 4-bit weights in groups, and a `quant.qlinear`
(w8a8), whose weight is a constant read by nothing but such layers, run the panel kernels of
`irt_linear_packed_q.h`: the emitter stores the weight (and the per-group scales of 4-bit
weights) in 16-row panels ("row_panels16", `irtool.targets.panel_layout`), so one pointer
reaches the 16 rows of a panel and one activation load feeds 16 multiply-accumulates.
Instructions per multiply-accumulate on this core: w8 3.1 (was 3.6), w4g 3.7 (was 4.6),
w8a8 3.3 (was 4.25). A weight that anything else reads (an embedding tied to a quantized
classifier) keeps its row-major layout and the portable kernels.

A `quant.wlinear` with sign weights and 4-bit activations (w1a4) runs
`irt_linear_w1a4_table` (the portable runtime's, shared with cortex-m7-256k): per group of
activation codes a table of partial sums per 4 codes, then one lookup and one add per 4 sign
weights of a row, bit-exact with the portable kernel.

A `quant.cached_attention` with head_dim 8 runs `irt_cached_attention_i8_hd8`: the layout of
riscv-ulp's float hd8 attention (two query heads per pass over the cache, the max tracked while
scoring, an exp without range checks) over the int8 rows.
"""

from __future__ import annotations

from xdsl.ir import SSAValue

from irtool.dialects import hw, memory
from irtool.dialects import quant as q
from irtool.kernels import kernel_signature
from irtool.lowering import ArgMap, KernelCall
from irtool.targets.c import rules as portable
from irtool.targets.riscv_ulp.rules import global_reads

PANELS_Q = "row_panels16"

# the portable kernel -> its panel twin, and the operands stored in panels
_PACKED = {
    "irt_linear_w8": ("irt_linear_w8_packed", ("weight",)),
    "irt_linear_w8_bias": ("irt_linear_w8_packed_bias", ("weight",)),
    "irt_linear_w4g": ("irt_linear_w4g_packed", ("weight", "scale")),
    "irt_linear_w4g_bias": ("irt_linear_w4g_packed_bias", ("weight", "scale")),
    "irt_linear_w8a8": ("irt_linear_w8a8_packed", ("weight",)),
    "irt_linear_w8a8_bias": ("irt_linear_w8a8_packed_bias", ("weight",)),
}


def _reads_in_panels(inner, arg, field: str) -> bool:
    """Is block argument `arg` the `field` operand of a quantized linear with a panel kernel?"""
    if isinstance(inner, q.QLinearOp):
        return field == "weight" and inner.weight is arg
    if isinstance(inner, q.WLinearOp) and inner.activation_bits is None:
        if inner.weight_bits == 8 and inner.group_size is None:
            return field == "weight" and inner.weight is arg
        if inner.weight_bits == 4:
            return getattr(inner, field) is arg
    return False


def _reads(buffer: SSAValue):
    """(operation, operand index) of every read of the memory.global `buffer` is read from,
    or None when it is not one."""
    gets = global_reads(buffer)
    if gets is None:
        return None
    return [(use.operation, use.index) for get in gets for use in get.result.uses]


def _reader_takes_panels(reader, index: int, field: str) -> bool:
    if isinstance(reader, hw.CallOp):  # lowered already: by a kernel reading panels?
        sig = kernel_signature(reader.kernel)
        return dict(sig.layouts).get(sig.operands[index]) == PANELS_Q
    if not isinstance(reader, memory.KernelOp) or index >= len(reader.ins):
        return False
    inner = reader.computation[0] if len(reader.computation) == 1 else None
    return _reads_in_panels(inner, reader.body.block.args[index], field)


def packable_q(buffer: SSAValue, field: str) -> bool:
    """Is `buffer` a memory.global read only as the `field` ("weight" or "scale") of
    quantized linears that have panel kernels? Then all of them can read it in panels."""
    reads = _reads(buffer)
    return reads is not None and all(_reader_takes_panels(op, i, field) for op, i in reads)


def _packed(call: KernelCall, op, arg: ArgMap) -> KernelCall | None:
    twin = _PACKED.get(call.kernel)
    if twin is None or not all(packable_q(arg(getattr(op, f)), f) for f in twin[1]):
        return None
    return KernelCall(twin[0], call.args, call.params)


def packed_wlinear(op: q.WLinearOp, arg: ArgMap, outs) -> KernelCall | None:
    return _packed(portable.wlinear(op, arg, outs), op, arg) if outs else None


def packed_qlinear(op: q.QLinearOp, arg: ArgMap, outs) -> KernelCall | None:
    return _packed(portable.qlinear(op, arg, outs), op, arg) if outs else None


_TABLE = {"irt_linear_w1a4": "irt_linear_w1a4_table",
          "irt_linear_w1a4_bias": "irt_linear_w1a4_table_bias"}


def w1a4_table(op: q.WLinearOp, arg: ArgMap, outs) -> KernelCall | None:
    """Sign weights x 4-bit activations (not accumulating): the partial-sum table kernel."""
    call = portable.wlinear(op, arg, outs) if outs else None
    kernel = _TABLE.get(call.kernel) if call is not None else None
    return None if kernel is None else KernelCall(kernel, call.args, call.params)


def cached_attention_i8_hd8(op: q.CachedAttentionOp, arg: ArgMap, outs) -> KernelCall | None:
    """8-wide heads over the int8 cache: `irt_cached_attention_i8_hd8` (the float softmax
    only; --integer-only keeps its integer one)."""
    if op.head_dim.value.data != 8 or op.has_integer_softmax:
        return None
    call = portable.cached_attention_i8(op, arg, outs)
    return KernelCall("irt_cached_attention_i8_hd8", call.args, call.params)


RULES = [(q.WLinearOp, w1a4_table), (q.WLinearOp, packed_wlinear),
         (q.QLinearOp, packed_qlinear),
         (q.CachedAttentionOp, cached_attention_i8_hd8)]
