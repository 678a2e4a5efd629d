/*
 * npu_model.c - the NPU's bit-exact model and counters (npu.h).
 */
#define IRT_RUNTIME_SOURCE /* defines kernels, calls the portable ones: nothing to count */
#include "npu.h"

#include <stddef.h>
#include <stdio.h>

#include "irt_team.h"

static npu_counters_t npu;
static npu_counters_t prefill, at_prefill; /* the batched prefill calls' share */

#define NPU_MAX_OUT 4096

void npu_linear_w8a8(const int8_t *xq, int32_t zx, const int8_t *w, const float *m,
                     const float *b, float *y, int T, int K, int N)
{
    static int32_t acc[NPU_TILE_OUT];
    int kb = (K + NPU_TILE_IN - 1) / NPU_TILE_IN, nb = (N + NPU_TILE_OUT - 1) / NPU_TILE_OUT;

    irt_device_begin();
    for (int t = 0; t < T; t++) {
        const int8_t *x = xq + (size_t)t * K;
        for (int n0 = 0; n0 < N; n0 += NPU_TILE_OUT) {
            int n1 = n0 + NPU_TILE_OUT < N ? n0 + NPU_TILE_OUT : N;
            for (int n = n0; n < n1; n++)
                acc[n - n0] = 0;
            for (int k0 = 0; k0 < K; k0 += NPU_TILE_IN) { /* one block: 32 x 32 MACs */
                int k1 = k0 + NPU_TILE_IN < K ? k0 + NPU_TILE_IN : K;
                for (int n = n0; n < n1; n++) {
                    const int8_t *wn = w + (size_t)n * K;
                    int32_t a = acc[n - n0];
                    for (int k = k0; k < k1; k++)
                        a += ((int32_t)x[k] - zx) * wn[k];
                    acc[n - n0] = a;
                }
            }
            irt_device_end();
            /* the cluster's requantization of the NPU's int32 outputs */
            for (int n = n0; n < n1; n++) {
                float v = (float)acc[n - n0] * m[n];
                if (b != NULL)
                    v = v + b[n];
                y[(size_t)t * N + n] = v;
            }
            irt_device_begin();
        }
    }
    npu.jobs++;
    npu.blocks += (uint64_t)kb * nb * T;
    npu.macs += (uint64_t)T * K * N;
    npu.cycles += NPU_SETUP_CYCLES + (uint64_t)kb * nb * T * NPU_BLOCK_CYCLES;
    irt_device_end();
}

const npu_counters_t *npu_counters(void) { return &npu; }

void npu_prefill_mark(int end)
{
    if (!end) {
        at_prefill = npu;
        return;
    }
    prefill.jobs += npu.jobs - at_prefill.jobs;
    prefill.cycles += npu.cycles - at_prefill.cycles;
}

void npu_report(int steps)
{
    if (!npu.jobs)
        return;
    printf("npu: jobs %lu blocks %lu macs %lu cycles %lu", (unsigned long)npu.jobs,
           (unsigned long)npu.blocks, (unsigned long)npu.macs, (unsigned long)npu.cycles);
    if (steps > 0)
        printf("; per step: jobs %lu cycles %lu",
               (unsigned long)((npu.jobs - prefill.jobs) / (uint64_t)steps),
               (unsigned long)((npu.cycles - prefill.cycles) / (uint64_t)steps));
    if (prefill.jobs)
        printf("; batched prefill: jobs %lu cycles %lu", (unsigned long)prefill.jobs,
               (unsigned long)prefill.cycles);
    printf("\n");
}
