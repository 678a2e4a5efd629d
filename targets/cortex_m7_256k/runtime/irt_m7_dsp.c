/*
 * irt_m7_dsp.c - the int8 x int8 linear layer with the DSP extension's SMLAD.
 *
 * Per activation row, x - zx is packed once into int16 pairs, (x[4i], x[4i+2]) then
 * (x[4i+1], x[4i+3]) (zero point subtracted; |x - zx| <= 255 fits).  A word of four
 * int8 weights gives the matching pairs with SXTB16 (bytes 0 and 2) and SXTB16 ROR #8 (bytes
 * 1 and 3), and two SMLADs add its four products: for 4 rows sharing each pair load, about
 * 22 instructions per 16 multiply-accumulates.  The sums are exact int32 (at most 255 * 127
 * * K), so the result is the portable kernel's bit for bit; the requantization is the same
 * float32 multiply then add.
 *
 * The other schemes keep kernels without the extension.  w8 and w4g32 take float
 * activations: their inner loops compiled for the M7 (arm-none-eabi-objdump) are, per
 * weight, a byte load (w4g32: half of one and an SBFX), then VMOV, VCVT and VFMA; the
 * extension's SIMD works on integer lanes in core registers and every weight must still be
 * moved to the FPU, converted and multiplied there, so SXTB16/SMLAD replace none of the three.
 * w1a4 (integer codes) measured a USADA8 variant (byte lanes, a nibble mask per 4 weights,
 * 4 rows per pass) at 1,768,278 instructions per token against 2,029,515 portable, and a
 * table of partial sums without the extension at 1,503,879 (used: the portable runtime's
 * irt_linear_w1a4_table.c, shared with riscv-ulp).
 */
#include "irt_m7_dsp.h"

#include <stddef.h>
#include <string.h>

#include "irt_quant.h"

#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP && !defined(IRT_NO_DSP)
#define IRT_M7_DSP 1
#include <arm_acle.h>
#else
#define IRT_M7_DSP 0
#endif

int irt_m7_dsp_enabled(void)
{
    return IRT_M7_DSP;
}

#if IRT_M7_DSP

static inline uint32_t irt__load32(const int8_t *p)
{
    uint32_t v;
    memcpy(&v, p, sizeof v); /* LDR: the M7 reads unaligned words from normal memory */
    return v;
}

static inline uint32_t irt__pair(int32_t lo, int32_t hi)
{
    return ((uint32_t)lo & 0xffffu) | ((uint32_t)hi << 16);
}

static inline float irt__requant_m7(int32_t acc, float m, const float *bias, int n)
{
    float y = (float)acc * m;
    if (bias != NULL)
        y = y + bias[n];
    return y;
}

/* SXTB16 of bytes 1 and 3 (ROR #8 folded into the instruction; GCC emits a separate MOV). */
static inline uint32_t irt__sxtb16_ror8(uint32_t v)
{
    uint32_t r;
    __asm__("sxtb16 %0, %1, ror #8" : "=r"(r) : "r"(v));
    return r;
}

#define IRT_SMLAD_WORD(w, a)                                                        \
    do {                                                                            \
        const uint32_t v_ = irt__load32(w);                                         \
        w += 4;                                                                     \
        a = __smlad(__sxtb16(v_), e, a);                                            \
        a = __smlad(irt__sxtb16_ror8(v_), o, a);                                    \
    } while (0)

static void irt__row_w8a8_m7(const int8_t *x, int32_t zx, const int8_t *w, const float *m,
                             const float *bias, float *y, int K, int N)
{
    uint32_t pairs[IRT_M7_DSP_MAX_K / 2]; /* even, odd, even, odd, ... */
    const int words = K / 4, k4 = 4 * words;
    const uint32_t *const end = pairs + 2 * words;
    int i, n = 0, k;

    for (i = 0; i < words; ++i) {
        pairs[2 * i] = irt__pair(x[4 * i] - zx, x[4 * i + 2] - zx);
        pairs[2 * i + 1] = irt__pair(x[4 * i + 1] - zx, x[4 * i + 3] - zx);
    }
    for (; n + 4 <= N; n += 4) {
        const int8_t *w0 = w + (size_t)n * K, *w1 = w0 + K, *w2 = w1 + K, *w3 = w2 + K;
        const uint32_t *pp = pairs;
        int32_t a0 = 0, a1 = 0, a2 = 0, a3 = 0;
        while (pp != end) {
            const uint32_t e = pp[0], o = pp[1];
            pp += 2;
            IRT_SMLAD_WORD(w0, a0);
            IRT_SMLAD_WORD(w1, a1);
            IRT_SMLAD_WORD(w2, a2);
            IRT_SMLAD_WORD(w3, a3);
        }
        for (k = k4; k < K; ++k) {
            const int32_t xv = (int32_t)x[k] - zx;
            a0 += xv * w0[k - k4];
            a1 += xv * w1[k - k4];
            a2 += xv * w2[k - k4];
            a3 += xv * w3[k - k4];
        }
        y[n] = irt__requant_m7(a0, m[n], bias, n);
        y[n + 1] = irt__requant_m7(a1, m[n + 1], bias, n + 1);
        y[n + 2] = irt__requant_m7(a2, m[n + 2], bias, n + 2);
        y[n + 3] = irt__requant_m7(a3, m[n + 3], bias, n + 3);
    }
    for (; n < N; ++n) {
        const int8_t *wn = w + (size_t)n * K;
        const uint32_t *pp = pairs;
        int32_t a = 0;
        while (pp != end) {
            const uint32_t e = pp[0], o = pp[1];
            pp += 2;
            IRT_SMLAD_WORD(wn, a);
        }
        for (k = k4; k < K; ++k)
            a += ((int32_t)x[k] - zx) * wn[k - k4];
        y[n] = irt__requant_m7(a, m[n], bias, n);
    }
}

#endif /* IRT_M7_DSP */

void irt_linear_w8a8_m7(const int8_t *xq, int32_t x_zero_point, const int8_t *wq,
                        const float *m, const float *bias_or_null, float *y, int T, int K,
                        int N)
{
#if IRT_M7_DSP
    if (K <= IRT_M7_DSP_MAX_K) {
        for (int t = 0; t < T; ++t)
            irt__row_w8a8_m7(xq + (size_t)t * K, x_zero_point, wq, m, bias_or_null,
                             y + (size_t)t * N, K, N);
        return;
    }
#endif
    irt_linear_w8a8(xq, x_zero_point, wq, m, bias_or_null, y, T, K, N);
}
