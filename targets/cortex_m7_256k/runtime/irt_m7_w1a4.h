/*
 * irt_m7_w1a4.h - the 1-bit x 4-bit linear layer of cortex-m7-256k: a table of partial sums.
 *
 * Same contract and arguments as irt_linear_w1a4 (irt_quant.h), bit-exact with it.  Portable
 * C (no DSP instruction helps it, see irt_m7_w1a4.c), so the host build tests it; with
 * -DIRT_NO_DSP (`make run DSP=0`: the target's own kernels off) it calls the portable kernel.
 */
#ifndef IRT_M7_W1A4_H
#define IRT_M7_W1A4_H

#include <stdint.h>

/* 1 when the table kernel is compiled in (not -DIRT_NO_DSP; reported by the program). */
int irt_m7_w1a4_table_enabled(void);

void irt_linear_w1a4_m7(const float *x, const uint8_t *wbits, const float *alpha,
                        const float *bias_or_null, float *y, int T, int K, int N, int group);

#endif /* IRT_M7_W1A4_H */
