/*
 * irt_linear_w1a4_table.c - sign weights x 4-bit activations with a table of partial sums.
 *
 * The codes of a row are quantized as irt_quantize_act_a4 does; then for each nibble
 * position p (codes 4p .. 4p+3) a 16-entry table holds sum_j (bit j ? +xq : -xq) for every
 * nibble of weight bits (as biased bytes, 4 entries per 32-bit add; built once per row of
 * activations and shared by all N rows of weights).  A row's exact int32 group sum is then
 * one lookup and one add per 4 weights: for groups of 32 one word of weight bits
 * (Cortex-M7: UBFX, LDRB, ADD per nibble; RV32: SRLI, ANDI, ADD, LBU, ADD).  The float part
 * (a term per group scaled by the exact 2^e, summed in increasing group order, then alpha
 * and bias) is irt_linear_w1a4's, so the result is bit for bit the same.
 *
 * The tables of up to IRT__W1A4_SPAN inputs (several groups) are built at once, and each
 * weight row runs through all of their groups with its float sum in a register: one store
 * per row instead of a load and a store per row and group, and alpha and bias applied there.
 *
 * Measured (stories260K w1a4, exact instructions per generated token, under load):
 * cortex-m7-256k (--kv int8, 16 tokens, TCG plugin): portable irt_linear_w1a4 2,029,515; a
 * DSP-extension variant (codes as byte lanes, a nibble mask per 4 weights, USADA8 adding 4
 * lanes: 5 instructions per 4 weights, shared by 4 rows) 1,768,278; the table of int16 one
 * group at a time 1,503,347 (1,610,583 without the one-word path for groups of 32); this
 * kernel 1,439,329.  The DSP extension cannot shorten the table's loop: each lookup's index
 * comes from the row's own bits, and packing two looked-up entries into one register for a
 * SIMD add costs the add it would save.  riscv-ulp (64 tokens, minstret): portable
 * 1,228,758; the int16 table one group at a time 947,218 (its words copied byte by byte:
 * RV32 gcc assumes strict alignment); with word loads where a row is aligned and the float
 * sum in a register 746,123; this kernel (byte entries: no index scaling, tables built 4
 * entries per add) 717,953.
 */
#include "irt_linear_w1a4_table.h"

#include <stddef.h>
#include <string.h>

#include "irt_quant.h"

/* Inputs whose tables are built at once (a multiple of 8 >= IRT_W1A4_MAX_GROUP): 512 B of
 * table on the stack. */
#define IRT__W1A4_SPAN 128

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

/* The tables and the weight words are read as little-endian words. */
#if defined(__BYTE_ORDER__) && defined(__ORDER_BIG_ENDIAN__) && \
    __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
#error "irt_linear_w1a4_table.c assumes a little-endian core"
#endif

/* Every table entry is biased by IRT__W1A4_BIAS: a group sum of 4 codes in -8..7 is in
 * -32..32, so the biased entries are bytes in 32..96. */
#define IRT__W1A4_BIAS 64

/* table[p][m] = IRT__W1A4_BIAS + sum_j (bit j of m ? +xq[4p+j] : -xq[4p+j]) for
 * p < positions.  Entries m + 4 and m + 8 add 2 * xq[4p+2] and 2 * xq[4p+3] to entry m; as
 * every biased entry is a byte in 0..255, one 32-bit add updates 4 entries at once. */
static void irt__w1a4_tables(const int8_t *xq, int positions, uint8_t (*table)[16])
{
    for (int p = 0; p < positions; ++p, xq += 4) {
        const int32_t v0 = xq[0], v1 = xq[1], v2 = xq[2], v3 = xq[3];
        const int32_t a0 = IRT__W1A4_BIAS - (v0 + v1 + v2 + v3), a1 = a0 + 2 * v0;
        const int32_t a2 = a0 + 2 * v1, a3 = a1 + 2 * v1;
        const uint32_t lo = (uint32_t)a0 | (uint32_t)a1 << 8 | (uint32_t)a2 << 16
                            | (uint32_t)a3 << 24;
        const uint32_t d2 = (uint32_t)(2 * v2) * 0x01010101u;
        const uint32_t d3 = (uint32_t)(2 * v3) * 0x01010101u;
        const uint32_t w[4] = {lo, lo + d2, lo + d3, lo + d2 + d3};
        memcpy(table[p], w, sizeof w);
    }
}

/* Where the core loads unaligned words, memcpy of 4 bytes is one load; elsewhere (RV32: gcc
 * assumes strict alignment and would copy bytes) a row is read by words when it starts on a
 * word boundary, else (rows of K % 32 != 0 inputs) by bytes. */
#if defined(__GNUC__) /* the row loops below are specialised for each word access */
#define IRT__W1A4_INLINE __attribute__((always_inline)) inline
#else
#define IRT__W1A4_INLINE inline
#endif

/* 1 where memcpy of 4 bytes is one load; -DIRT_W1A4_UNALIGNED_WORDS=0 builds RV32's paths
 * on the host (tests/test_w1a4_table_kernel.py). */
#if !defined(IRT_W1A4_UNALIGNED_WORDS)
#if defined(__ARM_FEATURE_UNALIGNED) || defined(__x86_64__) || defined(__i386__)
#define IRT_W1A4_UNALIGNED_WORDS 1
#else
#define IRT_W1A4_UNALIGNED_WORDS 0
#endif
#endif

/* The 32 weight bits at wb as one word (wb 4-aligned when `aligned`); bit j of byte i is
 * bit 8i + j, so a word load needs a little-endian core (Cortex-M, RV32, x86). */
static IRT__W1A4_INLINE uint32_t irt__w1a4_word(const uint8_t *wb, int aligned)
{
    uint32_t c;
    if (IRT_W1A4_UNALIGNED_WORDS) {
        memcpy(&c, wb, sizeof c);
    } else if (aligned) {
#if defined(__GNUC__)
        memcpy(&c, __builtin_assume_aligned(wb, 4), sizeof c);
#else
        memcpy(&c, wb, sizeof c);
#endif
    } else {
        c = (uint32_t)wb[0] | (uint32_t)wb[1] << 8 | (uint32_t)wb[2] << 16
            | (uint32_t)wb[3] << 24;
    }
    return c;
}

/* The exact sum of a group of 32 from its one word of weight bits c and its 8 tables. */
static IRT__W1A4_INLINE int32_t irt__w1a4_word_sum(uint32_t c, const uint8_t (*t)[16])
{
    return (int32_t)(t[0][c & 15u] + t[1][(c >> 4) & 15u] + t[2][(c >> 8) & 15u]
                     + t[3][(c >> 12) & 15u] + t[4][(c >> 16) & 15u]
                     + t[5][(c >> 20) & 15u] + t[6][(c >> 24) & 15u] + t[7][c >> 28])
           - 8 * IRT__W1A4_BIAS;
}

/* acc plus the terms of `full` groups of 32 of one row from w (4-aligned when `aligned`). */
static IRT__W1A4_INLINE float irt__w1a4_groups32(float acc, const uint8_t *w,
                                                 const uint8_t (*t)[16], const float *sx,
                                                 int full, int aligned)
{
    for (int g = 0; g < full; ++g, w += 4, t += 8)
        acc = acc + (float)irt__w1a4_word_sum(irt__w1a4_word(w, aligned), t) * sx[g];
    return acc;
}

/* The exact sum of a group from its nbytes bytes of weight bits (2 tables per byte). */
static int32_t irt__w1a4_bytes_sum(const uint8_t *wb, int nbytes, const uint8_t (*t)[16])
{
    int32_t acc = -2 * IRT__W1A4_BIAS * nbytes;
    for (int p = 0; p < nbytes; ++p, t += 2) {
        const uint32_t c = wb[p];
        acc += t[0][c & 15u] + t[1][c >> 4];
    }
    return acc;
}

/* y[n] for one row of activations xt [K]. */
static void irt__w1a4_rows(const float *xt, const uint8_t *wbits, const float *alpha,
                           const float *bias_or_null, float *yt, int K, int N, int group)
{
    const int ldw = (K + 7) / 8;
    const int span = IRT__W1A4_SPAN / group * group;
    int8_t xq[IRT__W1A4_SPAN];
    uint8_t table[IRT__W1A4_SPAN / 4][16];
    int e[IRT__W1A4_SPAN / 8];
    float sx[IRT__W1A4_SPAN / 8];

    if (K == 0) {
        for (int n = 0; n < N; ++n)
            yt[n] = bias_or_null != NULL ? alpha[n] * 0.0f + bias_or_null[n]
                                         : alpha[n] * 0.0f;
        return;
    }
    for (int k0 = 0; k0 < K; k0 += span) {
        const int len = K - k0 < span ? K - k0 : span;
        const int full = len / group, gbytes = group >> 3;
        const int tail = (len - full * group + 7) >> 3; /* bytes of a short last group */
        const int last = k0 + len == K;
        irt_quantize_act_a4(xt + k0, xq, e, len, group);
        for (int k = len; k % 8 != 0; ++k) /* the short last group's unused codes */
            xq[k] = 0;
        irt__w1a4_tables(xq, (len + 7) / 8 * 2, table);
        for (int g = 0; g < full + (tail > 0); ++g)
            sx[g] = irt__pow2f_w1a4(e[g]);
        const uint8_t *wb = wbits + (k0 >> 3);
        for (int n = 0; n < N; ++n, wb += ldw) {
            /* the first term is never -0 (an int32 times 2^e), so 0 + term is the term; each
             * product is exact, the terms are added in increasing group order */
            float acc = k0 == 0 ? 0.0f : yt[n];
            const uint8_t *w = wb;
            const uint8_t(*t)[16] = (const uint8_t(*)[16])table;
            if (gbytes == 4) {
                if (IRT_W1A4_UNALIGNED_WORDS || ((uintptr_t)w & 3u) == 0)
                    acc = irt__w1a4_groups32(acc, w, t, sx, full, 1);
                else
                    acc = irt__w1a4_groups32(acc, w, t, sx, full, 0);
                w += 4 * full;
                t += 8 * full;
            } else
                for (int g = 0; g < full; ++g, w += gbytes, t += 2 * gbytes)
                    acc = acc + (float)irt__w1a4_bytes_sum(w, gbytes, t) * sx[g];
            if (tail > 0)
                acc = acc + (float)irt__w1a4_bytes_sum(w, tail, t) * sx[full];
            if (!last)
                yt[n] = acc;
            else if (bias_or_null != NULL)
                yt[n] = alpha[n] * acc + bias_or_null[n];
            else
                yt[n] = alpha[n] * acc;
        }
    }
}

#endif /* !IRT_NO_W1A4_TABLE */

void irt_linear_w1a4_table(const float *x, const uint8_t *wbits, const float *alpha,
                           const float *bias_or_null, float *y, int T, int K, int N,
                           int group)
{
#if !defined(IRT_NO_W1A4_TABLE)
    if (group >= 8 && group % 8 == 0 && group <= IRT_W1A4_MAX_GROUP) {
        for (int t = 0; t < T; ++t)
            irt__w1a4_rows(x + (size_t)t * K, wbits, alpha, bias_or_null, y + (size_t)t * N, K,
                           N, group);
        return;
    }
#endif
    irt_linear_w1a4(x, wbits, alpha, bias_or_null, y, T, K, N, group);
}
