/*
 * mxu_linear.c - W8A8 linear layers on the 8x8 unit, with the schedule irtool plans.
 *
 * Loop order per block of up to 8 tokens (the rows of A) and group of up to MXU_SLOTS output
 * tiles: for every 8-wide slice of the reduction, A is written once (only the token rows in
 * use, zero-padded at the K edge) and reused for every B tile of the group; each product
 * accumulates into its own slot of the unit's store, so C is read back once, at the end.
 * The host turns the int32 sums into floats exactly as irt_linear_w8a8 does.
 */
#define IRT_RUNTIME_SOURCE /* defines the kernel: not a call for irt_profile.h to count */
#include <stdio.h>
#include "mxu.h"

void mxu_linear_w8a8(const int8_t *xq, int32_t zx, const int8_t *w, const float *m,
                     const float *b, float *y, int T, int K, int N)
{
    const int kb_count = (K + MXU_TILE - 1) / MXU_TILE;
    const int nb_count = (N + MXU_TILE - 1) / MXU_TILE;
    for (int t0 = 0; t0 < T; t0 += MXU_TILE) {
        int rows = T - t0 < MXU_TILE ? T - t0 : MXU_TILE;
        for (int g0 = 0; g0 < nb_count; g0 += MXU_SLOTS) {
            int group = nb_count - g0 < MXU_SLOTS ? nb_count - g0 : MXU_SLOTS;
            for (int kb = 0; kb < kb_count; kb++) {
                int k0 = kb * MXU_TILE;
                for (int r = 0; r < rows; r++)
                    for (int c = 0; c < MXU_TILE; c++) {
                        int k = k0 + c;
                        int32_t v = k < K ? (int32_t)xq[(t0 + r) * K + k] - zx : 0;
                        mxu_write(MXU_A_BASE + (uint32_t)(r * MXU_TILE + c), v);
                    }
                for (int s = 0; s < group; s++) {
                    int n0 = (g0 + s) * MXU_TILE;
                    for (int c = 0; c < MXU_TILE; c++)
                        for (int j = 0; j < MXU_TILE; j++) {
                            int k = k0 + c, n = n0 + j;
                            int32_t v = (k < K && n < N) ? (int32_t)w[n * K + k] : 0;
                            mxu_write(MXU_B_BASE + (uint32_t)(c * MXU_TILE + j), v);
                        }
                    mxu_start(s, kb > 0);
                    mxu_wait();
                }
            }
            for (int s = 0; s < group; s++) {
                int n0 = (g0 + s) * MXU_TILE;
                for (int r = 0; r < rows; r++)
                    for (int j = 0; j < MXU_TILE; j++) {
                        int32_t acc = mxu_read(MXU_C_BASE + (uint32_t)(s * MXU_TILE * MXU_TILE
                                                                       + r * MXU_TILE + j));
                        int n = n0 + j;
                        if (n < N) {
                            float v = (float)acc * m[n];
                            if (b) v += b[n];
                            y[(t0 + r) * N + n] = v;
                        }
                    }
            }
        }
    }
}

void irt_mxu_report(int forward_calls)
{
    const mxu_counters_t *c = mxu_counters();
    printf("mxu: forward calls %d tiles %llu words in %llu words out %llu unit cycles %llu "
           "axi cycles %llu\n", forward_calls, (unsigned long long)c->tiles,
           (unsigned long long)c->words_in, (unsigned long long)c->words_out,
           (unsigned long long)c->unit_cycles, (unsigned long long)c->axi_cycles);
#if defined(__riscv) /* the program counts instructions there only */
    /* minstret cannot tell the model's instructions from the host's */
    printf("mxu: the instruction counts above include the unit's C model, which qemu runs on "
           "the host core (on the chip a port access is one load or store)\n");
#endif
}
