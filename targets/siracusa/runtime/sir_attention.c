/*
 * sir_attention.c - attention over the int8 KV cache split by heads over the cluster.
 *
 * Each core runs the portable irt_cached_attention_i8 on its heads, one head per call (heads
 * = kv_heads = 1, the cache pointers moved to the head's KV head of the layer), with its own
 * slice of the scratch (`capacity` floats per core): the same code on the same values as on
 * one core, so the result is bit-identical.  A batched prefill's T query rows go one row per
 * call, row i at position end - T + i with end - T + i + 1 as its end: the portable kernel's
 * own row when the cache has not wrapped (a linear cache; the rules keep rings with T > 1 on
 * the portable kernel), so still bit-identical.
 */
#define IRT_RUNTIME_SOURCE /* defines kernels, calls the portable ones: nothing to count */
#include "sir_kernels.h"

#include <stddef.h>

#include "irt_intops.h"
#include "irt_quant.h"
#include "irt_team.h"

typedef struct {
    const float *q;
    const int8_t *kcache;
    const float *kscales;
    const int8_t *vcache;
    const float *vscales;
    float *out;
    float *scratch;
    int layer, heads, kv_heads, head_dim, capacity, T, end, ring;
    float scale;
    int integer_softmax; /* irt_cached_attention_i8_isoftmax (irt_intops.h) per head */
} sir_attention_args;

static void sir_attention_share(int core, int cores, void *p)
{
    const sir_attention_args *a = (const sir_attention_args *)p;
    const int group = a->heads / a->kv_heads;
    const size_t plane = (size_t)a->capacity * a->head_dim;
    const size_t ldq = (size_t)a->heads * a->head_dim;
    int lo, hi;
    irt_team_share(a->heads, 1, core, cores, &lo, &hi);
    for (int h = lo; h < hi; h++) {
        const size_t kvh = (size_t)a->layer * a->kv_heads + h / group;
        for (int i = 0; i < a->T; i++) {
            const size_t at = (size_t)i * ldq + (size_t)h * a->head_dim;
            (a->integer_softmax ? irt_cached_attention_i8_isoftmax : irt_cached_attention_i8)(
                a->q + at, a->kcache + kvh * plane, a->kscales + kvh * a->capacity,
                a->vcache + kvh * plane, a->vscales + kvh * a->capacity, a->out + at,
                a->scratch + (size_t)core * a->capacity, 0, 1, 1, a->head_dim, a->capacity, 1,
                a->end - a->T + i + 1, a->ring, a->scale);
        }
    }
}

void sir_cached_attention_i8(const float *q, const int8_t *kcache, const float *kscales,
                             const int8_t *vcache, const float *vscales, float *out,
                             float *scratch, int layer, int heads, int kv_heads, int head_dim,
                             int capacity, int T, int end, int ring, float scale, int cores)
{
    sir_attention_args a = {q, kcache, kscales, vcache, vscales, out, scratch, layer, heads,
                            kv_heads, head_dim, capacity, T, end, ring, scale, 0};
    irt_team_run(sir_attention_share, &a, cores);
}

void sir_cached_attention_i8_isoftmax(const float *q, const int8_t *kcache,
                                      const float *kscales, const int8_t *vcache,
                                      const float *vscales, float *out, float *scratch,
                                      int layer, int heads, int kv_heads, int head_dim,
                                      int capacity, int T, int end, int ring, float scale,
                                      int cores)
{
    sir_attention_args a = {q, kcache, kscales, vcache, vscales, out, scratch, layer, heads,
                            kv_heads, head_dim, capacity, T, end, ring, scale, 1};
    irt_team_run(sir_attention_share, &a, cores);
}
