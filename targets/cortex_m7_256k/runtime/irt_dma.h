/*
 * irt_dma.h - the DMA HAL the generated model.c calls for memory.dma_start / dma_wait.
 *
 * On qemu there is no DMA engine: a transfer is a memcpy done at start, counted (bytes,
 * transfers, and the instructions the memcpy itself took, which a real DMA engine would not
 * cost the core) and timed on a model of the link: a transfer begins when both the core asks
 * and the link is free, and takes the link's set-up plus bytes x cycles per byte; a wait
 * stalls the core until its transfer's end.  The core's clock is the counted instructions at
 * the assumed CPI plus the stalls so far.  The link's figures come from the description
 * (irt_m7_plan.h).
 */
#ifndef IRT_DMA_H
#define IRT_DMA_H

#include <stdint.h>

typedef int irt_dma_token_t;

irt_dma_token_t irt_dma_start(void *dest, const void *source, uint32_t bytes);
void irt_dma_wait(irt_dma_token_t token);

typedef struct {
    uint64_t bytes;          /* moved since the start of the program */
    uint64_t transfers;
    uint64_t copy_instructions; /* instructions the stand-in memcpy took */
    double link_cycles;      /* cycles the link was busy (set-up + bytes) */
    double stall_cycles;     /* cycles the core waited for a transfer */
} irt_dma_stats_t;

const irt_dma_stats_t *irt_dma_stats(void);

#endif /* IRT_DMA_H */
