/*
 * irt_quant.c - quantized kernels (see irt_quant.h for the exact semantics).
 *
 * Written, like irt_linear.c, for a single-issue in-order RV32 core with one FPU: every
 * stream is its own pointer bumped once per unrolled iteration, weight rows are read
 * sequentially, 4 rows per pass share each activation load.  Inner loops on rv32imafc at
 * -O2 (GCC 12), instructions per multiply-accumulate:
 *  - int8 x int8 (irt_matvec_i8_acc / irt_linear_w8a8), 4 rows x 2 columns: 10 lb, 2 sub
 *    of the zero point (shared by the 4 rows), 8 mul, 8 add, bumps: 34 / 8 = 4.25.
 *  - int8 weights, float activations (irt_linear_w8, the keys of irt_cached_attention_i8),
 *    4 rows x 4 columns: lb + fcvt.s.w + fmadd.s per weight: 58 / 16 = 3.6.
 *  - int4 (irt_linear_w4g), 4 rows x 2 bytes: one lb per 2 weights, the nibbles
 *    sign-extended by shifts, fcvt.s.w + fmadd.s: 74 / 16 = 4.6.
 *  - 1 bit, float activations (irt_linear_w1), 4 rows x 8 columns: per nibble of weight
 *    bits one row of a 16 x 4 table of +-1.0f, then flw + fmadd.s per weight: 102 / 32 = 3.2.
 *  - 1 bit x 4-bit activations (irt_linear_w1a4): 4 activations per 32-bit word in byte
 *    lanes; a nibble of weight bits selects, per lane, 8 + x (bit 1) or 8 - x (bit 0)
 *    through a 16-entry lane-mask table (and + xor + add per 4 weights); the lanes are
 *    summed every 8 words: 23 per 8 weights = 2.9, all integer.
 *  - values of irt_cached_attention_i8: 8 columns per pass, lb + fcvt.s.w + fmadd.s: 3.5.
 * The quantizers divide (fdiv.s) once per element, as the contract says (x / scale, not
 * x * (1 / scale)); the a4 quantizer multiplies by the exact 2^-e instead.
 */
#include "irt_internal.h" /* first: it marks this file as the runtime's own */
#include "irt_quant.h"

#include <stddef.h>

/* ------------------------------------------------------------------ helpers */

static inline float irt__absf(float v)
{
    return v < 0.0f ? -v : v;
}

/* out[d] *= 1 / sum (0 for an empty softmax), d < n. */
static void irt__scale_by_inverse(float *out, int n, float sum)
{
    const float f = sum > 0.0f ? 1.0f / sum : 0.0f;
    int d;
    for (d = 0; d < n; ++d)
        out[d] *= f;
}

typedef union {
    float f;
    uint32_t u;
} irt__bits32;

/* 2^e as a float32, exact for -149 <= e <= 127 (subnormal below -126). */
static float irt__pow2f(int e)
{
    irt__bits32 c;
    c.u = e >= -126 ? (uint32_t)(e + 127) << 23 : (uint32_t)1 << (e + 149);
    return c.f;
}

/* ------------------------------------------------------------------ int8 x int8 */

#define IRT_I8_STEP(o)                                                              \
    do {                                                                            \
        const int32_t xv = (int32_t)xp[o] - zx;                                     \
        a0 += xv * w0[o];                                                           \
        a1 += xv * w1[o];                                                           \
        a2 += xv * w2[o];                                                           \
        a3 += xv * w3[o];                                                           \
    } while (0)

#define IRT_ROWS4_BUMP(d)                                                           \
    do {                                                                            \
        xp += (d);                                                                  \
        w0 += (d);                                                                  \
        w1 += (d);                                                                  \
        w2 += (d);                                                                  \
        w3 += (d);                                                                  \
    } while (0)

/* float32(acc) * m, then + bias (two roundings; never fused in ISO C mode). */
static inline float irt__requant(int32_t acc, float m, const float *bias, int n)
{
    float y = (float)acc * m;
    if (bias != NULL)
        y = y + bias[n];
    return y;
}

/* One activation row x [K] against all N rows of w [N][K]: either the exact accumulators
 * into acc [N] (acc != NULL) or y[n] = float32(acc) * m[n] (+ bias[n]). */
static void irt__rows_i8i8(const int8_t *restrict x, int32_t zx, const int8_t *restrict w,
                           int K, int N, int32_t *restrict acc, const float *restrict m,
                           const float *restrict bias, float *restrict y)
{
    int n = 0;

    for (; n + 4 <= N; n += 4) {
        const int8_t *w0 = w + (size_t)n * K;
        const int8_t *w1 = w0 + K;
        const int8_t *w2 = w1 + K;
        const int8_t *w3 = w2 + K;
        const int8_t *xp = x;
        const int8_t *const x2e = x + (K & ~1);
        int32_t a0 = 0, a1 = 0, a2 = 0, a3 = 0;

        /* 2 columns per pass: 10 lb, 2 sub, 8 mul, 8 add, 5 bumps, 1 branch (34 for 8
         * MACs; unrolling further makes GCC hoist the loads and spill). */
        while (xp != x2e) {
            IRT_I8_STEP(0);
            IRT_I8_STEP(1);
            IRT_ROWS4_BUMP(2);
        }
        if (K & 1)
            IRT_I8_STEP(0);
        if (acc != NULL) {
            acc[n] = a0;
            acc[n + 1] = a1;
            acc[n + 2] = a2;
            acc[n + 3] = a3;
        } else {
            y[n] = irt__requant(a0, m[n], bias, n);
            y[n + 1] = irt__requant(a1, m[n + 1], bias, n + 1);
            y[n + 2] = irt__requant(a2, m[n + 2], bias, n + 2);
            y[n + 3] = irt__requant(a3, m[n + 3], bias, n + 3);
        }
    }

    for (; n < N; ++n) {
        const int8_t *wn = w + (size_t)n * K;
        int32_t a = 0;
        int k;
        for (k = 0; k < K; ++k)
            a += ((int32_t)x[k] - zx) * wn[k];
        if (acc != NULL)
            acc[n] = a;
        else
            y[n] = irt__requant(a, m[n], bias, n);
    }
}

void irt_quantize_act_i8(const float *restrict x, int8_t *restrict xq, int n, float scale,
                         int32_t zero_point)
{
    int i;
    for (i = 0; i < n; ++i) {
        /* Beyond +-256 every zero point saturates anyway: clip there, then add. */
        int32_t v = irt__round_clip(x[i] / scale, -256.0f, 256.0f) + zero_point;
        v = v < -128 ? -128 : v > 127 ? 127 : v;
        xq[i] = (int8_t)v;
    }
}

void irt_matvec_i8_acc(const int8_t *restrict xq, int32_t zx, const int8_t *restrict wq,
                       int32_t *restrict acc, int T, int K, int N)
{
    int t;
    for (t = 0; t < T; ++t)
        irt__rows_i8i8(xq + (size_t)t * K, zx, wq, K, N, acc + (size_t)t * N, NULL, NULL,
                       NULL);
}

void irt_linear_w8a8(const int8_t *restrict xq, int32_t x_zero_point,
                     const int8_t *restrict wq, const float *restrict m,
                     const float *restrict bias_or_null, float *restrict y, int T, int K,
                     int N)
{
    int t;
    for (t = 0; t < T; ++t)
        irt__rows_i8i8(xq + (size_t)t * K, x_zero_point, wq, K, N, NULL, m, bias_or_null,
                       y + (size_t)t * N);
}

/* ------------------------------------------------------------------ int8 weights, float x */

#define IRT_F_I8_STEP(o)                                                            \
    do {                                                                            \
        const float xv = xp[o];                                                     \
        a0 = IRT_FMA((float)w0[o], xv, a0);                                         \
        a1 = IRT_FMA((float)w1[o], xv, a1);                                         \
        a2 = IRT_FMA((float)w2[o], xv, a2);                                         \
        a3 = IRT_FMA((float)w3[o], xv, a3);                                         \
    } while (0)

/* y[n] = scale[n * scale_step] * dot(x[0..K-1], float(w[n*ldw .. n*ldw+K-1]))
 *        (+ bias[n] if bias != NULL), n < N.  Four rows of w per pass. */
static void irt__dot_rows_i8(const float *restrict x, const int8_t *restrict w, int ldw,
                             const float *restrict scale, int scale_step,
                             const float *restrict bias, float *restrict y, int N, int K)
{
    int n = 0;

    for (; n + 4 <= N; n += 4) {
        const int8_t *w0 = w + (size_t)n * ldw;
        const int8_t *w1 = w0 + ldw;
        const int8_t *w2 = w1 + ldw;
        const int8_t *w3 = w2 + ldw;
        const float *xp = x;
        const float *const x4e = x + (K & ~3);
        const float *const xe = x + K;
        const float *const s = scale + n * scale_step;
        float a0 = 0.0f, a1 = 0.0f, a2 = 0.0f, a3 = 0.0f;

        while (xp != x4e) {
            IRT_F_I8_STEP(0);
            IRT_F_I8_STEP(1);
            IRT_F_I8_STEP(2);
            IRT_F_I8_STEP(3);
            IRT_ROWS4_BUMP(4);
        }
        while (xp != xe) {
            IRT_F_I8_STEP(0);
            IRT_ROWS4_BUMP(1);
        }
        a0 *= s[0];
        a1 *= s[scale_step];
        a2 *= s[2 * scale_step];
        a3 *= s[3 * scale_step];
        irt__store4_bias(y + n, bias == NULL ? NULL : bias + n, a0, a1, a2, a3);
    }

    for (; n < N; ++n) {
        const int8_t *wn = w + (size_t)n * ldw;
        float a = 0.0f;
        int k;
        for (k = 0; k < K; ++k)
            a = IRT_FMA((float)wn[k], x[k], a);
        a *= scale[n * scale_step];
        if (bias != NULL)
            a += bias[n];
        y[n] = a;
    }
}

void irt_linear_w8(const float *restrict x, const int8_t *restrict wq, const float *restrict s,
                   const float *restrict bias_or_null, float *restrict y, int T, int K, int N,
                   int per_tensor)
{
    int t;
    for (t = 0; t < T; ++t)
        irt__dot_rows_i8(x + (size_t)t * K, wq, K, s, per_tensor ? 0 : 1, bias_or_null,
                         y + (size_t)t * N, N, K);
}

/* ------------------------------------------------------------------ grouped int4 */

/* The nibbles of a packed byte b read as int8_t (lb): the high nibble is b >> 4, the low
 * one (b << 28) >> 28; both rely on >> of a negative int being arithmetic and on the
 * modular uint32 -> int32 conversion (implementation-defined in C99; what GCC and Clang
 * do on every target). */
#define IRT_LO4(b) ((float)((int32_t)((uint32_t)(b) << 28) >> 28))
#define IRT_HI4(b) ((float)((int32_t)(b) >> 4))

#define IRT_W4_BYTE(o)                                                              \
    do {                                                                            \
        const float xl = xp[2 * (o)], xh = xp[2 * (o) + 1];                         \
        const int32_t b0 = w0[o], b1 = w1[o], b2 = w2[o], b3 = w3[o];               \
        d0 = IRT_FMA(IRT_LO4(b0), xl, d0);                                          \
        d1 = IRT_FMA(IRT_LO4(b1), xl, d1);                                          \
        d2 = IRT_FMA(IRT_LO4(b2), xl, d2);                                          \
        d3 = IRT_FMA(IRT_LO4(b3), xl, d3);                                          \
        d0 = IRT_FMA(IRT_HI4(b0), xh, d0);                                          \
        d1 = IRT_FMA(IRT_HI4(b1), xh, d1);                                          \
        d2 = IRT_FMA(IRT_HI4(b2), xh, d2);                                          \
        d3 = IRT_FMA(IRT_HI4(b3), xh, d3);                                          \
    } while (0)

#define IRT_W4_BUMP(d)                                                              \
    do {                                                                            \
        xp += 2 * (d);                                                              \
        w0 += (d);                                                                  \
        w1 += (d);                                                                  \
        w2 += (d);                                                                  \
        w3 += (d);                                                                  \
    } while (0)

/* One activation row x [K]; the packed rows are read as int8_t (same object, the signed
 * variant of its type). */
static void irt__w4g_row(const float *restrict x, const int8_t *restrict wp, int ldw,
                         const float *restrict scales, int ngroups,
                         const float *restrict bias, float *restrict y, int K, int N,
                         int group)
{
    int n = 0, g;

    for (; n + 4 <= N; n += 4) {
        const int8_t *w0 = wp + (size_t)n * ldw;
        const int8_t *w1 = w0 + ldw;
        const int8_t *w2 = w1 + ldw;
        const int8_t *w3 = w2 + ldw;
        const float *s0 = scales + (size_t)n * ngroups;
        const float *s1 = s0 + ngroups;
        const float *s2 = s1 + ngroups;
        const float *s3 = s2 + ngroups;
        const float *xp = x;
        float a0 = 0.0f, a1 = 0.0f, a2 = 0.0f, a3 = 0.0f;

        for (g = 0; g < ngroups; ++g) {
            /* group g: k = g*group .. +len-1; group is even, so it starts on a byte. */
            const int len = K - g * group < group ? K - g * group : group;
            const int pairs = len >> 1;
            int j;
            float d0 = 0.0f, d1 = 0.0f, d2 = 0.0f, d3 = 0.0f;

            for (j = 0; j + 2 <= pairs; j += 2) {
                IRT_W4_BYTE(0);
                IRT_W4_BYTE(1);
                IRT_W4_BUMP(2);
            }
            if (j < pairs) {
                IRT_W4_BYTE(0);
                IRT_W4_BUMP(1);
            }
            if (len & 1) { /* odd K: the last byte's low nibble only */
                const float xl = xp[0];
                d0 = IRT_FMA(IRT_LO4(w0[0]), xl, d0);
                d1 = IRT_FMA(IRT_LO4(w1[0]), xl, d1);
                d2 = IRT_FMA(IRT_LO4(w2[0]), xl, d2);
                d3 = IRT_FMA(IRT_LO4(w3[0]), xl, d3);
            }
            a0 = IRT_FMA(s0[g], d0, a0);
            a1 = IRT_FMA(s1[g], d1, a1);
            a2 = IRT_FMA(s2[g], d2, a2);
            a3 = IRT_FMA(s3[g], d3, a3);
        }
        irt__store4_bias(y + n, bias == NULL ? NULL : bias + n, a0, a1, a2, a3);
    }

    for (; n < N; ++n) {
        const int8_t *wn = wp + (size_t)n * ldw;
        const float *sn = scales + (size_t)n * ngroups;
        float a = 0.0f;
        for (g = 0; g < ngroups; ++g) {
            const int k0 = g * group;
            const int k1 = K - k0 < group ? K : k0 + group;
            float d = 0.0f;
            int k;
            for (k = k0; k + 1 < k1; k += 2) {
                const int32_t b = wn[k >> 1];
                d = IRT_FMA(IRT_LO4(b), x[k], d);
                d = IRT_FMA(IRT_HI4(b), x[k + 1], d);
            }
            if (k < k1)
                d = IRT_FMA(IRT_LO4(wn[k >> 1]), x[k], d);
            a = IRT_FMA(sn[g], d, a);
        }
        if (bias != NULL)
            a += bias[n];
        y[n] = a;
    }
}

void irt_linear_w4g(const float *restrict x, const uint8_t *restrict wpacked,
                    const float *restrict scales, const float *restrict bias_or_null,
                    float *restrict y, int T, int K, int N, int group)
{
    const int ldw = (K + 1) / 2;
    const int ngroups = (K + group - 1) / group;
    int t;
    for (t = 0; t < T; ++t)
        irt__w4g_row(x + (size_t)t * K, (const int8_t *)wpacked, ldw, scales, ngroups,
                     bias_or_null, y + (size_t)t * N, K, N, group);
}

/* ------------------------------------------------------------------ sign weights, float x */

/* irt__sign4[b][i] = +1 if bit i of the nibble b is set, else -1. */
static const float irt__sign4[16][4] = {
    {-1.0f, -1.0f, -1.0f, -1.0f}, {+1.0f, -1.0f, -1.0f, -1.0f},
    {-1.0f, +1.0f, -1.0f, -1.0f}, {+1.0f, +1.0f, -1.0f, -1.0f},
    {-1.0f, -1.0f, +1.0f, -1.0f}, {+1.0f, -1.0f, +1.0f, -1.0f},
    {-1.0f, +1.0f, +1.0f, -1.0f}, {+1.0f, +1.0f, +1.0f, -1.0f},
    {-1.0f, -1.0f, -1.0f, +1.0f}, {+1.0f, -1.0f, -1.0f, +1.0f},
    {-1.0f, +1.0f, -1.0f, +1.0f}, {+1.0f, +1.0f, -1.0f, +1.0f},
    {-1.0f, -1.0f, +1.0f, +1.0f}, {+1.0f, -1.0f, +1.0f, +1.0f},
    {-1.0f, +1.0f, +1.0f, +1.0f}, {+1.0f, +1.0f, +1.0f, +1.0f},
};

/* Four activations xp[o..o+3] against the signs of one nibble of each of the 4 rows
 * (a multiply by +-1.0f is exact: each FMA is one rounded add or subtract). */
#define IRT_W1_STEP(o, i)                                                           \
    do {                                                                            \
        const float xv = xp[(o) + (i)];                                             \
        a0 = IRT_FMA(s0[i], xv, a0);                                                \
        a1 = IRT_FMA(s1[i], xv, a1);                                                \
        a2 = IRT_FMA(s2[i], xv, a2);                                                \
        a3 = IRT_FMA(s3[i], xv, a3);                                                \
    } while (0)

#define IRT_W1_NIBBLE(o)                                                            \
    do {                                                                            \
        IRT_W1_STEP(o, 0);                                                          \
        IRT_W1_STEP(o, 1);                                                          \
        IRT_W1_STEP(o, 2);                                                          \
        IRT_W1_STEP(o, 3);                                                          \
    } while (0)

static void irt__w1_row(const float *restrict x, const uint8_t *restrict wb, int ldw,
                        const float *restrict alpha, const float *restrict bias,
                        float *restrict y, int K, int N)
{
    const int full = K >> 3, rest = K & 7;
    int n = 0, j, i;

    for (; n + 4 <= N; n += 4) {
        const uint8_t *w0 = wb + (size_t)n * ldw;
        const uint8_t *w1 = w0 + ldw;
        const uint8_t *w2 = w1 + ldw;
        const uint8_t *w3 = w2 + ldw;
        const float *xp = x;
        float a0 = 0.0f, a1 = 0.0f, a2 = 0.0f, a3 = 0.0f;

        for (j = 0; j < full; ++j) {
            const uint32_t c0 = *w0++, c1 = *w1++, c2 = *w2++, c3 = *w3++;
            const float *s0 = irt__sign4[c0 & 15], *s1 = irt__sign4[c1 & 15];
            const float *s2 = irt__sign4[c2 & 15], *s3 = irt__sign4[c3 & 15];
            IRT_W1_NIBBLE(0);
            s0 = irt__sign4[c0 >> 4];
            s1 = irt__sign4[c1 >> 4];
            s2 = irt__sign4[c2 >> 4];
            s3 = irt__sign4[c3 >> 4];
            IRT_W1_NIBBLE(4);
            xp += 8;
        }
        for (i = 0; i < rest; ++i) { /* the last, partial byte */
            const float xv = xp[i];
            a0 += (*w0 >> i) & 1 ? xv : -xv;
            a1 += (*w1 >> i) & 1 ? xv : -xv;
            a2 += (*w2 >> i) & 1 ? xv : -xv;
            a3 += (*w3 >> i) & 1 ? xv : -xv;
        }
        a0 *= alpha[n];
        a1 *= alpha[n + 1];
        a2 *= alpha[n + 2];
        a3 *= alpha[n + 3];
        irt__store4_bias(y + n, bias == NULL ? NULL : bias + n, a0, a1, a2, a3);
    }

    for (; n < N; ++n) {
        const uint8_t *wn = wb + (size_t)n * ldw;
        float a = 0.0f;
        int k;
        for (k = 0; k < K; ++k)
            a += (wn[k >> 3] >> (k & 7)) & 1 ? x[k] : -x[k];
        a *= alpha[n];
        if (bias != NULL)
            a += bias[n];
        y[n] = a;
    }
}

void irt_linear_w1(const float *restrict x, const uint8_t *restrict wbits,
                   const float *restrict alpha, const float *restrict bias_or_null,
                   float *restrict y, int T, int K, int N)
{
    const int ldw = (K + 7) / 8;
    int t;
    for (t = 0; t < T; ++t)
        irt__w1_row(x + (size_t)t * K, wbits, ldw, alpha, bias_or_null, y + (size_t)t * N, K,
                    N);
}

/* ------------------------------------------------------------------ 4-bit activations */

/* ceil(log2(r)) for the float32 r = m / 7 (m >= 0), exactly, from the bits of r; 0 when r
 * is 0 (m == 0, or m so tiny that m / 7 underflows).  For normal m this is the smallest e
 * with m <= 7 * 2^e.  Result in [-149, 126] for finite m. */
static int irt__a4_exponent(float m)
{
    irt__bits32 c;
    uint32_t field, frac;
    int p;

    c.f = m / 7.0f;
    c.u &= 0x7fffffffu;
    if (c.u == 0)
        return 0;
    field = c.u >> 23;
    frac = c.u & 0x7fffffu;
    if (field >= 255)
        return 0; /* m = inf (NaN never gets here): unspecified */
    if (field != 0) /* r = 1.frac * 2^(field - 127) */
        return (int)field - 127 + (frac != 0 ? 1 : 0);
    /* subnormal r = frac * 2^-149: ceil(log2 frac) - 149 */
    p = 22;
    while (!(frac >> p))
        --p;
    return p - 149 + ((frac & (frac - 1)) != 0 ? 1 : 0);
}

/* Quantizes one group x[0..len-1] into xq; returns its exponent. */
static int irt__quantize_a4_group(const float *restrict x, int8_t *restrict xq, int len)
{
    float m = 0.0f;
    int k, e;

    for (k = 0; k < len; ++k) {
        const float a = irt__absf(x[k]);
        if (a > m)
            m = a;
    }
    e = irt__a4_exponent(m);
    if (e >= -127) {
        /* x * 2^-e is the same correctly rounded value as x / 2^e (both exact scalings
         * by a representable power of two), without a division per element. */
        const float inv = irt__pow2f(-e);
        for (k = 0; k < len; ++k)
            xq[k] = (int8_t)irt__round_clip(x[k] * inv, -8.0f, 7.0f);
    } else {
        const float sx = irt__pow2f(e);
        for (k = 0; k < len; ++k)
            xq[k] = (int8_t)irt__round_clip(x[k] / sx, -8.0f, 7.0f);
    }
    return e;
}

void irt_quantize_act_a4(const float *restrict x, int8_t *restrict xq,
                         int *restrict exponents, int K, int group)
{
    int g, k0;
    for (g = 0, k0 = 0; k0 < K; ++g, k0 += group)
        exponents[g] = irt__quantize_a4_group(x + k0, xq + k0,
                                              K - k0 < group ? K - k0 : group);
}

/* irt__lane_mask4[b] has byte i = 0xff when bit i of the nibble b is set. */
static const uint32_t irt__lane_mask4[16] = {
    0x00000000u, 0x000000ffu, 0x0000ff00u, 0x0000ffffu,
    0x00ff0000u, 0x00ff00ffu, 0x00ffff00u, 0x00ffffffu,
    0xff000000u, 0xff0000ffu, 0xff00ff00u, 0xff00ffffu,
    0xffff0000u, 0xffff00ffu, 0xffffff00u, 0xffffffffu,
};

/* sum over 8 * nbytes activations of (bit ? 8 + xq : 8 - xq), from the packed words
 * bw (8 - xq per byte lane) and dw ((8 + xq) ^ (8 - xq)) and nbytes bytes of weight bits.
 * A lane gains at most 16 per word, so the lanes are summed every 8 words (<= 128). */
static int32_t irt__w1a4_lanes(const uint8_t *restrict wb, const uint32_t *restrict bw,
                               const uint32_t *restrict dw, int nbytes)
{
    int32_t acc = 0;

    while (nbytes > 0) {
        const int chunk = nbytes < 4 ? nbytes : 4;
        uint32_t lanes = 0;
        int j;
        for (j = 0; j < chunk; ++j) {
            const uint32_t c = wb[j];
            lanes += bw[0] ^ (dw[0] & irt__lane_mask4[c & 15]);
            lanes += bw[1] ^ (dw[1] & irt__lane_mask4[c >> 4]);
            bw += 2;
            dw += 2;
        }
        wb += chunk;
        nbytes -= chunk;
        lanes = (lanes & 0x00ff00ffu) + ((lanes >> 8) & 0x00ff00ffu);
        acc += (int32_t)((lanes & 0xffffu) + (lanes >> 16));
    }
    return acc;
}

void irt_linear_w1a4(const float *restrict x, const uint8_t *restrict wbits,
                     const float *restrict alpha, const float *restrict bias_or_null,
                     float *restrict y, int T, int K, int N, int group)
{
    const int ldw = (K + 7) / 8;
    int8_t xq[IRT_W1A4_MAX_GROUP];
    uint32_t bw[IRT_W1A4_MAX_GROUP / 4], dw[IRT_W1A4_MAX_GROUP / 4];
    int t, n, k0;

    for (t = 0; t < T; ++t) {
        const float *xt = x + (size_t)t * K;
        float *yt = y + (size_t)t * N;

        if (K == 0) {
            for (n = 0; n < N; ++n)
                yt[n] = 0.0f;
        }
        for (k0 = 0; k0 < K; k0 += group) {
            /* Group k0 .. k0+len-1 (group % 8 == 0: it starts on a byte of every row). */
            const int len = K - k0 < group ? K - k0 : group;
            const int nbytes = (len + 7) >> 3;
            const int e = irt__quantize_a4_group(xt + k0, xq, len);
            const float sx = irt__pow2f(e);
            const uint8_t *wb = wbits + (k0 >> 3);
            int i;

            /* Word i holds codes 4i .. 4i+3 in byte lanes 0..3 (as 8 - xq, and the xor
             * with 8 + xq).  Codes past len are 0 and add 8 whatever their bit. */
            for (i = 0; i < 2 * nbytes; ++i) {
                uint32_t a = 0, b = 0;
                int j;
                for (j = 3; j >= 0; --j) {
                    const int k = 4 * i + j;
                    const int32_t v = k < len ? xq[k] : 0;
                    a = (a << 8) | (uint32_t)(8 + v);
                    b = (b << 8) | (uint32_t)(8 - v);
                }
                bw[i] = b;
                dw[i] = a ^ b;
            }
            for (n = 0; n < N; ++n, wb += ldw) {
                /* lanes = sum (bit ? 8 + xq : 8 - xq) = acc + 8 * (8 * nbytes) */
                const int32_t acc = irt__w1a4_lanes(wb, bw, dw, nbytes) - 64 * nbytes;
                const float term = (float)acc * sx; /* exact */
                yt[n] = k0 == 0 ? term : yt[n] + term;
            }
        }
        for (n = 0; n < N; ++n) {
            float v = alpha[n] * yt[n];
            if (bias_or_null != NULL)
                v = v + bias_or_null[n];
            yt[n] = v;
        }
    }
}

/* ------------------------------------------------------------------ int8 KV cache */

void irt_kv_write_i8(int8_t *restrict cache, float *restrict scales,
                     const float *restrict new_rows, int layer, int kv_heads, int capacity,
                     int head_dim, int T, int pos, int ring)
{
    const int width = kv_heads * head_dim;
    int8_t *base = cache + (size_t)layer * kv_heads * capacity * head_dim;
    float *sbase = scales + (size_t)layer * kv_heads * capacity;
    int t = 0, h, d;

    if (ring && T > capacity)
        t = T - capacity; /* earlier rows would be overwritten by later ones anyway */
    for (; t < T; ++t) {
        const int slot = ring ? (pos + t) % capacity : pos + t;
        const float *src = new_rows + (size_t)t * width;
        for (h = 0; h < kv_heads; ++h) {
            int8_t *dst = base + ((size_t)h * capacity + slot) * head_dim;
            const float *sh = src + h * head_dim;
            float m = 0.0f, s;
            for (d = 0; d < head_dim; ++d) {
                const float a = irt__absf(sh[d]);
                if (a > m)
                    m = a;
            }
            s = m / 127.0f;
            if (s == 0.0f) /* an all-zero row (or one that underflows) */
                s = 1.0f;
            for (d = 0; d < head_dim; ++d)
                dst[d] = (int8_t)irt__round_clip(sh[d] / s, -127.0f, 127.0f);
            sbase[h * capacity + slot] = s;
        }
    }
}

/* y[n] = (accumulate ? y[n] : 0) + sum_{j<J} p[j] * float(v[j*ldv + n]), n < N.
 * Eight (then four, then one) columns per pass, accumulated in registers. */
static void irt__weighted_rows_i8(const float *restrict p, const int8_t *restrict v, int ldv,
                                  float *restrict y, int J, int N, int accumulate)
{
    int n = 0, j;

    for (; n + 8 <= N; n += 8) {
        const int8_t *vp = v + n;
        float a0, a1, a2, a3, a4, a5, a6, a7;
        if (accumulate) {
            a0 = y[n]; a1 = y[n + 1]; a2 = y[n + 2]; a3 = y[n + 3];
            a4 = y[n + 4]; a5 = y[n + 5]; a6 = y[n + 6]; a7 = y[n + 7];
        } else {
            a0 = a1 = a2 = a3 = a4 = a5 = a6 = a7 = 0.0f;
        }
        for (j = 0; j < J; ++j, vp += ldv) {
            const float pj = p[j];
            a0 = IRT_FMA(pj, (float)vp[0], a0);
            a1 = IRT_FMA(pj, (float)vp[1], a1);
            a2 = IRT_FMA(pj, (float)vp[2], a2);
            a3 = IRT_FMA(pj, (float)vp[3], a3);
            a4 = IRT_FMA(pj, (float)vp[4], a4);
            a5 = IRT_FMA(pj, (float)vp[5], a5);
            a6 = IRT_FMA(pj, (float)vp[6], a6);
            a7 = IRT_FMA(pj, (float)vp[7], a7);
        }
        y[n] = a0; y[n + 1] = a1; y[n + 2] = a2; y[n + 3] = a3;
        y[n + 4] = a4; y[n + 5] = a5; y[n + 6] = a6; y[n + 7] = a7;
    }

    for (; n + 4 <= N; n += 4) {
        const int8_t *vp = v + n;
        float a0, a1, a2, a3;
        if (accumulate) {
            a0 = y[n]; a1 = y[n + 1]; a2 = y[n + 2]; a3 = y[n + 3];
        } else {
            a0 = a1 = a2 = a3 = 0.0f;
        }
        for (j = 0; j < J; ++j, vp += ldv) {
            const float pj = p[j];
            a0 = IRT_FMA(pj, (float)vp[0], a0);
            a1 = IRT_FMA(pj, (float)vp[1], a1);
            a2 = IRT_FMA(pj, (float)vp[2], a2);
            a3 = IRT_FMA(pj, (float)vp[3], a3);
        }
        y[n] = a0; y[n + 1] = a1; y[n + 2] = a2; y[n + 3] = a3;
    }

    for (; n < N; ++n) {
        float a = accumulate ? y[n] : 0.0f;
        for (j = 0; j < J; ++j)
            a = IRT_FMA(p[j], (float)v[(size_t)j * ldv + n], a);
        y[n] = a;
    }
}

void irt_cached_attention_i8(const float *restrict q, const int8_t *restrict kcache,
                             const float *restrict kscales, const int8_t *restrict vcache,
                             const float *restrict vscales, float *restrict out,
                             float *restrict scratch, int layer, int heads, int kv_heads,
                             int head_dim, int capacity, int T, int end, int ring,
                             float scale)
{
    irt__cached_attention_i8_with(q, kcache, kscales, vcache, vscales, out, scratch, layer,
                                  heads, kv_heads, head_dim, capacity, T, end, ring, scale,
                                  irt__softmax_numerators_f32);
}

void irt__cached_attention_i8_with(const float *restrict q, const int8_t *restrict kcache,
                                   const float *restrict kscales,
                                   const int8_t *restrict vcache,
                                   const float *restrict vscales, float *restrict out,
                                   float *restrict scratch, int layer, int heads, int kv_heads,
                                   int head_dim, int capacity, int T, int end, int ring,
                                   float scale, irt__softmax_fn softmax)
{
    const int group = heads / kv_heads;
    const int ldq = heads * head_dim;
    const int first = end - capacity > 0 ? end - capacity : 0; /* oldest held position */
    const int slot0 = ring ? first % capacity : first;
    const size_t plane = (size_t)capacity * head_dim; /* one kv head of one layer */
    const int8_t *klayer = kcache + (size_t)layer * kv_heads * plane;
    const int8_t *vlayer = vcache + (size_t)layer * kv_heads * plane;
    const float *kslayer = kscales + (size_t)layer * kv_heads * capacity;
    const float *vslayer = vscales + (size_t)layer * kv_heads * capacity;
    int h, i, j;

    for (h = 0; h < heads; ++h) {
        const int kvh = h / group;
        const int8_t *kh = klayer + kvh * plane;
        const int8_t *vh = vlayer + kvh * plane;
        const float *ksh = kslayer + (size_t)kvh * capacity;
        const float *vsh = vslayer + (size_t)kvh * capacity;
        for (i = 0; i < T; ++i) {
            const float *qi = q + (size_t)i * ldq + h * head_dim;
            float *oi = out + (size_t)i * ldq + h * head_dim;
            const int n = (end - T + i) - first + 1; /* positions first .. p */
            /* Positions first.. are slots slot0.., wrapping to slot 0 in a ring. */
            const int n1 = n < capacity - slot0 ? n : capacity - slot0;
            const int n2 = n - n1;
            float sum;

            /* scores / scale: kscale_j * dot(q, float(kq_j)) */
            irt__dot_rows_i8(qi, kh + (size_t)slot0 * head_dim, head_dim, ksh + slot0, 1,
                             NULL, scratch, n1, head_dim);
            if (n2 > 0)
                irt__dot_rows_i8(qi, kh, head_dim, ksh, 1, NULL, scratch + n1, n2, head_dim);
            sum = softmax(scratch, n, scale);
            /* fold each value row's scale into its weight */
            for (j = 0; j < n1; ++j)
                scratch[j] *= vsh[slot0 + j];
            for (j = 0; j < n2; ++j)
                scratch[n1 + j] *= vsh[j];
            irt__weighted_rows_i8(scratch, vh + (size_t)slot0 * head_dim, head_dim, oi, n1,
                                  head_dim, 0);
            if (n2 > 0)
                irt__weighted_rows_i8(scratch + n1, vh, head_dim, oi, n2, head_dim, 1);
            irt__scale_by_inverse(oi, head_dim, sum);
        }
    }
}
