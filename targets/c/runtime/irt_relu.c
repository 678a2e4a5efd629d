/*
 * irt_relu.c - ReLU (irt_relu.h).
 */
#include "irt_internal.h"
#include "irt_relu.h"

void irt_relu_f32(const float *x, float *y, int n)
{
    int i;
    for (i = 0; i < n; ++i) {
        const float v = x[i];
        y[i] = (v > 0.0f || v != v) ? v : 0.0f;
    }
}
