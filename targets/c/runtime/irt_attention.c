/*
 * irt_attention.c - grouped-query attention, KV-cache writes and attention over the cache.
 *
 * Per (query row, head) the work is two streaming passes over the visible keys/values:
 *   1. scores: irt__dot_rows_f32 (4 keys per pass, each key row read sequentially),
 *   2. exp(score - max) in place in the scratch, then
 *   3. values: irt__weighted_rows_f32 (8 output dims per pass over the value rows),
 * and a final scaling of head_dim outputs by 1 / sum (instead of normalising every score).
 */
#include "irt_internal.h"

#include <stddef.h>

/* out[d] *= f (or 0 for an empty softmax), d < n. */
static void irt__scale_or_zero(float *out, int n, float sum)
{
    const float f = sum > 0.0f ? 1.0f / sum : 0.0f;
    int d;
    for (d = 0; d < n; ++d)
        out[d] *= f;
}

void irt_attention_f32(const float *restrict q, const float *restrict k,
                       const float *restrict v, float *restrict out,
                       float *restrict scratch, int T, int S, int heads, int kv_heads,
                       int head_dim, float scale, int causal, int window)
{
    const int group = heads / kv_heads;
    const int ldq = heads * head_dim;
    const int ldkv = kv_heads * head_dim;
    int h, i, d;

    for (h = 0; h < heads; ++h) {
        const int kvh = h / group;
        const float *kh = k + kvh * head_dim;
        const float *vh = v + kvh * head_dim;
        for (i = 0; i < T; ++i) {
            const float *qi = q + i * ldq + h * head_dim;
            float *oi = out + i * ldq + h * head_dim;
            int lo = 0, hi = S - 1; /* visible keys lo..hi */
            int n;
            if (causal) {
                hi = i + (S - T);
                if (window > 0 && hi - window + 1 > lo)
                    lo = hi - window + 1;
            }
            n = hi - lo + 1;
            if (n <= 0) {
                for (d = 0; d < head_dim; ++d)
                    oi[d] = 0.0f;
                continue;
            }
            irt__dot_rows_f32(qi, kh + lo * ldkv, ldkv, NULL, scratch, n, head_dim);
            {
                const float sum = irt__softmax_numerators_f32(scratch, n, scale);
                irt__weighted_rows_f32(scratch, vh + lo * ldkv, ldkv, oi, n, head_dim, 0);
                irt__scale_or_zero(oi, head_dim, sum);
            }
        }
    }
}

void irt_kv_write_f32(float *restrict cache, const float *restrict new_rows, int layer,
                      int kv_heads, int capacity, int head_dim, int T, int pos, int ring)
{
    const int width = kv_heads * head_dim;
    float *base = cache + layer * kv_heads * capacity * head_dim;
    int t = 0, h;

    if (ring && T > capacity)
        t = T - capacity; /* earlier rows would be overwritten by later ones anyway */
    for (; t < T; ++t) {
        const int slot = ring ? (pos + t) % capacity : pos + t;
        const float *src = new_rows + t * width;
        for (h = 0; h < kv_heads; ++h) {
            float *dst = base + (h * capacity + slot) * head_dim;
            irt__copy_f32(dst, src + h * head_dim, head_dim);
        }
    }
}

/* Queries up to this head size are pre-scaled in a stack buffer. */
#define IRT_PRESCALE_MAX 256

void irt_cached_attention_f32(const float *restrict q, const float *restrict kcache,
                              const float *restrict vcache, float *restrict out,
                              float *restrict scratch, int layer, int heads, int kv_heads,
                              int head_dim, int capacity, int T, int end, int ring,
                              float scale)
{
    const int group = heads / kv_heads;
    const int ldq = heads * head_dim;
    const int first = end - capacity > 0 ? end - capacity : 0; /* oldest held position */
    const int slot0 = ring ? first % capacity : first;
    const int plane = capacity * head_dim; /* one kv head of one layer */
    const float *klayer = kcache + layer * kv_heads * plane;
    const float *vlayer = vcache + layer * kv_heads * plane;
    int h, i;

    for (h = 0; h < heads; ++h) {
        const int kvh = h / group;
        const float *kh = klayer + kvh * plane;
        const float *vh = vlayer + kvh * plane;
        for (i = 0; i < T; ++i) {
            const float *qi = q + i * ldq + h * head_dim;
            float *oi = out + i * ldq + h * head_dim;
            const int n = (end - T + i) - first + 1; /* positions first .. p */
            float qs[IRT_PRESCALE_MAX];
            float score_scale = scale;
            if (head_dim <= IRT_PRESCALE_MAX) {
                /* Scale the query once instead of every score: one multiply per head, not
                 * one per cached position. */
                int d;
                for (d = 0; d < head_dim; ++d)
                    qs[d] = qi[d] * scale;
                qi = qs;
                score_scale = 1.0f;
            }
            /* Positions first.. are slots slot0.., wrapping to slot 0 in a ring. */
            const int n1 = n < capacity - slot0 ? n : capacity - slot0;
            const int n2 = n - n1;
            float sum;

            irt__dot_rows_f32(qi, kh + slot0 * head_dim, head_dim, NULL, scratch, n1,
                              head_dim);
            if (n2 > 0)
                irt__dot_rows_f32(qi, kh, head_dim, NULL, scratch + n1, n2, head_dim);
            sum = irt__softmax_numerators_f32(scratch, n, score_scale);
            irt__weighted_rows_f32(scratch, vh + slot0 * head_dim, head_dim, oi, n1, head_dim,
                                   0);
            if (n2 > 0)
                irt__weighted_rows_f32(scratch + n1, vh, head_dim, oi, n2, head_dim, 1);
            irt__scale_or_zero(oi, head_dim, sum);
        }
    }
}
