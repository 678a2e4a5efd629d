"""Interpreter implementations of the `transformer` dialect on whole numpy arrays.

Runtime values are numpy arrays (float32 activations, integer token ids); each op calls its
numpy kernel in `irtool.numerics.transformer`, the numerical reference of this level.

Each op is written once, as a binder: `bind(op)` reads the op's attributes and returns a
function of its operand values alone, which the straight-line program keeps per op (see
`irtool.interpreter.straight_line`); the `@impl` that xDSL's interpreter calls binds and
runs it in one go.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from xdsl.interpreter import Interpreter, InterpreterFunctions, impl, register_impls
from xdsl.ir import Operation

from irtool.dialects import transformer as tf
from irtool.errors import IrtoolError
from irtool.numerics.transformer import (
    attention,
    cached_attention,
    gelu,
    kv_write,
    layer_norm,
    linear,
    lora,
    lora_up,
    relu,
    rms_norm,
    rope,
    silu,
    softmax,
)
from irtool.weights import WeightStore

Bound = Callable[[tuple], tuple]
"""An op's implementation as a function of its operand values: the tuple of its results."""

_BINDERS: dict[type[Operation], Callable[[TransformerFunctions, Operation], Bound]] = {}


def _binds(op_type: type[Operation]):
    """Registers a binder for `op_type` and returns the `@impl` that xDSL's interpreter calls
    (bind, then run)."""
    def register(binder: Callable[[TransformerFunctions, Operation], Bound]):
        _BINDERS[op_type] = binder

        @impl(op_type)
        def run(self, interpreter: Interpreter, op: Operation, args: tuple) -> tuple:
            return binder(self, op)(args)

        return run
    return register


def _position(args: tuple, index: int) -> int:
    """The optional start-position operand, 0 when the op has none."""
    return int(args[index]) if len(args) > index else 0


@register_impls
class TransformerFunctions(InterpreterFunctions):
    """Runs `transformer` ops; weights come from the module's store."""

    def __init__(self, store: WeightStore):
        self.store = store
        self._transposed: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self._linear_forms: dict[tf.LinearOp, tuple[tuple, tuple[bool, bool, bool]]] = {}

    def bind(self, op: Operation) -> Bound | None:
        """The op's implementation as a function of its operand values (attributes and the
        linear's form read now), or None for an op without a binder (another dialect's, or a
        weight read, which the straight-line program runs once as a constant)."""
        binder = _BINDERS.get(type(op))
        return None if binder is None else binder(self, op)

    def transposed(self, w: np.ndarray) -> np.ndarray:
        """`w.T` as a contiguous array (see `numerics.transformer.linear`), made once per store
        array. Keyed by the array object, which the entry keeps alive; a store array replaced
        by another gets its own entry (weights are not modified in place while a module
        runs)."""
        hit = self._transposed.get(id(w))
        if hit is not None and hit[0] is w:
            return hit[1]
        if len(self._transposed) >= 4 * max(len(self.store.arrays), 256):
            self._transposed.clear()  # arrays replaced over and over: start again
        t = np.ascontiguousarray(w.T)
        self._transposed[id(w)] = (w, t)
        return t

    def linear_form(self, op: tf.LinearOp) -> tuple[bool, bool, bool]:
        """(weight read from the store, has a bias, has an accumulator) of a linear, kept per
        op while its operands are the same values: xDSL resolves an optional operand through
        the segment sizes on every access, ~8 us a linear, a tenth of a small model's
        forward. (Operands are set as a new tuple, so a changed op misses the kept form.)"""
        operands = op.operands[:]
        kept = self._linear_forms.get(op)
        if kept is not None and kept[0] == operands:
            return kept[1]
        form = (isinstance(op.weight.owner, tf.WeightOp), op.bias is not None,
                op.acc is not None)
        self._linear_forms[op] = (operands, form)
        return form

    @impl(tf.WeightOp)
    def run_weight(self, interpreter: Interpreter, op: tf.WeightOp, args):
        return (self.store[op.weight_name.data],)

    @_binds(tf.EmbeddingOp)
    def run_embedding(self, op: tf.EmbeddingOp) -> Bound:
        def run(args):
            tokens, table = args
            if tokens.size and (tokens.min() < 0 or tokens.max() >= table.shape[0]):
                bad = (tokens < 0) | (tokens >= table.shape[0])
                raise IrtoolError(f"token id {int(tokens[bad][0])} is outside the vocabulary "
                                  f"(0..{table.shape[0] - 1})")
            return (table.take(tokens, axis=0),)  # table[tokens], without fancy indexing's set-up
        return run

    @_binds(tf.PositionEmbeddingOp)
    def run_position_embedding(self, op: tf.PositionEmbeddingOp) -> Bound:
        def run(args):
            tokens, table = args[0], args[1]
            start = _position(args, 2)
            end = start + tokens.shape[0]
            if end > table.shape[0]:
                raise IrtoolError(f"sequence of {end} positions exceeds the model's maximum of "
                                  f"{table.shape[0]} (learned position table)")
            return (table[start:end],)
        return run

    @_binds(tf.LinearOp)
    def run_linear(self, op: tf.LinearOp) -> Bound:
        stored, has_bias, has_acc = self.linear_form(op)
        transposed = self.transposed
        if stored and not has_acc:  # the common forms, without tests at every call
            if has_bias:
                return lambda a: (linear(a[0], a[1], a[2], transposed(a[1])),)
            return lambda a: (linear(a[0], a[1], None, transposed(a[1])),)

        def run(a):
            w = a[1]
            y = linear(a[0], w, a[2] if has_bias else None, transposed(w) if stored else None)
            return (a[-1] + y if has_acc else y,)
        return run

    @_binds(tf.LoraOp)
    def run_lora(self, op: tf.LoraOp) -> Bound:
        selected = op.selected.value.data
        return lambda a: lora(*a, selected)

    @_binds(tf.LoraUpOp)
    def run_lora_up(self, op: tf.LoraUpOp) -> Bound:
        selected = op.selected.value.data
        return lambda a: (lora_up(*a, selected),)

    @_binds(tf.MatmulOp)
    def run_matmul(self, op: tf.MatmulOp) -> Bound:
        if op.is_transposed:
            return lambda a: (a[0] @ a[1].T,)
        return lambda a: (a[0] @ a[1],)

    @_binds(tf.AddOp)
    def run_add(self, op: tf.AddOp) -> Bound:
        return lambda a: (a[0] + a[1],)

    @_binds(tf.MulOp)
    def run_mul(self, op: tf.MulOp) -> Bound:
        return lambda a: (a[0] * a[1],)

    @_binds(tf.RMSNormOp)
    def run_rms_norm(self, op: tf.RMSNormOp) -> Bound:
        eps = op.eps.value.data
        return lambda a: (rms_norm(a[0], a[1], eps),)

    @_binds(tf.LayerNormOp)
    def run_layer_norm(self, op: tf.LayerNormOp) -> Bound:
        eps = op.eps.value.data
        return lambda a: (layer_norm(a[0], a[1], a[2], eps),)

    @_binds(tf.RopeOp)
    def run_rope(self, op: tf.RopeOp) -> Bound:
        fields = (op.heads.value.data, op.head_dim.value.data, op.rotary_dim.value.data,
                  op.style.data)
        return lambda a: (rope(a[0], a[1], a[2], _position(a, 3), *fields),)

    @_binds(tf.AttentionOp)
    def run_attention(self, op: tf.AttentionOp) -> Bound:
        fields = (op.heads.value.data, op.kv_heads.value.data, op.head_dim.value.data,
                  op.scale.value.data, op.is_causal, op.window_size)
        return lambda a: (attention(*a, *fields),)

    @_binds(tf.KVWriteOp)
    def run_kv_write(self, op: tf.KVWriteOp) -> Bound:
        layer, ring = op.layer.value.data, op.is_ring
        return lambda a: (kv_write(a[0], a[1], int(a[2]), layer, ring),)

    @_binds(tf.CachedAttentionOp)
    def run_cached_attention(self, op: tf.CachedAttentionOp) -> Bound:
        layer = op.layer.value.data
        fields = (op.heads.value.data, op.kv_heads.value.data, op.head_dim.value.data,
                  op.scale.value.data, op.is_ring)
        return lambda a: (cached_attention(a[0], a[1], a[2], int(a[3]), layer, *fields),)

    @_binds(tf.SoftmaxOp)
    def run_softmax(self, op: tf.SoftmaxOp) -> Bound:
        return lambda a: (softmax(a[0]),)

    @_binds(tf.GeluOp)
    def run_gelu(self, op: tf.GeluOp) -> Bound:
        approximate = op.approximate.data
        return lambda a: (gelu(a[0], approximate),)

    @_binds(tf.ReluOp)
    def run_relu(self, op: tf.ReluOp) -> Bound:
        return lambda a: (relu(a[0]),)

    @_binds(tf.SiluOp)
    def run_silu(self, op: tf.SiluOp) -> Bound:
        return lambda a: (silu(a[0]),)
