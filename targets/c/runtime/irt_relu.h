/*
 * irt_relu.h - ReLU, the activation of OPT's MLP (transformer.relu).
 *
 * Conventions are those of irt_kernels.h.  Kept in its own header and source so that the
 * kernel can be added without touching the shared element-wise sources.
 */
#ifndef IRT_RELU_H
#define IRT_RELU_H

#if defined(__cplusplus)
extern "C" {
#endif

/* y[i] = x[i] > 0 ? x[i] : 0 for i < n; a NaN stays NaN and -0.0 becomes +0.0.  y == x is
 * allowed (each element is read before it is written). */
void irt_relu_f32(const float *x, float *y, int n);

#if defined(__cplusplus)
}
#endif

/* With -DIRT_PROFILE, calls from generated code are counted (irt_profile.h). */
#if defined(IRT_PROFILE) && !defined(IRT_RUNTIME_SOURCE)
#include "irt_profile.h"
#define irt_relu_f32(...) IRT_PROFILE_CALL("relu_f32", irt_relu_f32(__VA_ARGS__))
#endif

#endif /* IRT_RELU_H */
