"""Interpreter of the `quant` dialect.

Every op runs the reference arithmetic of the quantization contract, `irtool.numerics.quant`
(where the contract is written down); this module only maps ops and their attributes to it.
"""

from __future__ import annotations

import numpy as np
from xdsl.interpreter import Interpreter, InterpreterFunctions, impl, register_impls

from irtool.dialects import quant as q
from irtool.errors import IrtoolError
from irtool.numerics.intops import int_rms_norm, int_silu, int_softmax
from irtool.numerics.quant import (
    cached_attention_int8,
    dequantize,
    dequantized_rows,
    dynamic_quantize,
    kv_write_int8,
    quantize,
    requantize,
    w1_linear,
    w1a4_linear,
    w4_linear,
    w8_linear,
    w8a8_linear,
)
from irtool.numerics.transformer import attention
from irtool.weights import numpy_dtype


def _cast(values: np.ndarray, result_type) -> np.ndarray:
    return np.asarray(values).astype(numpy_dtype(result_type))


@register_impls
class QuantFunctions(InterpreterFunctions):
    """Runs `quant` ops with the reference functions of `irtool.numerics.quant` (weights come
    through `transformer.weight`, so this needs no store of its own)."""

    @impl(q.QuantizeOp)
    def run_quantize(self, interpreter: Interpreter, op: q.QuantizeOp, args):
        lo, hi = op.range
        zp = args[2] if len(args) > 2 else None
        return (_cast(quantize(args[0], args[1], zp, lo, hi, op.group_size, op.channel_axis),
                      op.result.type),)

    @impl(q.DequantizeOp)
    def run_dequantize(self, interpreter: Interpreter, op: q.DequantizeOp, args):
        zp = args[2] if len(args) > 2 else None
        return (dequantize(args[0], args[1], zp, op.group_size, op.channel_axis),)

    @impl(q.RequantizeOp)
    def run_requantize(self, interpreter: Interpreter, op: q.RequantizeOp, args):
        lo, hi = op.range
        zp = args[2] if len(args) > 2 else None
        return (_cast(requantize(args[0], args[1], zp, lo, hi, op.group_size,
                                 op.channel_axis), op.result.type),)

    @impl(q.DynamicQuantizeOp)
    def run_dynamic_quantize(self, interpreter: Interpreter, op: q.DynamicQuantizeOp, args):
        qv, s = dynamic_quantize(args[0], op.group.value.data, q._int(op.bits) or 8)
        return _cast(qv, op.result.type), s

    @impl(q.QLinearOp)
    def run_qlinear(self, interpreter: Interpreter, op: q.QLinearOp, args):
        xq, wq, m, zx = args[:4]
        b = args[4] if len(args) > 4 else None
        return (w8a8_linear(xq, zx, wq, m, b),)

    @impl(q.WEmbeddingOp)
    def run_wembedding(self, interpreter: Interpreter, op: q.WEmbeddingOp, args):
        tokens, w, s = args
        bad = (tokens < 0) | (tokens >= w.shape[0])
        if np.any(bad):
            raise IrtoolError(f"token id {int(tokens[bad][0])} is outside the vocabulary "
                              f"(0..{w.shape[0] - 1})")
        dim = op.result.type.get_shape()[1]
        return (dequantized_rows(w, s, tokens, dim, op.weight_bits, op.group_size),)

    @impl(q.WLinearOp)
    def run_wlinear(self, interpreter: Interpreter, op: q.WLinearOp, args):
        x, w, s = args[:3]
        b = args[3] if op.bias is not None else None
        y = wlinear(op, x, w, s, b)
        return (y if op.acc is None else args[-1] + y,)

    @impl(q.KVWriteOp)
    def run_kv_write(self, interpreter: Interpreter, op: q.KVWriteOp, args):
        cache, scales, new, pos = args
        return kv_write_int8(cache, scales, new, int(pos), op.layer.value.data, op.is_ring)

    @impl(q.CachedAttentionOp)
    def run_cached_attention(self, interpreter: Interpreter, op: q.CachedAttentionOp, args):
        qry, kc, ks, vc, vs, end = args
        return (cached_attention_int8(qry, kc, ks, vc, vs, int(end), op.layer.value.data,
                                      op.heads.value.data, op.kv_heads.value.data,
                                      op.head_dim.value.data, op.scale.value.data,
                                      op.is_ring, op.has_integer_softmax),)

    @impl(q.IntRMSNormOp)
    def run_int_rms_norm(self, interpreter: Interpreter, op: q.IntRMSNormOp, args):
        return (int_rms_norm(args[0], args[1], op.eps.value.data),)

    @impl(q.IntSiluOp)
    def run_int_silu(self, interpreter: Interpreter, op: q.IntSiluOp, args):
        return (int_silu(args[0]),)

    @impl(q.IntAttentionOp)
    def run_int_attention(self, interpreter: Interpreter, op: q.IntAttentionOp, args):
        return (attention(np.asarray(args[0], np.float32), args[1], args[2],
                          op.heads.value.data, op.kv_heads.value.data, op.head_dim.value.data,
                          op.scale.value.data, op.is_causal, op.window_size,
                          softmax_fn=int_softmax),)


def wlinear(op: q.WLinearOp, x, w, s, b):
    """The product of a weight-quantized linear (its accumulator not added)."""
    bits = op.weight_bits
    if bits == 8:
        return w8_linear(x, w, s, b, op.group_size)
    if bits == 4:
        return w4_linear(x, w, s, b, op.group_size)
    if op.activation_bits is not None:
        return w1a4_linear(x, w, s, b, op.activation_group)
    return w1_linear(x, w, s, b)
