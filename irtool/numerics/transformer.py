"""The numerical reference of the `transformer` dialect: plain numpy on whole arrays.

Each function is one vectorised float32 numpy kernel, never a scalar loop, so a full generation
runs in seconds. The interpreter (`irtool.interpreter.transformer`) runs the ops with them, and
they are the reference that later levels, the C kernels and the passes are checked against, so
they spell out the float32 arithmetic plainly. No IR is involved: this package imports only
numpy and irtool.errors, so any layer may use it.
"""

from __future__ import annotations

import math

import numpy as np

from irtool.errors import IrtoolError
from irtool.numerics.gelu import gelu_erf

F32 = np.float32


def linear(x: np.ndarray, w: np.ndarray, b: np.ndarray | None = None,
           wt: np.ndarray | None = None) -> np.ndarray:
    """`x @ w.T (+ b)`, with `w.T` as a contiguous array (`wt` when the caller keeps one, else
    made here). BLAS multiplies by a transposed view 2-3x slower at these sizes and, for some
    widths, rounds differently; every level computes a float linear this one way, so the
    levels agree bit for bit."""
    y = x @ (np.ascontiguousarray(w.T) if wt is None else wt)
    if b is not None:
        y += b  # y is the product's own new array
    return y


def _mean_last(x: np.ndarray) -> np.ndarray:
    """`np.mean(x, axis=-1, keepdims=True, dtype=float32)`, the same bits (a float32 pairwise
    sum, then one correctly rounded division) without np.mean's Python layer. For the mean
    a LayerNorm subtracts: a sum whose terms cancel needs the pairwise sum's accuracy."""
    total = np.add.reduce(x, axis=-1, dtype=F32, keepdims=True)
    total /= F32(x.shape[-1])
    return total


_INVERSE_COUNTS: dict[int, np.ndarray] = {}


def _mean_of_squares_last(sq: np.ndarray) -> np.ndarray:
    """The mean over the last axis of squares (terms that never cancel), `[..., 1]` float32,
    as BLAS's product with a column of 1/n: twice as fast as numpy's reduction along short
    rows (0.75 vs 1.6 us for [37, 96]), where a norm is a dozen calls of about a microsecond.
    Its sum of same-signed terms keeps a relative error of a few float32 ulps (the norms stay
    within float32 rounding of a float64 reference, as the pairwise sum did: the bounds are in
    tests/test_straight_line.py)."""
    n = sq.shape[-1]
    column = _INVERSE_COUNTS.get(n)
    if column is None:
        column = np.full((n, 1), 1.0 / n, dtype=F32)
        column.flags.writeable = False
        _INVERSE_COUNTS[n] = column
    return sq @ column


def rms_norm(x: np.ndarray, g: np.ndarray, eps: float) -> np.ndarray:
    ms = _mean_of_squares_last(x * x)
    ms += F32(eps)
    out = np.divide(x, np.sqrt(ms, out=ms))
    out *= g
    return out


def layer_norm(x: np.ndarray, g: np.ndarray, b: np.ndarray, eps: float) -> np.ndarray:
    """`(x - mean) / sqrt(var + eps) * g + b` over the last axis, in that order; in place on
    the arrays made here, as each numpy call is about a microsecond at these sizes."""
    xc = x - _mean_last(x)
    var = _mean_of_squares_last(np.multiply(xc, xc))
    var += F32(eps)
    np.divide(xc, np.sqrt(var, out=var), out=xc)
    xc *= g
    xc += b
    return xc


def softmax(x: np.ndarray) -> np.ndarray:
    e = x - np.maximum.reduce(x, axis=-1, keepdims=True)
    np.exp(e, out=e)
    e /= np.add.reduce(e, axis=-1, keepdims=True)
    return e.astype(F32, copy=False)


def gelu(x: np.ndarray, approximate: str) -> np.ndarray:
    if approximate == "tanh":
        inner = F32(math.sqrt(2.0 / math.pi)) * (x + F32(0.044715) * x * x * x)
        return (F32(0.5) * x * (F32(1.0) + np.tanh(inner))).astype(F32, copy=False)
    # 0.5 x (1 + erf(x / sqrt 2)), in float32 within a stated bound (see numerics/gelu.py)
    return gelu_erf(x.astype(F32, copy=False))


def silu(x: np.ndarray) -> np.ndarray:
    d = np.exp(-x)
    d += F32(1.0)
    return (x / d).astype(F32, copy=False)


def relu(x: np.ndarray) -> np.ndarray:
    """max(x, 0); NaN stays NaN (as torch.relu), and -0.0 becomes +0.0."""
    return np.where((x > 0) | np.isnan(x), x, F32(0.0)).astype(F32)


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


_MINUS_INF = np.array(-np.inf, dtype=F32)
_MINUS_INF.flags.writeable = False

_LATER = np.zeros((0, 0), dtype=bool)
"""`_LATER[i, j]`: j > i. Grown on demand (to a power of two, at most `_LATER_MAX`)."""
_LATER_MAX = 4096


def _hidden_keys(t: int, s: int, window: int | None) -> np.ndarray:
    """`[T, S]` bool: key j is hidden from query i, the queries being the last t of s
    positions: j is after the query's own position, or (with a window W) W or more before it.
    Without a window, a view of one kept triangle: building the mask from aranges was a tenth
    of a small model's attention call."""
    global _LATER
    d = s - t
    if window is None and 0 <= d and s <= _LATER_MAX:
        later = _LATER
        if later.shape[0] < s:
            n = 1 << max(6, (s - 1).bit_length())
            later = np.triu(np.ones((n, n), dtype=bool), 1)
            later.flags.writeable = False
            _LATER = later
        return later[d:d + t, :s]
    last = np.arange(t)[:, None] + d  # the key at the query's own position
    visible = np.arange(s)[None, :] <= last
    if window is not None:
        visible &= np.arange(s)[None, :] > last - window
    return ~visible


def attention(q: np.ndarray, k: np.ndarray, v: np.ndarray, heads: int, kv_heads: int,
              head_dim: int, scale: float, causal: bool, window: int | None = None,
              softmax_fn=None) -> np.ndarray:
    """Grouped-query attention; with `causal` the ends of queries and keys are aligned, and a
    `window` W further hides keys W or more positions before the query (sliding window).
    `softmax_fn` replaces the float softmax over the last axis (masked scores are -inf)."""
    t, s = q.shape[0], k.shape[0]
    group = heads // kv_heads
    qh = q.reshape(t, kv_heads, group, head_dim).transpose(1, 2, 0, 3)  # [KV, G, T, hd]
    kh = k.reshape(s, kv_heads, head_dim).transpose(1, 0, 2)[:, None]  # [KV, 1, S, hd]
    vh = v.reshape(s, kv_heads, head_dim).transpose(1, 0, 2)[:, None]
    scores = qh @ kh.transpose(0, 1, 3, 2)  # [KV, G, T, S]
    scores *= np.array(scale, dtype=F32)  # a 0-d array: numpy's quickest scalar operand
    if causal:
        np.copyto(scores, _MINUS_INF, where=_hidden_keys(t, s, window))
    out = np.empty((t, heads * head_dim), dtype=F32)
    heads_out = out.reshape(t, kv_heads, group, head_dim).transpose(1, 2, 0, 3)  # a view
    if softmax_fn is None and t >= _MANY_QUERIES:
        _softmax_times(scores, vh, heads_out)
    else:
        np.matmul((softmax_fn or softmax)(scores), vh, out=heads_out)  # [KV, G, T, hd]
    return out


_MANY_QUERIES = 16
"""From this many query rows on, `_softmax_times` (measured faster from about 12 rows)."""
_SUM_FLOOR = F32(1e-30)


def _softmax_times(scores: np.ndarray, vh: np.ndarray, out: np.ndarray) -> None:
    """`softmax(scores) @ vh`, written into `out`, for many short rows: the same sum of
    `exp(score - shift) v` over `exp(score - shift)` with two changes that save a quarter of
    the call: the shift is the largest score of all rows (one reduction over the whole array;
    numpy's per-row max cost ~60 ns a row), and the normalising sums come out of the product
    with v (a column of ones beside it), dividing `[T, hd]` instead of `[T, S]`. A shared
    shift is exact as long as no row lies so far below it that its exps underflow: a row sum
    below 1e-30 (its top score more than 69 below the shift) sends the call back to the
    per-row softmax. NaN scores spoil only their own rows (`fmax` ignores them in the shift)."""
    shift = np.fmax.reduce(scores, axis=None)
    e = scores - shift
    np.exp(e, out=e)
    v1 = np.empty((*vh.shape[:-1], vh.shape[-1] + 1), dtype=F32)
    v1[..., :-1] = vh
    v1[..., -1] = 1.0
    weighted = e @ v1  # [..., T, hd + 1]: sum_j e_j v_j and, last, sum_j e_j
    sums = weighted[..., -1:]
    if not sums.min() >= _SUM_FLOOR:  # also when a row's sum is NaN
        np.matmul(softmax(scores), vh, out=out)
    else:
        np.divide(weighted[..., :-1], sums, out=out)


def kv_rows(op: str, cache_shape: tuple[int, ...], new: np.ndarray, pos: int, layer: int,
            ring: bool) -> tuple[np.ndarray, np.ndarray]:
    """The rows of `new` (positions pos, pos+1, ...) a KV write stores, as `[KV, T', hd]`, and
    their cache slots `p` (or `p % C` in a ring, which keeps only the last C rows); an error
    when a linear cache cannot hold them."""
    _, kv_heads, capacity, head_dim = cache_shape
    t = new.shape[0]
    if pos < 0:
        raise IrtoolError(f"{op} (layer {layer}): negative position {pos}")
    if not ring and pos + t > capacity:
        raise IrtoolError(
            f"{op} (layer {layer}): positions {pos}..{pos + t - 1} exceed the KV cache "
            f"capacity of {capacity} positions (a linear cache): give extract-kv-cache a larger "
            "capacity, or a window to keep only the last positions (irtool generate "
            "--capacity N / --window W)")
    rows = new.reshape(t, kv_heads, head_dim).transpose(1, 0, 2)  # [KV, T, hd]
    if t > capacity:  # a ring keeps only the last `capacity` rows
        rows, pos = rows[:, t - capacity:], pos + t - capacity
    return rows, (pos + np.arange(rows.shape[1])) % capacity


def kv_write(cache: np.ndarray, new: np.ndarray, pos: int, layer: int, ring: bool) -> np.ndarray:
    """A copy of `cache` with the rows of `new` (positions pos, pos+1, ...) in layer `layer`.

    The copy keeps value semantics: the caller's cache is never modified behind its back.
    """
    rows, slots = kv_rows("transformer.kv_write", cache.shape, new, pos, layer, ring)
    out = cache.copy()
    out[layer][:, slots] = rows
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


def lora_up(t: np.ndarray, y: np.ndarray, up: np.ndarray, selected: int) -> np.ndarray:
    """`y + t @ up.T` (the up half of a delta: `t = A_s x`, `up` the selected adapter's
    `[N, R]`), or `y` for the base model (`selected = -1`)."""
    if selected < 0:
        return y.copy()
    return (y + t @ up.T).astype(np.float32)


def lora(x: np.ndarray, y: np.ndarray, down: np.ndarray, up: np.ndarray,
         selected: int) -> tuple[np.ndarray, np.ndarray]:
    """`y + B_s (A_s x)` for adapter `selected` of the stacks `down: [n, R, K]` and
    `up: [n, N, R]` (scale folded into `up`), and the rank-sized product `A_s x: [T, R]`;
    `selected = -1` is the base model (`y` unchanged, a zero product)."""
    if selected < 0:
        return y.copy(), np.zeros((x.shape[0], down.shape[1]), dtype=np.float32)
    t = (x @ down[selected].T).astype(np.float32)
    return (y + t @ up[selected].T).astype(np.float32), t
