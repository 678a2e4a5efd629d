"""lower-to-hw: each `memory.kernel` becomes one `hw.call` of a runtime kernel.

A kernel body holds one transformer op (bufferize makes it so); its operands are the kernel's
`ins`, its result goes to the single `outs` buffer. This pass picks the runtime kernel for
the op, orders the buffers and run-time scalars as the kernel's C prototype wants them, and
turns static shapes and attributes into the call's parameters. The buffers keep their
placement, so the emitter can print every call as it stands.
"""

from __future__ import annotations

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


def kernel_call(op: Operation, arg, out: SSAValue) -> tuple[str, list[SSAValue], dict]:
    """(kernel name, operands in C order, parameters) for one transformer op.

    `arg(v)` maps a value of the kernel body (a block argument) to the buffer or scalar
    outside; `out` is the buffer the result goes to.
    """
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
                      "and cached_attention")


class KernelToCall(RewritePattern):
    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: memory.KernelOp, rewriter: PatternRewriter) -> None:
        body = op.computation
        if len(body) != 1 or len(op.outs) != 1:
            raise IrtoolError(f"lower-to-hw: a memory.kernel must hold exactly one op and one "
                              f"out buffer (found {len(body)} ops, {len(op.outs)} outs); run "
                              "bufferize to produce such kernels")
        inner = body[0]
        if op.yield_op.values[0] is not inner.results[0]:
            raise IrtoolError("lower-to-hw: the kernel must yield its op's result")
        outside = dict(zip(op.body.block.args, op.ins))
        name, args, params = kernel_call(inner, lambda v: outside[v], op.outs[0])
        rewriter.replace(op, hw.CallOp(name, args, params))


@dataclass(frozen=True)
class LowerToHwPass(ModulePass):
    """Replace every memory.kernel by a hw.call; record the target as `hw.target`."""

    name = "lower-to-hw"
    target: str | None = None

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        PatternRewriteWalker(KernelToCall(), apply_recursively=False).rewrite_module(op)
        if self.target:
            op.attributes[hw.TARGET_ATTR] = hw.TargetAttr(self.target)
