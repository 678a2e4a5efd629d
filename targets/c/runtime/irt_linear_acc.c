/*
 * irt_linear_acc.c - y += x @ W^T (+ b) for the pieces of a weight row streamed along K
 * (irt_linear_acc.h).
 *
 * Each output is the product of one row by the kernel the function is named after (T = 1,
 * N = 1: its one-row path, the same arithmetic as for that row in a full call), added to y
 * once: the partial sums of a split row are exactly the whole-row kernel's sums of each
 * piece, and the only new rounding is that one add per piece.
 */
#include "irt_internal.h"
#include "irt_quant.h"
#include "irt_linear_acc.h"

#include <stddef.h>

#define IRT_ACC_ROWS(row_kernel_call)                                               \
    do {                                                                            \
        int t, n;                                                                   \
        for (t = 0; t < T; ++t) {                                                   \
            const float *xt = x + (size_t)t * K;                                    \
            float *yt = y + (size_t)t * N;                                          \
            for (n = 0; n < N; ++n) {                                               \
                const float *bn = bias_or_null == NULL ? NULL : bias_or_null + n;   \
                float part;                                                         \
                row_kernel_call;                                                    \
                yt[n] = yt[n] + part;                                               \
            }                                                                       \
        }                                                                           \
    } while (0)

void irt_linear_acc_f32(const float *x, const float *w, const float *bias_or_null, float *y,
                        int T, int K, int N)
{
    IRT_ACC_ROWS(irt_linear_f32(xt, w + (size_t)n * K, bn, &part, 1, K, 1));
}

void irt_linear_w8_acc(const float *x, const int8_t *wq, const float *s,
                       const float *bias_or_null, float *y, int T, int K, int N,
                       int per_tensor)
{
    IRT_ACC_ROWS(irt_linear_w8(xt, wq + (size_t)n * K, s + (per_tensor ? 0 : n), bn, &part, 1,
                               K, 1, per_tensor));
}

void irt_linear_w4g_acc(const float *x, const uint8_t *wpacked, const float *scales,
                        const float *bias_or_null, float *y, int T, int K, int N, int group)
{
    const size_t ldw = (size_t)(K + 1) / 2, ngroups = (size_t)(K + group - 1) / group;
    IRT_ACC_ROWS(irt_linear_w4g(xt, wpacked + n * ldw, scales + n * ngroups, bn, &part, 1, K,
                                1, group));
}

void irt_linear_w1_acc(const float *x, const uint8_t *wbits, const float *alpha,
                       const float *bias_or_null, float *y, int T, int K, int N)
{
    const size_t ldw = (size_t)(K + 7) / 8;
    IRT_ACC_ROWS(irt_linear_w1(xt, wbits + n * ldw, alpha + n, bn, &part, 1, K, 1));
}

void irt_linear_w1a4_acc(const float *x, const uint8_t *wbits, const float *alpha,
                         const float *bias_or_null, float *y, int T, int K, int N, int group)
{
    const size_t ldw = (size_t)(K + 7) / 8;
    IRT_ACC_ROWS(irt_linear_w1a4(xt, wbits + n * ldw, alpha + n, bn, &part, 1, K, 1, group));
}
