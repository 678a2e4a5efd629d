/*
 * irt_intops.h - integer approximations of the non-linear ops (irtool's --integer-only).
 *
 * The contract, with the reasons for every constant, is irtool/numerics/intops.py; these
 * kernels compute the same integers bit for bit.  After I-BERT (Kim et al., "I-BERT:
 * Integer-only BERT Quantization", ICML 2021): exp(p) ~ a (p + b)^2 + c on (-ln2, 0] and a
 * shift per ln2; our own code.  A float input enters the integer domain on a power-of-two
 * grid (one multiply by 2^F, exact, and one round-to-nearest-even), everything after is
 * int32/int64 integer arithmetic, and a result leaves it as float(integer) * 2^-F (exact);
 * the norm's gain is one float multiply at that exit.
 *   bit-exact  irt_int_silu_f32, irt_int_rms_norm_f32, irt_int_softmax_f32 (given its
 *              float scores);
 *   rounding   irt_cached_attention_i8_isoftmax (its dot products are float sums).
 * Conventions of irt_kernels.h; build with -std=c99 as irt_quant.h says.
 */
#ifndef IRT_INTOPS_H
#define IRT_INTOPS_H

#include "irt_kernels.h" /* IRT_RESTRICT, <stdint.h> */

#if defined(__cplusplus)
extern "C" {
#endif

/* y = SiLU(x) with the integer sigmoid, i < n (y may be x). */
void irt_int_silu_f32(const float *x, float *y, int n);

/* RMSNorm of T rows of D (D <= 32768) with an integer square root; y may be x. */
void irt_int_rms_norm_f32(const float *x, const float *g, float *y, int T, int D, float eps);

/* In place, n >= 1: s[j] <- float(p_j) * 2^-16 with p_j the Q16 integer softmax of
 * scale * s[j] (the probabilities; they sum to 1 up to the Q16 rounding). */
void irt_int_softmax_f32(float *s, int n, float scale);

/* irt_cached_attention_i8 (irt_quant.h) with irt_int_softmax_f32 as its softmax. */
void irt_cached_attention_i8_isoftmax(const float *IRT_RESTRICT q,
                                      const int8_t *IRT_RESTRICT kcache,
                                      const float *IRT_RESTRICT kscales,
                                      const int8_t *IRT_RESTRICT vcache,
                                      const float *IRT_RESTRICT vscales,
                                      float *IRT_RESTRICT out, float *IRT_RESTRICT scratch,
                                      int layer, int heads, int kv_heads, int head_dim,
                                      int capacity, int T, int end, int ring, float scale);

#if defined(__cplusplus)
}
#endif

#endif
