/*
 * npu.h - siracusa's NPU (N-EUREKA-style) as a bit-exact C model with its cycle formula.
 *
 * npu_linear_w8a8 runs a W8A8 linear as the NPU would in 1x1 (pointwise) mode: per token and
 * per block of NPU_TILE_OUT output channels, blocks of NPU_TILE_IN input channels are
 * multiplied and accumulated in int32 (exact: |acc| <= K * 255 * 127 fits int32 for K up to
 * 66,000), one job per call.  The cluster then requantizes y = float32(acc) * m[n] (+ b[n]),
 * exactly as irt_linear_w8a8 does, so the result equals the cluster kernel bit for bit.
 * Cycles per job = NPU_SETUP_CYCLES + ceil(K / 32) * ceil(N / 32) * T * NPU_BLOCK_CYCLES (the
 * formula and its source are the engine's `cost` in description.json).
 *
 * The model's own instructions are not the NPU's time: the program marks them with
 * irt_device_begin/irt_device_end so the hart-count plugin leaves them out of the cluster's
 * figures, and npu_report() prints the modelled NPU cycles.
 */
#ifndef NPU_H
#define NPU_H

#include <stdint.h>

#define NPU_TILE_IN 32
#define NPU_TILE_OUT 32
#define NPU_BLOCK_CYCLES 9u
#define NPU_SETUP_CYCLES 200u

typedef struct {
    uint64_t jobs;    /* npu_linear_w8a8 calls */
    uint64_t blocks;  /* 32 x 32 blocks x tokens */
    uint64_t macs;    /* T * K * N */
    uint64_t cycles;  /* by the formula above */
} npu_counters_t;

void npu_linear_w8a8(const int8_t *xq, int32_t zx, const int8_t *w, const float *m,
                     const float *b, float *y, int T, int K, int N);
const npu_counters_t *npu_counters(void);
/* Around each batched prefill call (0 before, 1 after): its jobs are set apart, so that
 * npu_report's per-step figures are those of the decode steps alone. */
void npu_prefill_mark(int end);
/* The run's totals, then per step over `steps` decode steps (irt_decode calls), then the
 * batched prefill calls' share when there were any. */
void npu_report(int steps);

/* With -DIRT_PROFILE, generated code's calls are counted (irt_profile.h). */
#if defined(IRT_PROFILE) && !defined(IRT_RUNTIME_SOURCE)
#include "irt_profile.h"
#define npu_linear_w8a8(...) IRT_PROFILE_CALL("npu_linear_w8a8", npu_linear_w8a8(__VA_ARGS__))
#endif

#endif
