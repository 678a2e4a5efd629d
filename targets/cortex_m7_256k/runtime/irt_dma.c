/* irt_dma.c - see irt_dma.h. */
#include <string.h>

#include "irt_dma.h"
#include "irt_m7_plan.h"
#include "irt_target.h"

#define IRT_DMA_SLOTS 4 /* transfers in flight at once (double buffering needs 2) */

static irt_dma_stats_t stats;
static double link_free;             /* core-clock cycle at which the link is idle */
static double done[IRT_DMA_SLOTS];   /* end of the transfer in each slot */
static int next_slot;

/* The core's clock: its instructions (minus the stand-in copies) at the CPI, plus stalls. */
static double core_now(void)
{
    return (double)(irt_read_instret() - stats.copy_instructions) * IRT_CPI
           + stats.stall_cycles;
}

irt_dma_token_t irt_dma_start(void *dest, const void *source, uint32_t bytes)
{
    double now = core_now();
    uint64_t before = irt_read_instret();
    memcpy(dest, source, bytes);
    stats.copy_instructions += irt_read_instret() - before;
    double begin = now > link_free ? now : link_free;
    double busy = IRT_LINK_SETUP_CYCLES + bytes * IRT_LINK_CYCLES_PER_BYTE;
    link_free = begin + busy;
    stats.link_cycles += busy;
    stats.bytes += bytes;
    stats.transfers++;
    int slot = next_slot;
    next_slot = (next_slot + 1) % IRT_DMA_SLOTS;
    done[slot] = link_free;
    return slot;
}

void irt_dma_wait(irt_dma_token_t token)
{
    double now = core_now();
    if (done[token] > now) stats.stall_cycles += done[token] - now;
}

const irt_dma_stats_t *irt_dma_stats(void)
{
    return &stats;
}
