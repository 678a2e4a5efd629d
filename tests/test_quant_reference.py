"""The numpy reference of the quantization contract, against an independent implementation.

Everything expected here is recomputed from the contract's text with plain Python loops over
numpy float32 scalars (no function of irtool.numerics.quant is used to build an expected
value). Integer parts (quantized weights, packing, int32 accumulators, w8a8 outputs, the a4
path) must agree bit for bit; float-accumulated outputs within a tolerance.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from irtool.numerics import quant as ref

F32 = np.float32
RNG = np.random.default_rng(1234)


def rint(v) -> int:
    """Round half to even of a float32 scalar, as an exact Python int (Python's own round,
    independent of numpy's rint that the reference uses)."""
    return round(float(F32(v)))


def clip(v: int, lo: int, hi: int) -> int:
    return max(lo, min(hi, v))


def weights(n: int, k: int, zero_row: bool = True) -> np.ndarray:
    w = RNG.normal(0, 0.1, size=(n, k)).astype(F32)
    w[1, 3] = 0.35  # a clear maximum
    if zero_row:
        w[2] = 0.0  # scale 0 -> 1.0
    w[0, 0] = -w[0, 1]  # ties in |w|
    return w


def bits_equal(a: np.ndarray, b: np.ndarray) -> bool:
    a, b = np.asarray(a, F32), np.asarray(b, F32)
    return a.shape == b.shape and np.array_equal(a.view(np.uint32), b.view(np.uint32))


# --- w8 --------------------------------------------------------------------------------------

def indep_w8(w: np.ndarray, per_tensor: bool = False):
    n, k = w.shape
    if per_tensor:
        amax = max(abs(F32(x)) for x in w.ravel())
        s_all = F32(amax) / F32(127)
        scales = [F32(1.0) if s_all == 0 else s_all] * n
    else:
        scales = []
        for row in w:
            s = F32(max(abs(F32(x)) for x in row)) / F32(127)
            scales.append(F32(1.0) if s == 0 else s)
    q = np.zeros((n, k), np.int64)
    for i in range(n):
        for j in range(k):
            q[i, j] = clip(rint(F32(w[i, j]) / scales[i]), -127, 127)
    return q, np.array(scales[:1] if per_tensor else scales, F32)


@pytest.mark.parametrize("per_tensor", [False, True])
def test_w8_weights_exact(per_tensor):
    w = weights(13, 37)
    q, s = ref.quantize_weights_w8(w, per_tensor)
    eq, es = indep_w8(w, per_tensor)
    assert q.dtype == np.int8 and q.shape == (13, 37)
    assert np.array_equal(q.astype(np.int64), eq)
    assert bits_equal(s, es)
    assert s.shape == ((1,) if per_tensor else (13,))
    assert np.abs(q).max() == 127 and s[2 if not per_tensor else 0] > 0


def test_w8_linear_matches_dequantized_weights():
    w = weights(11, 40)
    x = RNG.normal(size=(6, 40)).astype(F32)
    b = RNG.normal(size=11).astype(F32)
    q, s = ref.quantize_weights_w8(w)
    y = ref.w8_linear(x, q, s, b)
    deq = q.astype(np.float64) * s.astype(np.float64)[:, None]
    assert y.dtype == F32
    np.testing.assert_allclose(y, x.astype(np.float64) @ deq.T + b, rtol=1e-5, atol=1e-5)


# --- w8a8 ------------------------------------------------------------------------------------

def indep_act_params(lo: float, hi: float):
    lo, hi = min(F32(lo), F32(0)), max(F32(hi), F32(0))
    sx = F32(F32(hi) - F32(lo)) / F32(255)
    if sx == 0:
        sx = F32(1.0)
    zx = clip(rint(F32(-128) - F32(lo) / sx), -128, 127)
    return sx, zx


@pytest.mark.parametrize("lo,hi", [(-3.7, 5.2), (0.5, 4.0), (-2.0, -0.25), (0.0, 0.0),
                                   (-1e-3, 1e3)])
def test_activation_params_exact(lo, hi):
    sx, zx = ref.activation_params(lo, hi)
    esx, ezx = indep_act_params(lo, hi)
    assert bits_equal(sx, esx) and int(zx) == ezx
    assert -128 <= int(zx) <= 127


def indep_quantize_act(x: np.ndarray, sx, zx: int) -> np.ndarray:
    out = np.zeros(x.shape, np.int64)
    for idx in np.ndindex(x.shape):
        out[idx] = clip(rint(F32(x[idx]) / F32(sx)) + zx, -128, 127)
    return out


def test_w8a8_bit_exact():
    t, k, n = 5, 37, 11
    w = weights(n, k)
    x = RNG.normal(0, 2.0, size=(t, k)).astype(F32)
    x[0, 0], x[1, 1] = 40.0, -40.0  # outside the calibrated range: clipped
    b = RNG.normal(size=n).astype(F32)
    sx, zx = ref.activation_params(-4.0, 6.0)
    xq = ref.quantize_activations(x, sx, zx)
    exq = indep_quantize_act(x, sx, int(zx))
    assert xq.dtype == np.int8 and np.array_equal(xq.astype(np.int64), exq)
    assert xq[0, 0] == 127 and xq[1, 1] == -128
    q, s = ref.quantize_weights_w8(w)
    m = ref.w8a8_multiplier(sx, s)
    assert bits_equal(m, [F32(sx) * F32(v) for v in s])
    acc = ref.w8a8_accumulate(xq, zx, q)
    eacc = np.zeros((t, n), np.int64)
    for i in range(t):
        for j in range(n):
            eacc[i, j] = sum((int(exq[i, kk]) - int(zx)) * int(q[j, kk]) for kk in range(k))
    assert acc.dtype == np.int32 and np.array_equal(acc.astype(np.int64), eacc)
    y = ref.w8a8_linear(xq, zx, q, m, b)
    ey = np.zeros((t, n), F32)
    for i in range(t):
        for j in range(n):
            ey[i, j] = F32(F32(eacc[i, j]) * m[j]) + b[j]
    assert bits_equal(y, ey)
    y0 = ref.w8a8_linear(xq, zx, q, m)
    assert bits_equal(y0, [[F32(eacc[i, j]) * m[j] for j in range(n)] for i in range(t)])


def test_w8a8_large_accumulators_are_exact():
    """Accumulators near 2^24 and beyond, where a float32 accumulation would round."""
    k = 2048
    xq = np.full((2, k), 127, np.int8)
    xq[1] = -128
    w = np.full((3, k), 127, np.int8)
    w[1] = -127
    acc = ref.w8a8_accumulate(xq, -128, w)
    assert acc.tolist() == [[255 * 127 * k, -255 * 127 * k, 255 * 127 * k], [0, 0, 0]]


# --- w4g32 -----------------------------------------------------------------------------------

def indep_w4(w: np.ndarray, group: int):
    n, k = w.shape
    groups = -(-k // group)
    s = np.zeros((n, groups), F32)
    q = np.zeros((n, k), np.int64)
    for i in range(n):
        for g in range(groups):
            cols = range(g * group, min(k, (g + 1) * group))
            sc = F32(max(abs(F32(w[i, c])) for c in cols)) / F32(7)
            s[i, g] = F32(1.0) if sc == 0 else sc
            for c in cols:
                q[i, c] = clip(rint(F32(w[i, c]) / s[i, g]), -7, 7)
    return q, s


def indep_pack_int4(q: np.ndarray) -> np.ndarray:
    n, k = q.shape
    out = np.zeros((n, (k + 1) // 2), np.uint8)
    for i in range(n):
        for j in range((k + 1) // 2):
            lo = int(q[i, 2 * j]) & 0xF
            hi = int(q[i, 2 * j + 1]) & 0xF if 2 * j + 1 < k else 0
            out[i, j] = lo | (hi << 4)
    return out


@pytest.mark.parametrize("k", [64, 70, 37])  # whole groups, a short last group, odd K
def test_w4_weights_and_packing_exact(k):
    w = weights(9, k)
    q, s = ref.quantize_weights_w4(w, 32)
    eq, es = indep_w4(w, 32)
    assert np.array_equal(q.astype(np.int64), eq) and bits_equal(s, es)
    packed = ref.pack_int4(q)
    assert packed.dtype == np.uint8 and packed.shape == (9, (k + 1) // 2)
    assert np.array_equal(packed, indep_pack_int4(eq))
    assert np.array_equal(ref.unpack_int4(packed, k), q)
    if k % 2:
        assert np.all(packed[:, -1] >> 4 == 0)  # the padding nibble is 0


def test_pack_int4_full_range():
    q = np.array([[-8, 7, -1, 0, 1, -7, 5]], np.int8)
    packed = ref.pack_int4(q)
    assert packed.tolist() == [[0x78, 0x0F, 0x91, 0x05]]
    assert ref.unpack_int4(packed, 7).tolist() == q.tolist()
    with pytest.raises(ValueError):
        ref.pack_int4(np.array([[8]]))


def test_w4_linear_matches_dequantized_weights():
    w = weights(10, 70)
    x = RNG.normal(size=(4, 70)).astype(F32)
    q, s = ref.quantize_weights_w4(w, 32)
    y = ref.w4_linear(x, ref.pack_int4(q), s, None, 32)
    deq = q.astype(np.float64) * np.repeat(s.astype(np.float64), 32, axis=1)[:, :70]
    np.testing.assert_allclose(y, x.astype(np.float64) @ deq.T, rtol=1e-5, atol=1e-5)


# --- w1 and a4 -------------------------------------------------------------------------------

def indep_pack_bits(bits: np.ndarray) -> np.ndarray:
    n, k = bits.shape
    out = np.zeros((n, (k + 7) // 8), np.uint8)
    for i in range(n):
        for c in range(k):
            if bits[i, c]:
                out[i, c // 8] |= 1 << (c % 8)
    return out


@pytest.mark.parametrize("k", [64, 13])
def test_w1_weights_and_packing_exact(k):
    w = weights(7, k)
    w[3, 5] = -0.0  # >= 0: +1
    bits, alpha = ref.quantize_weights_w1(w)
    ebits = np.array([[1 if F32(v) >= 0 else 0 for v in row] for row in w], np.uint8)
    assert np.array_equal(bits, ebits) and bits[3, 5] == 1
    ealpha = [F32(sum(abs(float(v)) for v in row) / k) for row in w]
    np.testing.assert_allclose(alpha, ealpha, rtol=1e-6)
    packed = ref.pack_bits(bits)
    assert packed.shape == (7, (k + 7) // 8) and np.array_equal(packed, indep_pack_bits(ebits))
    assert np.array_equal(ref.unpack_bits(packed, k), bits)


def test_w1_linear_float_activations():
    w = weights(6, 20)
    x = RNG.normal(size=(3, 20)).astype(F32)
    bits, alpha = ref.quantize_weights_w1(w)
    y = ref.w1_linear(x, ref.pack_bits(bits), alpha)
    sg = np.where(w >= 0, 1.0, -1.0)
    np.testing.assert_allclose(y, (x.astype(np.float64) @ sg.T) * alpha, rtol=1e-5, atol=1e-5)


def indep_a4(x: np.ndarray, group: int):
    t, k = x.shape
    groups = -(-k // group)
    e = np.zeros((t, groups), np.int64)
    xq = np.zeros((t, k), np.int64)
    for i in range(t):
        for g in range(groups):
            cols = range(g * group, min(k, (g + 1) * group))
            m = F32(max(abs(F32(x[i, c])) for c in cols))
            e[i, g] = 0 if m == 0 else math.ceil(math.log2(float(m / F32(7))))
            sx = F32(2.0 ** e[i, g])
            for c in cols:
                xq[i, c] = clip(rint(F32(x[i, c]) / sx), -8, 7)
    return xq, e


def test_a4_quantization_exact():
    x = RNG.normal(0, 3.0, size=(6, 70)).astype(F32)
    x[1, :32] = 0.0  # an all-zero group: e = 0
    x[2, 0] = 7.0 * 4  # m / 7 is exactly a power of two: e = 2, not 3
    x[2, 1:32] = 1.0
    x[3, 32] = 7.0 * 0.5 * (1 + 2.0 ** -20)  # just above a power of two: rounds up
    x[3, 33:64] = 0.1
    xq, e = ref.quantize_a4(x, 32)
    exq, ee = indep_a4(x, 32)
    assert np.array_equal(e.astype(np.int64), ee) and np.array_equal(xq.astype(np.int64), exq)
    assert e[1, 0] == 0 and e[2, 0] == 2 and e[3, 1] == 0
    assert xq.min() >= -8 and xq.max() <= 7


def test_w1a4_bit_exact():
    t, k, n = 4, 70, 9
    w = weights(n, k)
    x = RNG.normal(0, 2.0, size=(t, k)).astype(F32)
    b = RNG.normal(size=n).astype(F32)
    bits, alpha = ref.quantize_weights_w1(w)
    packed = ref.pack_bits(bits)
    exq, ee = indep_a4(x, 32)
    acc = ref.w1a4_accumulate(ref.quantize_a4(x, 32)[0], bits, 32)
    groups = ee.shape[1]
    eacc = np.zeros((t, n, groups), np.int64)
    for i in range(t):
        for j in range(n):
            for g in range(groups):
                eacc[i, j, g] = sum(int(exq[i, c]) * (1 if bits[j, c] else -1)
                                    for c in range(g * 32, min(k, (g + 1) * 32)))
    assert acc.dtype == np.int32 and np.array_equal(acc.astype(np.int64), eacc)
    y = ref.w1a4_linear(x, packed, alpha, b, 32)
    ey = np.zeros((t, n), F32)
    for i in range(t):
        for j in range(n):
            total = F32(0.0)
            for g in range(groups):
                total = F32(total + F32(F32(eacc[i, j, g]) * F32(2.0 ** ee[i, g])))
            ey[i, j] = F32(alpha[j] * total) + b[j]
    assert bits_equal(y, ey)


# --- the int8 KV cache -------------------------------------------------------------------------

def test_kv_rows_exact():
    rows = RNG.normal(size=(3, 5, 8)).astype(F32)
    rows[1, 2] = 0.0
    q, s = ref.kv_quantize_rows(rows)
    for idx in np.ndindex(rows.shape[:2]):
        es = F32(max(abs(F32(v)) for v in rows[idx])) / F32(127)
        es = F32(1.0) if es == 0 else es
        assert bits_equal(s[idx], es)
        assert [int(v) for v in q[idx]] == [clip(rint(F32(v) / es), -127, 127)
                                            for v in rows[idx]]
    assert bits_equal(ref.kv_dequantize_rows(q, s), q.astype(F32) * s[..., None])


@pytest.mark.parametrize("ring", [False, True])
def test_kv_write_int8_slots(ring):
    layers, kvh, cap, hd = 2, 2, 4, 8
    cache = np.zeros((layers, kvh, cap, hd), np.int8)
    scales = np.zeros((layers, kvh, cap), F32)
    new = RNG.normal(size=(3, kvh * hd)).astype(F32)
    pos = 2 if ring else 1
    out, out_s = ref.kv_write_int8(cache, scales, new, pos, 1, ring)
    assert not cache.any() and not scales.any()  # value semantics
    assert not out[0].any()
    for t in range(3):
        slot = (pos + t) % cap
        for h in range(kvh):
            row = new[t, h * hd:(h + 1) * hd]
            qv, sv = ref.kv_quantize_rows(row)
            assert np.array_equal(out[1, h, slot], qv) and bits_equal(out_s[1, h, slot], sv)


def test_kv_write_overflow_is_reported():
    from irtool.errors import IrtoolError

    cache = np.zeros((1, 1, 4, 2), np.int8)
    with pytest.raises(IrtoolError, match="exceed the KV cache capacity of 4"):
        ref.kv_write_int8(cache, np.zeros((1, 1, 4), F32), np.ones((2, 2), F32), 3, 0, False)


def test_cached_attention_reads_dequantized_rows():
    from irtool.numerics.transformer import cached_attention

    layers, kvh, cap, hd, heads = 2, 2, 8, 4, 4
    k = RNG.normal(size=(5, kvh * hd)).astype(F32)
    v = RNG.normal(size=(5, kvh * hd)).astype(F32)
    kc, ks = ref.kv_write_int8(np.zeros((layers, kvh, cap, hd), np.int8),
                               np.zeros((layers, kvh, cap), F32), k, 0, 1, False)
    vc, vs = ref.kv_write_int8(np.zeros((layers, kvh, cap, hd), np.int8),
                               np.zeros((layers, kvh, cap), F32), v, 0, 1, False)
    q = RNG.normal(size=(2, heads * hd)).astype(F32)
    got = ref.cached_attention_int8(q, kc, ks, vc, vs, 5, 1, heads, kvh, hd, 0.5, False)
    kf = kc.astype(F32) * ks[..., None]
    vf = vc.astype(F32) * vs[..., None]
    want = cached_attention(q, kf, vf, 5, 1, heads, kvh, hd, 0.5, False)
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
    exact = cached_attention(q, np.zeros_like(kf), np.zeros_like(vf), 5, 1, heads, kvh, hd,
                             0.5, False)
    assert not np.allclose(got, exact)


# --- generic conversions ---------------------------------------------------------------------

def test_quantize_dequantize_requantize_granularities():
    x = RNG.normal(size=(3, 10)).astype(F32)
    # per channel (axis 0), symmetric narrow int8
    s = np.array([0.01, 0.02, 0.05], F32)
    q = ref.quantize(x, s, None, -127, 127, None, 0)
    assert q.tolist() == [[clip(rint(F32(x[i, j]) / s[i]), -127, 127) for j in range(10)]
                          for i in range(3)]
    # per group of 4 along the last axis (3 groups, the last one short), with zero points
    sg = np.abs(RNG.normal(size=(3, 3))).astype(F32) / 50
    zg = np.array([[1, -2, 3], [0, 0, 5], [-7, 2, 1]], np.int32)
    qg = ref.quantize(x, sg, zg, 0, 255, 4)
    want = [[clip(rint(F32(x[i, j]) / sg[i, j // 4]) + int(zg[i, j // 4]), 0, 255)
             for j in range(10)] for i in range(3)]
    assert qg.tolist() == want
    d = ref.dequantize(qg, sg, zg, 4)
    assert bits_equal(d, [[F32(want[i][j] - int(zg[i, j // 4])) * sg[i, j // 4]
                           for j in range(10)] for i in range(3)])
    # requantize int32 accumulators per output channel (axis 1)
    acc = RNG.integers(-10**6, 10**6, size=(2, 4)).astype(np.int32)
    m = np.array([1e-4, 2e-4, 3e-3, 5e-5], F32)
    r = ref.requantize(acc, m, np.array([3], np.int32), -128, 127, None, 1)
    assert r.tolist() == [[clip(rint(F32(acc[i, j]) * m[j]) + 3, -128, 127) for j in range(4)]
                          for i in range(2)]


def test_dynamic_quantize_is_the_kv_row_quantization():
    x = RNG.normal(size=(5, 16)).astype(F32)
    q, s = ref.dynamic_quantize(x, 8)
    kq, ks = ref.kv_quantize_rows(x.reshape(5, 2, 8))
    assert np.array_equal(q.reshape(5, 2, 8), kq) and bits_equal(s, ks)


# --- ties: exact .5 after scaling, at every rounding site ----------------------------------------
# Scales here are powers of two, so v / s is exact and lands on k + 0.5. Half to even gives
# TIE_EVEN; half up (floor(v + 0.5)) or half away from zero (C's roundf) differ on most of them.

TIE_HALVES = np.array([0.5, 1.5, 2.5, 3.5, -0.5, -1.5, -2.5, -3.5, 6.5, -6.5], F32)
TIE_EVEN = [0, 2, 2, 4, 0, -2, -2, -4, 6, -6]


def test_the_ties_tell_roundings_apart():
    """The expected values, independently of any rounding function, and that half up and half
    away from zero would give other integers on them."""
    assert [rint(v) for v in TIE_HALVES] == TIE_EVEN
    assert [math.floor(v + 0.5) for v in TIE_HALVES.tolist()] != TIE_EVEN
    assert [int(math.copysign(math.floor(abs(v) + 0.5), v)) for v in TIE_HALVES.tolist()
            ] != TIE_EVEN


def tie_row(k: int, scale: float, qmax: int) -> np.ndarray:
    """A row of `k` values whose absmax is qmax * scale (so the absmax scale is `scale`),
    then the ties (k+.5) * scale, then filler."""
    row = np.full(k, F32(0.3 * scale), F32)
    row[0] = F32(qmax * scale)
    row[1:1 + len(TIE_HALVES)] = TIE_HALVES * F32(scale)
    return row


def test_w8_weight_ties():
    w = np.stack([tie_row(16, 0.25, 127), tie_row(16, 2.0 ** -6, 127)])
    q, s = ref.quantize_weights_w8(w)
    assert s.tolist() == [0.25, 2.0 ** -6]
    assert q[:, 1:11].tolist() == [TIE_EVEN, TIE_EVEN]
    assert np.array_equal(q.astype(np.int64), indep_w8(w)[0])
    qt, st = ref.quantize_weights_w8(w[:1], per_tensor=True)
    assert st.tolist() == [0.25] and qt[0, 1:11].tolist() == TIE_EVEN


def test_activation_zero_point_tie():
    """sx = (26.8125 + 5.0625) / 255 = 0.125 exactly, -128 - lo / sx = -87.5: zx = -88."""
    sx, zx = ref.activation_params(-5.0625, 26.8125)
    assert float(sx) == 0.125 and int(zx) == -88
    assert (sx, int(zx)) == indep_act_params(-5.0625, 26.8125)


def test_activation_quantization_ties():
    sx, zx = ref.activation_params(-5.0625, 26.8125)
    x = np.stack([TIE_HALVES * F32(0.125), (TIE_HALVES + F32(100)) * F32(0.125)])
    xq = ref.quantize_activations(x, sx, zx)
    assert xq[0].tolist() == [v - 88 for v in TIE_EVEN]
    assert xq[1].tolist() == [min(127, v + 100 - 88) for v in TIE_EVEN]
    assert np.array_equal(xq.astype(np.int64), indep_quantize_act(x, sx, int(zx)))


def test_w8a8_linear_with_tied_activations_is_bit_exact():
    """The whole w8a8 path on tied inputs: activations, weights and the float epilogue."""
    sx, zx = ref.activation_params(-5.0625, 26.8125)
    x = np.stack([np.append(TIE_HALVES, [3.0, -1.0]), np.append(TIE_HALVES[::-1], [0, 7.5])]
                 ).astype(F32) * F32(0.125)
    w = np.stack([tie_row(12, 0.25, 127), tie_row(12, 0.5, 127)[::-1]]).astype(F32)
    q, s = ref.quantize_weights_w8(w)
    xq = ref.quantize_activations(x, sx, zx)
    y = ref.w8a8_linear(xq, zx, q, ref.w8a8_multiplier(sx, s))
    exq, (eq, es) = indep_quantize_act(x, sx, int(zx)), indep_w8(w)
    ey = [[F32(F32(sum((int(exq[i, c]) - int(zx)) * int(eq[j, c]) for c in range(12)))
               * F32(F32(sx) * es[j])) for j in range(2)] for i in range(2)]
    assert bits_equal(y, ey)


def test_quantize_and_requantize_ties():
    x = np.stack([TIE_HALVES * F32(0.25), TIE_HALVES * F32(4.0)])
    q = ref.quantize(x, np.array([0.25, 4.0], F32), None, -127, 127, None, 0)
    assert q.tolist() == [TIE_EVEN, TIE_EVEN]
    qz = ref.quantize(x, np.array([0.25], F32), np.array([3], np.int32), 0, 255)
    assert qz[0].tolist() == [max(0, v + 3) for v in TIE_EVEN]
    acc = np.array([[1, 3, 5, 7, -1, -3, -5, -7, 13, -13]], np.int32)  # * 0.5: the ties
    r = ref.requantize(acc, np.array([0.5], F32), np.array([0], np.int32), -128, 127)
    assert r.tolist() == [TIE_EVEN]
    r = ref.requantize(acc * 2, np.array([0.25], F32), np.array([-5], np.int32), -128, 127,
                       None, 1)
    assert r.tolist() == [[v - 5 for v in TIE_EVEN]]


def test_w4_weight_ties():
    """absmax 7 * 0.25 = 1.75 in each group of 32: s = 0.25, (k + .5) * 0.25 are ties; the
    +-6.5 ties round to +-6 (half up would give 7 and -6)."""
    row = np.concatenate([tie_row(32, 0.25, 7), tie_row(32, 2.0 ** -4, 7)])
    q, s = ref.quantize_weights_w4(row[None], 32)
    assert s.tolist() == [[0.25, 2.0 ** -4]]
    assert q[0, 1:11].tolist() == TIE_EVEN and q[0, 33:43].tolist() == TIE_EVEN
    assert np.array_equal(q.astype(np.int64), indep_w4(row[None], 32)[0])


def a4_tie_rows() -> np.ndarray:
    """Groups of 32 with absmax 3.5 (3.5 / 7 = 2^-1: e = -1, sx = 0.5) and ties (k+.5) * 0.5;
    a second group with absmax 14 (e = 1, sx = 2). -8 is reachable: -7.5 * sx -> -8."""
    g1 = np.full(32, F32(0.1), F32)
    g1[0] = F32(3.5)
    g1[1:11] = TIE_HALVES * F32(0.5)
    g2 = np.full(32, F32(0.3), F32)
    g2[0] = F32(-14.0)
    g2[1:11] = TIE_HALVES * F32(2.0)
    return np.stack([np.concatenate([g1, g2]), np.concatenate([g2, g1])])


def test_a4_activation_ties():
    x = a4_tie_rows()
    xq, e = ref.quantize_a4(x, 32)
    assert e.tolist() == [[-1, 1], [1, -1]]
    assert xq[0, 1:11].tolist() == [max(-8, min(7, v)) for v in TIE_EVEN]
    assert xq[0, 33:43].tolist() == [max(-8, min(7, v)) for v in TIE_EVEN]
    exq, ee = indep_a4(x, 32)
    assert np.array_equal(xq.astype(np.int64), exq) and np.array_equal(e, ee)


def test_w1a4_linear_with_tied_activations_is_bit_exact():
    """The 1-bit path: sign weights, a4 activations with ties, exact int accumulators, float
    epilogue per group, against the loops here."""
    x = a4_tie_rows()
    w = weights(5, 64)
    bits, alpha = ref.quantize_weights_w1(w)
    y = ref.w1a4_linear(x, ref.pack_bits(bits), alpha, None, 32)
    exq, ee = indep_a4(x, 32)
    ey = np.zeros((2, 5), F32)
    for i in range(2):
        for j in range(5):
            total = F32(0.0)
            for g in range(2):
                acc = sum(int(exq[i, c]) * (1 if bits[j, c] else -1)
                          for c in range(g * 32, (g + 1) * 32))
                total = F32(total + F32(F32(acc) * F32(2.0 ** ee[i, g])))
            ey[i, j] = F32(alpha[j] * total)
    assert bits_equal(y, ey)


def test_kv_row_and_dynamic_quantization_ties():
    """absmax 127 * 0.5 = 63.5: s = 0.5 and (k + .5) * 0.5 are ties, in the KV cache rows and
    in dynamic_quantize (the same quantization)."""
    rows = np.stack([tie_row(16, 0.5, 127), tie_row(16, 2.0 ** -7, 127)])[None]
    q, s = ref.kv_quantize_rows(rows)
    assert s.tolist() == [[0.5, 2.0 ** -7]]
    assert q[0, :, 1:11].tolist() == [TIE_EVEN, TIE_EVEN]
    dq, ds = ref.dynamic_quantize(rows.reshape(2, 16), 16)
    assert dq[:, 1:11].tolist() == [TIE_EVEN, TIE_EVEN] and ds.ravel().tolist() == [0.5, 2.0 ** -7]
    out, out_s = ref.kv_write_int8(np.zeros((1, 2, 4, 16), np.int8), np.zeros((1, 2, 4), F32),
                                   rows.reshape(1, 32), 1, 0, False)
    assert out[0, :, 1, 1:11].tolist() == [TIE_EVEN, TIE_EVEN]
