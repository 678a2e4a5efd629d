"""The numpy reference of the quantization contract (the `quant` dialect's numerics).

The module-level functions are the reference arithmetic that the C kernels are tested against
(plain functions on numpy arrays, no IR involved): quantizing weights (`quantize_weights_w8`,
`quantize_weights_w4`, `quantize_weights_w1`), packing (`pack_int4`, `unpack_int4`,
`pack_bits`, `unpack_bits`), activations (`activation_params`, `quantize_activations`,
`quantize_a4`), the linear kernels (`w8a8_accumulate`, `w8a8_linear`, `w8_linear`,
`w4_linear`, `w1_linear`, `w1a4_accumulate`, `w1a4_linear`) and the int8 KV cache
(`kv_quantize_rows`, `kv_write_int8`, `cached_attention_int8`).

The contract (float32 everywhere; round = half to even, `np.rint` on float32 = C `lrintf` /
`nearbyintf` in the default rounding mode):
* w8: `s[n] = max_k |W[n, k]| / 127` (0 -> 1.0), `q = clip(round(W / s), -127, 127)` int8;
  `y = s[n] * dot(x, q) (+ b)`, float accumulation (tolerance-level agreement only).
* w8a8: activations from a calibrated range `[lo, hi]` (widened to include 0):
  `sx = (hi - lo) / 255` (0 -> 1.0), `zx = clip(round(-128 - lo / sx), -128, 127)`,
  `xq = clip(round(x / sx) + zx, -128, 127)`; `acc = sum_k (xq - zx) * q` exact int32;
  `y = float32(acc) * m[n] (+ b[n])` with `m[n] = float32(sx * s[n])` stored: one float32
  multiply then one float32 add, bit-exact between numpy and C (C must not contract them into
  an fma: `-ffp-contract=off`).
* w4g32: `s[n, g] = max |W[n, group g]| / 7`, `q = clip(round(W / s), -7, 7)`, packed two per
  byte (low nibble = even k), `y = sum_g s[n, g] * dot_g(x, q) (+ b)`.
* w1: bit 1 where `W >= 0` (+1), else 0 (-1), eight per byte LSB first; `alpha[n] = mean |W|`;
  `y = alpha[n] * sum_k (+/-x) (+ b)`. a4: per group of 32, `m = max |x_g|`,
  `e = 0 if m == 0 else ceil(log2(m / 7))` (computed exactly from the float32 `m / 7` with
  frexp: C should use `frexpf`, not `log2f`, whose rounding near powers of two varies),
  `xq = clip(round(x / 2^e), -8, 7)`, `acc[t, n, g]` exact int32,
  `y = alpha[n] * S (+ b)` where `S = ((0 + acc_0 * 2^e_0) + acc_1 * 2^e_1) + ...` in float32,
  groups in increasing order (so this part is bit-exact too).
* kv int8: per cached row (one position of one kv head), `s = max |row| / 127` (0 -> 1.0),
  `q = clip(round(row / s), -127, 127)`; read back as `float32(q) * s`.

Clipping before the float -> int conversion (`clip(round(v), lo - zp, hi - zp) + zp`) gives the
same integers as the contract's `clip(round(v) + zp, lo, hi)` and never converts an
out-of-range float (undefined behaviour in C).
"""

from __future__ import annotations

import numpy as np

from irtool.errors import IrtoolError
from irtool.numerics.intops import int_softmax
from irtool.numerics.transformer import attention, held_slots, kv_rows

F32 = np.float32
I8_MAX = 127


# Helpers --------------------------------------------------------------------------------------

def _f32(a) -> np.ndarray:
    return np.asarray(a, dtype=F32)


def _nonzero(s: np.ndarray) -> np.ndarray:
    """A scale of 0 (an all-zero row or group) becomes 1.0, as the contract says."""
    s = _f32(s).copy()
    s[s == 0] = F32(1.0)
    return s


def _round_clip(v: np.ndarray, lo, hi, zero_point=0) -> np.ndarray:
    """`clip(round(v) + zero_point, lo, hi)` as int64, for float32 `v` (see module docstring)."""
    zp = np.asarray(zero_point, dtype=np.int64)
    r = np.clip(np.rint(v), lo - zp, hi - zp)
    return r.astype(np.int64) + zp


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def _pad_last(x: np.ndarray, group: int) -> np.ndarray:
    """`x` with zeros appended along the last axis up to a multiple of `group`."""
    k = x.shape[-1]
    pad = ceil_div(k, group) * group - k
    if pad == 0:
        return x
    widths = [(0, 0)] * (x.ndim - 1) + [(0, pad)]
    return np.pad(x, widths)


def _grouped(x: np.ndarray, group: int) -> np.ndarray:
    """`[..., K]` -> `[..., ceil(K / group), group]` (zero padded)."""
    xp = _pad_last(x, group)
    return xp.reshape(*x.shape[:-1], xp.shape[-1] // group, group)


def _expand_scale(scale: np.ndarray, shape: tuple[int, ...], group: int | None,
                  axis: int = 0) -> np.ndarray:
    """A scale (or zero point) broadcastable to `shape`: per tensor, channel or group."""
    scale = np.asarray(scale)
    if group is not None:
        return np.repeat(scale, group, axis=-1)[..., :shape[-1]]
    if scale.size == 1 and scale.ndim <= 1:
        return scale.reshape(())
    view = [1] * len(shape)
    view[axis] = scale.shape[0]
    return scale.reshape(view)


# Generic conversions (the ops quantize / dequantize / requantize / dynamic_quantize) ----------

def quantize(x: np.ndarray, scale: np.ndarray, zero_point: np.ndarray | None, lo: int, hi: int,
             group: int | None = None, axis: int = 0) -> np.ndarray:
    """`clip(round(x / scale) + zero_point, lo, hi)` as int64 (one float32 division)."""
    s = _expand_scale(_f32(scale), x.shape, group, axis)
    zp = 0 if zero_point is None else _expand_scale(np.asarray(zero_point, np.int64), x.shape,
                                                    group, axis)
    return _round_clip(_f32(x) / s, lo, hi, zp)


def dequantize(qv: np.ndarray, scale: np.ndarray, zero_point: np.ndarray | None = None,
               group: int | None = None, axis: int = 0) -> np.ndarray:
    """`float32(q - zero_point) * scale`."""
    s = _expand_scale(_f32(scale), qv.shape, group, axis)
    centered = np.asarray(qv, np.int64)
    if zero_point is not None:
        centered = centered - _expand_scale(np.asarray(zero_point, np.int64), qv.shape, group,
                                            axis)
    return centered.astype(F32) * s


def requantize(qv: np.ndarray, multiplier: np.ndarray, zero_point: np.ndarray | None, lo: int,
               hi: int, group: int | None = None, axis: int = 0) -> np.ndarray:
    """`clip(round(float32(q) * multiplier) + zero_point, lo, hi)` as int64."""
    m = _expand_scale(_f32(multiplier), qv.shape, group, axis)
    zp = 0 if zero_point is None else _expand_scale(np.asarray(zero_point, np.int64), qv.shape,
                                                    group, axis)
    return _round_clip(np.asarray(qv).astype(F32) * m, lo, hi, zp)


def dynamic_quantize(x: np.ndarray, group: int, bits: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric absmax quantization per group along the last axis: `(q int8, scales f32)`."""
    hi = (1 << (bits - 1)) - 1
    xg = _grouped(_f32(x), group)
    s = _nonzero(np.max(np.abs(xg), axis=-1) / F32(hi))
    qv = _round_clip(xg / s[..., None], -hi, hi)
    qv = qv.reshape(*x.shape[:-1], -1)[..., :x.shape[-1]]
    return qv.astype(np.int8), s


# Weights -------------------------------------------------------------------------------------

def quantize_weights_w8(w: np.ndarray, per_tensor: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """w8: `(q int8 [N, K], s f32 [N])` (or `s [1]` per tensor)."""
    w = _f32(w)
    amax = np.max(np.abs(w)).reshape(1) if per_tensor else np.max(np.abs(w), axis=1)
    s = _nonzero(amax / F32(I8_MAX))
    qv = _round_clip(w / (s if per_tensor else s[:, None]), -I8_MAX, I8_MAX)
    return qv.astype(np.int8), s


def quantize_weights_w4(w: np.ndarray, group: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """w4 per group: `(q int8 [N, K] in -7..7, s f32 [N, ceil(K / group)])` (not packed)."""
    w = _f32(w)
    s = _nonzero(np.max(np.abs(_grouped(w, group)), axis=-1) / F32(7))
    qv = _round_clip(w / _expand_scale(s, w.shape, group), -7, 7)
    return qv.astype(np.int8), s


def quantize_weights_w1(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """w1: `(bits uint8 [N, K] in {0, 1}, alpha f32 [N])`; bit 1 is +1 (W >= 0).

    alpha is the mean of |W| over the row, summed in float64 and rounded once to float32.
    """
    w = _f32(w)
    bits = (w >= 0).astype(np.uint8)
    alpha = np.mean(np.abs(w).astype(np.float64), axis=1).astype(F32)
    return bits, alpha


def pack_int4(qv: np.ndarray) -> np.ndarray:
    """`[N, K]` values in -8..7 -> `[N, ceil(K / 2)]` uint8: element 2j in the low nibble,
    2j + 1 in the high nibble, 4-bit two's complement; an odd row gets a high nibble of 0."""
    qv = np.asarray(qv, np.int64)
    if qv.size and (qv.min() < -8 or qv.max() > 7):
        raise ValueError("pack_int4: values must lie in -8..7")
    nib = (_pad_last(qv, 2) & 0xF).astype(np.uint8)
    return (nib[..., 0::2] | (nib[..., 1::2] << 4)).astype(np.uint8)


def unpack_int4(packed: np.ndarray, k: int) -> np.ndarray:
    """Inverse of pack_int4: `[N, ceil(K / 2)]` uint8 -> `[N, K]` int8."""
    p = np.asarray(packed, np.uint8)
    lo = (p & 0xF).astype(np.int8)
    hi = (p >> 4).astype(np.int8)
    both = np.stack([lo, hi], axis=-1).reshape(*p.shape[:-1], -1)[..., :k]
    return np.where(both >= 8, both - 16, both).astype(np.int8)


def pack_bits(bits: np.ndarray) -> np.ndarray:
    """`[N, K]` of 0/1 -> `[N, ceil(K / 8)]` uint8, least significant bit first, padding 0."""
    return np.packbits(np.asarray(bits, np.uint8) & 1, axis=-1, bitorder="little")


def unpack_bits(packed: np.ndarray, k: int) -> np.ndarray:
    """Inverse of pack_bits: `[N, ceil(K / 8)]` uint8 -> `[N, K]` uint8 of 0/1."""
    return np.unpackbits(np.asarray(packed, np.uint8), axis=-1, count=k, bitorder="little")


def signs(bits: np.ndarray) -> np.ndarray:
    """0/1 bits -> -1/+1 (int8)."""
    return (2 * np.asarray(bits, np.int8) - 1).astype(np.int8)


def dequantized_rows(packed: np.ndarray, scale: np.ndarray, ids: np.ndarray, dim: int,
                     bits: int, group: int | None = None) -> np.ndarray:
    """Rows `ids` of a table stored as `quant.wlinear` weights, dequantized to float32:
    `float32(q) * s` with the row's (group's, the tensor's) scale; 1 bit: `+/-alpha`."""
    rows, s = np.asarray(packed)[ids], _f32(scale)
    if bits == 1:
        return (signs(unpack_bits(rows, dim)).astype(F32) * s[ids][:, None]).astype(F32)
    qv = (rows if bits == 8 else unpack_int4(rows, dim)).astype(F32)
    if group is not None:
        return (qv * np.repeat(s[ids], group, axis=1)[:, :dim]).astype(F32)
    return (qv * (s[0] if s.shape == (1,) else s[ids][:, None])).astype(F32)


# Activations ----------------------------------------------------------------------------------

def activation_params(lo: float, hi: float) -> tuple[np.float32, np.int32]:
    """w8a8 per-tensor asymmetric int8 parameters `(sx, zx)` of a calibrated range."""
    lo, hi = min(F32(lo), F32(0)), max(F32(hi), F32(0))
    sx = F32(F32(hi) - F32(lo)) / F32(255)
    if sx == 0:
        sx = F32(1.0)
    zx = _round_clip(F32(-128) - F32(lo) / sx, -128, 127)
    return F32(sx), np.int32(zx)


def quantize_activations(x: np.ndarray, sx, zx) -> np.ndarray:
    """`xq = clip(round(x / sx) + zx, -128, 127)` int8."""
    return _round_clip(_f32(x) / F32(sx), -128, 127, int(zx)).astype(np.int8)


def w8a8_multiplier(sx, s: np.ndarray) -> np.ndarray:
    """`m[n] = float32(sx * s[n])`."""
    return (F32(sx) * _f32(s)).astype(F32)


def _exact_int_matmul(a: np.ndarray, b_t: np.ndarray) -> np.ndarray:
    """`a @ b_t.T` of integer matrices, exact: float64 products and sums of integers stay
    exact below 2^53, far above any int32 accumulator (checked)."""
    acc = np.asarray(a, np.float64) @ np.asarray(b_t, np.float64).T
    out = acc.astype(np.int64)
    if out.size and (out.max() > np.iinfo(np.int32).max or out.min() < np.iinfo(np.int32).min):
        raise IrtoolError("integer linear: an accumulator overflows int32")
    return out.astype(np.int32)


def w8a8_accumulate(xq: np.ndarray, zx, wq: np.ndarray) -> np.ndarray:
    """`acc[t, n] = sum_k (xq[t, k] - zx) * wq[n, k]`, int32."""
    return _exact_int_matmul(np.asarray(xq, np.int64) - int(np.asarray(zx).reshape(-1)[0]), wq)


def w8a8_linear(xq: np.ndarray, zx, wq: np.ndarray, m: np.ndarray,
                b: np.ndarray | None = None) -> np.ndarray:
    """`y = float32(acc) * m (+ b)`: one float32 multiply, one float32 add."""
    y = w8a8_accumulate(xq, zx, wq).astype(F32) * _f32(m).reshape(-1)
    if b is not None:
        y = (y + _f32(b)).astype(F32)
    return y.astype(F32)


def _add_bias(y: np.ndarray, b: np.ndarray | None) -> np.ndarray:
    return (y if b is None else y + _f32(b)).astype(F32)


def w8_linear(x: np.ndarray, wq: np.ndarray, s: np.ndarray, b: np.ndarray | None = None,
              group: int | None = None) -> np.ndarray:
    """Weight-only int8 (or unpacked int4) with float activations:
    `y = sum_g s[n, g] * dot_g(x, q) (+ b)`; per channel `s [N]` or per tensor `s [1]`."""
    x, wf, s = _f32(x), np.asarray(wq).astype(F32), _f32(s)
    if group is None:
        return _add_bias((x @ wf.T) * s.reshape(-1), b)
    k = x.shape[-1]
    y = np.zeros((x.shape[0], wf.shape[0]), F32)
    for g in range(ceil_div(k, group)):
        sl = slice(g * group, min(k, (g + 1) * group))
        y += (x[:, sl] @ wf[:, sl].T) * s[:, g]
    return _add_bias(y, b)


def w4_linear(x: np.ndarray, packed: np.ndarray, s: np.ndarray, b: np.ndarray | None = None,
              group: int | None = 32) -> np.ndarray:
    """Packed int4 weights `[N, ceil(K / 2)]` with float activations."""
    return w8_linear(x, unpack_int4(packed, x.shape[-1]), s, b, group)


def w1_linear(x: np.ndarray, packed: np.ndarray, alpha: np.ndarray,
              b: np.ndarray | None = None) -> np.ndarray:
    """Packed sign weights `[N, ceil(K / 8)]`: `y = alpha[n] * sum_k (+/-x) (+ b)`."""
    sg = signs(unpack_bits(packed, x.shape[-1])).astype(F32)
    return _add_bias((_f32(x) @ sg.T) * _f32(alpha), b)


def a4_exponents(x: np.ndarray, group: int = 32) -> np.ndarray:
    """`e[t, g] = ceil(log2(max|x[t, group g]| / 7))` (0 for an all-zero group), int32, exact:
    `v = m / 7` (float32) is `f * 2^p` with `f` in [0.5, 1); ceil(log2 v) is p, or p - 1 when
    v is a power of two (`f == 0.5`)."""
    m = np.max(np.abs(_grouped(_f32(x), group)), axis=-1)
    frac, exp = np.frexp(m / F32(7))
    e = np.where(frac == 0.5, exp - 1, exp)
    return np.where(m == 0, 0, e).astype(np.int32)


def quantize_a4(x: np.ndarray, group: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """a4: `(xq int8 [T, K] in -8..7, e int32 [T, ceil(K / group)])`, scale `2^e` per group."""
    x = _f32(x)
    e = a4_exponents(x, group)
    sx = np.ldexp(F32(1), e).astype(F32)
    xq = _round_clip(x / _expand_scale(sx, x.shape, group), -8, 7)
    return xq.astype(np.int8), e


def w1a4_accumulate(xq: np.ndarray, bits: np.ndarray, group: int = 32) -> np.ndarray:
    """`acc[t, n, g] = sum_{k in g} xq[t, k] * (+1 | -1)`, int32 `[T, N, ceil(K / group)]`."""
    k = xq.shape[-1]
    sg = signs(bits)
    groups = ceil_div(k, group)
    acc = np.empty((xq.shape[0], sg.shape[0], groups), np.int32)
    for g in range(groups):
        sl = slice(g * group, min(k, (g + 1) * group))
        acc[:, :, g] = _exact_int_matmul(xq[:, sl], sg[:, sl])
    return acc


def w1a4_linear(x: np.ndarray, packed: np.ndarray, alpha: np.ndarray,
                b: np.ndarray | None = None, group: int = 32) -> np.ndarray:
    """1-bit weights with 4-bit activations (see the module docstring for the exact order)."""
    xq, e = quantize_a4(x, group)
    acc = w1a4_accumulate(xq, unpack_bits(packed, x.shape[-1]), group)
    sx = np.ldexp(F32(1), e).astype(F32)  # [T, G]
    total = np.zeros(acc.shape[:2], F32)
    for g in range(acc.shape[2]):
        total = (total + acc[:, :, g].astype(F32) * sx[:, g:g + 1]).astype(F32)
    return _add_bias(total * _f32(alpha), b)


# The int8 KV cache ----------------------------------------------------------------------------

def kv_quantize_rows(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows `[..., hd]` -> `(q int8 [..., hd], s f32 [...])`, one scale per row."""
    rows = _f32(rows)
    s = _nonzero(np.max(np.abs(rows), axis=-1) / F32(I8_MAX))
    return _round_clip(rows / s[..., None], -I8_MAX, I8_MAX).astype(np.int8), s


def kv_dequantize_rows(qv: np.ndarray, s: np.ndarray) -> np.ndarray:
    return np.asarray(qv).astype(F32) * _f32(s)[..., None]


def kv_write_int8(cache: np.ndarray, scales: np.ndarray, new: np.ndarray, pos: int, layer: int,
                  ring: bool) -> tuple[np.ndarray, np.ndarray]:
    """Copies of `cache` / `scales` with the rows of `new` (positions pos, pos + 1, ...)
    quantized into layer `layer`, slot `p` (or `p % C` with `ring`)."""
    rows, slots = kv_rows("quant.kv_write", cache.shape, _f32(new), pos, layer, ring)
    qv, s = kv_quantize_rows(rows)
    out, out_s = cache.copy(), scales.copy()
    out[layer][:, slots] = qv
    out_s[layer][:, slots] = s
    return out, out_s


def cached_attention_int8(qry: np.ndarray, kcache: np.ndarray, kscales: np.ndarray,
                          vcache: np.ndarray, vscales: np.ndarray, end: int, layer: int,
                          heads: int, kv_heads: int, head_dim: int, scale: float,
                          ring: bool, integer_softmax: bool = False) -> np.ndarray:
    """Queries at positions end-T..end-1 over the dequantized cached rows
    max(0, end-C)..end-1, then float32 attention exactly as transformer.cached_attention
    (with `integer_softmax`: its softmax is `irtool.numerics.intops.int_softmax`)."""
    slots = held_slots("quant.cached_attention", layer, end, qry.shape[0], kcache.shape[2],
                       ring)
    s = slots.size
    k = kv_dequantize_rows(kcache[layer][:, slots], kscales[layer][:, slots])
    v = kv_dequantize_rows(vcache[layer][:, slots], vscales[layer][:, slots])
    k = k.transpose(1, 0, 2).reshape(s, kv_heads * head_dim)
    v = v.transpose(1, 0, 2).reshape(s, kv_heads * head_dim)
    return attention(_f32(qry), k, v, heads, kv_heads, head_dim, scale, causal=True,
                     softmax_fn=int_softmax if integer_softmax else None)
