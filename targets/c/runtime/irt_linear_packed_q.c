/*
 * irt_linear_packed_q.c - quantized linear layers over weights packed in 16-row panels
 * (irt_linear_packed_q.h has the layout and the semantics).
 *
 * Why: the row-major kernels of irt_quant.c walk 4 rows per pass, each through its own
 * pointer, so every activation load, every zero-point subtraction and every pointer bump is
 * shared by 4 multiply-accumulates only.  With the 16 rows of a panel interleaved, one
 * pointer with immediate offsets reaches all of them and one activation feeds 16 of them,
 * so what is left per weight is what the arithmetic needs (rv32imafc, GCC 12 -O2):
 *  - w8:   lb + fcvt.s.w + fmadd.s                                  3 per MAC (was 3.6)
 *  - w4g:  per byte (two weights) lb, slli, andi, 2 fcvt.s.w, 2 fmadd.s: 3.5 per MAC
 *          (was 4.6): the nibbles are not sign-extended but read as lo * 2^28 (slli 28) and
 *          hi * 16 (andi -16), and the two activations of the byte are scaled by 2^-28 and
 *          2^-4 once for the whole panel, so every product is the same as before;
 *  - w8a8: lb + mul + add                                           3 per MAC (was 4.25).
 * On a core without integer SIMD nothing cheaper reaches a float register from one byte:
 * the fp32 panels (irt_linear_packed.c) need 2 per MAC, flw + fmadd.s, at 4x the weight
 * bytes.
 */
#include "irt_internal.h" /* first: it marks this file as the runtime's own */
#include "irt_linear_packed_q.h"

#include <stddef.h>

/* Kept out of line, one function per panel width.  GCC's first scheduling pass (on by default
 * for RISC-V at -O2) hoists all the byte loads and conversions of a column ahead of its
 * multiply-adds and then spills the 16 accumulators (3.3 instead of 3.1 per MAC for w8,
 * 4.1 instead of 3.7 for w4g, 4.9 instead of 3.3 for w8a8): it is off for these. */
#if defined(__GNUC__) && !defined(__clang__)
#define IRT__QNOINLINE __attribute__((noinline, optimize("no-schedule-insns")))
#elif defined(__GNUC__)
#define IRT__QNOINLINE __attribute__((noinline))
#else
#define IRT__QNOINLINE
#endif

/* The rows of a panel: M(r) for each r in [0, P). */
#define IRT_QROWS16(M)                                                                   \
    M(0) M(1) M(2) M(3) M(4) M(5) M(6) M(7) M(8) M(9) M(10) M(11) M(12) M(13) M(14) M(15)
#define IRT_QROWS8(M) M(0) M(1) M(2) M(3) M(4) M(5) M(6) M(7)
#define IRT_QROWS4(M) M(0) M(1) M(2) M(3)

/* The panel widths that cover n rows: 16 while 16 remain (`count` of them, one call), then
 * 8, 4, 2, 1 for the bits of the rest.  PANEL(P, count) runs `count` panels of P rows from
 * row n0 on. */
#define IRT_QPANELS(N, PANEL)                                                            \
    do {                                                                                 \
        int n0 = 0;                                                                      \
        if ((N) >= IRT_QPANEL_ROWS) {                                                    \
            PANEL(16, (N) / IRT_QPANEL_ROWS);                                            \
            n0 = (N) & ~(IRT_QPANEL_ROWS - 1);                                           \
        }                                                                                \
        if ((N) & 8) {                                                                   \
            PANEL(8, 1);                                                                 \
            n0 += 8;                                                                     \
        }                                                                                \
        if ((N) & 4) {                                                                   \
            PANEL(4, 1);                                                                 \
            n0 += 4;                                                                     \
        }                                                                                \
        if ((N) & 2) {                                                                   \
            PANEL(2, 1);                                                                 \
            n0 += 2;                                                                     \
        }                                                                                \
        if ((N) & 1)                                                                     \
            PANEL(1, 1);                                                                 \
    } while (0)

/* The panels of one call follow each other: the weight (and scale) pointers run on, y and
 * the bias move on by P rows. */
#define IRT_QNEXT_PANEL(P)                                                               \
    do {                                                                                 \
        y += (P);                                                                        \
        if (bias != NULL)                                                                \
            bias += (P);                                                                 \
    } while (0)

/* ------------------------------------------------------------------ w8: int8 weights, float x */

#define IRT_W8_DECL(r) float a##r;
#define IRT_W8_ZERO(r) a##r = 0.0f;
#define IRT_W8_MUL(r) a##r = (float)wc[r] * xv;
#define IRT_W8_FMA(r) a##r = IRT_FMA((float)wc[r], xv, a##r);
/* y[r] = a_r * s_r (+ bias[r]): one multiply, then one add, as irt_linear_w8. */
#define IRT_W8_STORE(r)                                                                  \
    {                                                                                    \
        float v = a##r * s[(r) * step];                                                  \
        if (bias != NULL)                                                                \
            v = v + bias[r];                                                             \
        y[r] = v;                                                                        \
    }
#define IRT_W8_COLUMN(ROWS, P, c, OP)                                                    \
    do {                                                                                 \
        const float xv = xk[c];                                                          \
        const int8_t *const wc = wk + (c) * (P);                                         \
        ROWS(OP)                                                                         \
    } while (0)

/* `count` panels of P rows [K][P]: y[r] = s[r * step] * sum_k x[k] * float(w[k][r])
 * (+ bias[r]), each row summed in column order, column 0 setting the accumulators. */
#define IRT_W8_PANEL_FN(name, P, ROWS)                                                   \
    static IRT__QNOINLINE void name(const float *restrict x, const int8_t *restrict wk,  \
                                    const float *restrict s, int step,                   \
                                    const float *restrict bias, float *restrict y, int K, \
                                    int count)                                           \
    {                                                                                    \
        for (; count > 0; --count, s += (P) * step) {                                    \
            ROWS(IRT_W8_DECL)                                                            \
            const float *xk = x;                                                         \
            int turns = (K - 1) >> 2, rest = (K - 1) & 3;                                \
            if (K == 0) {                                                                \
                ROWS(IRT_W8_ZERO)                                                        \
                turns = rest = 0;                                                        \
            } else {                                                                     \
                IRT_W8_COLUMN(ROWS, P, 0, IRT_W8_MUL);                                   \
                xk += 1;                                                                 \
                wk += (P);                                                               \
            }                                                                            \
            for (; turns > 0; --turns) {                                                 \
                IRT_W8_COLUMN(ROWS, P, 0, IRT_W8_FMA);                                   \
                IRT_W8_COLUMN(ROWS, P, 1, IRT_W8_FMA);                                   \
                IRT_W8_COLUMN(ROWS, P, 2, IRT_W8_FMA);                                   \
                IRT_W8_COLUMN(ROWS, P, 3, IRT_W8_FMA);                                   \
                xk += 4;                                                                 \
                wk += 4 * (P);                                                           \
            }                                                                            \
            for (; rest > 0; --rest) {                                                   \
                IRT_W8_COLUMN(ROWS, P, 0, IRT_W8_FMA);                                   \
                xk += 1;                                                                 \
                wk += (P);                                                               \
            }                                                                            \
            ROWS(IRT_W8_STORE)                                                           \
            IRT_QNEXT_PANEL(P);                                                          \
        }                                                                                \
    }

IRT_W8_PANEL_FN(irt__w8_panel16, 16, IRT_QROWS16)
IRT_W8_PANEL_FN(irt__w8_panel8, 8, IRT_QROWS8)
IRT_W8_PANEL_FN(irt__w8_panel4, 4, IRT_QROWS4)

/* A panel of P rows, one row at a time (the 2- and 1-row panels). */
static IRT__QNOINLINE void irt__w8_panel_small(const float *restrict x,
                                               const int8_t *restrict wk,
                                               const float *restrict s, int step,
                                               const float *restrict bias, float *restrict y,
                                               int K, int P)
{
    int r, k;
    for (r = 0; r < P; ++r) {
        float a = 0.0f;
        for (k = 0; k < K; ++k)
            a = IRT_FMA((float)wk[k * P + r], x[k], a);
        a = a * s[r * step];
        if (bias != NULL)
            a = a + bias[r];
        y[r] = a;
    }
}

#define IRT_W8_PANEL(P, count)                                                           \
    do {                                                                                 \
        const int8_t *const wk = wp + (size_t)n0 * K;                                    \
        const float *const sn = s + n0 * step;                                           \
        const float *const bn = bias_or_null == NULL ? NULL : bias_or_null + n0;         \
        if ((P) == 16)                                                                   \
            irt__w8_panel16(xt, wk, sn, step, bn, yt + n0, K, count);                           \
        else if ((P) == 8)                                                               \
            irt__w8_panel8(xt, wk, sn, step, bn, yt + n0, K, count);                            \
        else if ((P) == 4)                                                               \
            irt__w8_panel4(xt, wk, sn, step, bn, yt + n0, K, count);                            \
        else                                                                             \
            irt__w8_panel_small(xt, wk, sn, step, bn, yt + n0, K, (P));                  \
    } while (0)

void irt_linear_w8_packed(const float *restrict x, const int8_t *restrict wp,
                          const float *restrict s, const float *restrict bias_or_null,
                          float *restrict y, int T, int K, int N, int per_tensor)
{
    const int step = per_tensor ? 0 : 1;
    int t;
    for (t = 0; t < T; ++t) {
        const float *const xt = x + (size_t)t * K;
        float *const yt = y + (size_t)t * N;
        IRT_QPANELS(N, IRT_W8_PANEL);
    }
}

/* ------------------------------------------------------------------ w4g: grouped int4 */

/* The nibbles of a byte b read as int8_t (lb), times powers of two, in one instruction each:
 * lo * 2^28 (the low nibble shifted to the top) and hi * 16 (the low nibble cleared).  Both
 * rely on the modular uint32 -> int32 conversion and on & of a negative int acting on its
 * two's complement (implementation-defined in C99; what GCC and Clang do everywhere). */
#define IRT_W4_LO28(b) ((float)(int32_t)((uint32_t)(b) << 28))
#define IRT_W4_HI16(b) ((float)((b) & -16))

/* 2^-28 and 2^-4, the factors of the activations that undo them (exact multiplications
 * unless the product leaves the normal range: |x| < 2^-98). */
#define IRT_W4_X_LO 3.7252902984619140625e-9f
#define IRT_W4_X_HI 0.0625f

#define IRT_W4_DECL(r) float d##r;
#define IRT_W4_ZERO(r) d##r = 0.0f;
#define IRT_W4_FIRST(r)                                                                  \
    {                                                                                    \
        const int32_t b = wc[r];                                                         \
        d##r = IRT_W4_LO28(b) * xl;                                                      \
        d##r = IRT_FMA(IRT_W4_HI16(b), xh, d##r);                                        \
    }
#define IRT_W4_BOTH(r)                                                                   \
    {                                                                                    \
        const int32_t b = wc[r];                                                         \
        d##r = IRT_FMA(IRT_W4_LO28(b), xl, d##r);                                        \
        d##r = IRT_FMA(IRT_W4_HI16(b), xh, d##r);                                        \
    }
#define IRT_W4_LOW(r) d##r = IRT_FMA(IRT_W4_LO28(wc[r]), xl, d##r);
/* The end of a group: a_r = scale * d_r (the first group), a_r += scale * d_r (the others),
 * with y[r] holding a_r; after the last group + bias[r] (one add, as irt_linear_w4g). */
#define IRT_W4_SET(r) y[r] = sk[r] * d##r;
#define IRT_W4_ACC(r) y[r] = IRT_FMA(sk[r], d##r, y[r]);
#define IRT_W4_SET_LAST(r)                                                               \
    {                                                                                    \
        float v = sk[r] * d##r;                                                          \
        if (bias != NULL)                                                                \
            v = v + bias[r];                                                             \
        y[r] = v;                                                                        \
    }
#define IRT_W4_ACC_LAST(r)                                                               \
    {                                                                                    \
        float v = IRT_FMA(sk[r], d##r, y[r]);                                            \
        if (bias != NULL)                                                                \
            v = v + bias[r];                                                             \
        y[r] = v;                                                                        \
    }
/* Byte j of the group (activations 2j and 2j + 1) for every row. */
#define IRT_W4_BYTE(ROWS, P, j, OP)                                                      \
    do {                                                                                 \
        const float xl = xk[2 * (j)] * IRT_W4_X_LO;                                      \
        const float xh = xk[2 * (j) + 1] * IRT_W4_X_HI;                                  \
        const int8_t *const wc = wk + (j) * (P);                                         \
        ROWS(OP)                                                                         \
    } while (0)

/* `count` panels of P rows: bytes [ceil(K/2)][P], scales [ngroups][P]; y[r] = sum_g s[g][r]
 * * d_g,r (+ bias[r]) with d_g,r the group's sum in column order, as irt_linear_w4g (K >= 1:
 * irt_linear_w4g_packed does K = 0 itself). */
#define IRT_W4_PANEL_FN(name, P, ROWS)                                                   \
    static IRT__QNOINLINE void name(const float *restrict x, const int8_t *restrict wk,  \
                                    const float *restrict sk,                            \
                                    const float *restrict bias, float *restrict y, int K, \
                                    int group, int count)                                \
    {                                                                                    \
        for (; count > 0; --count) {                                                     \
            ROWS(IRT_W4_DECL)                                                            \
            int k0;                                                                      \
            for (k0 = 0; k0 < K; k0 += group, sk += (P)) {                               \
                const int len = K - k0 < group ? K - k0 : group;                         \
                const float *xk = x + k0;                                                \
                const int pairs = len >> 1;                                              \
                int turns = (pairs - 1) >> 1;                                            \
                if (pairs > 0) {                                                         \
                    IRT_W4_BYTE(ROWS, P, 0, IRT_W4_FIRST);                               \
                    xk += 2;                                                             \
                    wk += (P);                                                           \
                } else {                                                                 \
                    ROWS(IRT_W4_ZERO)                                                    \
                    turns = 0;                                                           \
                }                                                                        \
                for (; turns > 0; --turns) {                                             \
                    IRT_W4_BYTE(ROWS, P, 0, IRT_W4_BOTH);                                \
                    IRT_W4_BYTE(ROWS, P, 1, IRT_W4_BOTH);                                \
                    xk += 4;                                                             \
                    wk += 2 * (P);                                                       \
                }                                                                        \
                if (pairs > 0 && ((pairs - 1) & 1)) { /* the odd byte after the turns */ \
                    IRT_W4_BYTE(ROWS, P, 0, IRT_W4_BOTH);                                \
                    xk += 2;                                                             \
                    wk += (P);                                                           \
                }                                                                        \
                if (len & 1) { /* odd K: the last byte's low nibble only */              \
                    const float xl = xk[0] * IRT_W4_X_LO;                                \
                    const int8_t *const wc = wk;                                         \
                    ROWS(IRT_W4_LOW)                                                     \
                    wk += (P);                                                           \
                }                                                                        \
                if (K - k0 > group) {                                                    \
                    if (k0 == 0) {                                                       \
                        ROWS(IRT_W4_SET)                                                 \
                    } else {                                                             \
                        ROWS(IRT_W4_ACC)                                                 \
                    }                                                                    \
                } else if (k0 == 0) {                                                    \
                    ROWS(IRT_W4_SET_LAST)                                                \
                } else {                                                                 \
                    ROWS(IRT_W4_ACC_LAST)                                                \
                }                                                                        \
            }                                                                            \
            IRT_QNEXT_PANEL(P);                                                          \
        }                                                                                \
    }

IRT_W4_PANEL_FN(irt__w4_panel16, 16, IRT_QROWS16)
IRT_W4_PANEL_FN(irt__w4_panel8, 8, IRT_QROWS8)
IRT_W4_PANEL_FN(irt__w4_panel4, 4, IRT_QROWS4)

/* The 4-bit weight of row r, column k of a panel of P rows, as a float. */
static float irt__w4_weight(const int8_t *restrict wk, int P, int r, int k)
{
    const int32_t b = wk[(k >> 1) * P + r];
    return (float)(k & 1 ? b >> 4 : (int32_t)((uint32_t)b << 28) >> 28);
}

/* A panel of P rows, one row at a time (the 2- and 1-row panels). */
static IRT__QNOINLINE void irt__w4_panel_small(const float *restrict x,
                                               const int8_t *restrict wk,
                                               const float *restrict sk,
                                               const float *restrict bias, float *restrict y,
                                               int K, int group, int P)
{
    int r, k, g;
    for (r = 0; r < P; ++r) {
        float a = 0.0f;
        for (g = 0; g * group < K; ++g) {
            const int k1 = K - g * group < group ? K : (g + 1) * group;
            float d = 0.0f;
            for (k = g * group; k < k1; ++k)
                d = IRT_FMA(irt__w4_weight(wk, P, r, k), x[k], d);
            a = IRT_FMA(sk[g * P + r], d, a);
        }
        if (bias != NULL)
            a = a + bias[r];
        y[r] = a;
    }
}

#define IRT_W4_PANEL(P, count)                                                                  \
    do {                                                                                 \
        const int8_t *const wk = (const int8_t *)wp + (size_t)n0 * ldw;                  \
        const float *const sk = sp + (size_t)n0 * ngroups;                               \
        const float *const bn = bias_or_null == NULL ? NULL : bias_or_null + n0;         \
        if ((P) == 16)                                                                   \
            irt__w4_panel16(xt, wk, sk, bn, yt + n0, K, group, count);                          \
        else if ((P) == 8)                                                               \
            irt__w4_panel8(xt, wk, sk, bn, yt + n0, K, group, count);                           \
        else if ((P) == 4)                                                               \
            irt__w4_panel4(xt, wk, sk, bn, yt + n0, K, group, count);                           \
        else                                                                             \
            irt__w4_panel_small(xt, wk, sk, bn, yt + n0, K, group, (P));                 \
    } while (0)

void irt_linear_w4g_packed(const float *restrict x, const uint8_t *restrict wp,
                           const float *restrict sp, const float *restrict bias_or_null,
                           float *restrict y, int T, int K, int N, int group)
{
    const int ldw = (K + 1) / 2;
    const int ngroups = (K + group - 1) / group;
    int t;
    for (t = 0; t < T; ++t) {
        const float *const xt = x + (size_t)t * K;
        float *const yt = y + (size_t)t * N;
        if (K == 0) { /* no groups: 0 (+ bias) */
            int n;
            for (n = 0; n < N; ++n)
                yt[n] = bias_or_null == NULL ? 0.0f : 0.0f + bias_or_null[n];
            continue;
        }
        IRT_QPANELS(N, IRT_W4_PANEL);
    }
}

/* ------------------------------------------------------------------ w8a8: int8 x int8 */

#define IRT_I8_DECL(r) int32_t a##r = 0;
#define IRT_I8_MAC(r) a##r += xv * wc[r];
/* y[r] = float32(acc) * m[r], then + bias[r] (two roundings, as irt_linear_w8a8). */
#define IRT_I8_STORE(r)                                                                  \
    {                                                                                    \
        float v = (float)a##r * m[r];                                                    \
        if (bias != NULL)                                                                \
            v = v + bias[r];                                                             \
        y[r] = v;                                                                        \
    }
#define IRT_I8_COLUMN(ROWS, P, c)                                                        \
    do {                                                                                 \
        const int32_t xv = (int32_t)xk[c] - zx;                                          \
        const int8_t *const wc = wk + (c) * (P);                                         \
        ROWS(IRT_I8_MAC)                                                                 \
    } while (0)

/* `count` panels of P rows [K][P]: exact int32 sums, then one multiply and one add per row. */
#define IRT_I8_PANEL_FN(name, P, ROWS)                                                   \
    static IRT__QNOINLINE void name(const int8_t *restrict x, int32_t zx,               \
                                    const int8_t *restrict wk, const float *restrict m,  \
                                    const float *restrict bias, float *restrict y, int K, \
                                    int count)                                           \
    {                                                                                    \
        for (; count > 0; --count, m += (P)) {                                           \
            ROWS(IRT_I8_DECL)                                                            \
            const int8_t *xk = x;                                                        \
            const int8_t *const xe = x + K;                                              \
            const int8_t *const x2 = x + (K & ~1);                                       \
            while (xk < x2) {                                                            \
                IRT_I8_COLUMN(ROWS, P, 0);                                               \
                IRT_I8_COLUMN(ROWS, P, 1);                                               \
                xk += 2;                                                                 \
                wk += 2 * (P);                                                           \
            }                                                                            \
            if (xk < xe) {                                                               \
                IRT_I8_COLUMN(ROWS, P, 0);                                               \
                wk += (P);                                                               \
            }                                                                            \
            ROWS(IRT_I8_STORE)                                                           \
            IRT_QNEXT_PANEL(P);                                                          \
        }                                                                                \
    }

IRT_I8_PANEL_FN(irt__i8_panel16, 16, IRT_QROWS16)
IRT_I8_PANEL_FN(irt__i8_panel8, 8, IRT_QROWS8)
IRT_I8_PANEL_FN(irt__i8_panel4, 4, IRT_QROWS4)

static IRT__QNOINLINE void irt__i8_panel_small(const int8_t *restrict x, int32_t zx,
                                               const int8_t *restrict wk,
                                               const float *restrict m,
                                               const float *restrict bias, float *restrict y,
                                               int K, int P)
{
    int r, k;
    for (r = 0; r < P; ++r) {
        int32_t a = 0;
        float v;
        for (k = 0; k < K; ++k)
            a += ((int32_t)x[k] - zx) * wk[k * P + r];
        v = (float)a * m[r];
        if (bias != NULL)
            v = v + bias[r];
        y[r] = v;
    }
}

#define IRT_I8_PANEL(P, count)                                                                  \
    do {                                                                                 \
        const int8_t *const wk = wp + (size_t)n0 * K;                                    \
        const float *const bn = bias_or_null == NULL ? NULL : bias_or_null + n0;         \
        if ((P) == 16)                                                                   \
            irt__i8_panel16(xt, x_zero_point, wk, m + n0, bn, yt + n0, K, count);               \
        else if ((P) == 8)                                                               \
            irt__i8_panel8(xt, x_zero_point, wk, m + n0, bn, yt + n0, K, count);                \
        else if ((P) == 4)                                                               \
            irt__i8_panel4(xt, x_zero_point, wk, m + n0, bn, yt + n0, K, count);                \
        else                                                                             \
            irt__i8_panel_small(xt, x_zero_point, wk, m + n0, bn, yt + n0, K, (P));      \
    } while (0)

void irt_linear_w8a8_packed(const int8_t *restrict xq, int32_t x_zero_point,
                            const int8_t *restrict wp, const float *restrict m,
                            const float *restrict bias_or_null, float *restrict y, int T,
                            int K, int N)
{
    int t;
    for (t = 0; t < T; ++t) {
        const int8_t *const xt = xq + (size_t)t * K;
        float *const yt = y + (size_t)t * N;
        IRT_QPANELS(N, IRT_I8_PANEL);
    }
}
