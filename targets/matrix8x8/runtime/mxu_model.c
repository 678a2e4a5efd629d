/*
 * mxu_model.c - a bit-exact C model of the 8x8 matrix unit behind its AXI-Lite port.
 *
 * Written from the behaviour of the public RTL (one multiply-accumulate a*b+c per cycle in
 * 32-bit wrap-around integers), not from its code. Unsigned arithmetic gives the wrap-around
 * without undefined behaviour. Every port access and every tile is counted with the cost
 * formula of the target description.
 */
#include "mxu.h"

static int32_t reg_a[MXU_TILE * MXU_TILE];
static int32_t reg_b[MXU_TILE * MXU_TILE];
static int32_t store_c[MXU_SLOTS][MXU_TILE * MXU_TILE];
static int32_t status;
static mxu_counters_t counters;

static void compute(int slot, int accumulate)
{
    int32_t *c = store_c[slot];
    for (int i = 0; i < MXU_TILE; i++)
        for (int j = 0; j < MXU_TILE; j++) {
            uint32_t acc = accumulate ? (uint32_t)c[i * MXU_TILE + j] : 0u;
            for (int k = 0; k < MXU_TILE; k++)
                acc += (uint32_t)reg_a[i * MXU_TILE + k] * (uint32_t)reg_b[k * MXU_TILE + j];
            c[i * MXU_TILE + j] = (int32_t)acc;
        }
    counters.tiles++;
    counters.unit_cycles += MXU_TILE_CYCLES;
}

void mxu_write(uint32_t addr, int32_t value)
{
    counters.words_in++;
    counters.axi_cycles += MXU_WORD_CYCLES;
    if (addr < MXU_B_BASE) {
        reg_a[addr - MXU_A_BASE] = value;
    } else if (addr < MXU_C_BASE) {
        reg_b[addr - MXU_B_BASE] = value;
    } else if (addr == MXU_CTRL) {
        if (value & 1) {
            compute((value >> 8) & 0xff, (value >> 1) & 1);
            status = 2;
        }
    }
}

int32_t mxu_read(uint32_t addr)
{
    counters.words_out++;
    counters.axi_cycles += MXU_WORD_CYCLES;
    if (addr >= MXU_C_BASE && addr < MXU_C_BASE + MXU_SLOTS * MXU_TILE * MXU_TILE) {
        uint32_t i = addr - MXU_C_BASE;
        return store_c[i / (MXU_TILE * MXU_TILE)][i % (MXU_TILE * MXU_TILE)];
    }
    if (addr == MXU_STATUS) return status;
    return 0;
}

void mxu_start(int slot, int accumulate)
{
    mxu_write(MXU_CTRL, 1 | (accumulate ? 2 : 0) | (slot << 8));
}

void mxu_wait(void)
{
    while (mxu_read(MXU_STATUS) != 2) {
    }
    status = 0;
}

const mxu_counters_t *mxu_counters(void)
{
    return &counters;
}
