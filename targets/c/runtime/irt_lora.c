/*
 * irt_lora.c - the run-time choice of a task adapter and its low-rank delta.
 *
 * The delta costs R * (K + N) multiply-accumulates per token and linear (rank R), against
 * K * N for the base weights. irt_lora_f32 reads the selected adapter's matrices in place;
 * where they stream through a window (the tile pass, passes/lora_stream.py), the program
 * DMAs the slab irt_lora_slab names, A_s x is a linear on the window and irt_lora_up_f32
 * adds B_s (A_s x) to each tile of output rows; the base model alone (-1) skips those
 * transfers and kernels (irt_adapter_on).
 */
#include "irt_lora.h"

#include <stddef.h>

#define IRT_ADAPTER_UNSET (-2)

static int irt_adapter = IRT_ADAPTER_UNSET;
static int irt_adapter_limit = 0x7fffffff; /* the fewest adapters a call has seen */

int irt_select_adapter(int i)
{
    if (i < -1 || i >= irt_adapter_limit)
        return -1;
    irt_adapter = i;
    return 0;
}

int irt_selected_adapter(int compiled)
{
    return irt_adapter == IRT_ADAPTER_UNSET ? compiled : irt_adapter;
}

static void irt_seen_adapters(int adapters)
{
    if (adapters < irt_adapter_limit)
        irt_adapter_limit = adapters;
}

int irt_adapter_on(int compiled, int adapters)
{
    irt_seen_adapters(adapters);
    int s = irt_selected_adapter(compiled);
    return s >= 0 && s < adapters;
}

int irt_lora_slab(int compiled, int adapters)
{
    irt_seen_adapters(adapters);
    int s = irt_selected_adapter(compiled);
    return s < 0 || s >= adapters ? 0 : s;
}

void irt_lora_up_f32(const float *rank, const float *y, const float *b, float *out, int T,
                     int N, int R, int selected)
{
    int s = irt_selected_adapter(selected);
    /* out of range only before the first call: irt_lora_slab then DMA'd slab 0 (and set the
     * limit), and the delta is skipped as irt_lora_f32 skips it */
    int none = s < 0 || s >= irt_adapter_limit;
    for (int t = 0; t < T; ++t) {
        const float *rt = rank + (size_t)t * R;
        const float *yt = y + (size_t)t * N;
        float *ot = out + (size_t)t * N;
        for (int n = 0; n < N; ++n) {
            float acc = 0.0f;
            if (!none) {
                const float *bn = b + (size_t)n * R;
                for (int r = 0; r < R; ++r)
                    acc += bn[r] * rt[r];
            }
            ot[n] = yt[n] + acc;
        }
    }
}

void irt_lora_f32(const float *x, const float *y, const float *a, const float *b, float *out,
                  float *rank, int T, int K, int N, int R, int adapters, int selected)
{
    int s = irt_selected_adapter(selected);
    irt_seen_adapters(adapters);
    if (s >= adapters)
        s = -1; /* cannot happen through irt_select_adapter once a call has run */
    for (int t = 0; t < T; ++t) {
        const float *xt = x + (size_t)t * K;
        float *rt = rank + (size_t)t * R;
        const float *yt = y + (size_t)t * N;
        float *ot = out + (size_t)t * N;
        if (s < 0) {
            for (int r = 0; r < R; ++r)
                rt[r] = 0.0f;
            if (ot != yt)
                for (int n = 0; n < N; ++n)
                    ot[n] = yt[n];
            continue;
        }
        const float *as = a + (size_t)s * R * K;
        const float *bs = b + (size_t)s * N * R;
        for (int r = 0; r < R; ++r) {
            const float *ar = as + (size_t)r * K;
            float acc = 0.0f;
            for (int k = 0; k < K; ++k)
                acc += ar[k] * xt[k];
            rt[r] = acc;
        }
        for (int n = 0; n < N; ++n) {
            const float *bn = bs + (size_t)n * R;
            float acc = 0.0f;
            for (int r = 0; r < R; ++r)
                acc += bn[r] * rt[r];
            ot[n] = yt[n] + acc;
        }
    }
}
