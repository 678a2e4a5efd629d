/*
 * irt_attention_q.h - attention over the int8 KV cache for 8-wide heads
 * (irt_attention_i8_hd8.c), chosen by a target's lowering rules from head_dim (riscv-ulp).
 */
#ifndef IRT_ATTENTION_Q_H
#define IRT_ATTENTION_Q_H

#include "irt_kernels.h" /* IRT_RESTRICT, <stdint.h> */

#if defined(__cplusplus)
extern "C" {
#endif

/* irt_cached_attention_i8 (irt_quant.h) with head_dim 8: the same caches, scales, slots and
 * preconditions, scratch of 2 * capacity floats.  Agrees with it (and with attention over
 * the dequantized rows) to float32 rounding. */
void irt_cached_attention_i8_hd8(const float *IRT_RESTRICT q,
                                 const int8_t *IRT_RESTRICT kcache,
                                 const float *IRT_RESTRICT kscales,
                                 const int8_t *IRT_RESTRICT vcache,
                                 const float *IRT_RESTRICT vscales, float *IRT_RESTRICT out,
                                 float *IRT_RESTRICT scratch, int layer, int heads,
                                 int kv_heads, int capacity, int T, int end, int ring,
                                 float scale);

#if defined(__cplusplus)
}
#endif

/* With -DIRT_PROFILE, calls from generated code are counted per kernel (irt_profile.h). */
#if defined(IRT_PROFILE) && !defined(IRT_RUNTIME_SOURCE)
#include "irt_profile.h"
#define irt_cached_attention_i8_hd8(...) \
    IRT_PROFILE_CALL("cached_attention_i8_hd8", irt_cached_attention_i8_hd8(__VA_ARGS__))
#endif

#endif /* IRT_ATTENTION_Q_H */
