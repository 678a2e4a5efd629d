/* irt_m7_report.h - the cortex-m7-256k program's report: Flash traffic, modelled cycles and
 * tokens/s at the core's clock, and the SRAM map (see irt_m7_report.c). */
#ifndef IRT_M7_REPORT_H
#define IRT_M7_REPORT_H

#include <stdint.h>

/* Print the report for `instructions` per generated token (0: no counter) after `calls`
 * decode calls (prompt and generated tokens: the DMA counters cover them all). */
void irt_m7_report(uint64_t instructions, int calls);

#endif /* IRT_M7_REPORT_H */
