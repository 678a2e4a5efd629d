/*
 * irt_linear_w1a4_table.h - the 1-bit x 4-bit linear layer through a table of partial sums.
 *
 * Same contract and arguments as irt_linear_w1a4 (irt_quant.h), bit-exact with it; portable
 * C, shared by the targets that choose it (cortex-m7-256k through its C call table,
 * riscv-ulp through its lowering rules).  Compiled with -DIRT_NO_W1A4_TABLE it calls the
 * portable kernel (cortex-m7-256k's `make run DSP=0` compares the two).
 */
#ifndef IRT_LINEAR_W1A4_TABLE_H
#define IRT_LINEAR_W1A4_TABLE_H

#include <stdint.h>

/* 1 when the table kernel is compiled in (not -DIRT_NO_W1A4_TABLE; a program may report it). */
int irt_linear_w1a4_table_enabled(void);

void irt_linear_w1a4_table(const float *x, const uint8_t *wbits, const float *alpha,
                           const float *bias_or_null, float *y, int T, int K, int N,
                           int group);

#endif /* IRT_LINEAR_W1A4_TABLE_H */
