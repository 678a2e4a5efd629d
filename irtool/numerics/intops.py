"""Integer approximations of the non-linear ops (the `--integer-only` option): the contract.

The approximations follow I-BERT (S. Kim, A. Gholami, Z. Yao, M. W. Mahoney, K. Keutzer,
"I-BERT: Integer-only BERT Quantization", ICML 2021): exp by a second-order polynomial on
`(-ln2, 0]` and a shift by the number of `ln2` halvings, sigmoid and softmax from that exp, an
integer square root for the norm. The code is ours; the polynomial's coefficients are the
paper's (`a = 0.3585, b = 1.353, c = 0.344`: `exp(p) ~ a (p + b)^2 + c`).

Every value enters the integer domain on a fixed power-of-two grid (`x * 2^F` rounded half to
even, clipped), all per-element work is then integer (int64 where a product needs it), and a
result leaves it as `float32(integer) * 2^-F'` (exact); only the norm's gain is one float32
multiply per element at that exit. The C kernels (`runtime/irt_intops.c`) compute the same
integers bit for bit, so their outputs equal these functions exactly; the float scores fed to
the integer softmax come from the float dot products of the attention kernel (the usual
attention tolerance).
"""

from __future__ import annotations

import math

import numpy as np

F32 = np.float32

EXP_FRAC = 10
"""Fraction bits of an exp/sigmoid input: scores and SiLU inputs on the grid 2^-10."""
EXP_INPUT_MAX = 1 << 20
"""|input| on that grid is clipped to 2^20 (|x| <= 1024; exp(-1024) is 0 anyway)."""
EXP_A, EXP_B, EXP_C = 0.3585, 1.353, 0.344
"""I-BERT's polynomial: exp(p) ~ a (p + b)^2 + c for p in (-ln2, 0]."""
Q_LN2 = round(math.log(2) * (1 << EXP_FRAC))          # 710
Q_B = round(EXP_B * (1 << EXP_FRAC))                    # 1385
Q_C = round(EXP_C / EXP_A * (1 << (2 * EXP_FRAC)))      # 1006165: c / a on the squared grid
Q_ONE = round((1 << (2 * EXP_FRAC)) / EXP_A)            # 1.0 on the exp output grid a 2^-20
EXP_MAX_SHIFT = 31
PROB_FRAC = 16
"""Softmax probabilities are Q16 integers (1.0 = 65536)."""
SIGMOID_FRAC = 15
SIGMOID_DROP = 6
"""The sigmoid's numerator and denominator lose 6 bits before the 32-bit division."""
RMS_FRAC = 12
"""Fraction bits of an RMSNorm input (grid 2^-12), clipped to |q| <= 2^22 (|x| <= 1024)."""
RMS_INPUT_MAX = 1 << 22
RMS_MAX_D = 1 << 15
"""The sum of squares of a row (at most D * 2^44) stays in int64 for D <= 2^15."""
RMS_INV_SHIFT = 40
RMS_OUT_FRAC = 15


def to_grid(x: np.ndarray, frac: int, limit: int) -> np.ndarray:
    """`clip(round_half_even(float32(x) * 2^frac), -limit, limit)` as int64 (NaN -> -limit)."""
    v = np.asarray(x, F32) * F32(1 << frac)
    v = np.where(np.isnan(v), F32(-limit), v)
    return np.rint(np.clip(v, F32(-limit), F32(limit))).astype(np.int64)


def i_exp(qx: np.ndarray) -> np.ndarray:
    """exp of `qx * 2^-10` for `qx <= 0` (int64), on the output grid `a * 2^-20`.

    `qx = -z * q_ln2 + p` with `p` in `(-q_ln2, 0]`; `L = (p + q_b)^2 + q_c` is exp(p) on that
    grid, and `exp(qx) = L >> z` (z capped at 31: L < 2^22, so the result is 0 there)."""
    qx = np.asarray(qx, np.int64)
    z = (-qx) // Q_LN2
    p = qx + z * Q_LN2
    poly = (p + Q_B) * (p + Q_B) + Q_C
    return poly >> np.minimum(z, EXP_MAX_SHIFT)


def int_softmax(scores: np.ndarray) -> np.ndarray:
    """Softmax over the last axis of float32 scores (-inf entries are masked out), integer
    inside: `q = grid(s - max)`, `e = i_exp(q)`, `p = (e * floor(2^47 / sum e)) >> 31` (Q16),
    returned as `float32(p) * 2^-16`."""
    s = np.asarray(scores, F32)
    masked = np.isneginf(s)
    m = np.max(np.where(masked, F32(-np.inf), s), axis=-1, keepdims=True)
    m = np.where(np.isneginf(m), F32(0), m)
    d = np.where(masked, F32(0), (s - m).astype(F32))
    e = np.where(masked, 0, i_exp(to_grid(d, EXP_FRAC, EXP_INPUT_MAX)))
    total = np.maximum(e.sum(axis=-1, keepdims=True), 1)
    factor = (np.int64(1) << (PROB_FRAC + 31)) // total
    p = (e * factor) >> 31
    return (p.astype(F32) * F32(2.0 ** -PROB_FRAC)).astype(F32)


def int_silu(x: np.ndarray) -> np.ndarray:
    """SiLU `x * sigmoid(x)` with an integer sigmoid from `i_exp(-|q|)`:
    `sig = ((num >> 6) << 15) // ((one + e) >> 6)` (num = one for q >= 0, else e; Q15),
    `y = ((q * sig) >> 15) * 2^-10`."""
    qx = to_grid(x, EXP_FRAC, EXP_INPUT_MAX)
    e = i_exp(-np.abs(qx))
    num = np.where(qx >= 0, Q_ONE, e)
    sig = ((num >> SIGMOID_DROP) << SIGMOID_FRAC) // ((Q_ONE + e) >> SIGMOID_DROP)
    y = (qx * sig) >> SIGMOID_FRAC
    return (y.astype(F32) * F32(2.0 ** -EXP_FRAC)).astype(F32)


def isqrt(v: np.ndarray) -> np.ndarray:
    """floor(sqrt(v)) of non-negative int64 values below 2^62, exactly."""
    v = np.asarray(v, np.int64)
    r = np.floor(np.sqrt(v.astype(np.float64))).astype(np.int64)
    r = np.where(r * r > v, r - 1, r)
    r = np.where(r * r > v, r - 1, r)
    r = np.where((r + 1) * (r + 1) <= v, r + 1, r)
    return np.where((r + 1) * (r + 1) <= v, r + 1, r)


def rms_eps_q(eps: float) -> int:
    """eps on the squared input grid 2^-24, rounded half to even, clipped to [1, 2^22] (at
    least 1, so a zero row divides by 1)."""
    return int(min(max(1, round(float(F32(eps)) * (1 << (2 * RMS_FRAC)))), RMS_INPUT_MAX))


def int_rms_norm(x: np.ndarray, gamma: np.ndarray, eps: float) -> np.ndarray:
    """RMSNorm over the last axis with an integer square root:
    `q = grid(x)` (2^-12), `r = isqrt(sum(q^2) // D + eps_q)`, `y_q = (q * (2^40 // r)) >> 25`
    (Q15), `y = (float32(y_q) * 2^-15) * gamma` (the one float32 multiply)."""
    x = np.asarray(x, F32)
    d = x.shape[-1]
    qx = to_grid(x, RMS_FRAC, RMS_INPUT_MAX)
    mean = (qx * qx).sum(axis=-1, keepdims=True) // d
    r = isqrt(mean + rms_eps_q(eps))
    inv = (np.int64(1) << RMS_INV_SHIFT) // r
    yq = (qx * inv) >> (RMS_INV_SHIFT - RMS_OUT_FRAC)
    y = yq.astype(F32) * F32(2.0 ** -RMS_OUT_FRAC)
    return (y * np.asarray(gamma, F32)).astype(F32)
