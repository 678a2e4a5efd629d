/*
 * irt_generate.h - generation with the compiled model: feed a prompt, then generate token by
 * token, each one handed to a callback as soon as it is chosen (streaming). Built on the
 * model's irt_init()/irt_decode() (model.h) and irt_sample() (irt_sample.h).
 *
 *     static irt_generator_t g;
 *     irt_generator_init(&g, &options, stop, n_stop);   (also resets the model: irt_init)
 *     irt_feed(&g, prompt, n_prompt);
 *     irt_generate(&g, 64, on_token, user);              (on_token(token, user) per token)
 *
 * Every position costs one irt_decode(), but for a model with a batched prefill
 * (IRT_PREFILL_TOKENS > 1 in model.h), where irt_feed() takes whole chunks in one irt_prefill(). A generated token is decoded lazily, when the next
 * token is needed or irt_feed() adds more (a multi-turn loop just feeds the next turn).
 * A stop token ends irt_generate(); it is not handed to the callback nor decoded.
 */
#ifndef IRT_GENERATE_H
#define IRT_GENERATE_H

#include <stdint.h>

#include "irt_sample.h"

#if defined(__cplusplus)
extern "C" {
#endif

#define IRT_OK 0
#define IRT_ERR_FULL (-1)      /* a linear KV cache holds IRT_MAX_POSITIONS positions, and
                                  no cache goes past the model's IRT_CONTEXT */
#define IRT_ERR_NO_INPUT (-2)  /* irt_generate() before anything was fed */
#define IRT_ERR_WORK (-3)      /* the sampling options need a larger work area */
#define IRT_ERR_TOKEN (-4)     /* a token id outside 0..IRT_VOCAB-1 (it would index past the
                                  embedding table) */
#define IRT_ERR_OPTIONS (-5)   /* sampling options irt_sample_options_valid() refuses */

/* Called with every generated token; return nonzero to stop generating. */
typedef int (*irt_token_fn)(int32_t token, void *user);

typedef struct {
    int32_t pos;           /* positions decoded so far */
    int32_t pending;       /* a generated token not decoded yet, or -1 */
    const float *logits;   /* logits after the last decoded position (NULL before any) */
    irt_sampler_t sampler;
    const int32_t *stop;   /* tokens that end a generation */
    int32_t n_stop;
    int32_t stopped;       /* the last irt_generate() ended at a stop token */
} irt_generator_t;

/* Reset the model (irt_init) and the generator. `options` NULL is greedy. The stop list is
 * read, not copied: it must outlive the generator. Returns IRT_ERR_OPTIONS when the options
 * are out of range (irt_sample.h), IRT_ERR_WORK when they need more work area than the
 * generator's own (IRT_VOCAB entries); the generator is not usable then. */
int irt_generator_init(irt_generator_t *g, const irt_sampling_t *options,
                       const int32_t *stop, int32_t n_stop);

/* Decode tokens[0..n-1] at the next positions. IRT_OK, IRT_ERR_TOKEN (an id outside
 * 0..IRT_VOCAB-1: nothing was decoded), or IRT_ERR_FULL (the tokens that fit were decoded). */
int irt_feed(irt_generator_t *g, const int32_t *tokens, int32_t n);

/* Generate up to max_new tokens, calling on_token (may be NULL) with each. Ends early at a
 * stop token (g->stopped = 1), when on_token returns nonzero, when a linear cache is
 * full, or at the model's last position (IRT_CONTEXT). Returns the number of tokens generated, IRT_ERR_NO_INPUT, or IRT_ERR_OPTIONS. */
int32_t irt_generate(irt_generator_t *g, int32_t max_new, irt_token_fn on_token, void *user);

#if defined(__cplusplus)
}
#endif

#endif /* IRT_GENERATE_H */
