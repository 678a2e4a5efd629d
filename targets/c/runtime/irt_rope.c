/*
 * irt_rope.c - rotary position embedding on [T][heads * head_dim].
 */
#include "irt_internal.h"

void irt_rope_f32(const float *x, const float *restrict cos_table,
                  const float *restrict sin_table, float *y, int T, int heads, int head_dim,
                  int rotary_dim, int start, int style)
{
    const int half = rotary_dim / 2;
    const int width = heads * head_dim;
    int t, h, i;

    for (t = 0; t < T; ++t) {
        const float *c = cos_table + (start + t) * half;
        const float *s = sin_table + (start + t) * half;
        for (h = 0; h < heads; ++h) {
            const float *xh = x + t * width + h * head_dim;
            float *yh = y + t * width + h * head_dim;
            /* Each pair is read completely before either element is written, so
             * y == x is fine. */
            if (style == 0) {
                for (i = 0; i < half; ++i) {
                    const float a = xh[2 * i], b = xh[2 * i + 1];
                    yh[2 * i] = a * c[i] - b * s[i];
                    yh[2 * i + 1] = a * s[i] + b * c[i];
                }
            } else {
                for (i = 0; i < half; ++i) {
                    const float a = xh[i], b = xh[i + half];
                    yh[i] = a * c[i] - b * s[i];
                    yh[i + half] = b * c[i] + a * s[i];
                }
            }
            if (yh != xh)
                for (i = rotary_dim; i < head_dim; ++i)
                    yh[i] = xh[i];
        }
    }
}
