/*
 * irt_linear_packed.c - linear layers over weights packed in row panels (irt_linear_packed_f32).
 *
 * Why a packed layout: with the rows of a panel interleaved ([K][P] per panel) every weight of
 * a P-row block is reached from ONE pointer with immediate offsets, so P rows cost one pointer
 * bump instead of P, and P accumulators stay in registers while one activation load feeds P
 * fused multiply-adds.  The body for P = 16 rows and 8 columns is 8 activation loads, 128
 * weight loads, 128 fmadd.s, 2 pointer bumps and a branch: 267 instructions for 128
 * multiply-accumulates, 2.09 per MAC (the floor with one load per weight is 2).
 * The layout is defined in irt_kernels.h; passes pack the weights at compile time.
 */
#include "irt_internal.h"

#include <stddef.h>

/* acc_r += w[c][r] * x[c] for r in [r0, r0 + 4) of a panel P floats wide. */
#define IRT_MAC4(P, c, r0, a, b, d, e)                                                   \
    do {                                                                                \
        a = IRT_FMA(wk[(c) * (P) + (r0)], xv, a);                                       \
        b = IRT_FMA(wk[(c) * (P) + (r0) + 1], xv, b);                                   \
        d = IRT_FMA(wk[(c) * (P) + (r0) + 2], xv, d);                                   \
        e = IRT_FMA(wk[(c) * (P) + (r0) + 3], xv, e);                                   \
    } while (0)

/* acc_r = w[c][r] * x[c]: the first column sets the accumulators (no zeroing pass). */
#define IRT_MUL4(P, c, r0, a, b, d, e)                                                   \
    do {                                                                                \
        a = wk[(c) * (P) + (r0)] * xv;                                                  \
        b = wk[(c) * (P) + (r0) + 1] * xv;                                              \
        d = wk[(c) * (P) + (r0) + 2] * xv;                                              \
        e = wk[(c) * (P) + (r0) + 3] * xv;                                              \
    } while (0)

#define IRT_P16_FIRST(c)                                                                \
    do {                                                                                \
        const float xv = xk[c];                                                         \
        IRT_MUL4(16, c, 0, a0, a1, a2, a3);                                             \
        IRT_MUL4(16, c, 4, a4, a5, a6, a7);                                             \
        IRT_MUL4(16, c, 8, a8, a9, a10, a11);                                           \
        IRT_MUL4(16, c, 12, a12, a13, a14, a15);                                        \
    } while (0)

#define IRT_P16_COLUMN(c)                                                               \
    do {                                                                                \
        const float xv = xk[c];                                                         \
        IRT_MAC4(16, c, 0, a0, a1, a2, a3);                                             \
        IRT_MAC4(16, c, 4, a4, a5, a6, a7);                                             \
        IRT_MAC4(16, c, 8, a8, a9, a10, a11);                                           \
        IRT_MAC4(16, c, 12, a12, a13, a14, a15);                                        \
    } while (0)

#define IRT_P8_COLUMN(c)                                                                \
    do {                                                                                \
        const float xv = xk[c];                                                         \
        IRT_MAC4(8, c, 0, a0, a1, a2, a3);                                              \
        IRT_MAC4(8, c, 4, a4, a5, a6, a7);                                              \
    } while (0)

#define IRT_P4_COLUMN(c)                                                                \
    do {                                                                                \
        const float xv = xk[c];                                                         \
        IRT_MAC4(4, c, 0, a0, a1, a2, a3);                                              \
    } while (0)

/* y[r] = acc_r (+ bias[r]) for r in [r0, r0 + 4), straight from the registers. */
#define IRT_STORE4(r0, a, b, d, e)                                                       \
    do {                                                                                \
        if (bias != NULL) {                                                             \
            y[(r0)] = a + bias[(r0)];                                                   \
            y[(r0) + 1] = b + bias[(r0) + 1];                                           \
            y[(r0) + 2] = d + bias[(r0) + 2];                                           \
            y[(r0) + 3] = e + bias[(r0) + 3];                                           \
        } else {                                                                        \
            y[(r0)] = a;                                                                \
            y[(r0) + 1] = b;                                                            \
            y[(r0) + 2] = d;                                                            \
            y[(r0) + 3] = e;                                                            \
        }                                                                               \
    } while (0)

/* One panel of 16 rows: y[0..15] = wp-panel . x (+ bias). */
static void irt__panel16(const float *restrict x, const float *restrict wk,
                         const float *restrict bias, float *restrict y, int K)
{
    float a0, a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, a11, a12, a13, a14, a15;
    const float *xk = x;
    const float *const x8 = x + (K & ~7);
    const float *const xe = x + K;
    if (K >= 8) { /* the first 8 columns, column 0 setting the accumulators */
        IRT_P16_FIRST(0);
        IRT_P16_COLUMN(1);
        IRT_P16_COLUMN(2);
        IRT_P16_COLUMN(3);
        IRT_P16_COLUMN(4);
        IRT_P16_COLUMN(5);
        IRT_P16_COLUMN(6);
        IRT_P16_COLUMN(7);
        xk += 8;
        wk += 8 * 16;
    } else {
        a0 = a1 = a2 = a3 = a4 = a5 = a6 = a7 = 0.0f;
        a8 = a9 = a10 = a11 = a12 = a13 = a14 = a15 = 0.0f;
    }
    while (xk != x8) {
        IRT_P16_COLUMN(0);
        IRT_P16_COLUMN(1);
        IRT_P16_COLUMN(2);
        IRT_P16_COLUMN(3);
        IRT_P16_COLUMN(4);
        IRT_P16_COLUMN(5);
        IRT_P16_COLUMN(6);
        IRT_P16_COLUMN(7);
        xk += 8;
        wk += 8 * 16;
    }
    while (xk != xe) {
        IRT_P16_COLUMN(0);
        xk += 1;
        wk += 16;
    }
    IRT_STORE4(0, a0, a1, a2, a3);
    IRT_STORE4(4, a4, a5, a6, a7);
    IRT_STORE4(8, a8, a9, a10, a11);
    IRT_STORE4(12, a12, a13, a14, a15);
}

/* One panel of 8 rows. */
static void irt__panel8(const float *restrict x, const float *restrict wk,
                        const float *restrict bias, float *restrict y, int K)
{
    float a0 = 0.0f, a1 = 0.0f, a2 = 0.0f, a3 = 0.0f, a4 = 0.0f, a5 = 0.0f, a6 = 0.0f;
    float a7 = 0.0f;
    const float *xk = x;
    const float *const x8 = x + (K & ~7);
    const float *const xe = x + K;
    while (xk != x8) {
        IRT_P8_COLUMN(0);
        IRT_P8_COLUMN(1);
        IRT_P8_COLUMN(2);
        IRT_P8_COLUMN(3);
        IRT_P8_COLUMN(4);
        IRT_P8_COLUMN(5);
        IRT_P8_COLUMN(6);
        IRT_P8_COLUMN(7);
        xk += 8;
        wk += 8 * 8;
    }
    while (xk != xe) {
        IRT_P8_COLUMN(0);
        xk += 1;
        wk += 8;
    }
    IRT_STORE4(0, a0, a1, a2, a3);
    IRT_STORE4(4, a4, a5, a6, a7);
}

/* One panel of 4 rows. */
static void irt__panel4(const float *restrict x, const float *restrict wk,
                        const float *restrict bias, float *restrict y, int K)
{
    float a0 = 0.0f, a1 = 0.0f, a2 = 0.0f, a3 = 0.0f;
    const float *xk = x;
    const float *const x8 = x + (K & ~7);
    const float *const xe = x + K;
    while (xk != x8) {
        IRT_P4_COLUMN(0);
        IRT_P4_COLUMN(1);
        IRT_P4_COLUMN(2);
        IRT_P4_COLUMN(3);
        IRT_P4_COLUMN(4);
        IRT_P4_COLUMN(5);
        IRT_P4_COLUMN(6);
        IRT_P4_COLUMN(7);
        xk += 8;
        wk += 8 * 4;
    }
    while (xk != xe) {
        IRT_P4_COLUMN(0);
        xk += 1;
        wk += 4;
    }
    IRT_STORE4(0, a0, a1, a2, a3);
}

/* A panel of P < 4 rows (2 or 1), [K][P]. */
static void irt__panel_small(const float *restrict x, const float *restrict wk,
                             const float *restrict bias, float *restrict y, int K, int P)
{
    int r, k;
    for (r = 0; r < P; ++r) {
        float a = 0.0f;
        for (k = 0; k < K; ++k)
            a = IRT_FMA(wk[k * P + r], x[k], a);
        y[r] = bias != NULL ? a + bias[r] : a;
    }
}

void irt_linear_packed_f32(const float *restrict x, const float *restrict wp,
                           const float *restrict bias_or_null, float *restrict y, int T,
                           int K, int N)
{
    int t;
    for (t = 0; t < T; ++t) {
        const float *xt = x + (ptrdiff_t)t * K;
        float *yt = y + (ptrdiff_t)t * N;
        const float *w = wp;
        int n = 0;
        for (; n + 16 <= N; n += 16, w += 16 * K)
            irt__panel16(xt, w, bias_or_null == NULL ? NULL : bias_or_null + n, yt + n, K);
        if (N - n >= 8) {
            irt__panel8(xt, w, bias_or_null == NULL ? NULL : bias_or_null + n, yt + n, K);
            n += 8, w += 8 * K;
        }
        if (N - n >= 4) {
            irt__panel4(xt, w, bias_or_null == NULL ? NULL : bias_or_null + n, yt + n, K);
            n += 4, w += 4 * K;
        }
        if (N - n >= 2) {
            irt__panel_small(xt, w, bias_or_null == NULL ? NULL : bias_or_null + n, yt + n, K,
                             2);
            n += 2, w += 2 * K;
        }
        if (N - n == 1)
            irt__panel_small(xt, w, bias_or_null == NULL ? NULL : bias_or_null + n, yt + n, K,
                             1);
    }
}

void irt_embedding_packed_f32(const int32_t *restrict tokens, const float *restrict table,
                              float *restrict y, int T, int D, int vocab)
{
    const int full = vocab & ~15; /* rows in panels of 16 */
    int t, k;
    for (t = 0; t < T; ++t) {
        const int n = tokens[t];
        int n0, P = 16;
        const float *row;
        float *yt = y + (ptrdiff_t)t * D;
        if (n < full) {
            n0 = n & ~15;
        } else { /* the panels of 8, 4, 2, 1 rows after the full ones */
            n0 = full;
            for (P = 8; P > 0; P >>= 1) {
                if ((vocab - full) & P) {
                    if (n < n0 + P)
                        break;
                    n0 += P;
                }
            }
        }
        row = table + (ptrdiff_t)n0 * D + (n - n0); /* element k at row[k * P] */
        for (k = 0; k < D; ++k)
            yt[k] = row[(ptrdiff_t)k * P];
    }
}
