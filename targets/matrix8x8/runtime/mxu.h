/*
 * mxu.h - the 8x8 matrix unit of the matrix8x8 target: its driver API and the tiled kernel.
 *
 * The unit (CompactScaleAiChip-style) holds operand tiles A and B (8x8 int32) and a 512-word
 * store used as MXU_SLOTS accumulator tiles C[slot]; a start computes C[slot] = A x B, or
 * C[slot] += A x B, in 32-bit wrap-around arithmetic. The host reaches it through one
 * 32-bit AXI-Lite port, word by word: mxu_write / mxu_read below are those port accesses.
 * On qemu the unit is the C model in mxu_model.c, which counts tiles, words moved and cycles
 * with the cost formula of the target description (512 + 20 cycles per tile, 2 per word).
 */
#ifndef MXU_H
#define MXU_H

#include <stdint.h>

#define MXU_TILE 8
#define MXU_SLOTS 8
/* word addresses on the port */
#define MXU_A_BASE 0u      /* A[row][col], 64 words */
#define MXU_B_BASE 64u     /* B[k][n], 64 words */
#define MXU_C_BASE 128u    /* C[slot][row][col], MXU_SLOTS x 64 words */
#define MXU_CTRL 640u      /* write: bit 0 start, bit 1 accumulate, bits 8..15 slot */
#define MXU_STATUS 641u    /* read: 0 idle, 2 done */

#define MXU_TILE_CYCLES 532u  /* 512 multiply-accumulates + 20 of control */
#define MXU_WORD_CYCLES 2u    /* one 32-bit AXI-Lite access */

typedef struct {
    uint64_t tiles;        /* tile products started */
    uint64_t words_in;     /* words written to the unit (A, B, control) */
    uint64_t words_out;    /* words read from the unit (C, status) */
    uint64_t unit_cycles;  /* tiles x MXU_TILE_CYCLES */
    uint64_t axi_cycles;   /* (words_in + words_out) x MXU_WORD_CYCLES */
} mxu_counters_t;

/* The driver API: one port access each. */
void mxu_write(uint32_t addr, int32_t value);
int32_t mxu_read(uint32_t addr);
void mxu_start(int slot, int accumulate);
void mxu_wait(void);
const mxu_counters_t *mxu_counters(void);

/* y[t, n] = float(sum_k (xq[t, k] - zx) * w[n, k]) * m[n] (+ b[n]) with the sums on the unit:
 * 8 tokens share A's 8 rows, an A tile is written once per group of MXU_SLOTS output tiles
 * and partial sums stay in the unit's store across the whole reduction. */
void mxu_linear_w8a8(const int8_t *xq, int32_t zx, const int8_t *w, const float *m,
                     const float *b, float *y, int T, int K, int N);

/* Prints the counters (called by main.c after generation). */
void irt_mxu_report(int forward_calls);

/* With -DIRT_PROFILE, generated code's calls of the kernel are counted (irt_profile.h). */
#if defined(IRT_PROFILE) && !defined(IRT_RUNTIME_SOURCE)
#include "irt_profile.h"
#define mxu_linear_w8a8(...) IRT_PROFILE_CALL("mxu_linear_w8a8", mxu_linear_w8a8(__VA_ARGS__))
#endif

#endif
