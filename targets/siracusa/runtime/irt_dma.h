/*
 * irt_dma.h - siracusa's DMA HAL for memory.dma_start / dma_wait (the cluster DMA, L2 -> L1).
 *
 * On qemu there is no DMA engine: a transfer is a memcpy done at start, marked as device work
 * (irt_device_begin/_end) so the hart-count plugin leaves its instructions out of the
 * cluster's time, and counted: bytes, transfers and the link's busy cycles by the
 * description's formula (set-up + bytes / bytes per cycle of the L2 -> L1 link, IRT_DMA_*
 * below, generated from description.json into irt_sir_link.h).  With two windows the
 * transfer of tile j+1 overlaps the compute of tile j; a step's time is bounded below by both
 * the cluster's modelled instructions and the link's busy cycles.
 */
#ifndef IRT_DMA_H
#define IRT_DMA_H

#include <stdint.h>

typedef int irt_dma_token_t;

irt_dma_token_t irt_dma_start(void *dest, const void *source, uint32_t bytes);
void irt_dma_wait(irt_dma_token_t token);

typedef struct {
    uint64_t bytes;
    uint64_t transfers;
    double link_cycles; /* set-up + bytes / bytes per cycle, summed */
} irt_dma_stats_t;

const irt_dma_stats_t *irt_dma_stats(void);
/* Around each batched prefill call (0 before, 1 after): its transfers are set apart, so that
 * irt_dma_report's per-step figures are those of the decode steps alone. */
void irt_dma_prefill_mark(int end);
/* The run's totals, then per step over `steps` decode steps (irt_decode calls), then the
 * batched prefill calls' share when they moved anything. */
void irt_dma_report(int steps);

#endif
