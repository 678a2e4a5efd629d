/*
 * irt_rope.c - rotary position embedding on [T][heads * head_dim].
 */
#include "irt_internal.h"

#include <stddef.h>

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

/* Why a kernel for 8-wide heads: the cos/sin of the position (4 + 4 values) stay in registers
 * for all heads, and a whole head is one loop turn: 8 loads, 24 arithmetic, 8 stores and 3
 * loop instructions, about 11 per pair against about 25 in irt_rope_f32's loops.  The same
 * expressions as irt_rope_f32, so the same bits. */
/* Inlined into both callers: a call per row would cost a fifth of a small layer's rotation. */
#if defined(__GNUC__)
__attribute__((always_inline))
#endif
static inline void irt__rope_hd8_row(const float *xh, const float *cp, const float *sp, float *yh,
                              int heads, ptrdiff_t ldh, int style)
{
    const float c0 = cp[0], c1 = cp[1], c2 = cp[2], c3 = cp[3];
    const float s0 = sp[0], s1 = sp[1], s2 = sp[2], s3 = sp[3];
    const float *const end = xh + heads * 8;
    /* Each head is read completely before it is written, so y == x is fine. */
    if (style == 0) {
        for (; xh != end; xh += 8, yh += ldh) {
            const float a0 = xh[0], b0 = xh[1], a1 = xh[2], b1 = xh[3];
            const float a2 = xh[4], b2 = xh[5], a3 = xh[6], b3 = xh[7];
            yh[0] = a0 * c0 - b0 * s0;
            yh[1] = a0 * s0 + b0 * c0;
            yh[2] = a1 * c1 - b1 * s1;
            yh[3] = a1 * s1 + b1 * c1;
            yh[4] = a2 * c2 - b2 * s2;
            yh[5] = a2 * s2 + b2 * c2;
            yh[6] = a3 * c3 - b3 * s3;
            yh[7] = a3 * s3 + b3 * c3;
        }
    } else {
        for (; xh != end; xh += 8, yh += ldh) {
            const float a0 = xh[0], a1 = xh[1], a2 = xh[2], a3 = xh[3];
            const float b0 = xh[4], b1 = xh[5], b2 = xh[6], b3 = xh[7];
            yh[0] = a0 * c0 - b0 * s0;
            yh[1] = a1 * c1 - b1 * s1;
            yh[2] = a2 * c2 - b2 * s2;
            yh[3] = a3 * c3 - b3 * s3;
            yh[4] = b0 * c0 + a0 * s0;
            yh[5] = b1 * c1 + a1 * s1;
            yh[6] = b2 * c2 + a2 * s2;
            yh[7] = b3 * c3 + a3 * s3;
        }
    }
}

void irt_rope_hd8_f32(const float *x, const float *restrict cos_table,
                      const float *restrict sin_table, float *y, int T, int heads, int start,
                      int style)
{
    int t;
    for (t = 0; t < T; ++t)
        irt__rope_hd8_row(x + t * heads * 8, cos_table + (start + t) * 4,
                          sin_table + (start + t) * 4, y + t * heads * 8, heads, 8, style);
}

/* The keys' rotation writes the KV cache: no copy of the rotated row (targets/c/fusions.py).
 * Head h of row t goes to slot pos + t (or (pos + t) % capacity in a ring) of plane h of
 * layer `layer`; rows in order, so a later row of a ring slot overwrites an earlier one. */
void irt_rope_hd8_kv_f32(const float *restrict x, const float *restrict cos_table,
                         const float *restrict sin_table, float *restrict cache, int T,
                         int heads, int start, int style, int layer, int capacity, int pos,
                         int ring)
{
    const ptrdiff_t plane = (ptrdiff_t)capacity * 8;
    float *const base = cache + (ptrdiff_t)layer * heads * plane;
    int t;
    for (t = 0; t < T; ++t) {
        const int slot = ring ? (pos + t) % capacity : pos + t;
        irt__rope_hd8_row(x + t * heads * 8, cos_table + (start + t) * 4,
                          sin_table + (start + t) * 4, base + (ptrdiff_t)slot * 8, heads,
                          plane, style);
    }
}
