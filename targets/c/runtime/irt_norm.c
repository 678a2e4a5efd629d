/*
 * irt_norm.c - RMSNorm and LayerNorm over the last dimension of [T][D].
 *
 * The row sums use four partial accumulators: independent FMA chains hide the FPU
 * latency on an in-order core, and the error grows more slowly than with one chain.
 */
#include "irt_internal.h"

/* sum_d x[d] * x[d] */
static float irt__sum_squares(const float *x, int D)
{
    float s0 = 0.0f, s1 = 0.0f, s2 = 0.0f, s3 = 0.0f;
    int d = 0;
    for (; d + 4 <= D; d += 4) {
        s0 = IRT_FMA(x[d], x[d], s0);
        s1 = IRT_FMA(x[d + 1], x[d + 1], s1);
        s2 = IRT_FMA(x[d + 2], x[d + 2], s2);
        s3 = IRT_FMA(x[d + 3], x[d + 3], s3);
    }
    for (; d < D; ++d)
        s0 = IRT_FMA(x[d], x[d], s0);
    return (s0 + s1) + (s2 + s3);
}

/* sum_d (x[d] - c) ^ 2 */
static float irt__sum_squares_centred(const float *x, int D, float c)
{
    float s0 = 0.0f, s1 = 0.0f, s2 = 0.0f, s3 = 0.0f;
    int d = 0;
    for (; d + 4 <= D; d += 4) {
        const float e0 = x[d] - c, e1 = x[d + 1] - c, e2 = x[d + 2] - c, e3 = x[d + 3] - c;
        s0 = IRT_FMA(e0, e0, s0);
        s1 = IRT_FMA(e1, e1, s1);
        s2 = IRT_FMA(e2, e2, s2);
        s3 = IRT_FMA(e3, e3, s3);
    }
    for (; d < D; ++d) {
        const float e = x[d] - c;
        s0 = IRT_FMA(e, e, s0);
    }
    return (s0 + s1) + (s2 + s3);
}

static float irt__sum(const float *x, int D)
{
    float s0 = 0.0f, s1 = 0.0f, s2 = 0.0f, s3 = 0.0f;
    int d = 0;
    for (; d + 4 <= D; d += 4) {
        s0 += x[d];
        s1 += x[d + 1];
        s2 += x[d + 2];
        s3 += x[d + 3];
    }
    for (; d < D; ++d)
        s0 += x[d];
    return (s0 + s1) + (s2 + s3);
}

void irt_rms_norm_f32(const float *x, const float *restrict g, float *y, int T, int D,
                      float eps)
{
    int t, d;
    for (t = 0; t < T; ++t) {
        const float *xr = x + t * D;
        float *yr = y + t * D;
        const float ms = irt__sum_squares(xr, D) / (float)D;
        const float inv = 1.0f / sqrtf(ms + eps);
        /* Element d is read before it is written: in place is fine.  Eight per pass: the
         * loop's bumps and branch are a third of the work at one element per pass. */
        for (d = 0; d + 8 <= D; d += 8) {
            const float y0 = xr[d] * inv * g[d], y1 = xr[d + 1] * inv * g[d + 1];
            const float y2 = xr[d + 2] * inv * g[d + 2], y3 = xr[d + 3] * inv * g[d + 3];
            const float y4 = xr[d + 4] * inv * g[d + 4], y5 = xr[d + 5] * inv * g[d + 5];
            const float y6 = xr[d + 6] * inv * g[d + 6], y7 = xr[d + 7] * inv * g[d + 7];
            yr[d] = y0;
            yr[d + 1] = y1;
            yr[d + 2] = y2;
            yr[d + 3] = y3;
            yr[d + 4] = y4;
            yr[d + 5] = y5;
            yr[d + 6] = y6;
            yr[d + 7] = y7;
        }
        for (; d < D; ++d)
            yr[d] = xr[d] * inv * g[d];
    }
}

void irt_layer_norm_f32(const float *x, const float *restrict g, const float *restrict b,
                        float *y, int T, int D, float eps)
{
    int t, d;
    for (t = 0; t < T; ++t) {
        const float *xr = x + t * D;
        float *yr = y + t * D;
        const float mean = irt__sum(xr, D) / (float)D;
        const float var = irt__sum_squares_centred(xr, D, mean) / (float)D;
        const float inv = 1.0f / sqrtf(var + eps);
        for (d = 0; d < D; ++d)
            yr[d] = IRT_FMA((xr[d] - mean) * inv, g[d], b[d]);
    }
}
