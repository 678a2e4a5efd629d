/*
 * irt_m7_dsp.h - kernels of cortex-m7-256k that use the Armv7E-M DSP extension.
 *
 * Same contract and arguments as the portable kernel of the same name without `_m7`
 * (irt_quant.h), bit-exact with it.  Built where the compiler defines __ARM_FEATURE_DSP
 * (-mcpu=cortex-m7), unless -DIRT_NO_DSP (`make run DSP=0`); otherwise they call the portable
 * kernel, so the same sources build for the host and for cores without the extension.
 */
#ifndef IRT_M7_DSP_H
#define IRT_M7_DSP_H

#include <stdint.h>

/* 1 when the DSP paths are compiled in (reported by the program). */
int irt_m7_dsp_enabled(void);

/* irt_linear_w8a8 with SMLAD: two int8 x int8 products per instruction, the activations
 * minus their zero point held as int16 pairs (K up to IRT_M7_DSP_MAX_K; longer rows take the
 * portable kernel). */
#define IRT_M7_DSP_MAX_K 1024
void irt_linear_w8a8_m7(const int8_t *xq, int32_t x_zero_point, const int8_t *wq,
                        const float *m, const float *bias_or_null, float *y, int T, int K,
                        int N);

#endif /* IRT_M7_DSP_H */
