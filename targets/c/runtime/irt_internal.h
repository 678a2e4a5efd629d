/*
 * irt_internal.h - helpers shared by the runtime's sources; not part of the API.
 */
#ifndef IRT_INTERNAL_H
#define IRT_INTERNAL_H

/* The runtime calls its kernels directly, never through irt_profile.h's wrappers. */
#define IRT_RUNTIME_SOURCE
#include "irt_kernels.h"

#include <math.h>
#include <stddef.h>

/* a * b + c, fused where the target has a fast fused multiply-add (rv32 F: fmadd.s).
 * __builtin_fmaf stays inline even under -ffreestanding / -fno-builtin.  Elsewhere (e.g. a
 * host without FMA) it is the plain expression, which ISO C mode does not contract. */
#if defined(__FP_FAST_FMAF) && defined(__GNUC__)
#define IRT_FMA(a, b, c) __builtin_fmaf((a), (b), (c))
#elif defined(__FP_FAST_FMAF)
#define IRT_FMA(a, b, c) fmaf((a), (b), (c))
#else
#define IRT_FMA(a, b, c) ((a) * (b) + (c))
#endif

/* round(v) (nearest, ties to even) clipped to [lo, hi]; lo and hi are integers with
 * |lo|, |hi| <= 2^22.  NaN gives lo.  Clipping first is the same as clipping the rounded
 * value, as lo and hi are integers and rounding is monotonic. */
static inline int32_t irt__round_clip(float v, float lo, float hi)
{
    if (!(v >= lo))
        v = lo;
    else if (v > hi)
        v = hi;
#if defined(__riscv) && defined(__riscv_flen) && defined(__GNUC__)
    {
        /* One instruction, with the rounding mode in the instruction (not the dynamic
         * one): exactly nearbyintf in the default mode, without a libm call. */
        int32_t r;
        __asm__("fcvt.w.s %0, %1, rne" : "=r"(r) : "f"(v));
        return r;
    }
#else
    {
        /* |v| <= 2^22: adding 1.5 * 2^23 leaves no fraction bits, so the sum is rounded
         * to an integer in the current (default: ties-to-even) mode; subtracting is
         * exact.  ISO C rounds each assignment to float (no excess precision). */
        const float magic = 12582912.0f;
        float r = v + magic;
        r = r - magic;
        return (int32_t)r;
    }
#endif
}

/* y[n] = dot(x[0..K-1], w[n*ldw .. n*ldw+K-1]) (+ bias[n] if bias != NULL), n < N.
 * Four rows of w per pass, each read sequentially. */
void irt__dot_rows_f32(const float *restrict x, const float *restrict w, int ldw,
                       const float *restrict bias, float *restrict y, int N, int K);

/* y[n] = (accumulate ? y[n] : 0) + sum_{j<J} p[j] * v[j*ldv + n], n < N.
 * Eight (then four, then one) columns per pass, accumulated in registers. */
void irt__weighted_rows_f32(const float *restrict p, const float *restrict v, int ldv,
                            float *restrict y, int J, int N, int accumulate);

/* In place: s[j] = exp(scale * s[j] - max_j(scale * s[j])), j < J (J >= 1).
 * Returns the sum of the new s[j]. */
float irt__softmax_numerators_f32(float *s, int J, float scale);

/* A softmax of irt_cached_attention_i8: rewrites s[0..J-1] in place as unnormalised weights
 * and returns their sum (irt__softmax_numerators_f32, or the integer one of irt_intops.c,
 * whose weights are already normalised and which returns 1). */
typedef float (*irt__softmax_fn)(float *s, int J, float scale);

/* irt_cached_attention_i8 with the given softmax (irt_quant.c). */
void irt__cached_attention_i8_with(const float *IRT_RESTRICT q,
                                   const int8_t *IRT_RESTRICT kcache,
                                   const float *IRT_RESTRICT kscales,
                                   const int8_t *IRT_RESTRICT vcache,
                                   const float *IRT_RESTRICT vscales, float *IRT_RESTRICT out,
                                   float *IRT_RESTRICT scratch, int layer, int heads,
                                   int kv_heads, int head_dim, int capacity, int T, int end,
                                   int ring, float scale, irt__softmax_fn softmax);

/* The end of a 4-output pass of a linear kernel: y[0..3] = a0..a3 (+ bias[0..3] unless NULL). */
static inline void irt__store4_bias(float *y, const float *bias, float a0, float a1, float a2,
                                    float a3)
{
    if (bias != NULL) {
        a0 += bias[0];
        a1 += bias[1];
        a2 += bias[2];
        a3 += bias[3];
    }
    y[0] = a0;
    y[1] = a1;
    y[2] = a2;
    y[3] = a3;
}

/* exp(x) in single precision without a libm call, within 2 ulp of expf on [-87, 88].
 * Why: softmax and SiLU call exp once per score or element, and picolibc's expf costs about a
 * hundred instructions on an FPU-only core; this is about twenty.
 * x = n*ln2 + r with n = round(x/ln2) (Cody-Waite split of ln2, so r is exact to float
 * precision), |r| <= ln2/2; exp(r) by its Taylor polynomial of degree 7 (truncation error
 * below 7e-9 relative); 2^n built in the exponent bits. Below -87.3 the result is 0 (softmax
 * weights that small vanish in float32 sums anyway), above 88.7 it is +inf. */
static inline float irt__expf(float x)
{
    union { float f; uint32_t u; } scale;
    float t, n, r, p;
    int32_t ni;
    if (x < -87.3f)
        return 0.0f;
    if (x > 88.7f)
        return INFINITY;
    t = x * 1.44269504088896341f + 12582912.0f; /* + 1.5 * 2^23 rounds to an integer */
    n = t - 12582912.0f;
    ni = (int32_t)n;
    r = x - n * 0.693145751953125f;   /* ln2, high part: exact product for |n| < 2^9 */
    r = r - n * 1.42860682030941723e-6f; /* ln2, low part */
    p = 1.98412698412698413e-4f;          /* 1/7! */
    p = IRT_FMA(p, r, 1.38888888888888889e-3f);
    p = IRT_FMA(p, r, 8.33333333333333333e-3f);
    p = IRT_FMA(p, r, 4.16666666666666667e-2f);
    p = IRT_FMA(p, r, 1.66666666666666667e-1f);
    p = IRT_FMA(p, r, 0.5f);
    p = IRT_FMA(p, r, 1.0f);
    p = IRT_FMA(p, r, 1.0f);
    if (ni > 127) { /* x just below 88.7: 2^128 overflows the exponent field */
        p *= 2.0f;
        ni -= 1;
    }
    scale.u = (uint32_t)(ni + 127) << 23;
    return p * scale.f;
}

/* dst[i] = src[i], i < n, four floats per pass.  Why not a plain loop: gcc turns that into a
 * call of the C library's memcpy, which picolibc's size-optimised build copies byte by byte
 * (about 7 instructions per byte). */
static inline void irt__copy_f32(float *restrict dst, const float *restrict src, int n)
{
    int i = 0;
    for (; i + 4 <= n; i += 4) {
        const float a = src[i], b = src[i + 1], c = src[i + 2], d = src[i + 3];
        dst[i] = a;
        dst[i + 1] = b;
        dst[i + 2] = c;
        dst[i + 3] = d;
    }
    if (n & 2) { /* no loop here either: gcc would make it a memcpy call */
        const float a = src[i], b = src[i + 1];
        dst[i] = a;
        dst[i + 1] = b;
        i += 2;
    }
    if (n & 1)
        dst[i] = src[i];
}

/* Two 8-long dot products over one row k0..k7 (locals of the caller): queries a0..a7 into sa
 * and b0..b7 into sb, each a chain of fused multiply-adds in index order.  Shared by the
 * head_dim-8 attention kernels (fp32 and int8 caches), so both score in the same order. */
#define IRT_DOT8_PAIR(sa, sb)                                                           \
    do {                                                                                \
        (sa) = a0 * k0;                                                                 \
        (sb) = b0 * k0;                                                                 \
        (sa) = IRT_FMA(a1, k1, (sa));                                                   \
        (sb) = IRT_FMA(b1, k1, (sb));                                                   \
        (sa) = IRT_FMA(a2, k2, (sa));                                                   \
        (sb) = IRT_FMA(b2, k2, (sb));                                                   \
        (sa) = IRT_FMA(a3, k3, (sa));                                                   \
        (sb) = IRT_FMA(b3, k3, (sb));                                                   \
        (sa) = IRT_FMA(a4, k4, (sa));                                                   \
        (sb) = IRT_FMA(b4, k4, (sb));                                                   \
        (sa) = IRT_FMA(a5, k5, (sa));                                                   \
        (sb) = IRT_FMA(b5, k5, (sb));                                                   \
        (sa) = IRT_FMA(a6, k6, (sa));                                                   \
        (sb) = IRT_FMA(b6, k6, (sb));                                                   \
        (sa) = IRT_FMA(a7, k7, (sa));                                                   \
        (sb) = IRT_FMA(b7, k7, (sb));                                                   \
    } while (0)

/* ------------------------------------------------------------------ exp without range checks
 * For loops that call exp once per element (softmax inside attention, SiLU): 2^x = 2^n 2^r
 * with n = round(x) and r = x - n in [-1/2, 1/2]; n is rounded by adding a magic number, and
 * 2^n is that sum's bits shifted into the exponent field; 2^r is a polynomial.  The caller
 * keeps x in [-126, 127] (a shift to the maximum and one fmax in softmax; fmax + fmin in
 * SiLU), so there are no branches: 13 instructions per exp.  Relative error below 2e-7. */

#define IRT_LOG2E 1.44269504088896341f
/* 1.5 * 2^23 + 127: adding it rounds to an integer, and its low 9 bits are the exponent bias,
 * so (bits(s + magic - M) << 23) is the exponent field of 2^(round(s) - M). */
#define IRT_EXP2_MAGIC 12583039.0f

#if defined(__riscv) && defined(__riscv_flen) && defined(__GNUC__)
#define IRT_RISCV_F_ASM 1
#else
#define IRT_RISCV_F_ASM 0
#endif

/* max(a, b) / min(a, b) of two non-NaN floats: one fmax.s / fmin.s with the F extension (gcc
 * 12 calls fmaxf for __builtin_fmaxf there), the library function elsewhere. */
static inline float irt__fmax(float a, float b)
{
#if IRT_RISCV_F_ASM
    float r;
    __asm__("fmax.s %0, %1, %2" : "=f"(r) : "f"(a), "f"(b));
    return r;
#else
    return fmaxf(a, b);
#endif
}

static inline float irt__fmin(float a, float b)
{
#if IRT_RISCV_F_ASM
    float r;
    __asm__("fmin.s %0, %1, %2" : "=f"(r) : "f"(a), "f"(b));
    return r;
#else
    return fminf(a, b);
#endif
}
#define IRT_FMAXF(a, b) irt__fmax((a), (b))

/* The shift of one head's pass 2: M = round(max score), c = magic - M, lo = M - 126. */
typedef struct {
    float c, lo;
} irt__shift;

static inline irt__shift irt__shift_of(float max_score)
{
    irt__shift s;
    const float m = (max_score + IRT_EXP2_MAGIC) - IRT_EXP2_MAGIC; /* round to an integer */
    s.c = IRT_EXP2_MAGIC - m;
    s.lo = m - 126.0f;
    return s;
}

/* The float whose bits are those of t shifted left by 23: for t = 2^23 + 2^22 + 127 + k
 * (|k| < 127) that is 2^k.  With the F extension one fmv.x.w, slli, fmv.w.x in a row (gcc 12
 * otherwise moves t through the integer registers twice). */
static inline float irt__exponent_field(float t)
{
#if IRT_RISCV_F_ASM
    float e;
    uint32_t bits;
    __asm__("fmv.x.w %1, %2\n\tslli %1, %1, 23\n\tfmv.w.x %0, %1"
            : "=f"(e), "=&r"(bits)
            : "f"(t));
    return e;
#else
    union {
        float f;
        uint32_t u;
    } v;
    v.f = t;
    v.u <<= 23;
    return v.f;
#endif
}

/* The coefficients of P below, held in registers across a loop (see irt__pin). */
typedef struct {
    float c1, c2, c3, c4, c5;
} irt__exp2_poly;

/* Hides a value's origin from the compiler, so a constant is kept in a register across a
 * loop: without this gcc 12 rebuilds the polynomial's constants inside the loop (lui + fmv
 * or a load, two instructions each, per use). */
#if IRT_RISCV_F_ASM
#define irt__pin(x) __asm__("" : "+f"(x))
#else
#define irt__pin(x) ((void)0)
#endif

static inline irt__exp2_poly irt__exp2_coefficients(void)
{
    /* 2^r = 1 + r P(r), P of degree 4 fitted for relative error on [-1/2, 1/2]. */
    irt__exp2_poly c = {6.931470036506653e-1f, 2.4022242426872253e-1f, 5.550733581185341e-2f,
                        9.671512991189957e-3f, 1.326472731307149e-3f};
    irt__pin(c.c1);
    irt__pin(c.c2);
    irt__pin(c.c3);
    irt__pin(c.c4);
    irt__pin(c.c5);
    return c;
}

/* The range reduction of 2^(s - M): s clamped to M - 126 from below, *r = s - round(s) in
 * [-1/2, 1/2] and the return value 2^(round(s) - M), an exponent-field write (6 instructions
 * with the fmax). */
static inline float irt__exp2_reduce(float s, irt__shift sh, float *r)
{
    float t;
    s = IRT_FMAXF(s, sh.lo);
    t = s + sh.c;                          /* the integer c + round(s), in [2^23, 2^24) */
    *r = s - (t - sh.c);                   /* s - round(s), in [-1/2, 1/2] */
    return irt__exponent_field(t);         /* 2^(round(s) - M) */
}

/* 2^(s - M) for s <= M + 1/2 (relative error below 2e-7; 2^(lo - M) for s < lo). */
static inline float irt__exp2_shifted(float s, irt__shift sh, irt__exp2_poly c)
{
    float r, p;
    const float e = irt__exp2_reduce(s, sh, &r);
    p = IRT_FMA(c.c5, r, c.c4);
    p = IRT_FMA(p, r, c.c3);
    p = IRT_FMA(p, r, c.c2);
    p = IRT_FMA(p, r, c.c1);
    return IRT_FMA(e * r, p, e); /* e (1 + r P(r)) without a register for the constant 1 */
}

/* ------------------------------------------------------------- softmax weights, degree 4
 * For the weights of a softmax over scores already shifted to their maximum (the cached
 * attention: every s - M <= 1/2 and the weights are divided by their sum, so what counts is
 * their relative error, not an absolute one near 1): 2^r = 1 + r Q(r) with Q of degree 3,
 * fitted (a linear program over 4001 points) for relative error on [-1/2, 1/2]; in float32
 * below 3e-6 relative (irt__exp2_shifted's is 2e-7), one fused multiply-add and one
 * register fewer than it: 12 instructions per weight, the fmax clamp included.  The
 * attention's outputs move by at most about twice that, relatively. */
typedef struct {
    float c1, c2, c3, c4;
} irt__exp2_poly4;

#define IRT_EXP2_SOFTMAX_RTOL 3e-6f

static inline irt__exp2_poly4 irt__exp2_softmax_coefficients(void)
{
    irt__exp2_poly4 c = {6.931241154670715e-1f, 2.4024106562137604e-1f, 5.590682849287987e-2f,
                         9.582576341927052e-3f};
    irt__pin(c.c1);
    irt__pin(c.c2);
    irt__pin(c.c3);
    irt__pin(c.c4);
    return c;
}

/* 2^(s - M) for s <= M + 1/2 to IRT_EXP2_SOFTMAX_RTOL (2^(lo - M) below lo). */
static inline float irt__exp2_softmax(float s, irt__shift sh, irt__exp2_poly4 c)
{
    float r, p;
    const float e = irt__exp2_reduce(s, sh, &r);
    p = IRT_FMA(c.c4, r, c.c3);
    p = IRT_FMA(p, r, c.c2);
    p = IRT_FMA(p, r, c.c1);
    return IRT_FMA(e * r, p, e);
}

#endif /* IRT_INTERNAL_H */
