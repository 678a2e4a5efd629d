/*
 * irt_linear_packed_q.h - the quantized linear layers of irt_quant.h (w8, w4g, w8a8) over
 * weights stored in 16-row panels, chosen by a target's lowering rules from the shapes
 * (riscv-ulp) and packed by the compiler (targets/panel_layout.py, "row_panels16").
 *
 * The panel layout of a matrix m [N][L] (L = K int8 weights, or ceil(K/2) bytes of two int4
 * weights, or ceil(K/group) scales): the rows are cut, in order, into panels of 16 rows
 * while 16 remain, then at most one panel each of 8, 4, 2 and 1 rows (the binary digits of
 * N % 16); a panel of P rows starting at row n0 is stored as [L][P] (element [l][r] is
 * m[n0 + r][l]) and the panels follow each other: N * L elements, no padding.
 *
 * The numbers are those of the row-major kernels of irt_quant.h (same semantics, same
 * preconditions; y never overlaps the inputs):
 *   irt_linear_w8_packed    = irt_linear_w8 with wq packed (s stays [N], or [1] per tensor);
 *                             each row summed in column order, fused multiply-adds: the same
 *                             bits as irt_linear_w8.
 *   irt_linear_w4g_packed   = irt_linear_w4g with the bytes [N][ceil(K/2)] packed and the
 *                             scales [N][ceil(K/group)] packed too; the same bits as
 *                             irt_linear_w4g while the activations are 0 or of magnitude
 *                             >= 2^-98 (they are scaled by exact powers of two in passing).
 *   irt_linear_w8a8_packed  = irt_linear_w8a8 with wq packed: bit-exact.
 */
#ifndef IRT_LINEAR_PACKED_Q_H
#define IRT_LINEAR_PACKED_Q_H

#include "irt_kernels.h" /* IRT_RESTRICT, <stdint.h> */

#if defined(__cplusplus)
extern "C" {
#endif

/* The panel width (PANEL_ROWS_Q in targets/panel_layout.py). */
#define IRT_QPANEL_ROWS 16

void irt_linear_w8_packed(const float *IRT_RESTRICT x, const int8_t *IRT_RESTRICT wp,
                          const float *IRT_RESTRICT s, const float *IRT_RESTRICT bias_or_null,
                          float *IRT_RESTRICT y, int T, int K, int N, int per_tensor);

void irt_linear_w4g_packed(const float *IRT_RESTRICT x, const uint8_t *IRT_RESTRICT wp,
                           const float *IRT_RESTRICT sp, const float *IRT_RESTRICT bias_or_null,
                           float *IRT_RESTRICT y, int T, int K, int N, int group);

void irt_linear_w8a8_packed(const int8_t *IRT_RESTRICT xq, int32_t x_zero_point,
                            const int8_t *IRT_RESTRICT wp, const float *IRT_RESTRICT m,
                            const float *IRT_RESTRICT bias_or_null, float *IRT_RESTRICT y,
                            int T, int K, int N);

#if defined(__cplusplus)
}
#endif

/* With -DIRT_PROFILE, calls from generated code are counted per kernel (irt_profile.h). */
#if defined(IRT_PROFILE) && !defined(IRT_RUNTIME_SOURCE)
#include "irt_profile.h"
#define irt_linear_w8_packed(...) \
    IRT_PROFILE_CALL("linear_w8_packed", irt_linear_w8_packed(__VA_ARGS__))
#define irt_linear_w4g_packed(...) \
    IRT_PROFILE_CALL("linear_w4g_packed", irt_linear_w4g_packed(__VA_ARGS__))
#define irt_linear_w8a8_packed(...) \
    IRT_PROFILE_CALL("linear_w8a8_packed", irt_linear_w8a8_packed(__VA_ARGS__))
#endif

#endif /* IRT_LINEAR_PACKED_Q_H */
