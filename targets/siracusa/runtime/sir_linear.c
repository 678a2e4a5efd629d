/*
 * sir_linear.c - linears split by output rows over the cluster (sir_kernels.h).
 *
 * Each core runs the portable kernel (irt_linear_w8a8 / irt_linear_f32) on its rows: shares
 * start at multiples of 4, the portable kernels' row blocking, so every output value comes
 * from the same code and the same order of operations as on one core (bit-identical).
 */
#define IRT_RUNTIME_SOURCE /* defines kernels, calls the portable ones: nothing to count */
#include "sir_kernels.h"

#include <stddef.h>

#include "irt_kernels.h"
#include "irt_quant.h"
#include "irt_team.h"

typedef struct {
    const void *x;     /* int8 (w8a8) or float activations [T, K] */
    int32_t zx;
    const void *w;     /* [N, K] */
    const float *m;    /* w8a8 multipliers, NULL for f32 */
    const float *bias;
    float *y;          /* [T, N] */
    int T, K, N;
} sir_linear_args;

static void sir_linear_share(int core, int cores, void *p)
{
    const sir_linear_args *a = (const sir_linear_args *)p;
    int lo, hi;
    irt_team_share(a->N, 4, core, cores, &lo, &hi);
    if (lo >= hi)
        return;
    for (int t = 0; t < a->T; t++) {
        const float *b = a->bias ? a->bias + lo : NULL;
        float *y = a->y + (size_t)t * a->N + lo;
        if (a->m)
            irt_linear_w8a8((const int8_t *)a->x + (size_t)t * a->K, a->zx,
                            (const int8_t *)a->w + (size_t)lo * a->K, a->m + lo, b, y, 1,
                            a->K, hi - lo);
        else
            irt_linear_f32((const float *)a->x + (size_t)t * a->K,
                           (const float *)a->w + (size_t)lo * a->K, b, y, 1, a->K, hi - lo);
    }
}

void sir_linear_w8a8(const int8_t *xq, int32_t x_zero_point, const int8_t *wq, const float *m,
                     const float *bias_or_null, float *y, int T, int K, int N, int cores)
{
    sir_linear_args a = {xq, x_zero_point, wq, m, bias_or_null, y, T, K, N};
    irt_team_run(sir_linear_share, &a, cores);
}

void sir_linear_f32(const float *x, const float *w, const float *bias_or_null, float *y, int T,
                    int K, int N, int cores)
{
    sir_linear_args a = {x, 0, w, NULL, bias_or_null, y, T, K, N};
    irt_team_run(sir_linear_share, &a, cores);
}
