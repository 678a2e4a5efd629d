/*
 * irt_dma.c - the counting memcpy behind siracusa's DMA HAL (irt_dma.h).
 */
#include "irt_dma.h"

#include <stdio.h>
#include <string.h>

#include "irt_sir_link.h"
#include "irt_team.h"

static irt_dma_stats_t stats;
static irt_dma_stats_t prefill; /* the batched prefill calls' share (link cycles not kept) */
static int in_prefill;

irt_dma_token_t irt_dma_start(void *dest, const void *source, uint32_t bytes)
{
    irt_device_begin();
    memcpy(dest, source, bytes);
    stats.bytes += bytes;
    stats.transfers++;
    stats.link_cycles += IRT_DMA_SETUP_CYCLES + (double)bytes / IRT_DMA_BYTES_PER_CYCLE;
    if (in_prefill) {
        prefill.bytes += bytes;
        prefill.transfers++;
    }
    irt_device_end();
    return (irt_dma_token_t)stats.transfers;
}

void irt_dma_wait(irt_dma_token_t token) { (void)token; }

const irt_dma_stats_t *irt_dma_stats(void) { return &stats; }

void irt_dma_prefill_mark(int end) { in_prefill = !end; }

void irt_dma_report(int steps)
{
    if (!stats.transfers)
        return;
    printf("dma l2->l1: transfers %lu bytes %lu link cycles %.0f", (unsigned long)stats.transfers,
           (unsigned long)stats.bytes, stats.link_cycles);
    if (steps > 0)
        printf("; per step: transfers %lu bytes %lu link cycles %.0f",
               (unsigned long)((stats.transfers - prefill.transfers) / (uint64_t)steps),
               (unsigned long)((stats.bytes - prefill.bytes) / (uint64_t)steps),
               (stats.link_cycles - (double)prefill.transfers * IRT_DMA_SETUP_CYCLES
                - (double)prefill.bytes / IRT_DMA_BYTES_PER_CYCLE) / steps);
    if (prefill.transfers)
        printf("; batched prefill: transfers %lu bytes %lu", (unsigned long)prefill.transfers,
               (unsigned long)prefill.bytes);
    printf("\n");
}
