/*
 * irt_sample.c - greedy, temperature, top-k and top-p sampling; the definition is in
 * irt_sample.h and must stay bit-identical to irtool/sampling.py.
 */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
/* a*b+c must round twice, as numpy does: no fused multiply-add in this file */
#pragma GCC optimize("fp-contract=off")
#endif

#include "irt_sample.h"

#include <stddef.h>
#include <stdlib.h>

#define IRT_SAMPLE_INSERTION_MAX 64 /* top_k up to this keeps its k best by insertion */

/* exp(x) for x <= 0 in float32 steps the interpreter repeats exactly: x = n ln2 + r,
 * |r| <= ln2/2, exp(r) by its Taylor polynomial of degree 7 (Horner), 2^n in the exponent
 * bits. Below -87 (and for NaN) it is 0. */
static float irt__sample_exp(float x)
{
    union { float f; uint32_t u; } scale;
    float t, n, r, p;
    if (!(x >= -87.0f))
        return 0.0f;
    t = x * 1.44269504f + 12582912.0f; /* + 1.5 * 2^23 rounds to an integer */
    n = t - 12582912.0f;
    r = x - n * 0.693145751953125f;
    r = r - n * 1.42860677e-06f;
    p = 1.98412701e-04f;
    p = p * r + 1.38888892e-03f;
    p = p * r + 8.33333377e-03f;
    p = p * r + 4.16666679e-02f;
    p = p * r + 1.66666672e-01f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    scale.u = (uint32_t)((int32_t)n + 127) << 23;
    return p * scale.f;
}

uint32_t irt_rng_next(uint32_t *state)
{
    uint32_t x = *state;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    *state = x;
    return x;
}

static int irt__sample_greedy(const irt_sampling_t *o)
{
    return !(o->temperature > 0.0f) || o->top_k == 1;
}

static int irt__sample_sorted(const irt_sampling_t *o, int32_t vocab)
{
    return (o->top_k > 0 && o->top_k < vocab) || o->top_p < 1.0f;
}

int irt_sample_options_valid(const irt_sampling_t *o)
{
    const float t = o->temperature;
    if (t != t || (t > 0.0f && !(t >= 1e-30f && t <= 1e30f)))
        return 0;
    return o->top_k >= 0 && o->top_p > 0.0f;
}

int32_t irt_sample_work_size(const irt_sampling_t *o, int32_t vocab)
{
    if (irt__sample_greedy(o) || !irt__sample_sorted(o, vocab))
        return 0;
    if (o->top_k > 0 && o->top_k <= IRT_SAMPLE_INSERTION_MAX && o->top_k < vocab)
        return o->top_k;
    return vocab;
}

void irt_sampler_init(irt_sampler_t *s, const irt_sampling_t *options, irt_candidate_t *work,
                      int32_t work_len)
{
    s->options = *options;
    /* spread nearby seeds apart; xorshift32 must not start at 0 */
    s->rng = options->seed * 0x9E3779B1u + 0x6D2B79F5u;
    if (s->rng == 0)
        s->rng = 1;
    s->work = work;
    s->work_len = work_len;
}

/* a before b: larger value, then smaller index */
static int irt__before(const irt_candidate_t *a, const irt_candidate_t *b)
{
    return a->value > b->value || (a->value == b->value && a->index < b->index);
}

static int irt__compare(const void *pa, const void *pb)
{
    const irt_candidate_t *a = (const irt_candidate_t *)pa, *b = (const irt_candidate_t *)pb;
    return irt__before(a, b) ? -1 : irt__before(b, a) ? 1 : 0;
}

/* The k best candidates, in order, in work[0..k-1]; returns k. */
static int32_t irt__select(irt_candidate_t *work, const float *logits, int32_t vocab, int32_t k)
{
    int32_t n = 0, i, j;
    if (k == vocab || k > IRT_SAMPLE_INSERTION_MAX) {
        for (i = 0; i < vocab; i++) {
            work[i].index = i;
            work[i].value = logits[i];
        }
        qsort(work, (size_t)vocab, sizeof(work[0]), irt__compare);
        return k;
    }
    for (i = 0; i < vocab; i++) {
        irt_candidate_t c;
        c.index = i;
        c.value = logits[i];
        if (n == k && !irt__before(&c, &work[k - 1]))
            continue;
        j = n < k ? n++ : k - 1;
        while (j > 0 && irt__before(&c, &work[j - 1])) {
            work[j] = work[j - 1];
            j--;
        }
        work[j] = c;
    }
    return n;
}

static int32_t irt__argmax(const float *x, int32_t n)
{
    int32_t best = 0, i;
    for (i = 1; i < n; i++)
        if (x[i] > x[best])
            best = i;
    return best;
}

int32_t irt_sample(irt_sampler_t *s, const float *logits, int32_t vocab)
{
    const irt_sampling_t *o = &s->options;
    float m, inv_t, total, r, cutoff;
    int32_t i, k, n;
    if (irt__sample_greedy(o))
        return irt__argmax(logits, vocab);
    m = logits[irt__argmax(logits, vocab)];
    inv_t = 1.0f / o->temperature;
    if (!irt__sample_sorted(o, vocab)) {
        /* every index in order: one pass for the sum, one to find the draw */
        total = 0.0f;
        for (i = 0; i < vocab; i++)
            total = total + irt__sample_exp((logits[i] - m) * inv_t);
        r = (float)(irt_rng_next(&s->rng) >> 8) * 5.9604644775390625e-08f;
        r = r * total;
        total = 0.0f;
        for (i = 0; i < vocab; i++) {
            total = total + irt__sample_exp((logits[i] - m) * inv_t);
            if (r < total)
                return i;
        }
        return vocab - 1;
    }
    k = o->top_k > 0 && o->top_k < vocab ? o->top_k : vocab;
    if (irt_sample_work_size(o, vocab) > s->work_len || s->work == NULL)
        return -1;
    k = irt__select(s->work, logits, vocab, k);
    total = 0.0f;
    for (i = 0; i < k; i++) { /* value becomes the running sum c_i */
        total = total + irt__sample_exp((s->work[i].value - m) * inv_t);
        s->work[i].value = total;
    }
    n = k;
    if (o->top_p < 1.0f) {
        cutoff = o->top_p * total;
        for (n = 1; n < k && s->work[n - 1].value < cutoff; n++) {
        }
    }
    r = (float)(irt_rng_next(&s->rng) >> 8) * 5.9604644775390625e-08f;
    r = r * s->work[n - 1].value;
    for (i = 0; i < n; i++)
        if (r < s->work[i].value)
            return s->work[i].index;
    return s->work[n - 1].index;
}
