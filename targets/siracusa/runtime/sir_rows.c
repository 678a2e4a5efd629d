/*
 * sir_rows.c - norms, RoPE and KV-cache writes split over the cluster.
 *
 * Each core runs the portable kernel on its own part: the norms on whole rows (a row's
 * reduction stays on one core), RoPE and the int8 KV write on whole heads of one token
 * (T = 1: a head's values are contiguous in the row) or on whole rows (positions) of a longer
 * block.  Every value is computed by the same code as on one core (bit-identical), and no two
 * cores write the same element: a ring cache written with more rows than it holds (rows that
 * overwrite each other) runs on one core.
 */
#define IRT_RUNTIME_SOURCE /* defines kernels, calls the portable ones: nothing to count */
#include "sir_kernels.h"

#include <stddef.h>

#include "irt_intops.h"
#include "irt_kernels.h"
#include "irt_quant.h"
#include "irt_team.h"

typedef struct {
    const float *x, *g;
    float *y;
    int T, D;
    float eps;
    int integer;
} sir_norm_args;

static void sir_norm_share(int core, int cores, void *p)
{
    const sir_norm_args *a = (const sir_norm_args *)p;
    int lo, hi;
    irt_team_share(a->T, 1, core, cores, &lo, &hi);
    if (lo >= hi)
        return;
    if (a->integer)
        irt_int_rms_norm_f32(a->x + (size_t)lo * a->D, a->g, a->y + (size_t)lo * a->D, hi - lo,
                             a->D, a->eps);
    else
        irt_rms_norm_f32(a->x + (size_t)lo * a->D, a->g, a->y + (size_t)lo * a->D, hi - lo,
                         a->D, a->eps);
}

void sir_rms_norm_f32(const float *x, const float *g, float *y, int T, int D, float eps,
                      int cores)
{
    sir_norm_args a = {x, g, y, T, D, eps, 0};
    irt_team_run(sir_norm_share, &a, cores);
}

void sir_int_rms_norm_f32(const float *x, const float *g, float *y, int T, int D, float eps,
                          int cores)
{
    sir_norm_args a = {x, g, y, T, D, eps, 1};
    irt_team_run(sir_norm_share, &a, cores);
}

typedef struct {
    const float *x, *cos_table, *sin_table;
    float *y;
    int T, heads, head_dim, rotary_dim, start, style;
} sir_rope_args;

static void sir_rope_share(int core, int cores, void *p)
{
    const sir_rope_args *a = (const sir_rope_args *)p;
    const size_t row = (size_t)a->heads * a->head_dim;
    int lo, hi;
    if (a->T == 1) { /* heads of the one row */
        irt_team_share(a->heads, 1, core, cores, &lo, &hi);
        if (lo < hi)
            irt_rope_f32(a->x + (size_t)lo * a->head_dim, a->cos_table, a->sin_table,
                         a->y + (size_t)lo * a->head_dim, 1, hi - lo, a->head_dim,
                         a->rotary_dim, a->start, a->style);
        return;
    }
    irt_team_share(a->T, 1, core, cores, &lo, &hi); /* rows: positions start + lo .. */
    if (lo < hi)
        irt_rope_f32(a->x + lo * row, a->cos_table, a->sin_table, a->y + lo * row, hi - lo,
                     a->heads, a->head_dim, a->rotary_dim, a->start + lo, a->style);
}

void sir_rope_f32(const float *x, const float *cos_table, const float *sin_table, float *y,
                  int T, int heads, int head_dim, int rotary_dim, int start, int style,
                  int cores)
{
    sir_rope_args a = {x, cos_table, sin_table, y, T, heads, head_dim, rotary_dim, start,
                       style};
    irt_team_run(sir_rope_share, &a, cores);
}

typedef struct {
    int8_t *cache;
    float *scales;
    const float *new_rows;
    int layer, kv_heads, capacity, head_dim, T, pos, ring;
} sir_kv_args;

static void sir_kv_write_share(int core, int cores, void *p)
{
    const sir_kv_args *a = (const sir_kv_args *)p;
    const size_t plane = (size_t)a->capacity * a->head_dim;
    const size_t first = (size_t)a->layer * a->kv_heads; /* the layer's first kv head */
    int lo, hi;
    if (a->T == 1) { /* kv heads of the one row: as a one-layer cache of hi - lo heads */
        irt_team_share(a->kv_heads, 1, core, cores, &lo, &hi);
        if (lo < hi)
            irt_kv_write_i8(a->cache + (first + lo) * plane,
                            a->scales + (first + lo) * a->capacity,
                            a->new_rows + (size_t)lo * a->head_dim, 0, hi - lo, a->capacity,
                            a->head_dim, 1, a->pos, a->ring);
        return;
    }
    irt_team_share(a->T, 1, core, cores, &lo, &hi); /* rows: positions pos + lo .. */
    if (lo < hi)
        irt_kv_write_i8(a->cache, a->scales,
                        a->new_rows + (size_t)lo * a->kv_heads * a->head_dim, a->layer,
                        a->kv_heads, a->capacity, a->head_dim, hi - lo, a->pos + lo, a->ring);
}

void sir_kv_write_i8(int8_t *cache, float *scales, const float *new_rows, int layer,
                     int kv_heads, int capacity, int head_dim, int T, int pos, int ring,
                     int cores)
{
    sir_kv_args a = {cache, scales, new_rows, layer, kv_heads, capacity, head_dim, T, pos,
                     ring};
    /* more rows than a ring holds overwrite each other: in order, on one core */
    irt_team_run(sir_kv_write_share, &a, T > capacity ? 1 : cores);
}
