/*
 * irt_sample.h - choosing the next token from a row of logits: greedy, or sampling with a
 * temperature, top-k and top-p (nucleus) from a seeded xorshift32 generator.
 *
 * The choice is bit-identical to irtool's interpreter (irtool/sampling.py) for the same
 * logits, options and seed, on any target whose float arithmetic is IEEE single precision
 * evaluated in float (FLT_EVAL_METHOD 0: rv32 F, x86-64 SSE, Arm FPv5): every step below is
 * a float32 operation in a fixed order, exp included (a polynomial of our own, no libm), and
 * irt_sample.c turns off contraction into fused multiply-adds.
 *
 * The definition (irtool/sampling.py says the same in numpy):
 *  1. temperature <= 0 or top_k == 1: the first index of the largest logit (greedy); the
 *     generator is not advanced.
 *  2. Candidates: when top_k limits (0 < top_k < vocab) or top_p < 1, the indices sorted by
 *     logit, largest first, ties by smaller index, cut to the first top_k (when 0 < top_k);
 *     otherwise every index in increasing order.
 *  3. m = the largest logit; w_i = exp((logit_i - m) * (1.0f / temperature)); c_j the running
 *     float32 sum of w over the candidates in their order.
 *  4. top_p < 1: keep the first n candidates, n the smallest with c_{n-1} >= top_p * c_last.
 *  5. u = (xorshift32() >> 8) * 2^-24; r = u * c_{n-1}; the token is the first candidate j
 *     with r < c_j (the last kept one if none).
 */
#ifndef IRT_SAMPLE_H
#define IRT_SAMPLE_H

#include <stdint.h>

#if defined(__cplusplus)
extern "C" {
#endif

/* What the caller chooses. {0.0f, 0, 1.0f, 0u} is greedy. */
typedef struct {
    float temperature; /* <= 0: greedy */
    int32_t top_k;     /* 0: no limit */
    float top_p;       /* >= 1: no limit */
    uint32_t seed;     /* the generator's seed; any value (0 included) */
} irt_sampling_t;

/* One entry of the caller's work area (sorted candidates). */
typedef struct {
    int32_t index;
    float value;
} irt_candidate_t;

typedef struct {
    irt_sampling_t options;
    uint32_t rng;            /* xorshift32 state, never 0 */
    irt_candidate_t *work;   /* irt_sample_work_size() entries (NULL when that is 0) */
    int32_t work_len;
} irt_sampler_t;

/* 1 when the options are usable: temperature 0 (or below: greedy) or within 1e-30..1e30,
 * whose float32 reciprocal scales the logits (1/1e-40 overflows to inf and every token looks
 * alike: always the last index, not greedy), top_k >= 0, top_p > 0 (NaN in neither); 0
 * otherwise (irtool/sampling.py refuses the same values). */
int irt_sample_options_valid(const irt_sampling_t *options);

/* Entries of work area the options need for a vocabulary of `vocab`: 0 for greedy and for a
 * plain temperature, top_k when 0 < top_k <= 64, else vocab. */
int32_t irt_sample_work_size(const irt_sampling_t *options, int32_t vocab);

/* Start a sampler (seeds its generator). `work` may be NULL when the work size is 0. */
void irt_sampler_init(irt_sampler_t *s, const irt_sampling_t *options, irt_candidate_t *work,
                      int32_t work_len);

/* The next 32-bit number of the generator (xorshift32: x ^= x << 13; x ^= x >> 17;
 * x ^= x << 5), which it returns. */
uint32_t irt_rng_next(uint32_t *state);

/* The next token for logits[0..vocab-1]; -1 when the work area is too small. */
int32_t irt_sample(irt_sampler_t *s, const float *logits, int32_t vocab);

#if defined(__cplusplus)
}
#endif

#endif /* IRT_SAMPLE_H */
