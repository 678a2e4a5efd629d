/*
 * irt_attention_i8_hd8.c - attention over the int8 KV cache for head_dim 8
 * (irt_cached_attention_i8_hd8; irt_attention_q.h).
 *
 * Why: irt_cached_attention_i8 walks 8-wide rows with the generic row routines (a pass of
 * set-up per 4 rows, a separate max pass, a range-checked exp per score).  This is the
 * layout of irt_cached_attention_hd8_f32 (irt_attention_hd8.c) over int8 rows: per kv head
 * and query row, the query heads that share it are taken two at a time;
 *   pass 1: each key row is loaded once (8 lb + 8 fcvt.s.w) and dotted with both queries,
 *           which sit in 16 registers pre-scaled by scale * log2(e); each dot is multiplied
 *           by the row's scale, stored, and the maxima tracked on the way;
 *   pass 2: p = 2^(score - M) with M the maximum rounded to an integer (irt_internal.h's
 *           exp without range checks); the sums take p, the stored weight is p times the
 *           value row's scale;
 *   pass 3: each value row is loaded once (8 lb + 8 fcvt.s.w) and accumulated into 16
 *           registers, which are divided by the sums at the end.
 * The softmax is the same as the reference's up to float32 rounding (the shift M cancels).
 */
#include "irt_internal.h" /* first: it marks this file as the runtime's own */
#include "irt_attention_q.h"

#include <stddef.h>

/* A run of cached rows: n int8 rows of 8 from `row`, their scales from `scale`. */
typedef struct {
    const int8_t *row;
    const float *scale;
    int n;
} irt__qrows;

/* The scores of key row kp (scale ks) for queries a and b into sp[0], sp[1]; the maxima
 * updated. */
#define IRT_QSCORE2(kp, ks, sp)                                                         \
    do {                                                                                \
        const float k0 = (float)(kp)[0], k1 = (float)(kp)[1], k2 = (float)(kp)[2];      \
        const float k3 = (float)(kp)[3], k4 = (float)(kp)[4], k5 = (float)(kp)[5];      \
        const float k6 = (float)(kp)[6], k7 = (float)(kp)[7];                           \
        const float kscale = (ks);                                                      \
        float sa, sb;                                                                   \
        IRT_DOT8_PAIR(sa, sb);                                                          \
        sa *= kscale;                                                                   \
        sb *= kscale;                                                                   \
        (sp)[0] = sa;                                                                   \
        (sp)[1] = sb;                                                                   \
        xa = IRT_FMAXF(xa, sa);                                                         \
        xb = IRT_FMAXF(xb, sb);                                                         \
    } while (0)

/* Pass 1 for two heads: s[2j], s[2j+1] = the scores of row j for query a and b; both
 * maxima into *ma, *mb. */
static void irt__qscores2(const float *restrict qa, const float *restrict qb,
                          const irt__qrows *runs, float *restrict s, float *ma, float *mb)
{
    const float a0 = qa[0], a1 = qa[1], a2 = qa[2], a3 = qa[3];
    const float a4 = qa[4], a5 = qa[5], a6 = qa[6], a7 = qa[7];
    const float b0 = qb[0], b1 = qb[1], b2 = qb[2], b3 = qb[3];
    const float b4 = qb[4], b5 = qb[5], b6 = qb[6], b7 = qb[7];
    float xa = -INFINITY, xb = -INFINITY;
    int run;
    for (run = 0; run < 2; ++run) {
        const int8_t *k = runs[run].row;
        const float *ks = runs[run].scale;
        const int8_t *const end = k + 8 * runs[run].n;
        const int8_t *const end2 = k + 8 * (runs[run].n & ~1);
        for (; k != end2; k += 16, ks += 2, s += 4) { /* two rows per pass */
            IRT_QSCORE2(k, ks[0], s);
            IRT_QSCORE2(k + 8, ks[1], s + 2);
        }
        for (; k != end; k += 8, ++ks, s += 2)
            IRT_QSCORE2(k, ks[0], s);
    }
    *ma = xa;
    *mb = xb;
}

/* Pass 2 for two heads: s[2j] = 2^(s[2j] - Ma) * vscale_j (the same for b) in place, the
 * sums of 2^(s - M) into *suma, *sumb. */
static void irt__qexp2_pairs(float *restrict s, const irt__qrows *values, float ma, float mb,
                             float *suma, float *sumb)
{
    const irt__shift sa = irt__shift_of(ma), sb = irt__shift_of(mb);
    const irt__exp2_poly c = irt__exp2_coefficients();
    float ta = 0.0f, tb = 0.0f;
    int run;
    for (run = 0; run < 2; ++run) {
        const float *vs = values[run].scale;
        const float *const end = vs + values[run].n;
        for (; vs != end; ++vs, s += 2) {
            const float pa = irt__exp2_shifted(s[0], sa, c);
            const float pb = irt__exp2_shifted(s[1], sb, c);
            ta += pa;
            tb += pb;
            s[0] = pa * vs[0];
            s[1] = pb * vs[0];
        }
    }
    *suma = ta;
    *sumb = tb;
}

/* Value row vp weighted by sp[0] (head a) and sp[1] (head b) into the accumulators. */
#define IRT_QVALUE2(vp, sp)                                                             \
    do {                                                                                \
        const float pa = (sp)[0], pb = (sp)[1];                                         \
        float w;                                                                        \
        w = (float)(vp)[0], a0 = IRT_FMA(pa, w, a0), b0 = IRT_FMA(pb, w, b0);           \
        w = (float)(vp)[1], a1 = IRT_FMA(pa, w, a1), b1 = IRT_FMA(pb, w, b1);           \
        w = (float)(vp)[2], a2 = IRT_FMA(pa, w, a2), b2 = IRT_FMA(pb, w, b2);           \
        w = (float)(vp)[3], a3 = IRT_FMA(pa, w, a3), b3 = IRT_FMA(pb, w, b3);           \
        w = (float)(vp)[4], a4 = IRT_FMA(pa, w, a4), b4 = IRT_FMA(pb, w, b4);           \
        w = (float)(vp)[5], a5 = IRT_FMA(pa, w, a5), b5 = IRT_FMA(pb, w, b5);           \
        w = (float)(vp)[6], a6 = IRT_FMA(pa, w, a6), b6 = IRT_FMA(pb, w, b6);           \
        w = (float)(vp)[7], a7 = IRT_FMA(pa, w, a7), b7 = IRT_FMA(pb, w, b7);           \
    } while (0)

/* Pass 3 for two heads: oa, ob = the value rows weighted by s[2j] (a) and s[2j+1] (b),
 * divided by the sums. */
static void irt__qvalues2(const float *restrict s, const irt__qrows *runs, float suma,
                          float sumb, float *restrict oa, float *restrict ob)
{
    float a0 = 0.0f, a1 = 0.0f, a2 = 0.0f, a3 = 0.0f, a4 = 0.0f, a5 = 0.0f, a6 = 0.0f;
    float a7 = 0.0f, b0 = 0.0f, b1 = 0.0f, b2 = 0.0f, b3 = 0.0f, b4 = 0.0f, b5 = 0.0f;
    float b6 = 0.0f, b7 = 0.0f;
    const float fa = 1.0f / suma, fb = 1.0f / sumb;
    int run;
    for (run = 0; run < 2; ++run) {
        const int8_t *v = runs[run].row;
        const int8_t *const end = v + 8 * runs[run].n;
        const int8_t *const end2 = v + 8 * (runs[run].n & ~1);
        for (; v != end2; v += 16, s += 4) { /* two rows per pass */
            IRT_QVALUE2(v, s);
            IRT_QVALUE2(v + 8, s + 2);
        }
        for (; v != end; v += 8, s += 2)
            IRT_QVALUE2(v, s);
    }
    oa[0] = a0 * fa, oa[1] = a1 * fa, oa[2] = a2 * fa, oa[3] = a3 * fa;
    oa[4] = a4 * fa, oa[5] = a5 * fa, oa[6] = a6 * fa, oa[7] = a7 * fa;
    ob[0] = b0 * fb, ob[1] = b1 * fb, ob[2] = b2 * fb, ob[3] = b3 * fb;
    ob[4] = b4 * fb, ob[5] = b5 * fb, ob[6] = b6 * fb, ob[7] = b7 * fb;
}

/* The three passes for one head alone (a group of odd size leaves one). */
static void irt__qattend1(const float *restrict q, const irt__qrows *keys,
                          const irt__qrows *values, float *restrict s, float *restrict o)
{
    float a[8] = {0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f};
    float mx = -INFINITY, sum = 0.0f, f;
    float *sp = s;
    irt__shift sh;
    irt__exp2_poly c;
    int run, j, d;
    for (run = 0; run < 2; ++run) {
        for (j = 0; j < keys[run].n; ++j, ++sp) {
            const int8_t *k = keys[run].row + 8 * j;
            float x = q[0] * (float)k[0];
            for (d = 1; d < 8; ++d)
                x = IRT_FMA(q[d], (float)k[d], x);
            *sp = x * keys[run].scale[j];
            mx = IRT_FMAXF(mx, *sp);
        }
    }
    sh = irt__shift_of(mx);
    c = irt__exp2_coefficients();
    sp = s;
    for (run = 0; run < 2; ++run) {
        for (j = 0; j < values[run].n; ++j, ++sp) {
            const int8_t *v = values[run].row + 8 * j;
            const float p = irt__exp2_shifted(*sp, sh, c);
            const float pv = p * values[run].scale[j];
            sum += p;
            for (d = 0; d < 8; ++d)
                a[d] = IRT_FMA(pv, (float)v[d], a[d]);
        }
    }
    f = 1.0f / sum;
    for (d = 0; d < 8; ++d)
        o[d] = a[d] * f;
}

void irt_cached_attention_i8_hd8(const float *restrict q, const int8_t *restrict kcache,
                                 const float *restrict kscales,
                                 const int8_t *restrict vcache,
                                 const float *restrict vscales, float *restrict out,
                                 float *restrict scratch, int layer, int heads, int kv_heads,
                                 int capacity, int T, int end, int ring, float scale)
{
    const int group = heads / kv_heads;
    const int ldq = heads * 8;
    const int first = end - capacity > 0 ? end - capacity : 0; /* oldest held position */
    const int slot0 = ring ? first % capacity : first;
    const float qscale = scale * IRT_LOG2E; /* scores in log2 units: p = 2^(s - max) */
    int kvh, i, h, d;

    for (kvh = 0; kvh < kv_heads; ++kvh) {
        const ptrdiff_t head = (ptrdiff_t)layer * kv_heads + kvh;
        const int8_t *kh = kcache + head * capacity * 8;
        const int8_t *vh = vcache + head * capacity * 8;
        const float *ksh = kscales + head * capacity;
        const float *vsh = vscales + head * capacity;
        for (i = 0; i < T; ++i) {
            const int n = (end - T + i) - first + 1; /* positions first .. p */
            /* Positions first.. are slots slot0.., wrapping to slot 0 in a ring. */
            const int n1 = n < capacity - slot0 ? n : capacity - slot0;
            const irt__qrows keys[2] = {{kh + slot0 * 8, ksh + slot0, n1}, {kh, ksh, n - n1}};
            const irt__qrows values[2] = {{vh + slot0 * 8, vsh + slot0, n1},
                                          {vh, vsh, n - n1}};
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
                    irt__qscores2(qa, qb, keys, scratch, &ma, &mb);
                    irt__qexp2_pairs(scratch, values, ma, mb, &suma, &sumb);
                    irt__qvalues2(scratch, values, suma, sumb, oi, oi + 8);
                } else {
                    irt__qattend1(qa, keys, values, scratch, oi);
                }
            }
        }
    }
}
