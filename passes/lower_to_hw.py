"""lower-to-hw: each `memory.kernel` becomes one `hw.call` of a runtime kernel.

A kernel body holds one transformer or quant op (bufferize makes it so); its operands are the
kernel's `ins`, its results go to the `outs` buffers (one per result: `quant.kv_write` writes
the int8 cache and its scales). This pass picks the runtime kernel for the op, orders the
buffers and run-time scalars as the kernel's C prototype wants them, and turns static shapes
and attributes into the call's parameters. The buffers keep their placement, so the emitter
can print every call as it stands.

Kernels that update a buffer in place (`kv_write`: only the new rows are written) get the
buffer they update as their out buffer; when bufferize gave the result a buffer of its own,
a `memory.copy` of the old contents precedes the call.

Quantized ops map to the kernels of `irt_quant.h` in the forms the `quantize` pass produces
(see `QUANT_FORMS`); any other form is refused with the op and the supported forms named.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp, TensorType
from xdsl.ir import Operation, SSAValue
from xdsl.passes import ModulePass
from xdsl.pattern_rewriter import (
    PatternRewriter,
    PatternRewriteWalker,
    RewritePattern,
    op_type_rewrite_pattern,
)

from irtool.dialects import hw, memory
from irtool.dialects import quant as q
from irtool.dialects import transformer as tf
from irtool.errors import IrtoolError


def _i(attr) -> int:
    return attr.value.data


def _numel(v: SSAValue) -> int:
    n = 1
    for d in v.type.get_shape():
        n *= d
    return n


def _rows(v: SSAValue) -> int:
    t = v.type
    assert isinstance(t, TensorType)
    return t.get_shape()[0]


def _cols(v: SSAValue) -> int:
    return v.type.get_shape()[-1]


QUANT_FORMS = (
    "quant.quantize: per-tensor scale tensor<1xf32> (and zero point tensor<1xi32>) to i8 in "
    "-128..127 (irt_quantize_act_i8); "
    "quant.qlinear: one multiplier per output channel (irt_linear_w8a8); "
    "quant.wlinear bits = 8: per-channel or per-tensor scales (irt_linear_w8); "
    "bits = 4: per-group scales with an even group (irt_linear_w4g); "
    "bits = 1: alpha per channel (irt_linear_w1), with act_bits = 4 an act_group that is a "
    "multiple of 8 up to 128 (irt_linear_w1a4); "
    "quant.kv_write / quant.cached_attention (irt_kv_write_i8 / irt_cached_attention_i8)")
W1A4_MAX_GROUP = 128  # IRT_W1A4_MAX_GROUP in irt_quant.h


def _unsupported(op: Operation, why: str) -> IrtoolError:
    return IrtoolError(f"lower-to-hw: {op.name} {why}: the C runtime has no kernel for this "
                       f"form. Supported quantized forms: {QUANT_FORMS}")


def _bias_variant(name: str, ops: list, op, arg, out) -> tuple[str, list]:
    """`name` with operands `ops + [out]`, or its `_bias` variant with the bias before `out`."""
    if op.bias is None:
        return name, ops + [out]
    return name + "_bias", ops + [arg(op.bias), out]


def _quant_call(op: Operation, arg, outs: list[SSAValue]) -> tuple[str, list[SSAValue], dict]:
    out = outs[0]
    match op:
        case q.QuantizeOp():
            shape = op.scale.type.get_shape()
            if op.group is not None or tuple(shape) != (1,):
                raise _unsupported(op, f"with scale {op.scale.type} (not per tensor)")
            if str(op.result.type.element_type) != "i8" or op.range != (-128, 127):
                raise _unsupported(op, f"to {op.result.type.element_type} in {op.range[0]}.."
                                       f"{op.range[1]}")
            n = _numel(op.input)
            if op.zero_point is None:
                return "irt_quantize_act_i8_sym", [arg(op.input), arg(op.scale), out], dict(
                    n=n, zero_point=0)
            return "irt_quantize_act_i8", [arg(op.input), arg(op.scale), arg(op.zero_point),
                                           out], dict(n=n)
        case q.QLinearOp():
            t, k, n = _rows(op.input), _cols(op.input), _rows(op.weight)
            if tuple(op.multiplier.type.get_shape()) != (n,):
                raise _unsupported(op, f"with multiplier {op.multiplier.type} (irt_linear_w8a8 "
                                       f"takes one per output channel, [{n}]; the quantize pass "
                                       "stores them so)")
            name, ops = _bias_variant("irt_linear_w8a8", [arg(op.input),
                                                          arg(op.input_zero_point),
                                                          arg(op.weight), arg(op.multiplier)],
                                      op, arg, out)
            return name, ops, dict(T=t, K=k, N=n)
        case q.WLinearOp():
            t, k, n = _rows(op.input), _cols(op.input), _rows(op.weight)
            ops = [arg(op.input), arg(op.weight), arg(op.scale)]
            bits, group = op.weight_bits, op.group_size
            params = dict(T=t, K=k, N=n)
            if bits == 8:
                if group is not None:
                    raise _unsupported(op, f"with bits = 8 and per-group scales (group = {group})")
                name, ops = _bias_variant("irt_linear_w8", ops, op, arg, out)
                per_tensor = tuple(op.scale.type.get_shape()) == (1,) and n != 1
                return name, ops, dict(params, per_tensor=int(per_tensor))
            if bits == 4:
                if group is None or group % 2 or group < 2:
                    why = ("without per-group scales" if group is None
                           else f"with group = {group} (the kernel needs an even group)")
                    raise _unsupported(op, f"with bits = 4 {why}")
                name, ops = _bias_variant("irt_linear_w4g", ops, op, arg, out)
                return name, ops, dict(params, group=group)
            if op.activation_bits is None:
                name, ops = _bias_variant("irt_linear_w1", ops, op, arg, out)
                return name, ops, params
            ag = op.activation_group
            if ag % 8 or not 8 <= ag <= W1A4_MAX_GROUP:
                raise _unsupported(op, f"with act_group = {ag} (a multiple of 8 in 8.."
                                       f"{W1A4_MAX_GROUP} is needed)")
            name, ops = _bias_variant("irt_linear_w1a4", ops, op, arg, out)
            return name, ops, dict(params, group=ag)
        case q.KVWriteOp():
            _, kvh, cap, hd = op.cache.type.get_shape()
            return "irt_kv_write_i8", [outs[0], outs[1], arg(op.new), arg(op.pos)], dict(
                layer=_i(op.layer), kv_heads=kvh, capacity=cap, head_dim=hd, T=_rows(op.new),
                ring=int(op.is_ring))
        case q.CachedAttentionOp():
            cap = op.kcache.type.get_shape()[2]
            return "irt_cached_attention_i8", [
                arg(op.query), arg(op.kcache), arg(op.kscales), arg(op.vcache), arg(op.vscales),
                arg(op.end), out], dict(
                layer=_i(op.layer), heads=_i(op.heads), kv_heads=_i(op.kv_heads),
                head_dim=_i(op.head_dim), capacity=cap, T=_rows(op.query),
                ring=int(op.is_ring), scale=op.scale.value.data)
    raise _unsupported(op, "(dequantize, requantize and dynamic_quantize appear only in a "
                           "batched prefill, which the C target does not use: compile with "
                           "extract-kv-cache{prefill=token-by-token})"
                       if isinstance(op, q.DequantizeOp | q.RequantizeOp | q.DynamicQuantizeOp)
                       else "is not a quantized op the runtime knows")


def in_place_operands(op: Operation) -> list[tuple[SSAValue, int]]:
    """(operand, result index) pairs of an op whose kernel updates that operand in place."""
    if isinstance(op, tf.KVWriteOp):
        return [(op.cache, 0)]
    if isinstance(op, q.KVWriteOp):
        return [(op.cache, 0), (op.scales, 1)]
    return []


def kernel_call(op: Operation, arg, out: SSAValue | Sequence[SSAValue]
                ) -> tuple[str, list[SSAValue], dict]:
    """(kernel name, operands in C order, parameters) for one transformer or quant op.

    `arg(v)` maps a value of the kernel body (a block argument) to the buffer or scalar
    outside; `out` is the buffer the result goes to (a list of them, one per result, for an
    op with several results).
    """
    outs = [out] if isinstance(out, SSAValue) else list(out)
    out = outs[0]
    if op.name.startswith("quant."):
        return _quant_call(op, arg, outs)
    match op:
        case tf.LinearOp():
            t, k, n = _rows(op.input), _cols(op.input), _rows(op.weight)
            ops = [arg(op.input), arg(op.weight)]
            if op.bias is not None:
                return "irt_linear_bias_f32", ops + [arg(op.bias), out], dict(T=t, K=k, N=n)
            return "irt_linear_f32", ops + [out], dict(T=t, K=k, N=n)
        case tf.MatmulOp():
            tb = op.is_transposed
            n = op.rhs.type.get_shape()[0 if tb else 1]
            return "irt_matmul_f32", [arg(op.lhs), arg(op.rhs), out], dict(
                M=_rows(op.lhs), K=_cols(op.lhs), N=n, transpose_b=int(tb))
        case tf.RMSNormOp():
            return "irt_rms_norm_f32", [arg(op.input), arg(op.gamma), out], dict(
                T=_rows(op.input), D=_cols(op.input), eps=op.eps.value.data)
        case tf.LayerNormOp():
            return "irt_layer_norm_f32", [arg(op.input), arg(op.gamma), arg(op.beta), out], dict(
                T=_rows(op.input), D=_cols(op.input), eps=op.eps.value.data)
        case tf.RopeOp():
            if op.start is None:
                raise IrtoolError("lower-to-hw: transformer.rope without a start position; run "
                                  "extract-kv-cache first")
            return "irt_rope_f32", [arg(op.input), arg(op.cos), arg(op.sin), arg(op.start), out], dict(
                T=_rows(op.input), heads=_i(op.heads), head_dim=_i(op.head_dim),
                rotary_dim=_i(op.rotary_dim), style=0 if op.style.data == "interleaved" else 1)
        case tf.EmbeddingOp():
            return "irt_embedding_f32", [arg(op.tokens), arg(op.table), out], dict(
                T=op.tokens.type.get_shape()[0], D=_cols(op.table))
        case tf.PositionEmbeddingOp():
            if op.start is None:
                raise IrtoolError("lower-to-hw: transformer.position_embedding without a start "
                                  "position; run extract-kv-cache first")
            return "irt_position_embedding_f32", [arg(op.table), arg(op.start), out], dict(
                T=op.tokens.type.get_shape()[0], D=_cols(op.table))
        case tf.AddOp() | tf.MulOp():
            name = "irt_add_f32" if isinstance(op, tf.AddOp) else "irt_mul_f32"
            return name, [arg(op.lhs), arg(op.rhs), out], dict(n=_numel(op.lhs))
        case tf.SiluOp():
            return "irt_silu_f32", [arg(op.input), out], dict(n=_numel(op.input))
        case tf.GeluOp():
            return "irt_gelu_f32", [arg(op.input), out], dict(
                n=_numel(op.input), tanh_approx=int(op.approximate.data == "tanh"))
        case tf.SoftmaxOp():
            return "irt_softmax_f32", [arg(op.input), out], dict(
                T=_rows(op.input), N=_cols(op.input))
        case tf.AttentionOp():
            return "irt_attention_f32", [arg(op.query), arg(op.key), arg(op.value), out], dict(
                T=_rows(op.query), S=_rows(op.key), heads=_i(op.heads),
                kv_heads=_i(op.kv_heads), head_dim=_i(op.head_dim), scale=op.scale.value.data,
                causal=int(op.is_causal), window=_i(op.window) if op.window else 0)
        case tf.KVWriteOp():
            _, kvh, cap, hd = op.cache.type.get_shape()
            return "irt_kv_write_f32", [out, arg(op.new), arg(op.pos)], dict(
                layer=_i(op.layer), kv_heads=kvh, capacity=cap, head_dim=hd, T=_rows(op.new),
                ring=int(op.ring is not None))
        case tf.CachedAttentionOp():
            cap = op.kcache.type.get_shape()[2]
            return "irt_cached_attention_f32", [arg(op.query), arg(op.kcache), arg(op.vcache),
                                                arg(op.end), out], dict(
                layer=_i(op.layer), heads=_i(op.heads), kv_heads=_i(op.kv_heads),
                head_dim=_i(op.head_dim), capacity=cap, T=_rows(op.query),
                ring=int(op.ring is not None), scale=op.scale.value.data)
    raise IrtoolError(f"lower-to-hw: no runtime kernel for {op.name}; the C runtime implements "
                      "linear, matmul, rms_norm, layer_norm, rope, embedding, "
                      "position_embedding, add, mul, silu, gelu, softmax, attention, kv_write "
                      "and cached_attention, and the quant ops in the forms: " + QUANT_FORMS)


class KernelToCall(RewritePattern):
    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: memory.KernelOp, rewriter: PatternRewriter) -> None:
        body = op.computation
        if len(body) != 1 or len(op.outs) != len(body[0].results) or not op.outs:
            raise IrtoolError(f"lower-to-hw: a memory.kernel must hold exactly one op and one "
                              f"out buffer per result of that op (found {len(body)} ops, "
                              f"{len(op.outs)} outs); run bufferize to produce such kernels")
        inner = body[0]
        if tuple(op.yield_op.values) != tuple(inner.results):
            raise IrtoolError("lower-to-hw: the kernel must yield its op's results, in order")
        outside = dict(zip(op.body.block.args, op.ins))
        # the old contents of a buffer updated in place, when it is not the out buffer itself
        copies = [memory.CopyOp(outside[operand], op.outs[k])
                  for operand, k in in_place_operands(inner) if outside[operand] is not op.outs[k]]
        name, args, params = kernel_call(inner, lambda v: outside[v], list(op.outs))
        rewriter.replace(op, [*copies, hw.CallOp(name, args, params)])


@dataclass(frozen=True)
class LowerToHwPass(ModulePass):
    """Replace every memory.kernel by a hw.call; record the target as `hw.target`."""

    name = "lower-to-hw"
    target: str | None = None

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        PatternRewriteWalker(KernelToCall(), apply_recursively=False).rewrite_module(op)
        if self.target:
            op.attributes[hw.TARGET_ATTR] = hw.TargetAttr(self.target)
