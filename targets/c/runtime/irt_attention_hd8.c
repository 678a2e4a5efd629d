/*
 * irt_attention_hd8.c - attention over the KV cache for head_dim 8 (irt_cached_attention_hd8_f32).
 *
 * Why a kernel of its own: with 8-wide heads the generic routine spends more on set-up, a
 * separate max pass and a range-checked exp per score than on the 16 multiply-accumulates a
 * cached position costs.  Here, per kv head and query row, the query heads that share it (GQA)
 * are taken two at a time:
 *   pass 1: each key row is loaded once (8 loads) and dotted with both queries, which sit in
 *           16 registers pre-scaled by scale * log2(e); the two scores go to the scratch and
 *           the maxima are tracked on the way (no separate max pass);
 *   pass 2: p = 2^(score - M) for both heads, where M is the maximum rounded to an integer
 *           (any shift cancels in the normalisation; an integer one makes 2^(n - M) a plain
 *           exponent-field write), then each value row is loaded once and accumulated into
 *           16 registers.
 * The exp needs no range checks: score - M <= 1/2 always, and one fmax clamps it from below
 * at -126 (weights under 2^-126 of the largest add nothing to a float sum).
 * Instruction budget per cached position and pair of heads (passes 1 and 3 take four rows
 * per loop turn, pass 2 two: four would spill registers): pass 1 about 29 (8 loads,
 * 16 multiply-adds, 2 stores, 2 fmax, 3 loop per 4 rows), pass 2 about 33 (2 loads,
 * 2 x 13 for the exp, 2 stores, 2 adds, 3 loop per 2 rows), pass 3 about 27 (2 + 8 loads,
 * 16 multiply-adds): 45 per head and position (92 measured per pair on stories260K).
 */
#include "irt_internal.h"

#include <stddef.h>

/* A run of cached rows: n rows of 8 floats from `row`. */
typedef struct {
    const float *row;
    int n;
} irt__rows;

/* Pass 1 for two heads: s[2j], s[2j+1] = the scores of row j for query a and b (8 floats
 * each, already scaled); returns both maxima (in *ma, *mb) over the two runs. */
/* The scores of key row kp for queries a and b into sp[0], sp[1]; the maxima updated. */
#define IRT_SCORE2(kp, sp)                                                              \
    do {                                                                                \
        const float k0 = (kp)[0], k1 = (kp)[1], k2 = (kp)[2], k3 = (kp)[3];             \
        const float k4 = (kp)[4], k5 = (kp)[5], k6 = (kp)[6], k7 = (kp)[7];             \
        float sa = a0 * k0, sb = b0 * k0;                                               \
        sa = IRT_FMA(a1, k1, sa);                                                       \
        sb = IRT_FMA(b1, k1, sb);                                                       \
        sa = IRT_FMA(a2, k2, sa);                                                       \
        sb = IRT_FMA(b2, k2, sb);                                                       \
        sa = IRT_FMA(a3, k3, sa);                                                       \
        sb = IRT_FMA(b3, k3, sb);                                                       \
        sa = IRT_FMA(a4, k4, sa);                                                       \
        sb = IRT_FMA(b4, k4, sb);                                                       \
        sa = IRT_FMA(a5, k5, sa);                                                       \
        sb = IRT_FMA(b5, k5, sb);                                                       \
        sa = IRT_FMA(a6, k6, sa);                                                       \
        sb = IRT_FMA(b6, k6, sb);                                                       \
        sa = IRT_FMA(a7, k7, sa);                                                       \
        sb = IRT_FMA(b7, k7, sb);                                                       \
        (sp)[0] = sa;                                                                   \
        (sp)[1] = sb;                                                                   \
        xa = IRT_FMAXF(xa, sa);                                                         \
        xb = IRT_FMAXF(xb, sb);                                                         \
    } while (0)

static void irt__scores2(const float *restrict qa, const float *restrict qb,
                         const irt__rows *runs, float *restrict s, float *ma, float *mb)
{
    const float a0 = qa[0], a1 = qa[1], a2 = qa[2], a3 = qa[3];
    const float a4 = qa[4], a5 = qa[5], a6 = qa[6], a7 = qa[7];
    const float b0 = qb[0], b1 = qb[1], b2 = qb[2], b3 = qb[3];
    const float b4 = qb[4], b5 = qb[5], b6 = qb[6], b7 = qb[7];
    float xa = -INFINITY, xb = -INFINITY;
    int run;
    for (run = 0; run < 2; ++run) {
        const float *k = runs[run].row;
        const float *const end = k + 8 * runs[run].n;
        const float *const end4 = k + 8 * (runs[run].n & ~3);
        for (; k != end4; k += 32, s += 8) { /* four rows per pass: a quarter of the loop cost */
            IRT_SCORE2(k, s);
            IRT_SCORE2(k + 8, s + 2);
            IRT_SCORE2(k + 16, s + 4);
            IRT_SCORE2(k + 24, s + 6);
        }
        for (; k != end; k += 8, s += 2)
            IRT_SCORE2(k, s);
    }
    *ma = xa;
    *mb = xb;
}

/* sp[0] = 2^(sp[0] - Ma), sp[1] = 2^(sp[1] - Mb); both added to the sums ta, tb. */
#define IRT_EXP2_ROW(sp)                                                                \
    do {                                                                                \
        const float pa = irt__exp2_shifted((sp)[0], sa, c);                             \
        const float pb = irt__exp2_shifted((sp)[1], sb, c);                             \
        (sp)[0] = pa;                                                                   \
        (sp)[1] = pb;                                                                   \
        ta += pa;                                                                       \
        tb += pb;                                                                       \
    } while (0)

/* Pass 2 for two heads: s[2j] = 2^(s[2j] - Ma), s[2j+1] = 2^(s[2j+1] - Mb) for j < n, in
 * place; the sums go to *suma, *sumb. */
static void irt__exp2_pairs(float *restrict s, int n, float ma, float mb, float *suma,
                            float *sumb)
{
    const irt__shift sa = irt__shift_of(ma), sb = irt__shift_of(mb);
    const irt__exp2_poly c = irt__exp2_coefficients();
    float *const end = s + 2 * n;
    float *const end2 = s + 2 * (n & ~1);
    float ta = 0.0f, tb = 0.0f;
    for (; s != end2; s += 4) { /* two rows per pass (four would spill registers) */
        IRT_EXP2_ROW(s);
        IRT_EXP2_ROW(s + 2);
    }
    if (s != end)
        IRT_EXP2_ROW(s);
    *suma = ta;
    *sumb = tb;
}

/* Value row vp weighted by sp[0] (head a) and sp[1] (head b) into the accumulators. */
#define IRT_VALUE2(vp, sp)                                                              \
    do {                                                                                \
        const float pa = (sp)[0], pb = (sp)[1];                                         \
        float w;                                                                        \
        w = (vp)[0], a0 = IRT_FMA(pa, w, a0), b0 = IRT_FMA(pb, w, b0);                  \
        w = (vp)[1], a1 = IRT_FMA(pa, w, a1), b1 = IRT_FMA(pb, w, b1);                  \
        w = (vp)[2], a2 = IRT_FMA(pa, w, a2), b2 = IRT_FMA(pb, w, b2);                  \
        w = (vp)[3], a3 = IRT_FMA(pa, w, a3), b3 = IRT_FMA(pb, w, b3);                  \
        w = (vp)[4], a4 = IRT_FMA(pa, w, a4), b4 = IRT_FMA(pb, w, b4);                  \
        w = (vp)[5], a5 = IRT_FMA(pa, w, a5), b5 = IRT_FMA(pb, w, b5);                  \
        w = (vp)[6], a6 = IRT_FMA(pa, w, a6), b6 = IRT_FMA(pb, w, b6);                  \
        w = (vp)[7], a7 = IRT_FMA(pa, w, a7), b7 = IRT_FMA(pb, w, b7);                  \
    } while (0)

/* Pass 3 for two heads: oa, ob = the value rows weighted by p (s[2j] for a, s[2j+1] for b),
 * divided by the sums. Each value row is loaded once for both heads. */
static void irt__values2(const float *restrict s, const irt__rows *runs, float suma,
                         float sumb, float *restrict oa, float *restrict ob)
{
    float a0 = 0.0f, a1 = 0.0f, a2 = 0.0f, a3 = 0.0f, a4 = 0.0f, a5 = 0.0f, a6 = 0.0f;
    float a7 = 0.0f, b0 = 0.0f, b1 = 0.0f, b2 = 0.0f, b3 = 0.0f, b4 = 0.0f, b5 = 0.0f;
    float b6 = 0.0f, b7 = 0.0f;
    const float fa = 1.0f / suma, fb = 1.0f / sumb;
    int run;
    for (run = 0; run < 2; ++run) {
        const float *v = runs[run].row;
        const float *const end = v + 8 * runs[run].n;
        const float *const end4 = v + 8 * (runs[run].n & ~3);
        for (; v != end4; v += 32, s += 8) { /* four rows per pass */
            IRT_VALUE2(v, s);
            IRT_VALUE2(v + 8, s + 2);
            IRT_VALUE2(v + 16, s + 4);
            IRT_VALUE2(v + 24, s + 6);
        }
        for (; v != end; v += 8, s += 2)
            IRT_VALUE2(v, s);
    }
    oa[0] = a0 * fa, oa[1] = a1 * fa, oa[2] = a2 * fa, oa[3] = a3 * fa;
    oa[4] = a4 * fa, oa[5] = a5 * fa, oa[6] = a6 * fa, oa[7] = a7 * fa;
    ob[0] = b0 * fb, ob[1] = b1 * fb, ob[2] = b2 * fb, ob[3] = b3 * fb;
    ob[4] = b4 * fb, ob[5] = b5 * fb, ob[6] = b6 * fb, ob[7] = b7 * fb;
}

/* Both passes for one head alone (a group of odd size leaves one). */
static void irt__attend1(const float *restrict q, const irt__rows *keys,
                         const irt__rows *values, float *restrict s, float *restrict o)
{
    float a[8] = {0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f};
    float mx = -INFINITY, sum = 0.0f, f;
    float *sp = s;
    irt__shift sh;
    irt__exp2_poly c;
    int run, d;
    for (run = 0; run < 2; ++run) {
        const float *k = keys[run].row;
        const float *const end = k + 8 * keys[run].n;
        for (; k != end; k += 8, ++sp) {
            float x = q[0] * k[0];
            for (d = 1; d < 8; ++d)
                x = IRT_FMA(q[d], k[d], x);
            *sp = x;
            mx = IRT_FMAXF(mx, x);
        }
    }
    sh = irt__shift_of(mx);
    c = irt__exp2_coefficients();
    sp = s;
    for (run = 0; run < 2; ++run) {
        const float *v = values[run].row;
        const float *const end = v + 8 * values[run].n;
        for (; v != end; v += 8, ++sp) {
            const float p = irt__exp2_shifted(*sp, sh, c);
            sum += p;
            for (d = 0; d < 8; ++d)
                a[d] = IRT_FMA(p, v[d], a[d]);
        }
    }
    f = 1.0f / sum;
    for (d = 0; d < 8; ++d)
        o[d] = a[d] * f;
}

void irt_cached_attention_hd8_f32(const float *restrict q, const float *restrict kcache,
                                  const float *restrict vcache, float *restrict out,
                                  float *restrict scratch, int layer, int heads, int kv_heads,
                                  int capacity, int T, int end, int ring, float scale)
{
    const int group = heads / kv_heads;
    const int ldq = heads * 8;
    const int first = end - capacity > 0 ? end - capacity : 0; /* oldest held position */
    const int slot0 = ring ? first % capacity : first;
    const int plane = capacity * 8; /* one kv head of one layer */
    const float qscale = scale * IRT_LOG2E; /* scores in log2 units: p = 2^(s - max) */
    int kvh, i, h, d;

    for (kvh = 0; kvh < kv_heads; ++kvh) {
        const float *kh = kcache + (ptrdiff_t)(layer * kv_heads + kvh) * plane;
        const float *vh = vcache + (ptrdiff_t)(layer * kv_heads + kvh) * plane;
        for (i = 0; i < T; ++i) {
            const int n = (end - T + i) - first + 1; /* positions first .. p */
            /* Positions first.. are slots slot0.., wrapping to slot 0 in a ring. */
            const int n1 = n < capacity - slot0 ? n : capacity - slot0;
            const irt__rows keys[2] = {{kh + slot0 * 8, n1}, {kh, n - n1}};
            const irt__rows values[2] = {{vh + slot0 * 8, n1}, {vh, n - n1}};
            for (h = kvh * group; h < (kvh + 1) * group; h += 2) {
                const float *qi = q + i * ldq + h * 8;
                float *oi = out + i * ldq + h * 8;
                float qa[8], qb[8];
                for (d = 0; d < 8; ++d)
                    qa[d] = qi[d] * qscale;
                if (h + 1 < (kvh + 1) * group) {
                    float ma, mb, suma, sumb;
                    for (d = 0; d < 8; ++d)
                        qb[d] = qi[8 + d] * qscale;
                    irt__scores2(qa, qb, keys, scratch, &ma, &mb);
                    irt__exp2_pairs(scratch, n, ma, mb, &suma, &sumb);
                    irt__values2(scratch, values, suma, sumb, oi, oi + 8);
                } else {
                    irt__attend1(qa, keys, values, scratch, oi);
                }
            }
        }
    }
}
