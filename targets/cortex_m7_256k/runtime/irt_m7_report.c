/*
 * irt_m7_report.c - modelled time per token and the SRAM map of the cortex-m7-256k program.
 *
 * Time is a model, not a measurement (qemu has no cycle model): the counted instructions at
 * the core's assumed CPI, plus the external-Flash bytes of one token at the link's cycles per
 * byte where nothing hides them (weights read in place).  The SRAM map adds picolibc's
 * linker symbols (data, bss, stack, heap) to the planned arena.
 */
#include <stdio.h>

#include "irt_dma.h"
#include "irt_linear_w1a4_table.h"
#include "irt_m7_dsp.h"
#include "irt_m7_plan.h"
#include "irt_m7_report.h"
#include "irt_target.h"

#if defined(__PICOLIBC__)
extern char __data_start[], __bss_end[], __heap_start[], __heap_end[], __stack[];
#endif

static void row(const char *what, unsigned long bytes)
{
    printf("| %-40s | %9lu | %5.1f%% |\n", what, bytes, 100.0 * (double)bytes / IRT_SRAM_BYTES);
}

void irt_m7_report(uint64_t instructions, int calls)
{
    double flash = (double)IRT_XFLASH_BYTES_PER_TOKEN * IRT_LINK_CYCLES_PER_BYTE;
    double copies = 0, stall = 0;
    printf("DSP extension kernels: %s\n",
           irt_m7_dsp_enabled() ? "on (SMLAD for int8 x int8)" : "off (portable C)");
    printf("w1a4 kernel: %s\n", irt_linear_w1a4_table_enabled()
                                     ? "partial-sum table (irt_linear_w1a4_table.c)"
                                     : "portable C (irt_linear_w1a4)");
    printf("external Flash read in place per generated token: %lu B (%.0f cycles at %.1f "
           "cycles/B, not hidden)\n",
           (unsigned long)IRT_XFLASH_BYTES_PER_TOKEN, flash, IRT_LINK_CYCLES_PER_BYTE);
#if IRT_STREAMED_BYTES
    const irt_dma_stats_t *dma = irt_dma_stats();
    if (calls > 0) {
        double n = (double)calls;
        copies = (double)dma->copy_instructions / n;
        stall = dma->stall_cycles / n;
        double link = dma->link_cycles / n;
        printf("external Flash streamed per token: %.0f B in %.1f DMA transfers through 2 "
               "windows of %u B in SRAM\n", (double)dma->bytes / n,
               (double)dma->transfers / n, IRT_WINDOW_BYTES);
        printf("tile plan (CP-SAT): %s\n", IRT_TILE_PLAN);
        printf("link busy per token: %.0f cycles; core stalled: %.0f cycles; transfer hidden "
               "by double buffering: %.1f%%\n", link, stall,
               link > 0 ? 100.0 * (1.0 - stall / link) : 100.0);
    }
#else
    (void)calls;
#endif
    if (instructions) {
        double compute = ((double)instructions - copies) * IRT_CPI;
        double total = compute + stall + flash;
        printf("modelled cycles per generated token: %.0f (compute %.0f at CPI %.2f, without "
               "the %.0f instructions of qemu's stand-in memcpy; + stalls %.0f + Flash read in "
               "place %.0f)\n", total, compute, IRT_CPI, copies, stall, flash);
        printf("modelled tokens/s at %.0f MHz: %.2f\n", IRT_CLOCK_HZ / 1e6,
               IRT_CLOCK_HZ / total);
    }
    printf("SRAM map (%u B):\n", IRT_SRAM_BYTES);
    printf("| %-40s | %9s | %6s |\n", "what", "bytes", "share");
    row("KV cache", IRT_SRAM_KV_BYTES);
    row("weight windows (2, double-buffered)", IRT_WINDOWS_SPAN_BYTES);
#if IRT_SRAM_ADAPTER_SCRATCH_BYTES
    row("task-adapter rank scratch (--lora)", IRT_SRAM_ADAPTER_SCRATCH_BYTES);
#endif
    row("activations and scratch (planned)", IRT_SRAM_ARENA_BYTES - IRT_SRAM_KV_BYTES -
                                                 IRT_WINDOWS_SPAN_BYTES -
                                                 IRT_SRAM_ADAPTER_SCRATCH_BYTES);
    row("arena free", IRT_SRAM_ARENA_CAPACITY - IRT_SRAM_ARENA_BYTES);
#if defined(__PICOLIBC__)
    row("C library and main.c data (.data+.bss)",
        (unsigned long)(__bss_end - __data_start));
    row("stack", (unsigned long)(__stack - __heap_end));
    row("free (heap)", (unsigned long)(__heap_end - __heap_start));
#endif
}
