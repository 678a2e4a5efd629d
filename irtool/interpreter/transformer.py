"""Interpreter implementations of the `transformer` dialect on whole numpy arrays.

Runtime values are numpy arrays (float32 activations, integer token ids); each op calls its
numpy kernel in `irtool.numerics.transformer`, the numerical reference of this level.
"""

from __future__ import annotations

import numpy as np
from xdsl.interpreter import Interpreter, InterpreterFunctions, impl, register_impls

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


@register_impls
class TransformerFunctions(InterpreterFunctions):
    """Runs `transformer` ops; weights come from the module's store."""

    def __init__(self, store: WeightStore):
        self.store = store
        self._transposed: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self._linear_forms: dict[tf.LinearOp, tuple[tuple, tuple[bool, bool, bool]]] = {}

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

    @impl(tf.WeightOp)
    def run_weight(self, interpreter: Interpreter, op: tf.WeightOp, args):
        return (self.store[op.weight_name.data],)

    @impl(tf.EmbeddingOp)
    def run_embedding(self, interpreter: Interpreter, op: tf.EmbeddingOp, args):
        tokens, table = args
        if tokens.size and (tokens.min() < 0 or tokens.max() >= table.shape[0]):
            bad = (tokens < 0) | (tokens >= table.shape[0])
            raise IrtoolError(f"token id {int(tokens[bad][0])} is outside the vocabulary "
                              f"(0..{table.shape[0] - 1})")
        return (table.take(tokens, axis=0),)  # table[tokens], without fancy indexing's set-up

    @impl(tf.PositionEmbeddingOp)
    def run_position_embedding(self, interpreter: Interpreter, op: tf.PositionEmbeddingOp,
                               args):
        tokens, table = args[0], args[1]
        start = int(args[2]) if len(args) > 2 else 0
        end = start + tokens.shape[0]
        if end > table.shape[0]:
            raise IrtoolError(f"sequence of {end} positions exceeds the model's maximum of "
                              f"{table.shape[0]} (learned position table)")
        return (table[start:end],)

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

    @impl(tf.LinearOp)
    def run_linear(self, interpreter: Interpreter, op: tf.LinearOp, args):
        stored, has_bias, has_acc = self.linear_form(op)
        w = args[1]
        y = linear(args[0], w, args[2] if has_bias else None,
                   self.transposed(w) if stored else None)
        return (args[-1] + y if has_acc else y,)

    @impl(tf.LoraOp)
    def run_lora(self, interpreter: Interpreter, op: tf.LoraOp, args):
        return lora(*args, op.selected.value.data)

    @impl(tf.LoraUpOp)
    def run_lora_up(self, interpreter: Interpreter, op: tf.LoraUpOp, args):
        return (lora_up(*args, op.selected.value.data),)

    @impl(tf.MatmulOp)
    def run_matmul(self, interpreter: Interpreter, op: tf.MatmulOp, args):
        a, b = args
        return (a @ (b.T if op.is_transposed else b),)

    @impl(tf.AddOp)
    def run_add(self, interpreter: Interpreter, op: tf.AddOp, args):
        return (args[0] + args[1],)

    @impl(tf.MulOp)
    def run_mul(self, interpreter: Interpreter, op: tf.MulOp, args):
        return (args[0] * args[1],)

    @impl(tf.RMSNormOp)
    def run_rms_norm(self, interpreter: Interpreter, op: tf.RMSNormOp, args):
        return (rms_norm(args[0], args[1], op.eps.value.data),)

    @impl(tf.LayerNormOp)
    def run_layer_norm(self, interpreter: Interpreter, op: tf.LayerNormOp, args):
        return (layer_norm(args[0], args[1], args[2], op.eps.value.data),)

    @impl(tf.RopeOp)
    def run_rope(self, interpreter: Interpreter, op: tf.RopeOp, args):
        start = int(args[3]) if len(args) > 3 else 0
        return (rope(args[0], args[1], args[2], start, op.heads.value.data,
                     op.head_dim.value.data, op.rotary_dim.value.data, op.style.data),)

    @impl(tf.AttentionOp)
    def run_attention(self, interpreter: Interpreter, op: tf.AttentionOp, args):
        return (attention(*args, op.heads.value.data, op.kv_heads.value.data,
                          op.head_dim.value.data, op.scale.value.data, op.is_causal,
                          op.window_size),)

    @impl(tf.KVWriteOp)
    def run_kv_write(self, interpreter: Interpreter, op: tf.KVWriteOp, args):
        cache, new, pos = args
        return (kv_write(cache, new, int(pos), op.layer.value.data, op.is_ring),)

    @impl(tf.CachedAttentionOp)
    def run_cached_attention(self, interpreter: Interpreter, op: tf.CachedAttentionOp, args):
        q, kcache, vcache, end = args
        return (cached_attention(q, kcache, vcache, int(end), op.layer.value.data,
                                 op.heads.value.data, op.kv_heads.value.data,
                                 op.head_dim.value.data, op.scale.value.data, op.is_ring),)

    @impl(tf.SoftmaxOp)
    def run_softmax(self, interpreter: Interpreter, op: tf.SoftmaxOp, args):
        return (softmax(args[0]),)

    @impl(tf.GeluOp)
    def run_gelu(self, interpreter: Interpreter, op: tf.GeluOp, args):
        return (gelu(args[0], op.approximate.data),)

    @impl(tf.ReluOp)
    def run_relu(self, interpreter: Interpreter, op: tf.ReluOp, args):
        return (relu(args[0]),)

    @impl(tf.SiluOp)
    def run_silu(self, interpreter: Interpreter, op: tf.SiluOp, args):
        return (silu(args[0]),)
