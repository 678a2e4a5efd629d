"""Lowering rules of the portable C kernels (`runtime/irt_kernels.h`, `runtime/irt_quant.h`).

One small rule per op: the kernel, its operands in signature order, its parameters from the
static shapes and attributes. Every C target starts from `PORTABLE_RULES` and may put rules of
its own in front (`PORTABLE_RULES.extended([...])`).

Quantized ops map to the kernels of `irt_quant.h` in the forms the `quantize` pass produces
(see `QUANT_FORMS`); any other form is refused with the op and the supported forms named.
"""

from __future__ import annotations

from collections.abc import Sequence

from xdsl.dialects.builtin import TensorType
from xdsl.ir import Operation, SSAValue

from irtool.dialects import quant as q
from irtool.dialects import transformer as tf
from irtool.errors import IrtoolError
from irtool.kernels import ACCUMULATING
from irtool.lowering import ArgMap, KernelCall, LoweringRules
from irtool.numerics.intops import RMS_MAX_D

QUANT_FORMS = (
    "quant.quantize: per-tensor scale tensor<1xf32> (and zero point tensor<1xi32>) to i8 in "
    "-128..127 (irt_quantize_act_i8); "
    "quant.qlinear: one multiplier per output channel (irt_linear_w8a8); "
    "quant.wlinear bits = 8: per-channel or per-tensor scales (irt_linear_w8); "
    "bits = 4: per-group scales with an even group (irt_linear_w4g); "
    "bits = 1: alpha per channel (irt_linear_w1), with act_bits = 4 an act_group that is a "
    "multiple of 8 up to 128 (irt_linear_w1a4); "
    "quant.kv_write / quant.cached_attention (irt_kv_write_i8 / irt_cached_attention_i8, "
    "irt_cached_attention_i8_isoftmax with integer_softmax); "
    "quant.int_rms_norm / quant.int_silu (irt_int_rms_norm_f32 / irt_int_silu_f32)")
W1A4_MAX_GROUP = 128  # IRT_W1A4_MAX_GROUP in irt_quant.h


def _i(attr) -> int:
    return attr.value.data


def numel(v: SSAValue) -> int:
    n = 1
    for d in v.type.get_shape():
        n *= d
    return n


def rows(v: SSAValue) -> int:
    t = v.type
    assert isinstance(t, TensorType)
    return t.get_shape()[0]


def cols(v: SSAValue) -> int:
    return v.type.get_shape()[-1]


def unsupported(op: Operation, why: str) -> IrtoolError:
    return IrtoolError(f"lower-to-hw: {op.name} {why}: the C runtime has no kernel for this "
                       f"form. Supported quantized forms: {QUANT_FORMS}")


def with_bias(name: str, ins: list, op, arg: ArgMap, out: SSAValue) -> tuple[str, tuple]:
    """`name` with operands `ins + [out]`, or its `_bias` variant with the bias before `out`."""
    if op.bias is None:
        return name, (*ins, out)
    return name + "_bias", (*ins, arg(op.bias), out)


def _call(kernel: str, args: Sequence[SSAValue], **params) -> KernelCall:
    return KernelCall(kernel, tuple(args), params)


# fp32 ops ----------------------------------------------------------------------------------

def accumulating(op, call: KernelCall) -> KernelCall:
    """`call` as is, or for a linear with an `acc` operand its accumulating kernel: the out
    buffer is the accumulator, updated in place (lower-to-hw copies `acc` into it first when
    they are different buffers)."""
    if op.acc is None:
        return call
    kernel = ACCUMULATING.get(call.kernel)
    if kernel is None:
        raise unsupported(op, f"with an accumulator (no accumulating form of @{call.kernel})")
    return KernelCall(kernel, call.args, call.params, updates=((op.acc, 0),))


def linear(op: tf.LinearOp, arg: ArgMap, outs) -> KernelCall:
    t, k, n = rows(op.input), cols(op.input), rows(op.weight)
    ins = [arg(op.input), arg(op.weight)]
    if op.bias is not None:
        call = _call("irt_linear_bias_f32", [*ins, arg(op.bias), outs[0]], T=t, K=k, N=n)
    else:
        call = _call("irt_linear_f32", [*ins, outs[0]], T=t, K=k, N=n)
    return accumulating(op, call)


def lora(op: tf.LoraOp, arg: ArgMap, outs) -> KernelCall:
    n, r, k = op.down.type.get_shape()
    return _call("irt_lora_f32", [arg(op.input), arg(op.base), arg(op.down), arg(op.up),
                                  outs[0], outs[1]],
                 T=rows(op.input), K=k, N=cols(op.base), R=r, adapters=n,
                 selected=_i(op.selected))


def lora_up(op: tf.LoraUpOp, arg: ArgMap, outs) -> KernelCall:
    return _call("irt_lora_up_f32", [arg(op.rank), arg(op.base), arg(op.up), outs[0]],
                 T=rows(op.rank), N=cols(op.base), R=cols(op.rank), selected=_i(op.selected))


def matmul(op: tf.MatmulOp, arg: ArgMap, outs) -> KernelCall:
    tb = op.is_transposed
    n = op.rhs.type.get_shape()[0 if tb else 1]
    return _call("irt_matmul_f32", [arg(op.lhs), arg(op.rhs), outs[0]], M=rows(op.lhs),
                 K=cols(op.lhs), N=n, transpose_b=int(tb))


def rms_norm(op: tf.RMSNormOp, arg: ArgMap, outs) -> KernelCall:
    return _call("irt_rms_norm_f32", [arg(op.input), arg(op.gamma), outs[0]],
                 T=rows(op.input), D=cols(op.input), eps=op.eps.value.data)


def layer_norm(op: tf.LayerNormOp, arg: ArgMap, outs) -> KernelCall:
    return _call("irt_layer_norm_f32", [arg(op.input), arg(op.gamma), arg(op.beta), outs[0]],
                 T=rows(op.input), D=cols(op.input), eps=op.eps.value.data)


def _start(op, arg: ArgMap):
    """The run-time start position; None (the call cannot be emitted, but bufferize may
    still ask about aliasing) for a whole-sequence op before extract-kv-cache."""
    return None if op.start is None else arg(op.start)


def rope(op: tf.RopeOp, arg: ArgMap, outs) -> KernelCall:
    return _call("irt_rope_f32", [arg(op.input), arg(op.cos), arg(op.sin), _start(op, arg),
                                  outs[0]],
                 T=rows(op.input), heads=_i(op.heads), head_dim=_i(op.head_dim),
                 rotary_dim=_i(op.rotary_dim),
                 style=0 if op.style.data == "interleaved" else 1)


def embedding(op: tf.EmbeddingOp, arg: ArgMap, outs) -> KernelCall:
    return _call("irt_embedding_f32", [arg(op.tokens), arg(op.table), outs[0]],
                 T=op.tokens.type.get_shape()[0], D=cols(op.table))


def position_embedding(op: tf.PositionEmbeddingOp, arg: ArgMap, outs) -> KernelCall:
    return _call("irt_position_embedding_f32", [arg(op.table), _start(op, arg), outs[0]],
                 T=op.tokens.type.get_shape()[0], D=cols(op.table))


def add(op: tf.AddOp, arg: ArgMap, outs) -> KernelCall:
    return _call("irt_add_f32", [arg(op.lhs), arg(op.rhs), outs[0]], n=numel(op.lhs))


def mul(op: tf.MulOp, arg: ArgMap, outs) -> KernelCall:
    return _call("irt_mul_f32", [arg(op.lhs), arg(op.rhs), outs[0]], n=numel(op.lhs))


def silu(op: tf.SiluOp, arg: ArgMap, outs) -> KernelCall:
    return _call("irt_silu_f32", [arg(op.input), outs[0]], n=numel(op.input))


def relu(op: tf.ReluOp, arg: ArgMap, outs) -> KernelCall:
    return _call("irt_relu_f32", [arg(op.input), outs[0]], n=numel(op.input))


def gelu(op: tf.GeluOp, arg: ArgMap, outs) -> KernelCall:
    return _call("irt_gelu_f32", [arg(op.input), outs[0]], n=numel(op.input),
                 tanh_approx=int(op.approximate.data == "tanh"))


def softmax(op: tf.SoftmaxOp, arg: ArgMap, outs) -> KernelCall:
    return _call("irt_softmax_f32", [arg(op.input), outs[0]], T=rows(op.input),
                 N=cols(op.input))


def attention(op: tf.AttentionOp, arg: ArgMap, outs) -> KernelCall:
    return _call("irt_attention_f32", [arg(op.query), arg(op.key), arg(op.value), outs[0]],
                 T=rows(op.query), S=rows(op.key), heads=_i(op.heads),
                 kv_heads=_i(op.kv_heads), head_dim=_i(op.head_dim),
                 scale=op.scale.value.data, causal=int(op.is_causal),
                 window=_i(op.window) if op.window else 0)


def kv_write(op: tf.KVWriteOp, arg: ArgMap, outs) -> KernelCall:
    _, kvh, cap, hd = op.cache.type.get_shape()
    return KernelCall("irt_kv_write_f32", (outs[0], arg(op.new), arg(op.pos)), dict(
        layer=_i(op.layer), kv_heads=kvh, capacity=cap, head_dim=hd, T=rows(op.new),
        ring=int(op.ring is not None)), updates=((op.cache, 0),))


def cached_attention(op: tf.CachedAttentionOp, arg: ArgMap, outs) -> KernelCall:
    cap = op.kcache.type.get_shape()[2]
    return _call("irt_cached_attention_f32", [arg(op.query), arg(op.kcache), arg(op.vcache),
                                              arg(op.end), outs[0]],
                 layer=_i(op.layer), heads=_i(op.heads), kv_heads=_i(op.kv_heads),
                 head_dim=_i(op.head_dim), capacity=cap, T=rows(op.query),
                 ring=int(op.ring is not None), scale=op.scale.value.data)


# quantized ops -----------------------------------------------------------------------------

def quantize(op: q.QuantizeOp, arg: ArgMap, outs) -> KernelCall:
    if op.group is not None or tuple(op.scale.type.get_shape()) != (1,):
        raise unsupported(op, f"with scale {op.scale.type} (not per tensor)")
    if str(op.result.type.element_type) != "i8" or op.range != (-128, 127):
        raise unsupported(op, f"to {op.result.type.element_type} in {op.range[0]}.."
                              f"{op.range[1]}")
    n = numel(op.input)
    if op.zero_point is None:
        return _call("irt_quantize_act_i8_sym", [arg(op.input), arg(op.scale), outs[0]], n=n,
                     zero_point=0)
    return _call("irt_quantize_act_i8", [arg(op.input), arg(op.scale), arg(op.zero_point),
                                         outs[0]], n=n)


def qlinear(op: q.QLinearOp, arg: ArgMap, outs) -> KernelCall:
    t, k, n = rows(op.input), cols(op.input), rows(op.weight)
    if tuple(op.multiplier.type.get_shape()) != (n,):
        raise unsupported(op, f"with multiplier {op.multiplier.type} (irt_linear_w8a8 takes "
                              f"one per output channel, [{n}]; the quantize pass stores them "
                              "so)")
    name, args = with_bias("irt_linear_w8a8", [arg(op.input), arg(op.input_zero_point),
                                               arg(op.weight), arg(op.multiplier)],
                           op, arg, outs[0])
    return _call(name, args, T=t, K=k, N=n)


def wlinear(op: q.WLinearOp, arg: ArgMap, outs) -> KernelCall:
    return accumulating(op, _wlinear(op, arg, outs))


def _wlinear(op: q.WLinearOp, arg: ArgMap, outs) -> KernelCall:
    t, k, n = rows(op.input), cols(op.input), rows(op.weight)
    ins = [arg(op.input), arg(op.weight), arg(op.scale)]
    bits, group = op.weight_bits, op.group_size
    if bits == 8:
        if group is not None:
            raise unsupported(op, f"with bits = 8 and per-group scales (group = {group})")
        name, args = with_bias("irt_linear_w8", ins, op, arg, outs[0])
        per_tensor = tuple(op.scale.type.get_shape()) == (1,) and n != 1
        return _call(name, args, T=t, K=k, N=n, per_tensor=int(per_tensor))
    if bits == 4:
        if group is None or group % 2 or group < 2:
            why = ("without per-group scales" if group is None
                   else f"with group = {group} (the kernel needs an even group)")
            raise unsupported(op, f"with bits = 4 {why}")
        name, args = with_bias("irt_linear_w4g", ins, op, arg, outs[0])
        return _call(name, args, T=t, K=k, N=n, group=group)
    if op.activation_bits is None:
        name, args = with_bias("irt_linear_w1", ins, op, arg, outs[0])
        return _call(name, args, T=t, K=k, N=n)
    ag = op.activation_group
    if ag % 8 or not 8 <= ag <= W1A4_MAX_GROUP:
        raise unsupported(op, f"with act_group = {ag} (a multiple of 8 in 8..{W1A4_MAX_GROUP} "
                              "is needed)")
    name, args = with_bias("irt_linear_w1a4", ins, op, arg, outs[0])
    return _call(name, args, T=t, K=k, N=n, group=ag)


def wembedding(op: q.WEmbeddingOp, arg: ArgMap, outs) -> KernelCall:
    ins = [arg(op.tokens), arg(op.weight), arg(op.scale), outs[0]]
    t, d = op.result.type.get_shape()
    bits, group = op.weight_bits, op.group_size
    if bits == 8 and group is None:
        per_tensor = tuple(op.scale.type.get_shape()) == (1,) and rows(op.weight) != 1
        return _call("irt_embedding_w8", ins, T=t, D=d, per_tensor=int(per_tensor))
    if bits == 4 and group is not None:
        return _call("irt_embedding_w4g", ins, T=t, D=d, group=group)
    if bits == 1:
        return _call("irt_embedding_w1", ins, T=t, D=d)
    raise unsupported(op, f"with bits = {bits} and group = {group}")


def kv_write_i8(op: q.KVWriteOp, arg: ArgMap, outs) -> KernelCall:
    _, kvh, cap, hd = op.cache.type.get_shape()
    return KernelCall("irt_kv_write_i8", (outs[0], outs[1], arg(op.new), arg(op.pos)), dict(
        layer=_i(op.layer), kv_heads=kvh, capacity=cap, head_dim=hd, T=rows(op.new),
        ring=int(op.is_ring)), updates=((op.cache, 0), (op.scales, 1)))


def cached_attention_i8(op: q.CachedAttentionOp, arg: ArgMap, outs) -> KernelCall:
    cap = op.kcache.type.get_shape()[2]
    kernel = ("irt_cached_attention_i8_isoftmax" if op.has_integer_softmax
              else "irt_cached_attention_i8")
    return _call(kernel, [
        arg(op.query), arg(op.kcache), arg(op.kscales), arg(op.vcache), arg(op.vscales),
        arg(op.end), outs[0]], layer=_i(op.layer), heads=_i(op.heads),
        kv_heads=_i(op.kv_heads), head_dim=_i(op.head_dim), capacity=cap, T=rows(op.query),
        ring=int(op.is_ring), scale=op.scale.value.data)


def int_rms_norm(op: q.IntRMSNormOp, arg: ArgMap, outs) -> KernelCall:
    d = cols(op.input)
    if d > RMS_MAX_D:
        raise unsupported(op, f"over rows of {d} values (the integer sum of squares holds at "
                              f"most {RMS_MAX_D})")
    return _call("irt_int_rms_norm_f32", [arg(op.input), arg(op.gamma), outs[0]],
                 T=rows(op.input), D=d, eps=op.eps.value.data)


def int_silu(op: q.IntSiluOp, arg: ArgMap, outs) -> KernelCall:
    return _call("irt_int_silu_f32", [arg(op.input), outs[0]], n=numel(op.input))


def batched_prefill_only(op: Operation, arg: ArgMap, outs) -> KernelCall:
    raise unsupported(op, "(dequantize, requantize, dynamic_quantize and int_attention "
                          "appear only in the dynamic batched prefill, which the C target does "
                          "not use: compile with extract-kv-cache{prefill=token-by-token} or, "
                          "static, {prefill=batched tokens=T})")


PORTABLE_RULES = LoweringRules([
    (tf.LinearOp, linear), (tf.LoraOp, lora), (tf.LoraUpOp, lora_up), (tf.MatmulOp, matmul),
    (tf.RMSNormOp, rms_norm),
    (tf.LayerNormOp, layer_norm), (tf.RopeOp, rope), (tf.EmbeddingOp, embedding),
    (tf.PositionEmbeddingOp, position_embedding), (tf.AddOp, add), (tf.MulOp, mul),
    (tf.SiluOp, silu), (tf.ReluOp, relu), (tf.GeluOp, gelu), (tf.SoftmaxOp, softmax),
    (tf.AttentionOp, attention), (tf.KVWriteOp, kv_write),
    (tf.CachedAttentionOp, cached_attention),
    (q.QuantizeOp, quantize), (q.QLinearOp, qlinear), (q.WLinearOp, wlinear),
    (q.WEmbeddingOp, wembedding),
    (q.KVWriteOp, kv_write_i8), (q.CachedAttentionOp, cached_attention_i8),
    (q.DequantizeOp, batched_prefill_only), (q.RequantizeOp, batched_prefill_only),
    (q.DynamicQuantizeOp, batched_prefill_only), (q.IntAttentionOp, batched_prefill_only),
    (q.IntRMSNormOp, int_rms_norm), (q.IntSiluOp, int_silu),
])
