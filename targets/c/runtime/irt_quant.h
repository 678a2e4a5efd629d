/*
 * irt_quant.h - quantized kernels of irtool's C runtime: int8 activations (w8a8), int8 /
 * grouped int4 / sign (1-bit) weights, 4-bit power-of-two activations for 1-bit weights,
 * and an int8 KV cache.
 *
 * The arithmetic follows irtool's quantization contract (the numpy reference is
 * irtool/numerics/quant.py).  Which results are bit-exact and which agree only to
 * float32 rounding is stated per kernel:
 *   bit-exact  irt_quantize_act_i8, irt_matvec_i8_acc, irt_linear_w8a8,
 *              irt_quantize_act_a4, irt_linear_w1a4, irt_kv_write_i8 (codes and scales);
 *   rounding   irt_linear_w8, irt_linear_w4g, irt_linear_w1, irt_cached_attention_i8
 *              (float sums in an unspecified order, fused multiply-adds where available).
 * The bit-exact ones need ISO C floating point: compile with -std=c99 (GCC then neither
 * contracts a * b + c into a fused multiply-add nor keeps excess precision), never with
 * -ffast-math, and keep the default rounding mode (round to nearest, ties to even).
 *
 * Conventions are those of irt_kernels.h (row-major activations [T][features], weights
 * [N][K] = out x in, sizes are int >= 0, outputs never overlap inputs, nothing is checked
 * at run time).  No dynamic allocation; nothing from libm: the rounding is the runtime's
 * own (one fcvt.w.s with static round-to-nearest-even on RISC-V F, the 1.5 * 2^23 trick
 * elsewhere), and both equal C's nearbyintf / numpy's np.rint.
 *
 * Rounding, as used below:  round(v) = nearest integer, ties to even (np.rint);
 * clip(v, lo, hi) = min(max(v, lo), hi).  A NaN input quantizes to the lowest code of its
 * range; inputs of +-inf saturate.  Divisions are single float32 divisions (x / scale,
 * never x * (1 / scale), which rounds differently).
 */
#ifndef IRT_QUANT_H
#define IRT_QUANT_H

#include "irt_kernels.h" /* IRT_RESTRICT, <stdint.h> */

#if defined(__cplusplus)
extern "C" {
#endif

/* ------------------------------------------------------------------ w8a8 (int8 x int8) */

/* Asymmetric per-tensor int8 quantization of activations, i < n:
 *   xq[i] = clip(round(x[i] / scale) + zero_point, -128, 127)
 * with x[i] / scale one float32 division.  scale > 0 (the compiler stores 1.0 for a zero
 * calibration range), -128 <= zero_point <= 127.  xq must not overlap x. */
void irt_quantize_act_i8(const float *IRT_RESTRICT x, int8_t *IRT_RESTRICT xq, int n,
                         float scale, int32_t zero_point);

/* Exact int32 accumulators of the integer matmul:
 *   acc[t][n] = sum_k (int32(xq[t][k]) - zx) * int32(wq[n][k])
 * xq [T][K], wq [N][K], acc [T][N].  -128 <= zx <= 127.  Exact (no overflow) for
 * K <= 65793 (|term| <= 255 * 128).  Walks 4 weight rows per pass, each sequentially,
 * sharing each (xq - zx) between them. */
void irt_matvec_i8_acc(const int8_t *IRT_RESTRICT xq, int32_t zx,
                       const int8_t *IRT_RESTRICT wq, int32_t *IRT_RESTRICT acc,
                       int T, int K, int N);

/* Integer-only linear layer:  y[t][n] = float32(acc[t][n]) * m[n]  (+ bias[n])
 * with acc as irt_matvec_i8_acc computes it and m[n] = float32(sx * s[n]) precomputed by
 * the compiler (sx the activation scale, s the weight scales).  One float32 multiply, then
 * one float32 add (never fused): bit-exact with the reference.  bias may be NULL.
 * y [T][N] must not overlap the inputs. */
void irt_linear_w8a8(const int8_t *IRT_RESTRICT xq, int32_t x_zero_point,
                     const int8_t *IRT_RESTRICT wq, const float *IRT_RESTRICT m,
                     const float *IRT_RESTRICT bias_or_null, float *IRT_RESTRICT y,
                     int T, int K, int N);

/* ------------------------------------------------------------------ w8 (int8 weights) */

/* Weight-only int8 with float activations:
 *   y[t][n] = s[n] * sum_k x[t][k] * float(wq[n][k])  (+ bias[n])
 * per_tensor == 0: s [N] (per output channel); per_tensor != 0: s [1], s[0] for every n.
 * Float accumulation (agrees with the reference to float32 rounding).  4 weight rows per
 * pass, as irt_linear_f32. */
void irt_linear_w8(const float *IRT_RESTRICT x, const int8_t *IRT_RESTRICT wq,
                   const float *IRT_RESTRICT s, const float *IRT_RESTRICT bias_or_null,
                   float *IRT_RESTRICT y, int T, int K, int N, int per_tensor);

/* ------------------------------------------------------------------ w4 (grouped int4) */

/* Weight-only symmetric int4 in groups of `group` along K (the last group is shorter when
 * K % group != 0):
 *   y[t][n] = sum_g scales[n][g] * sum_{k in g} x[t][k] * float(q[n][k])  (+ bias[n])
 * Packing: row n is ceil(K/2) bytes at wpacked + n * ceil(K/2); byte j holds q[n][2j] in
 * its low nibble and q[n][2j+1] in its high nibble, 4-bit two's complement (-8..7; the
 * contract produces -7..7); for odd K the high nibble of the last byte is padding and is
 * ignored.  scales [N][ceil(K/group)].  group is even and >= 2 (the contract uses 32).
 * Float accumulation; 4 weight rows per pass. */
void irt_linear_w4g(const float *IRT_RESTRICT x, const uint8_t *IRT_RESTRICT wpacked,
                    const float *IRT_RESTRICT scales, const float *IRT_RESTRICT bias_or_null,
                    float *IRT_RESTRICT y, int T, int K, int N, int group);

/* ------------------------------------------------------------------ w1 (sign weights) */

/* Sign weights: bit (n, k) = 1 means +1, 0 means -1.  Row n is ceil(K/8) bytes at
 * wbits + n * ceil(K/8); bit k of the row is bit (k % 8) of byte k / 8 (least significant
 * bit first); padding bits of the last byte are ignored.
 *   y[t][n] = alpha[n] * sum_k (bit ? x[t][k] : -x[t][k])  (+ bias[n])
 * alpha [N].  Float accumulation; 4 weight rows per pass, signs from a 16-entry table. */
void irt_linear_w1(const float *IRT_RESTRICT x, const uint8_t *IRT_RESTRICT wbits,
                   const float *IRT_RESTRICT alpha, const float *IRT_RESTRICT bias_or_null,
                   float *IRT_RESTRICT y, int T, int K, int N);

/* Largest `group` irt_linear_w1a4 accepts (its group buffers live on the stack). */
#define IRT_W1A4_MAX_GROUP 128

/* 4-bit activations with a power-of-two scale per group of `group` along K (zero point 0),
 * for one row x [K] (the last group is shorter when K % group != 0).  For group g:
 *   m_g  = max_{k in g} |x[k]|
 *   e_g  = ceil(log2(r)) for the float32 r = m_g / 7, evaluated exactly (from the bits of
 *          r, not with log2f, which rounds near powers of two); 0 when r == 0 (m_g == 0).
 *          For normal m_g this is the smallest integer with m_g <= 7 * 2^e_g.
 *   xq[k] = clip(round(x[k] / 2^e_g), -8, 7)   (2^e_g exact, the division exact up to
 *          subnormal results; by the choice of e_g the codes stay in -7..7)
 * exponents [ceil(K/group)] receives e_g (in -149..126).  group >= 1.  NaN and inf inputs
 * give unspecified (but in-range) codes. */
void irt_quantize_act_a4(const float *IRT_RESTRICT x, int8_t *IRT_RESTRICT xq,
                         int *IRT_RESTRICT exponents, int K, int group);

/* Sign weights (layout as irt_linear_w1) times 4-bit activations: each row x[t] is
 * quantized as irt_quantize_act_a4 does, then
 *   acc[t][n][g] = sum_{k in g} xq[t][k] * (bit ? +1 : -1)           exact int32
 *   y[t][n] = alpha[n] * sum_g float32(acc[t][n][g]) * 2^e_g  (+ bias[n])
 * where the sum over g is a float32 sum in increasing g starting from the g = 0 term, then
 * one multiply by alpha[n] and one add of bias[n]: bit-exact with the reference.
 * group is a multiple of 8 with 8 <= group <= IRT_W1A4_MAX_GROUP (the contract uses 32).
 * Works one group at a time (quantized into a stack buffer) for every output row, so y[t]
 * doubles as the accumulator; the +-1 sums use 4 activations per 32-bit word (byte
 * lanes). */
void irt_linear_w1a4(const float *IRT_RESTRICT x, const uint8_t *IRT_RESTRICT wbits,
                     const float *IRT_RESTRICT alpha, const float *IRT_RESTRICT bias_or_null,
                     float *IRT_RESTRICT y, int T, int K, int N, int group);

/* ------------------------------------------------------------------ int8 KV cache */

/* int8 KV cache: codes cache[layers][kv_heads][capacity][head_dim] (int8) and one scale per
 * row, scales[layers][kv_heads][capacity] (float32); K and V each have their own pair.
 *
 * Writes the T rows of new_rows [T][kv_heads*head_dim] (positions pos .. pos+T-1) into
 * layer `layer`, at the slots irt_kv_write_f32 uses (pos + t, or (pos + t) % capacity when
 * ring; with ring and T > capacity only the last `capacity` rows are written).  Each
 * (row, kv head) slice r of head_dim values becomes
 *   s = max_d |r[d]| / 127   (float32 division; 1.0 when that is 0)
 *   q[d] = clip(round(r[d] / s), -127, 127)
 * new_rows must not overlap the cache or the scales. */
void irt_kv_write_i8(int8_t *IRT_RESTRICT cache, float *IRT_RESTRICT scales,
                     const float *IRT_RESTRICT new_rows, int layer, int kv_heads,
                     int capacity, int head_dim, int T, int pos, int ring);

/* irt_cached_attention_f32 (same positions, slots, preconditions and scratch: capacity
 * floats) over int8 caches written by irt_kv_write_i8, each cached value read as
 * float32(q) * s of its row.  Computed as
 *   score_j = scale * (kscale_j * dot(q head, float(kq_j))),
 *   out = (sum_j exp(score_j - max) * vscale_j * float(vq_j)) / sum_j exp(score_j - max),
 * so it agrees with attention over the dequantized rows to float32 rounding.
 * out must not overlap q, the caches, the scales or scratch. */
void irt_cached_attention_i8(const float *IRT_RESTRICT q, const int8_t *IRT_RESTRICT kcache,
                             const float *IRT_RESTRICT kscales,
                             const int8_t *IRT_RESTRICT vcache,
                             const float *IRT_RESTRICT vscales, float *IRT_RESTRICT out,
                             float *IRT_RESTRICT scratch, int layer, int heads, int kv_heads,
                             int head_dim, int capacity, int T, int end, int ring,
                             float scale);

#if defined(__cplusplus)
}
#endif


/* With -DIRT_PROFILE, calls from generated code are counted per kernel (irt_profile.h). */
#if defined(IRT_PROFILE) && !defined(IRT_RUNTIME_SOURCE)
#include "irt_profile.h"
#define irt_quantize_act_i8(...) \
    IRT_PROFILE_CALL("quantize_act_i8", irt_quantize_act_i8(__VA_ARGS__))
#define irt_matvec_i8_acc(...) IRT_PROFILE_CALL("matvec_i8_acc", irt_matvec_i8_acc(__VA_ARGS__))
#define irt_linear_w8a8(...) IRT_PROFILE_CALL("linear_w8a8", irt_linear_w8a8(__VA_ARGS__))
#define irt_linear_w8(...) IRT_PROFILE_CALL("linear_w8", irt_linear_w8(__VA_ARGS__))
#define irt_linear_w4g(...) IRT_PROFILE_CALL("linear_w4g", irt_linear_w4g(__VA_ARGS__))
#define irt_linear_w1(...) IRT_PROFILE_CALL("linear_w1", irt_linear_w1(__VA_ARGS__))
#define irt_quantize_act_a4(...) \
    IRT_PROFILE_CALL("quantize_act_a4", irt_quantize_act_a4(__VA_ARGS__))
#define irt_linear_w1a4(...) IRT_PROFILE_CALL("linear_w1a4", irt_linear_w1a4(__VA_ARGS__))
#define irt_kv_write_i8(...) IRT_PROFILE_CALL("kv_write_i8", irt_kv_write_i8(__VA_ARGS__))
#define irt_cached_attention_i8(...) \
    IRT_PROFILE_CALL("cached_attention_i8", irt_cached_attention_i8(__VA_ARGS__))
#endif

#endif /* IRT_QUANT_H */
