/*
 * irt_intops.c - integer RMSNorm, SiLU and softmax (irt_intops.h); the contract and its
 * constants are irtool/numerics/intops.py (I-BERT's exp polynomial, Kim et al. 2021).
 *
 * Per element the work is integer: the exp is two multiplies, a division by the constant
 * q_ln2 and a shift; the sigmoid one 32-bit division; the norm one int64 multiply and
 * shift.  The integer square root and the 64-bit divisions (libgcc's __divdi3/__udivdi3 on
 * RV32) run once per row.
 */
#include "irt_internal.h" /* first: it marks this file as the runtime's own */
#include "irt_intops.h"

#include <stddef.h>

#define IRT_EXP_FRAC 10
#define IRT_EXP_INPUT_MAX 1048576.0f /* 2^20 */
#define IRT_Q_LN2 710                /* round(ln2 * 2^10) */
#define IRT_Q_B 1385                 /* round(1.353 * 2^10) */
#define IRT_Q_C 1006165              /* round(0.344 / 0.3585 * 2^20) */
#define IRT_Q_ONE 2924898            /* round(2^20 / 0.3585): 1.0 on the exp output grid */
#define IRT_EXP_MAX_SHIFT 31
#define IRT_PROB_FRAC 16
#define IRT_SIGMOID_FRAC 15
#define IRT_SIGMOID_DROP 6
#define IRT_RMS_FRAC 12
#define IRT_RMS_INPUT_MAX 4194304.0f /* 2^22 */
#define IRT_RMS_INV_SHIFT 40
#define IRT_RMS_OUT_FRAC 15

/* exp(qx * 2^-10) for -2^20 <= qx <= 0 on the grid 0.3585 * 2^-20: qx = -z q_ln2 + p,
 * p in (-q_ln2, 0], L = (p + q_b)^2 + q_c < 2^22, result L >> min(z, 31). */
static inline int32_t irt__i_exp(int32_t qx)
{
    const int32_t z = -qx / IRT_Q_LN2;
    const int32_t p = qx + z * IRT_Q_LN2 + IRT_Q_B;
    const int32_t poly = p * p + IRT_Q_C;
    return poly >> (z < IRT_EXP_MAX_SHIFT ? z : IRT_EXP_MAX_SHIFT);
}

void irt_int_silu_f32(const float *x, float *y, int n)
{
    int i;
    for (i = 0; i < n; ++i) {
        const int32_t q = irt__round_clip(x[i] * (float)(1 << IRT_EXP_FRAC),
                                          -IRT_EXP_INPUT_MAX, IRT_EXP_INPUT_MAX);
        const int32_t e = irt__i_exp(q < 0 ? q : -q);
        const uint32_t num = (uint32_t)(q >= 0 ? IRT_Q_ONE : e) >> IRT_SIGMOID_DROP;
        const uint32_t den = (uint32_t)(IRT_Q_ONE + e) >> IRT_SIGMOID_DROP;
        const int32_t sig = (int32_t)((num << IRT_SIGMOID_FRAC) / den);
        const int32_t v = (int32_t)(((int64_t)q * sig) >> IRT_SIGMOID_FRAC);
        y[i] = (float)v * (1.0f / (float)(1 << IRT_EXP_FRAC));
    }
}

/* floor(sqrt(v)), bit by bit. */
static uint32_t irt__isqrt64(uint64_t v)
{
    uint64_t r = 0, bit = (uint64_t)1 << 62;
    while (bit > v)
        bit >>= 2;
    while (bit != 0) {
        if (v >= r + bit) {
            v -= r + bit;
            r = (r >> 1) + bit;
        } else {
            r >>= 1;
        }
        bit >>= 2;
    }
    return (uint32_t)r;
}

void irt_int_rms_norm_f32(const float *x, const float *g, float *y, int T, int D, float eps)
{
    /* eps on the squared grid 2^-24, at least 1 */
    int32_t eps_q = irt__round_clip(eps * 16777216.0f, 0.0f, IRT_RMS_INPUT_MAX);
    int t, i;
    if (eps_q < 1)
        eps_q = 1;
    for (t = 0; t < T; ++t) {
        const float *xt = x + (size_t)t * D;
        float *yt = y + (size_t)t * D;
        uint64_t sumsq = 0;
        int64_t inv;
        for (i = 0; i < D; ++i) {
            const int64_t q = irt__round_clip(xt[i] * (float)(1 << IRT_RMS_FRAC),
                                              -IRT_RMS_INPUT_MAX, IRT_RMS_INPUT_MAX);
            sumsq += (uint64_t)(q * q);
        }
        inv = ((int64_t)1 << IRT_RMS_INV_SHIFT) /
              (int64_t)irt__isqrt64(sumsq / (uint64_t)D + (uint64_t)eps_q);
        for (i = 0; i < D; ++i) {
            const int64_t q = irt__round_clip(xt[i] * (float)(1 << IRT_RMS_FRAC),
                                              -IRT_RMS_INPUT_MAX, IRT_RMS_INPUT_MAX);
            const int32_t v = (int32_t)((q * inv) >> (IRT_RMS_INV_SHIFT - IRT_RMS_OUT_FRAC));
            yt[i] = ((float)v * (1.0f / (float)(1 << IRT_RMS_OUT_FRAC))) * g[i];
        }
    }
}

void irt_int_softmax_f32(float *s, int n, float scale)
{
    float m = scale * s[0];
    int64_t sum = 0, factor;
    int j;
    for (j = 1; j < n; ++j) {
        const float v = scale * s[j];
        if (v > m)
            m = v;
    }
    for (j = 0; j < n; ++j) {
        const float d = scale * s[j] - m;
        const int32_t e = irt__i_exp(irt__round_clip(d * (float)(1 << IRT_EXP_FRAC),
                                                     -IRT_EXP_INPUT_MAX, IRT_EXP_INPUT_MAX));
        s[j] = (float)e; /* exact: e < 2^22 */
        sum += e;
    }
    factor = ((int64_t)1 << (IRT_PROB_FRAC + 31)) / (sum > 0 ? sum : 1);
    for (j = 0; j < n; ++j) {
        /* e and p (<= 2^16) convert through int32: no float <-> int64 helper calls */
        const int32_t p = (int32_t)(((int64_t)(int32_t)s[j] * factor) >> 31);
        s[j] = (float)p * (1.0f / (float)(1 << IRT_PROB_FRAC));
    }
}

/* The softmax of irt__cached_attention_i8_with: normalised weights, so the sum is 1. */
static float irt__int_softmax_weights(float *s, int n, float scale)
{
    irt_int_softmax_f32(s, n, scale);
    return 1.0f;
}

void irt_cached_attention_i8_isoftmax(const float *restrict q, const int8_t *restrict kcache,
                                      const float *restrict kscales,
                                      const int8_t *restrict vcache,
                                      const float *restrict vscales, float *restrict out,
                                      float *restrict scratch, int layer, int heads,
                                      int kv_heads, int head_dim, int capacity, int T, int end,
                                      int ring, float scale)
{
    irt__cached_attention_i8_with(q, kcache, kscales, vcache, vscales, out, scratch, layer,
                                  heads, kv_heads, head_dim, capacity, T, end, ring, scale,
                                  irt__int_softmax_weights);
}
