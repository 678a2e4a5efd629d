"""Interpreter implementations of the `transformer` dialect on whole numpy arrays.

Runtime values are numpy arrays (float32 activations, integer token ids); each op is one
vectorised numpy kernel, never a scalar loop, so a full generation runs in seconds. These
functions are also the numerical reference that later levels (and the C kernels) are
checked against, so they spell out the float32 arithmetic plainly.
"""

from __future__ import annotations

import math

import numpy as np
from xdsl.interpreter import Interpreter, InterpreterFunctions, impl, register_impls

from irtool.dialects import transformer as tf
from irtool.errors import IrtoolError
from irtool.weights import WeightStore

F32 = np.float32


def _erf(x: np.ndarray) -> np.ndarray:
    """erf in float64, vectorised: numpy has none, and math.erf element by element was 70% of
    a GPT-2 generation; scipy's is the library one (imported on first use)."""
    from scipy.special import erf

    return erf(x)


def rms_norm(x: np.ndarray, g: np.ndarray, eps: float) -> np.ndarray:
    ms = np.mean(x * x, axis=-1, keepdims=True, dtype=F32)
    return (x / np.sqrt(ms + F32(eps))) * g


def layer_norm(x: np.ndarray, g: np.ndarray, b: np.ndarray, eps: float) -> np.ndarray:
    mean = np.mean(x, axis=-1, keepdims=True, dtype=F32)
    xc = x - mean
    var = np.mean(xc * xc, axis=-1, keepdims=True, dtype=F32)
    return xc / np.sqrt(var + F32(eps)) * g + b


def softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - np.max(x, axis=-1, keepdims=True))
    return (e / np.sum(e, axis=-1, keepdims=True)).astype(F32)


def gelu(x: np.ndarray, approximate: str) -> np.ndarray:
    if approximate == "tanh":
        inner = F32(math.sqrt(2.0 / math.pi)) * (x + F32(0.044715) * x * x * x)
        return (F32(0.5) * x * (F32(1.0) + np.tanh(inner))).astype(F32)
    return (0.5 * x * (1.0 + _erf(x.astype(np.float64) / math.sqrt(2.0)))).astype(F32)


def silu(x: np.ndarray) -> np.ndarray:
    return (x / (F32(1.0) + np.exp(-x))).astype(F32)


def rope(x: np.ndarray, cos: np.ndarray, sin: np.ndarray, start: int, heads: int,
         head_dim: int, rotary_dim: int, style: str) -> np.ndarray:
    t = x.shape[0]
    if start + t > cos.shape[0]:
        raise IrtoolError(f"transformer.rope: positions {start}..{start + t - 1} exceed the "
                          f"{cos.shape[0]} positions of the rotary tables")
    c = cos[start:start + t][:, None, :]
    s = sin[start:start + t][:, None, :]
    xh = x.reshape(t, heads, head_dim)
    rot = xh[..., :rotary_dim]
    if style == "interleaved":
        a, b = rot[..., 0::2], rot[..., 1::2]
        out = np.empty_like(rot)
        out[..., 0::2] = a * c - b * s
        out[..., 1::2] = a * s + b * c
    else:
        half = rotary_dim // 2
        a, b = rot[..., :half], rot[..., half:]
        out = np.concatenate([a * c - b * s, b * c + a * s], axis=-1)
    return np.concatenate([out, xh[..., rotary_dim:]], axis=-1).reshape(t, heads * head_dim)


def attention(q: np.ndarray, k: np.ndarray, v: np.ndarray, heads: int, kv_heads: int,
              head_dim: int, scale: float, causal: bool, window: int | None = None) -> np.ndarray:
    """Grouped-query attention; with `causal` the ends of queries and keys are aligned, and a
    `window` W further hides keys W or more positions before the query (sliding window)."""
    t, s = q.shape[0], k.shape[0]
    group = heads // kv_heads
    qh = q.reshape(t, kv_heads, group, head_dim).transpose(1, 2, 0, 3)  # [KV, G, T, hd]
    kh = k.reshape(s, kv_heads, head_dim).transpose(1, 0, 2)[:, None]  # [KV, 1, S, hd]
    vh = v.reshape(s, kv_heads, head_dim).transpose(1, 0, 2)[:, None]
    scores = (qh @ kh.transpose(0, 1, 3, 2)) * F32(scale)  # [KV, G, T, S]
    if causal:
        last = np.arange(t)[:, None] + (s - t)  # the key at the query's own position
        visible = np.arange(s)[None, :] <= last
        if window is not None:
            visible &= np.arange(s)[None, :] > last - window
        scores = np.where(visible, scores, F32(-np.inf))
    out = softmax(scores) @ vh  # [KV, G, T, hd]
    return out.transpose(2, 0, 1, 3).reshape(t, heads * head_dim)


def kv_write(cache: np.ndarray, new: np.ndarray, pos: int, layer: int, ring: bool) -> np.ndarray:
    """A copy of `cache` with the rows of `new` (positions pos, pos+1, ...) in layer `layer`.

    The copy keeps value semantics: the caller's cache is never modified behind its back.
    """
    _, kv_heads, capacity, head_dim = cache.shape
    t = new.shape[0]
    if pos < 0:
        raise IrtoolError(f"transformer.kv_write (layer {layer}): negative position {pos}")
    if not ring and pos + t > capacity:
        raise IrtoolError(
            f"transformer.kv_write (layer {layer}): positions {pos}..{pos + t - 1} exceed the "
            f"KV cache capacity of {capacity} positions (a linear cache): give extract-kv-cache "
            "a larger capacity, or a window to keep only the last positions (irtool generate "
            "--capacity N / --window W)")
    rows = new.reshape(t, kv_heads, head_dim).transpose(1, 0, 2)  # [KV, T, hd]
    if t > capacity:  # a ring keeps only the last `capacity` rows
        rows, pos = rows[:, t - capacity:], pos + t - capacity
    out = cache.copy()
    out[layer][:, (pos + np.arange(rows.shape[1])) % capacity] = rows
    return out


def held_slots(op: str, layer: int, end: int, t: int, capacity: int, ring: bool) -> np.ndarray:
    """Cache slots of the positions max(0, end-C)..end-1, in position order, for t queries
    ending at position end-1; an error when the cache cannot hold what they must see."""
    if not ring and end > capacity:
        raise IrtoolError(f"{op} (layer {layer}): position {end - 1} is past the KV cache "
                          f"capacity of {capacity} positions")
    first = max(0, end - capacity)
    if end - first < t:
        raise IrtoolError(f"{op} (layer {layer}): {t} query rows ending at position {end - 1}, "
                          f"but the cache holds only positions {first}..{end - 1}")
    return np.arange(first, end) % capacity


def cached_attention(q: np.ndarray, kcache: np.ndarray, vcache: np.ndarray, end: int,
                     layer: int, heads: int, kv_heads: int, head_dim: int, scale: float,
                     ring: bool) -> np.ndarray:
    """Queries at positions end-T..end-1 over the cached positions max(0, end-C)..end-1.

    The held positions are gathered in position order, so plain end-aligned causal attention
    over them is exactly "each query sees the cached positions up to its own".
    """
    slots = held_slots("transformer.cached_attention", layer, end, q.shape[0],
                       kcache.shape[2], ring)
    s = slots.size
    k = kcache[layer][:, slots].transpose(1, 0, 2).reshape(s, kv_heads * head_dim)
    v = vcache[layer][:, slots].transpose(1, 0, 2).reshape(s, kv_heads * head_dim)
    return attention(q, k, v, heads, kv_heads, head_dim, scale, causal=True)


@register_impls
class TransformerFunctions(InterpreterFunctions):
    """Runs `transformer` ops; weights come from the module's store."""

    def __init__(self, store: WeightStore):
        self.store = store

    @impl(tf.WeightOp)
    def run_weight(self, interpreter: Interpreter, op: tf.WeightOp, args):
        return (self.store[op.weight_name.data],)

    @impl(tf.EmbeddingOp)
    def run_embedding(self, interpreter: Interpreter, op: tf.EmbeddingOp, args):
        tokens, table = args
        bad = (tokens < 0) | (tokens >= table.shape[0])
        if np.any(bad):
            raise IrtoolError(f"token id {int(tokens[bad][0])} is outside the vocabulary "
                              f"(0..{table.shape[0] - 1})")
        return (table[tokens],)

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

    @impl(tf.LinearOp)
    def run_linear(self, interpreter: Interpreter, op: tf.LinearOp, args):
        y = args[0] @ args[1].T
        if len(args) > 2:
            y = y + args[2]
        return (y,)

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

    @impl(tf.SiluOp)
    def run_silu(self, interpreter: Interpreter, op: tf.SiluOp, args):
        return (silu(args[0]),)
