/*
 * irt_internal.h - helpers shared by the runtime's sources; not part of the API.
 */
#ifndef IRT_INTERNAL_H
#define IRT_INTERNAL_H

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

#endif /* IRT_INTERNAL_H */
