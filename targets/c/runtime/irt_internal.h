/*
 * irt_internal.h - helpers shared by the runtime's sources; not part of the API.
 */
#ifndef IRT_INTERNAL_H
#define IRT_INTERNAL_H

#include "irt_kernels.h"

#include <math.h>

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

#endif /* IRT_INTERNAL_H */
