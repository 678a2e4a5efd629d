/*
 * irt_linear_acc.h - linear layers that add their product to the output: y += x @ W^T (+ b).
 *
 * The `tile` pass streams a weight row too long for its SRAM window in pieces along the
 * reduction dimension K: the first piece writes y[t][n] (with the bias), every later piece
 * adds its partial product to it.  Each function here computes, for every t < T and n < N,
 * the product of row n exactly as the kernel it is named after does on that row alone, then
 * one float add:  y[t][n] = y[t][n] + (product (+ bias[n])).  The pieces of a quantized row
 * start on a group (w4g, w1a4) or a byte (w1), so their scales and 4-bit activation groups
 * are those of the whole row.  x [T][K], y [T][N]; W, scales and alpha as in irt_kernels.h
 * and irt_quant.h for K columns and N rows.
 */
#ifndef IRT_LINEAR_ACC_H
#define IRT_LINEAR_ACC_H

#include <stdint.h>

#if defined(__cplusplus)
extern "C" {
#endif

void irt_linear_acc_f32(const float *x, const float *w, const float *bias_or_null, float *y,
                        int T, int K, int N);
void irt_linear_w8_acc(const float *x, const int8_t *wq, const float *s,
                       const float *bias_or_null, float *y, int T, int K, int N,
                       int per_tensor);
void irt_linear_w4g_acc(const float *x, const uint8_t *wpacked, const float *scales,
                        const float *bias_or_null, float *y, int T, int K, int N, int group);
void irt_linear_w1_acc(const float *x, const uint8_t *wbits, const float *alpha,
                       const float *bias_or_null, float *y, int T, int K, int N);
void irt_linear_w1a4_acc(const float *x, const uint8_t *wbits, const float *alpha,
                         const float *bias_or_null, float *y, int T, int K, int N, int group);

#if defined(__cplusplus)
}
#endif

/* With -DIRT_PROFILE, calls from generated code are counted per kernel (irt_profile.h). */
#if defined(IRT_PROFILE) && !defined(IRT_RUNTIME_SOURCE)
#include "irt_profile.h"
#define irt_linear_acc_f32(...) IRT_PROFILE_CALL("linear_acc_f32", irt_linear_acc_f32(__VA_ARGS__))
#define irt_linear_w8_acc(...) IRT_PROFILE_CALL("linear_w8_acc", irt_linear_w8_acc(__VA_ARGS__))
#define irt_linear_w4g_acc(...) \
    IRT_PROFILE_CALL("linear_w4g_acc", irt_linear_w4g_acc(__VA_ARGS__))
#define irt_linear_w1_acc(...) IRT_PROFILE_CALL("linear_w1_acc", irt_linear_w1_acc(__VA_ARGS__))
#define irt_linear_w1a4_acc(...) \
    IRT_PROFILE_CALL("linear_w1a4_acc", irt_linear_w1a4_acc(__VA_ARGS__))
#endif

#endif /* IRT_LINEAR_ACC_H */
