/*
 * sir_attention.c - attention over the int8 KV cache split by heads over the cluster.
 *
 * Each core runs the portable irt_cached_attention_i8 on its heads, one head per call (heads
 * = kv_heads = 1, the cache pointers moved to the head's KV head of the layer), with its own
 * slice of the scratch (`capacity` floats per core): the same code on the same values as on
 * one core, so the result is bit-identical.  One token per call (decode); the rules keep
 * longer queries on the portable kernel.
 */
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
    int layer, heads, kv_heads, head_dim, capacity, end, ring;
    float scale;
    int integer_softmax; /* irt_cached_attention_i8_isoftmax (irt_intops.h) per head */
} sir_attention_args;

static void sir_attention_share(int core, int cores, void *p)
{
    const sir_attention_args *a = (const sir_attention_args *)p;
    const int group = a->heads / a->kv_heads;
    const size_t plane = (size_t)a->capacity * a->head_dim;
    int lo, hi;
    irt_team_share(a->heads, 1, core, cores, &lo, &hi);
    for (int h = lo; h < hi; h++) {
        const size_t kvh = (size_t)a->layer * a->kv_heads + h / group;
        (a->integer_softmax ? irt_cached_attention_i8_isoftmax : irt_cached_attention_i8)(
                                a->q + (size_t)h * a->head_dim, a->kcache + kvh * plane,
                                a->kscales + kvh * a->capacity, a->vcache + kvh * plane,
                                a->vscales + kvh * a->capacity, a->out + (size_t)h * a->head_dim,
                                a->scratch + (size_t)core * a->capacity, 0, 1, 1, a->head_dim,
                                a->capacity, 1, a->end, a->ring, a->scale);
    }
}

void sir_cached_attention_i8(const float *q, const int8_t *kcache, const float *kscales,
                             const int8_t *vcache, const float *vscales, float *out,
                             float *scratch, int layer, int heads, int kv_heads, int head_dim,
                             int capacity, int T, int end, int ring, float scale, int cores)
{
    sir_attention_args a = {q, kcache, kscales, vcache, vscales, out, scratch, layer, heads,
                            kv_heads, head_dim, capacity, end, ring, scale, 0};
    (void)T; /* one token (the rules give longer queries to the portable kernel) */
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
                            kv_heads, head_dim, capacity, end, ring, scale, 1};
    (void)T;
    irt_team_run(sir_attention_share, &a, cores);
}
