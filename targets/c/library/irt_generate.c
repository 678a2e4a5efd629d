/*
 * irt_generate.c - the generation loop of irt_generate.h over the compiled model.
 */
#include "irt_generate.h"

#include <stddef.h>

#include "model.h"

/* The sampler's work area: enough for any options (top-p sorts the whole vocabulary). */
static irt_candidate_t irt__work[IRT_VOCAB];

int irt_generator_init(irt_generator_t *g, const irt_sampling_t *options,
                       const int32_t *stop, int32_t n_stop)
{
    static const irt_sampling_t greedy = {0.0f, 0, 1.0f, 0u};
    if (options == NULL)
        options = &greedy;
    irt_init();
    g->pos = 0;
    g->pending = -1;
    g->logits = NULL;
    g->stop = stop;
    g->n_stop = n_stop;
    g->stopped = 0;
    irt_sampler_init(&g->sampler, options, irt__work, IRT_VOCAB);
    if (!irt_sample_options_valid(options))
        return IRT_ERR_OPTIONS;
    return irt_sample_work_size(options, IRT_VOCAB) > IRT_VOCAB ? IRT_ERR_WORK : IRT_OK;
}

static int irt__decode(irt_generator_t *g, int32_t token)
{
    if ((!IRT_RING && g->pos >= IRT_MAX_POSITIONS) || g->pos >= IRT_CONTEXT)
        return IRT_ERR_FULL; /* a full linear cache, or past the model's position tables */
    g->logits = irt_decode(&token, g->pos);
    g->pos++;
    return IRT_OK;
}

/* Decodes the token chosen last. When it cannot (the cache or the context is full) it stays
 * pending, so every later irt_generate ends at once: sampling the same logits again would
 * hand out a second token for the same position. */
static int irt__flush(irt_generator_t *g)
{
    int32_t token = g->pending;
    if (token < 0)
        return IRT_OK;
    if (irt__decode(g, token) != IRT_OK)
        return IRT_ERR_FULL;
    g->pending = -1;
    return IRT_OK;
}

int irt_feed(irt_generator_t *g, const int32_t *tokens, int32_t n)
{
    int32_t i = 0;
    for (i = 0; i < n; i++) /* every id indexes the embedding table: check them all first */
        if (tokens[i] < 0 || tokens[i] >= IRT_VOCAB)
            return IRT_ERR_TOKEN;
    i = 0;
    if (irt__flush(g) != IRT_OK)
        return IRT_ERR_FULL;
#if IRT_PREFILL_TOKENS > 1
    /* chunks through the batched prefill (model.h) while one fits the cache and is at least
     * half full, a shorter one padded with its last token (its rows lie past the tokens fed,
     * where irt_decode writes before it reads) */
    while (n - i >= 2 && 2 * (n - i) >= IRT_PREFILL_TOKENS
           && g->pos + IRT_PREFILL_TOKENS <= IRT_MAX_POSITIONS
           && g->pos + IRT_PREFILL_TOKENS <= IRT_CONTEXT) {
        static int32_t chunk[IRT_PREFILL_TOKENS];
        int32_t m = n - i < IRT_PREFILL_TOKENS ? n - i : IRT_PREFILL_TOKENS, j;
        for (j = 0; j < IRT_PREFILL_TOKENS; j++)
            chunk[j] = tokens[i + (j < m ? j : m - 1)];
        g->logits = irt_prefill(chunk, g->pos) - (IRT_PREFILL_TOKENS - m) * IRT_VOCAB;
        g->pos += m;
        i += m;
    }
#endif
    for (; i < n; i++)
        if (irt__decode(g, tokens[i]) != IRT_OK)
            return IRT_ERR_FULL;
    return IRT_OK;
}

int32_t irt_generate(irt_generator_t *g, int32_t max_new, irt_token_fn on_token, void *user)
{
    int32_t count = 0, token, i;
    if (!irt_sample_options_valid(&g->sampler.options))
        return IRT_ERR_OPTIONS; /* irt_generator_init said so; its tokens would be garbage */
    if (g->logits == NULL && g->pending < 0)
        return IRT_ERR_NO_INPUT;
    g->stopped = 0;
    while (count < max_new) {
        if (irt__flush(g) != IRT_OK)
            break;
        token = irt_sample(&g->sampler, g->logits, IRT_VOCAB);
        for (i = 0; i < g->n_stop; i++)
            if (token == g->stop[i])
                g->stopped = 1;
        if (g->stopped)
            break;
        g->pending = token;
        count++;
        if (on_token != NULL && on_token(token, user))
            break;
    }
    return count;
}
