/*
 * sir_kernels.h - siracusa's cluster kernels: the portable kernels split across the cores.
 *
 * sir_linear_w8a8 / sir_linear_f32 are irt_linear_w8a8 (irt_quant.h) / irt_linear_f32
 * (irt_kernels.h) with the output rows (channels) shared among `cores` cores of the team in
 * blocks of 4 rows (the portable kernels' row blocking); every output value is computed by
 * the very same code, so the result is bit-identical for any number of cores.
 */
#ifndef SIR_KERNELS_H
#define SIR_KERNELS_H

#include <stdint.h>

void sir_linear_w8a8(const int8_t *xq, int32_t x_zero_point, const int8_t *wq, const float *m,
                     const float *bias_or_null, float *y, int T, int K, int N, int cores);
void sir_linear_f32(const float *x, const float *w, const float *bias_or_null, float *y, int T,
                    int K, int N, int cores);

/* irt_cached_attention_i8 for one token (T = 1) with the heads shared among the cores;
 * `scratch` holds `capacity` floats per core. */
void sir_cached_attention_i8(const float *q, const int8_t *kcache, const float *kscales,
                             const int8_t *vcache, const float *vscales, float *out,
                             float *scratch, int layer, int heads, int kv_heads, int head_dim,
                             int capacity, int T, int end, int ring, float scale, int cores);

/* The same with the integer softmax (irt_cached_attention_i8_isoftmax, irt_intops.h). */
void sir_cached_attention_i8_isoftmax(const float *q, const int8_t *kcache,
                                      const float *kscales, const int8_t *vcache,
                                      const float *vscales, float *out, float *scratch,
                                      int layer, int heads, int kv_heads, int head_dim,
                                      int capacity, int T, int end, int ring, float scale,
                                      int cores);

/* irt_silu_f32 / irt_quantize_act_i8 with the n values shared among the cores. */
void sir_silu_f32(const float *x, float *y, int n, int cores);
void sir_int_silu_f32(const float *x, float *y, int n, int cores); /* irt_intops.h */
void sir_quantize_act_i8(const float *x, int8_t *xq, int n, float scale, int32_t zero_point,
                         int cores);

/* sir_rows.c: the portable irt_rms_norm_f32 / irt_int_rms_norm_f32 by rows, irt_rope_f32
 * and irt_kv_write_i8 by heads of one token (T = 1) or by rows, over the cores. */
void sir_rms_norm_f32(const float *x, const float *g, float *y, int T, int D, float eps,
                      int cores);
void sir_int_rms_norm_f32(const float *x, const float *g, float *y, int T, int D, float eps,
                          int cores);
void sir_rope_f32(const float *x, const float *cos_table, const float *sin_table, float *y,
                  int T, int heads, int head_dim, int rotary_dim, int start, int style,
                  int cores);
void sir_kv_write_i8(int8_t *cache, float *scales, const float *new_rows, int layer,
                     int kv_heads, int capacity, int head_dim, int T, int pos, int ring,
                     int cores);

/* With -DIRT_PROFILE, generated code's calls are counted per kernel (irt_profile.h; minstret
 * is one counter for every hart, so a call's count is the whole team's work in it). */
#if defined(IRT_PROFILE) && !defined(IRT_RUNTIME_SOURCE)
#include "irt_profile.h"
#define IRT__SIR_COUNTED(kernel, ...) IRT_PROFILE_CALL(#kernel, kernel(__VA_ARGS__))
#define sir_linear_w8a8(...) IRT__SIR_COUNTED(sir_linear_w8a8, __VA_ARGS__)
#define sir_linear_f32(...) IRT__SIR_COUNTED(sir_linear_f32, __VA_ARGS__)
#define sir_cached_attention_i8(...) IRT__SIR_COUNTED(sir_cached_attention_i8, __VA_ARGS__)
#define sir_cached_attention_i8_isoftmax(...) IRT__SIR_COUNTED(sir_cached_attention_i8_isoftmax, __VA_ARGS__)
#define sir_silu_f32(...) IRT__SIR_COUNTED(sir_silu_f32, __VA_ARGS__)
#define sir_int_silu_f32(...) IRT__SIR_COUNTED(sir_int_silu_f32, __VA_ARGS__)
#define sir_quantize_act_i8(...) IRT__SIR_COUNTED(sir_quantize_act_i8, __VA_ARGS__)
#define sir_rms_norm_f32(...) IRT__SIR_COUNTED(sir_rms_norm_f32, __VA_ARGS__)
#define sir_int_rms_norm_f32(...) IRT__SIR_COUNTED(sir_int_rms_norm_f32, __VA_ARGS__)
#define sir_rope_f32(...) IRT__SIR_COUNTED(sir_rope_f32, __VA_ARGS__)
#define sir_kv_write_i8(...) IRT__SIR_COUNTED(sir_kv_write_i8, __VA_ARGS__)
#endif

#endif
