/*
 * irt_embedding_q.h - token embeddings read from a weight-quantized table (quant.wembedding).
 *
 * The table is stored as the quantized linears store their weights, so a token embedding tied
 * to a quantized classifier (irtool compile --quantize-lm-head) reads the classifier's packed
 * rows instead of a float copy of them.  Row i, element k: (float)q[i][k] * s, with s the
 * row's scale (per tensor: s[0]; per group of `group`: s[i][k / group]); 1 bit: +-alpha[i].
 * tokens [T] (int32, in range: the caller checks), y [T][D].
 */
#ifndef IRT_EMBEDDING_Q_H
#define IRT_EMBEDDING_Q_H

#include <stdint.h>

/* q [vocab][D] int8; s [vocab] or [1] (per_tensor != 0). */
void irt_embedding_w8(const int32_t *tokens, const int8_t *q, const float *s, float *y, int T,
                      int D, int per_tensor);

/* q [vocab][ceil(D / 2)] two 4-bit values per byte (element 2j low nibble);
 * s [vocab][ceil(D / group)]. */
void irt_embedding_w4g(const int32_t *tokens, const uint8_t *q, const float *s, float *y,
                       int T, int D, int group);

/* bits [vocab][ceil(D / 8)] least significant bit first (1 = +1); alpha [vocab]. */
void irt_embedding_w1(const int32_t *tokens, const uint8_t *bits, const float *alpha, float *y,
                      int T, int D);

#endif /* IRT_EMBEDDING_Q_H */
