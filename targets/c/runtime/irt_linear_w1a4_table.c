/*
 * irt_linear_w1a4_table.c - sign weights x 4-bit activations with a table of partial sums per group.
 *
 * The group's codes are quantized as irt_quantize_act_a4 does; then for each nibble
 * position p (codes 4p .. 4p+3) a 16-entry table holds sum_j (bit j ? +xq : -xq) for every
 * nibble of weight bits (16 adds, built once per group and shared by all N rows).  A row's
 * exact int32 group sum is then one lookup and one add per 4 weights: for groups of 32 one
 * word of weight bits, 8 UBFX + 8 LDRSH + 8 ADD.  The float part (a term per group scaled by
 * the exact 2^e, summed in increasing group order, then alpha and bias) is irt_linear_w1a4's,
 * so the result is bit for bit the same.
 *
 * Measured on qemu-system-arm (stories260K w1a4 --kv int8, TCG plugin, instructions per
 * generated token, under load): portable irt_linear_w1a4 2,029,515; a DSP-extension variant
 * (codes as byte lanes, a nibble mask per 4 weights, USADA8 adding 4 lanes: 5 instructions
 * per 4 weights, shared by 4 rows) 1,768,278; this table 1,503,879 (3 instructions per 4
 * weights; 1,610,583 without the one-word path for groups of 32).  The DSP extension cannot shorten the table's loop: each lookup's index
 * comes from the row's own bits, and packing two looked-up int16 into one register for a
 * SIMD add costs the add it would save.
 */
#include "irt_linear_w1a4_table.h"

#include <stddef.h>
#include <string.h>

#include "irt_quant.h"

int irt_linear_w1a4_table_enabled(void)
{
#if defined(IRT_NO_W1A4_TABLE)
    return 0;
#else
    return 1;
#endif
}

#if !defined(IRT_NO_W1A4_TABLE)

/* 2^e as a float32, exact for -149 <= e <= 127 (subnormal below -126). */
static float irt__pow2f_w1a4(int e)
{
    union {
        float f;
        uint32_t u;
    } c;
    c.u = e >= -126 ? (uint32_t)(e + 127) << 23 : (uint32_t)1 << (e + 149);
    return c.f;
}

/* table[p][nibble] for the nibble positions of one group of len codes (zeros past len). */
static void irt__w1a4_table(const int8_t *xq, int len, int positions, int16_t (*table)[16])
{
    for (int p = 0; p < positions; ++p) {
        int16_t *t = table[p];
        int32_t v[4];
        for (int j = 0; j < 4; ++j)
            v[j] = 4 * p + j < len ? xq[4 * p + j] : 0;
        t[0] = (int16_t)(-(v[0] + v[1] + v[2] + v[3]));
        for (int j = 0; j < 4; ++j) {
            const int16_t d = (int16_t)(2 * v[j]);
            for (int m = 0; m < (1 << j); ++m)
                t[m | (1 << j)] = (int16_t)(t[m] + d);
        }
    }
}

/* The group sum of one row from its nbytes bytes of weight bits. */
static int32_t irt__w1a4_row_sum(const uint8_t *wb, int nbytes, const int16_t (*t)[16])
{
    int32_t acc = 0;
    if (nbytes == 4) { /* a group of 32: one word of bits (LDR reads unaligned words) */
        uint32_t c;
        memcpy(&c, wb, sizeof c);
        acc = t[0][c & 15u] + t[1][(c >> 4) & 15u] + t[2][(c >> 8) & 15u]
              + t[3][(c >> 12) & 15u] + t[4][(c >> 16) & 15u] + t[5][(c >> 20) & 15u]
              + t[6][(c >> 24) & 15u] + t[7][c >> 28];
        return acc;
    }
    for (int p = 0; p < nbytes; ++p, t += 2) {
        const uint32_t c = wb[p];
        acc += t[0][c & 15u] + t[1][c >> 4];
    }
    return acc;
}

static void irt__w1a4_rows(const float *xt, const uint8_t *wbits, float *yt, int K, int N,
                           int group)
{
    const int ldw = (K + 7) / 8;
    int8_t xq[IRT_W1A4_MAX_GROUP];
    int16_t table[IRT_W1A4_MAX_GROUP / 4][16];

    for (int k0 = 0; k0 < K; k0 += group) {
        const int len = K - k0 < group ? K - k0 : group;
        const int nbytes = (len + 7) >> 3;
        int e;
        irt_quantize_act_a4(xt + k0, xq, &e, len, len);
        irt__w1a4_table(xq, len, 2 * nbytes, table);
        const float sx = irt__pow2f_w1a4(e);
        const uint8_t *wb = wbits + (k0 >> 3);
        for (int n = 0; n < N; ++n, wb += ldw) {
            const float term = (float)irt__w1a4_row_sum(wb, nbytes, table) * sx; /* exact */
            yt[n] = k0 == 0 ? term : yt[n] + term;
        }
    }
    if (K == 0)
        for (int n = 0; n < N; ++n)
            yt[n] = 0.0f;
}

#endif /* !IRT_NO_W1A4_TABLE */

void irt_linear_w1a4_table(const float *x, const uint8_t *wbits, const float *alpha,
                           const float *bias_or_null, float *y, int T, int K, int N,
                           int group)
{
#if !defined(IRT_NO_W1A4_TABLE)
    if (group >= 8 && group % 8 == 0 && group <= IRT_W1A4_MAX_GROUP) {
        for (int t = 0; t < T; ++t) {
            float *yt = y + (size_t)t * N;
            irt__w1a4_rows(x + (size_t)t * K, wbits, yt, K, N, group);
            for (int n = 0; n < N; ++n) {
                float v = alpha[n] * yt[n];
                if (bias_or_null != NULL)
                    v = v + bias_or_null[n];
                yt[n] = v;
            }
        }
        return;
    }
#endif
    irt_linear_w1a4(x, wbits, alpha, bias_or_null, y, T, K, N, group);
}
