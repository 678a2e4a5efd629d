/*
 * irt_embedding_q.c - rows of a weight-quantized table, dequantized (irt_embedding_q.h).
 * One multiplication per element, so the result is the float32 product the quant-level
 * interpreter computes (irtool.numerics.quant.dequantized_rows), bit for bit.
 */
#include "irt_embedding_q.h"

#include <stddef.h>

void irt_embedding_w8(const int32_t *tokens, const int8_t *q, const float *s, float *y, int T,
                      int D, int per_tensor)
{
    for (int t = 0; t < T; ++t) {
        const int8_t *row = q + (size_t)tokens[t] * D;
        const float scale = s[per_tensor ? 0 : tokens[t]];
        float *out = y + (size_t)t * D;
        for (int k = 0; k < D; ++k)
            out[k] = (float)row[k] * scale;
    }
}

void irt_embedding_w4g(const int32_t *tokens, const uint8_t *q, const float *s, float *y,
                       int T, int D, int group)
{
    const int ldq = (D + 1) / 2, lds = (D + group - 1) / group;
    for (int t = 0; t < T; ++t) {
        const uint8_t *row = q + (size_t)tokens[t] * ldq;
        const float *scales = s + (size_t)tokens[t] * lds;
        float *out = y + (size_t)t * D;
        for (int k = 0; k < D; ++k) {
            int nib = (row[k / 2] >> (4 * (k & 1))) & 0xF;
            out[k] = (float)(nib >= 8 ? nib - 16 : nib) * scales[k / group];
        }
    }
}

void irt_embedding_w1(const int32_t *tokens, const uint8_t *bits, const float *alpha, float *y,
                      int T, int D)
{
    const int ldb = (D + 7) / 8;
    for (int t = 0; t < T; ++t) {
        const uint8_t *row = bits + (size_t)tokens[t] * ldb;
        const float a = alpha[tokens[t]];
        float *out = y + (size_t)t * D;
        for (int k = 0; k < D; ++k)
            out[k] = ((row[k / 8] >> (k & 7)) & 1) ? a : -a;
    }
}
