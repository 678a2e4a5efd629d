/*
 * irt_kernels.h - the fp32 kernel runtime that irtool's generated C code calls.
 *
 * Targets: ultra-low-power single-issue in-order RV32 cores with one FPU (rv32imafc,
 * picolibc) and the host.  C99, no dynamic allocation, no libm beyond expf, sqrtf, tanhf
 * and erfcf.  The numerical reference for every kernel is the numpy code in
 * irtool/numerics/transformer.py; results agree with it to float32 rounding (the order
 * of the sums differs, and fused multiply-adds are used where the target has them).
 *
 * Conventions
 *  - Activations are row-major [T][features]; attention heads are folded into the
 *    features, [T][heads * head_dim], head h occupying columns h*head_dim .. +head_dim-1.
 *  - Weights of a linear layer are [N][K] (PyTorch's out_features x in_features).
 *  - Sizes are `int` and must be >= 0 (T, N, ... may be 1; K may be 1).
 *  - Unless a comment says otherwise, an output buffer must not overlap any input.
 *    "y may equal x" means exactly the same pointer (in place), never a partial overlap.
 *  - Kernels that need scratch space take `float *scratch` from the caller; its size in
 *    floats is documented per kernel.  It must not overlap any other argument.
 *  - Nothing is checked at run time: the preconditions listed are the caller's to keep.
 */
#ifndef IRT_KERNELS_H
#define IRT_KERNELS_H

#include <stdint.h>

#if defined(__cplusplus)
#define IRT_RESTRICT __restrict__
extern "C" {
#else
#define IRT_RESTRICT restrict
#endif

/* ------------------------------------------------------------------ linear algebra */

/* y[t][n] = sum_k x[t][k] * w[n][k]  (+ bias[n] when bias_or_null != NULL)
 * x [T][K], w [N][K], bias [N], y [T][N].  y must not overlap x, w or bias.
 * Walks 4 weight rows per pass, each sequentially, so one activation load feeds 4 FMAs. */
void irt_linear_f32(const float *IRT_RESTRICT x, const float *IRT_RESTRICT w,
                    const float *IRT_RESTRICT bias_or_null, float *IRT_RESTRICT y,
                    int T, int K, int N);

/* The same as irt_linear_f32 with the weights packed in row panels (chosen by the compiler
 * when it packs the weights at compile time; about 2.06 instructions per multiply-accumulate
 * on RV32F against 2.5 for irt_linear_f32).  Packed layout of w [N][K]: the rows are cut, in
 * order, into panels of 24 rows while 24 remain, then at most one panel each of 16, 8, 4, 2
 * and 1 rows (the binary digits of N % 24); a panel of P rows starting at row n0 is stored as
 * [K][P], element [k][r] = w[n0 + r][k], and the panels follow each other: N * K floats in
 * all, no padding.  wp [N*K] packed, bias [N], y [T][N]; y must not overlap x, wp or bias. */
void irt_linear_packed_f32(const float *IRT_RESTRICT x, const float *IRT_RESTRICT wp,
                           const float *IRT_RESTRICT bias_or_null, float *IRT_RESTRICT y,
                           int T, int K, int N);

/* y[t][n] = r[t][n] + sum_k x[t][k] * w[n][k]: a linear layer and the residual add after it
 * in one pass (the add done on the accumulators before the store; the same sums as
 * irt_linear_packed_f32 then irt_add_f32, bit for bit).  wp packed as above, r [T][N],
 * y [T][N]; y may be r (the residual stream updated in place), not x or wp. */
void irt_linear_packed_residual_f32(const float *IRT_RESTRICT x, const float *IRT_RESTRICT wp,
                                    const float *r, float *y, int T, int K, int N);

/* x @ w.T (wp packed as above, no bias) written straight to a KV cache (layout of
 * irt_kv_write_f32, head_dim 8, N = kv_heads * 8): row t to slot pos + t of layer `layer`
 * (ring != 0: slot (pos + t) % capacity), as irt_linear_packed_f32 then irt_kv_write_f32
 * would, without the copy. */
void irt_linear_packed_kv_f32(const float *IRT_RESTRICT x, const float *IRT_RESTRICT wp,
                              float *IRT_RESTRICT cache, int T, int K, int N, int layer,
                              int capacity, int pos, int ring);

/* irt_embedding_f32 over a table [vocab][D] stored in the packed layout above (a table tied
 * to the classifier, which reads it with irt_linear_packed_f32): row tokens[t] gathered from
 * its panel.  0 <= tokens[t] < vocab. */
void irt_embedding_packed_f32(const int32_t *IRT_RESTRICT tokens,
                              const float *IRT_RESTRICT table, float *IRT_RESTRICT y, int T,
                              int D, int vocab);

/* y = a @ b            (transpose_b == 0: a [M][K], b [K][N])
 * y = a @ b^T          (transpose_b != 0: a [M][K], b [N][K]; same as irt_linear_f32)
 * y [M][N] must not overlap a or b. */
void irt_matmul_f32(const float *IRT_RESTRICT a, const float *IRT_RESTRICT b,
                    float *IRT_RESTRICT y, int M, int K, int N, int transpose_b);

/* ------------------------------------------------------------------ normalisation */

/* Per row t of x [T][D]:  ms = mean_d x[t][d]^2;  y[t][d] = x[t][d] / sqrt(ms + eps) * g[d].
 * g [D].  y may equal x (in place). */
void irt_rms_norm_f32(const float *x, const float *IRT_RESTRICT g, float *y,
                      int T, int D, float eps);

/* Per row t of x [T][D]:  mean = mean_d x;  var = mean_d (x - mean)^2;
 * y[t][d] = (x[t][d] - mean) / sqrt(var + eps) * g[d] + b[d].
 * g, b [D].  y may equal x (in place). */
void irt_layer_norm_f32(const float *x, const float *IRT_RESTRICT g,
                        const float *IRT_RESTRICT b, float *y, int T, int D, float eps);

/* ------------------------------------------------------------------ rotary embedding */

/* Rotary position embedding of x [T][heads*head_dim]; row t is at position start + t.
 * cos_table, sin_table [max_pos][rotary_dim/2] (max_pos >= start + T); with
 * c = cos_table[start+t][i], s = sin_table[start+t][i], for every head and i < rotary_dim/2
 * the pair (a, b) of that head becomes (a*c - b*s, a*s + b*c), where the pair is
 *   style 0 (interleaved):  (a, b) = (x[2i], x[2i+1])
 *   style 1 (rotate_half):  (a, b) = (x[i],  x[i + rotary_dim/2])
 * Dimensions rotary_dim .. head_dim-1 of each head pass through unchanged.
 * rotary_dim is even and <= head_dim.  y may equal x (in place). */
void irt_rope_f32(const float *x, const float *IRT_RESTRICT cos_table,
                  const float *IRT_RESTRICT sin_table, float *y, int T, int heads,
                  int head_dim, int rotary_dim, int start, int style);

/* irt_rope_f32 for head_dim == rotary_dim == 8 (the same results, bit for bit): cos/sin of
 * the position kept in registers across the heads, a head per loop turn. */
void irt_rope_hd8_f32(const float *x, const float *IRT_RESTRICT cos_table,
                      const float *IRT_RESTRICT sin_table, float *y, int T, int heads,
                      int start, int style);

/* irt_rope_hd8_f32 whose rotated rows go straight to a KV cache (layout of irt_kv_write_f32,
 * head_dim 8, kv_heads = heads): row t of x to slot pos + t of layer `layer` (ring != 0:
 * slot (pos + t) % capacity), as irt_rope_hd8_f32 then irt_kv_write_f32 would, bit for bit. */
void irt_rope_hd8_kv_f32(const float *IRT_RESTRICT x, const float *IRT_RESTRICT cos_table,
                         const float *IRT_RESTRICT sin_table, float *IRT_RESTRICT cache, int T,
                         int heads, int start, int style, int layer, int capacity, int pos,
                         int ring);

/* ------------------------------------------------------------------ embeddings */

/* y[t][:] = table[tokens[t]][:] for t < T.  table [vocab][D], y [T][D];
 * the caller guarantees 0 <= tokens[t] < vocab. */
void irt_embedding_f32(const int32_t *IRT_RESTRICT tokens, const float *IRT_RESTRICT table,
                       float *IRT_RESTRICT y, int T, int D);

/* y[t][:] = table[start + t][:] for t < T (learned positions).  table [max_pos][D] with
 * max_pos >= start + T, y [T][D]. */
void irt_position_embedding_f32(const float *IRT_RESTRICT table, float *IRT_RESTRICT y,
                                int T, int D, int start);

/* ------------------------------------------------------------------ element-wise */

/* y[i] = a[i] + b[i], i < n.  y may equal a and/or b. */
void irt_add_f32(const float *a, const float *b, float *y, int n);

/* y[i] = a[i] * b[i], i < n.  y may equal a and/or b. */
void irt_mul_f32(const float *a, const float *b, float *y, int n);

/* y[i] = x[i] / (1 + exp(-x[i])), i < n.  y may equal x. */
void irt_silu_f32(const float *x, float *y, int n);

/* y[i] = a[i] / (1 + exp(-a[i])) * b[i], i < n (SiLU(a) * b, the gate of a SwiGLU MLP).
 * y may equal a and/or b.  exp without library call or branches (irt_internal.h). */
void irt_silu_mul_f32(const float *a, const float *b, float *y, int n);

/* y[i] += x[i], i < n (a residual connection, in place).  y must not overlap x. */
void irt_add_inplace_f32(float *IRT_RESTRICT y, const float *IRT_RESTRICT x, int n);

/* tanh_approx == 0:  y = 0.5 x (1 + erf(x / sqrt 2))   (exact GELU)
 * tanh_approx != 0:  y = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
 * i < n.  y may equal x. */
void irt_gelu_f32(const float *x, float *y, int n, int tanh_approx);

/* Row-wise softmax of x [T][N]: y[t][j] = exp(x[t][j] - max_t) / sum_j exp(x[t][j] - max_t).
 * y may equal x. */
void irt_softmax_f32(const float *x, float *y, int T, int N);

/* Index of the first maximum of x[0..n-1] (NaNs are never chosen unless x[0] is NaN);
 * -1 when n <= 0. */
int irt_argmax_f32(const float *x, int n);

/* ------------------------------------------------------------------ attention */

/* Grouped-query attention.  q [T][heads*head_dim], k, v [S][kv_heads*head_dim],
 * out [T][heads*head_dim]; heads is a multiple of kv_heads and query head h uses kv head
 * h / (heads / kv_heads).  For query row i and head h:
 *   score_j = scale * dot(q[i] head h, k[j] kv head)
 *   out[i] head h = sum_j softmax_j(score) * v[j] kv head,  over the visible keys j:
 *     causal == 0:  all j < S (window is ignored)
 *     causal != 0:  j <= i + (S - T)   (the ends of queries and keys are aligned), and
 *                   with window > 0 also j > i + (S - T) - window (sliding window).
 * A query row that sees no key (causal with T > S) gets zeros.
 * scratch: S floats.  out must not overlap q, k, v or scratch. */
void irt_attention_f32(const float *IRT_RESTRICT q, const float *IRT_RESTRICT k,
                       const float *IRT_RESTRICT v, float *IRT_RESTRICT out,
                       float *IRT_RESTRICT scratch, int T, int S, int heads, int kv_heads,
                       int head_dim, float scale, int causal, int window);

/* ------------------------------------------------------------------ KV cache */

/* KV cache layout: cache[layers][kv_heads][capacity][head_dim] (K and V are separate
 * buffers), so the keys of one kv head are contiguous, one row per slot.
 *
 * Writes the T rows of new_rows [T][kv_heads*head_dim] (positions pos .. pos+T-1) into
 * layer `layer`: row t goes to slot pos + t (ring == 0; the caller guarantees
 * pos + T <= capacity) or to slot (pos + t) % capacity (ring != 0; when T > capacity only
 * the last `capacity` rows survive, exactly as if all rows were written in order).
 * pos >= 0.  new_rows must not overlap the cache. */
void irt_kv_write_f32(float *IRT_RESTRICT cache, const float *IRT_RESTRICT new_rows,
                      int layer, int kv_heads, int capacity, int head_dim, int T, int pos,
                      int ring);

/* Attention of T new query rows over a KV cache (layout as above), after their own keys
 * and values were written with irt_kv_write_f32.  q, out [T][heads*head_dim]; query row i
 * is at position p = end - T + i.  The cache holds positions first .. end-1 with
 * first = max(0, end - capacity) (slot = position % capacity when ring, = position
 * otherwise), and query p attends causally to the held positions first .. p, with
 *   score = scale * dot(q head h, key of kv head h / (heads / kv_heads)).
 * (For T == 1, or a linear cache, first .. p is max(0, p - capacity + 1) .. p.)
 * Preconditions: end - first >= T (every query row is still held); ring == 0 needs
 * end <= capacity.  scratch: capacity floats.  out must not overlap q, the caches or
 * scratch.  Cost per cached position and head: one pass of dot products over the kv
 * head's contiguous keys (4 keys per pass) and one pass accumulating the values. */
void irt_cached_attention_f32(const float *IRT_RESTRICT q, const float *IRT_RESTRICT kcache,
                              const float *IRT_RESTRICT vcache, float *IRT_RESTRICT out,
                              float *IRT_RESTRICT scratch, int layer, int heads,
                              int kv_heads, int head_dim, int capacity, int T, int end,
                              int ring, float scale);

/* irt_cached_attention_f32 for head_dim == 8 (the parameter is left out): the query heads
 * that share a kv head are taken two at a time, so each cached key and value row is loaded
 * once per pair; the softmax max is tracked while scoring and the exp has no range checks
 * (irt_attention_hd8.c).  About 47 instructions per cached position and query head on RV32
 * against about 90 for the generic kernel.  scratch: 2 * capacity floats. */
void irt_cached_attention_hd8_f32(const float *IRT_RESTRICT q,
                                  const float *IRT_RESTRICT kcache,
                                  const float *IRT_RESTRICT vcache, float *IRT_RESTRICT out,
                                  float *IRT_RESTRICT scratch, int layer, int heads,
                                  int kv_heads, int capacity, int T, int end, int ring,
                                  float scale);

#if defined(__cplusplus)
}
#endif


/* With -DIRT_PROFILE, calls from generated code are counted per kernel (irt_profile.h). */
#if defined(IRT_PROFILE) && !defined(IRT_RUNTIME_SOURCE)
#include "irt_profile.h"
#define irt_linear_f32(...) IRT_PROFILE_CALL("linear_f32", irt_linear_f32(__VA_ARGS__))
#define irt_linear_packed_f32(...) \
    IRT_PROFILE_CALL("linear_packed_f32", irt_linear_packed_f32(__VA_ARGS__))
#define irt_linear_packed_residual_f32(...) \
    IRT_PROFILE_CALL("linear_packed_residual_f32", irt_linear_packed_residual_f32(__VA_ARGS__))
#define irt_embedding_packed_f32(...) \
    IRT_PROFILE_CALL("embedding_packed_f32", irt_embedding_packed_f32(__VA_ARGS__))
#define irt_matmul_f32(...) IRT_PROFILE_CALL("matmul_f32", irt_matmul_f32(__VA_ARGS__))
#define irt_rms_norm_f32(...) IRT_PROFILE_CALL("rms_norm_f32", irt_rms_norm_f32(__VA_ARGS__))
#define irt_layer_norm_f32(...) \
    IRT_PROFILE_CALL("layer_norm_f32", irt_layer_norm_f32(__VA_ARGS__))
#define irt_rope_f32(...) IRT_PROFILE_CALL("rope_f32", irt_rope_f32(__VA_ARGS__))
#define irt_rope_hd8_f32(...) IRT_PROFILE_CALL("rope_hd8_f32", irt_rope_hd8_f32(__VA_ARGS__))
#define irt_rope_hd8_kv_f32(...) \
    IRT_PROFILE_CALL("rope_hd8_kv_f32", irt_rope_hd8_kv_f32(__VA_ARGS__))
#define irt_linear_packed_kv_f32(...) \
    IRT_PROFILE_CALL("linear_packed_kv_f32", irt_linear_packed_kv_f32(__VA_ARGS__))
#define irt_embedding_f32(...) IRT_PROFILE_CALL("embedding_f32", irt_embedding_f32(__VA_ARGS__))
#define irt_position_embedding_f32(...) \
    IRT_PROFILE_CALL("position_embedding_f32", irt_position_embedding_f32(__VA_ARGS__))
#define irt_add_f32(...) IRT_PROFILE_CALL("add_f32", irt_add_f32(__VA_ARGS__))
#define irt_mul_f32(...) IRT_PROFILE_CALL("mul_f32", irt_mul_f32(__VA_ARGS__))
#define irt_silu_f32(...) IRT_PROFILE_CALL("silu_f32", irt_silu_f32(__VA_ARGS__))
#define irt_silu_mul_f32(...) IRT_PROFILE_CALL("silu_mul_f32", irt_silu_mul_f32(__VA_ARGS__))
#define irt_add_inplace_f32(...) \
    IRT_PROFILE_CALL("add_inplace_f32", irt_add_inplace_f32(__VA_ARGS__))
#define irt_gelu_f32(...) IRT_PROFILE_CALL("gelu_f32", irt_gelu_f32(__VA_ARGS__))
#define irt_softmax_f32(...) IRT_PROFILE_CALL("softmax_f32", irt_softmax_f32(__VA_ARGS__))
#define irt_attention_f32(...) IRT_PROFILE_CALL("attention_f32", irt_attention_f32(__VA_ARGS__))
#define irt_kv_write_f32(...) IRT_PROFILE_CALL("kv_write_f32", irt_kv_write_f32(__VA_ARGS__))
#define irt_cached_attention_f32(...) \
    IRT_PROFILE_CALL("cached_attention_f32", irt_cached_attention_f32(__VA_ARGS__))
#define irt_cached_attention_hd8_f32(...) \
    IRT_PROFILE_CALL("cached_attention_hd8_f32", irt_cached_attention_hd8_f32(__VA_ARGS__))
#endif

#endif /* IRT_KERNELS_H */
