/*
 * irt_linear.c - linear layers and matrix products.
 *
 * Written for a single-issue in-order core without indexed addressing (RV32): every
 * stream is its own pointer, bumped once per unrolled iteration, and the loads use the
 * immediate offsets 0, 4, ..., 28.  The body of irt__dot_rows_f32 (4 weight rows x 8
 * columns) is 8 activation loads + 32 weight loads + 32 FMAs + 5 pointer bumps + 1 branch:
 * 78 instructions for 32 multiply-accumulates, ~2.44 per MAC (the floor with one load per
 * weight is 2.25).  irt__weighted_rows_f32 (8 columns x 2 rows of v) is 2 + 16 loads,
 * 16 FMAs and ~4 pointer/loop instructions: ~2.4 per MAC.
 */
#include "irt_internal.h"

#include <stddef.h>

/* One activation x[o] times column o of the four current weight rows. */
#define IRT_DOT4_STEP(o)                                                            \
    do {                                                                            \
        const float xv = xp[o];                                                     \
        a0 = IRT_FMA(w0[o], xv, a0);                                                \
        a1 = IRT_FMA(w1[o], xv, a1);                                                \
        a2 = IRT_FMA(w2[o], xv, a2);                                                \
        a3 = IRT_FMA(w3[o], xv, a3);                                                \
    } while (0)

#define IRT_DOT4_BUMP(d)                                                            \
    do {                                                                            \
        xp += (d);                                                                  \
        w0 += (d);                                                                  \
        w1 += (d);                                                                  \
        w2 += (d);                                                                  \
        w3 += (d);                                                                  \
    } while (0)

void irt__dot_rows_f32(const float *restrict x, const float *restrict w, int ldw,
                       const float *restrict bias, float *restrict y, int N, int K)
{
    int n = 0;

    for (; n + 4 <= N; n += 4) {
        const float *w0 = w + n * ldw;
        const float *w1 = w0 + ldw;
        const float *w2 = w1 + ldw;
        const float *w3 = w2 + ldw;
        const float *xp = x;
        const float *const w0e = w0 + (K & ~7);
        const float *const xe = x + K;
        float a0 = 0.0f, a1 = 0.0f, a2 = 0.0f, a3 = 0.0f;

        /* Body: 8 columns of 4 rows = 8 + 32 loads, 32 FMAs, 5 bumps, 1 branch. */
        while (w0 != w0e) {
            IRT_DOT4_STEP(0);
            IRT_DOT4_STEP(1);
            IRT_DOT4_STEP(2);
            IRT_DOT4_STEP(3);
            IRT_DOT4_STEP(4);
            IRT_DOT4_STEP(5);
            IRT_DOT4_STEP(6);
            IRT_DOT4_STEP(7);
            IRT_DOT4_BUMP(8);
        }
        if (K & 4) {
            IRT_DOT4_STEP(0);
            IRT_DOT4_STEP(1);
            IRT_DOT4_STEP(2);
            IRT_DOT4_STEP(3);
            IRT_DOT4_BUMP(4);
        }
        while (xp != xe) {
            IRT_DOT4_STEP(0);
            IRT_DOT4_BUMP(1);
        }
        irt__store4_bias(y + n, bias == NULL ? NULL : bias + n, a0, a1, a2, a3);
    }

    /* The last N % 4 rows, one at a time. */
    for (; n < N; ++n) {
        const float *wn = w + n * ldw;
        float a = 0.0f;
        int k;
        for (k = 0; k < K; ++k)
            a = IRT_FMA(wn[k], x[k], a);
        if (bias != NULL)
            a += bias[n];
        y[n] = a;
    }
}

void irt__weighted_rows_f32(const float *restrict p, const float *restrict v, int ldv,
                            float *restrict y, int J, int N, int accumulate)
{
    int n = 0;
    int j;

    for (; n + 8 <= N; n += 8) {
        const float *vn = v + n;
        float a0, a1, a2, a3, a4, a5, a6, a7;
        if (accumulate) {
            a0 = y[n]; a1 = y[n + 1]; a2 = y[n + 2]; a3 = y[n + 3];
            a4 = y[n + 4]; a5 = y[n + 5]; a6 = y[n + 6]; a7 = y[n + 7];
        } else {
            a0 = a1 = a2 = a3 = a4 = a5 = a6 = a7 = 0.0f;
        }
        for (j = 0; j + 2 <= J; j += 2) {
            const float *va = vn + j * ldv;
            const float *vb = va + ldv;
            const float p0 = p[j], p1 = p[j + 1];
            a0 = IRT_FMA(p0, va[0], a0);
            a1 = IRT_FMA(p0, va[1], a1);
            a2 = IRT_FMA(p0, va[2], a2);
            a3 = IRT_FMA(p0, va[3], a3);
            a4 = IRT_FMA(p0, va[4], a4);
            a5 = IRT_FMA(p0, va[5], a5);
            a6 = IRT_FMA(p0, va[6], a6);
            a7 = IRT_FMA(p0, va[7], a7);
            a0 = IRT_FMA(p1, vb[0], a0);
            a1 = IRT_FMA(p1, vb[1], a1);
            a2 = IRT_FMA(p1, vb[2], a2);
            a3 = IRT_FMA(p1, vb[3], a3);
            a4 = IRT_FMA(p1, vb[4], a4);
            a5 = IRT_FMA(p1, vb[5], a5);
            a6 = IRT_FMA(p1, vb[6], a6);
            a7 = IRT_FMA(p1, vb[7], a7);
        }
        if (j < J) {
            const float *va = vn + j * ldv;
            const float p0 = p[j];
            a0 = IRT_FMA(p0, va[0], a0);
            a1 = IRT_FMA(p0, va[1], a1);
            a2 = IRT_FMA(p0, va[2], a2);
            a3 = IRT_FMA(p0, va[3], a3);
            a4 = IRT_FMA(p0, va[4], a4);
            a5 = IRT_FMA(p0, va[5], a5);
            a6 = IRT_FMA(p0, va[6], a6);
            a7 = IRT_FMA(p0, va[7], a7);
        }
        y[n] = a0; y[n + 1] = a1; y[n + 2] = a2; y[n + 3] = a3;
        y[n + 4] = a4; y[n + 5] = a5; y[n + 6] = a6; y[n + 7] = a7;
    }

    for (; n + 4 <= N; n += 4) {
        const float *vn = v + n;
        float a0, a1, a2, a3;
        if (accumulate) {
            a0 = y[n]; a1 = y[n + 1]; a2 = y[n + 2]; a3 = y[n + 3];
        } else {
            a0 = a1 = a2 = a3 = 0.0f;
        }
        for (j = 0; j < J; ++j) {
            const float *vp = vn + j * ldv;
            const float pj = p[j];
            a0 = IRT_FMA(pj, vp[0], a0);
            a1 = IRT_FMA(pj, vp[1], a1);
            a2 = IRT_FMA(pj, vp[2], a2);
            a3 = IRT_FMA(pj, vp[3], a3);
        }
        y[n] = a0; y[n + 1] = a1; y[n + 2] = a2; y[n + 3] = a3;
    }

    for (; n < N; ++n) {
        float a = accumulate ? y[n] : 0.0f;
        for (j = 0; j < J; ++j)
            a = IRT_FMA(p[j], v[j * ldv + n], a);
        y[n] = a;
    }
}

void irt_linear_f32(const float *restrict x, const float *restrict w,
                    const float *restrict bias_or_null, float *restrict y,
                    int T, int K, int N)
{
    int t;
    for (t = 0; t < T; ++t)
        irt__dot_rows_f32(x + t * K, w, K, bias_or_null, y + t * N, N, K);
}

void irt_matmul_f32(const float *restrict a, const float *restrict b, float *restrict y,
                    int M, int K, int N, int transpose_b)
{
    int m;
    if (transpose_b) {
        irt_linear_f32(a, b, NULL, y, M, K, N);
        return;
    }
    /* y[m][:] = sum_k a[m][k] * b[k][:]: the rows of b weighted by the row of a. */
    for (m = 0; m < M; ++m)
        irt__weighted_rows_f32(a + m * K, b, N, y + m * N, K, N, 0);
}
