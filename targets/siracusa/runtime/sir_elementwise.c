/*
 * sir_elementwise.c - elementwise kernels split by elements over the cluster.
 *
 * Each core runs the portable kernel on its contiguous slice of the n values: every value is
 * computed by the same code as on one core (bit-identical), and an output that shares its
 * input's buffer is still read before it is written, element by element, by one core.
 */
#define IRT_RUNTIME_SOURCE /* defines kernels, calls the portable ones: nothing to count */
#include "sir_kernels.h"

#include <stddef.h>

#include "irt_intops.h"
#include "irt_kernels.h"
#include "irt_quant.h"
#include "irt_team.h"

typedef struct {
    const float *x;
    void *y;
    int n;
    float scale;
    int32_t zero_point;
} sir_elementwise_args;

static void sir_silu_share(int core, int cores, void *p)
{
    const sir_elementwise_args *a = (const sir_elementwise_args *)p;
    int lo, hi;
    irt_team_share(a->n, 1, core, cores, &lo, &hi);
    if (lo < hi)
        irt_silu_f32(a->x + lo, (float *)a->y + lo, hi - lo);
}

static void sir_int_silu_share(int core, int cores, void *p)
{
    const sir_elementwise_args *a = (const sir_elementwise_args *)p;
    int lo, hi;
    irt_team_share(a->n, 1, core, cores, &lo, &hi);
    if (lo < hi)
        irt_int_silu_f32(a->x + lo, (float *)a->y + lo, hi - lo);
}

static void sir_quantize_share(int core, int cores, void *p)
{
    const sir_elementwise_args *a = (const sir_elementwise_args *)p;
    int lo, hi;
    irt_team_share(a->n, 1, core, cores, &lo, &hi);
    if (lo < hi)
        irt_quantize_act_i8(a->x + lo, (int8_t *)a->y + lo, hi - lo, a->scale, a->zero_point);
}

void sir_silu_f32(const float *x, float *y, int n, int cores)
{
    sir_elementwise_args a = {x, y, n, 0.0f, 0};
    irt_team_run(sir_silu_share, &a, cores);
}

void sir_int_silu_f32(const float *x, float *y, int n, int cores)
{
    sir_elementwise_args a = {x, y, n, 0.0f, 0};
    irt_team_run(sir_int_silu_share, &a, cores);
}

void sir_quantize_act_i8(const float *x, int8_t *xq, int n, float scale, int32_t zero_point,
                         int cores)
{
    sir_elementwise_args a = {x, xq, n, scale, zero_point};
    irt_team_run(sir_quantize_share, &a, cores);
}
