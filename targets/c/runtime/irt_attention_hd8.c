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
 *           exponent-field write), added to the sums and used at once: each value row is
 *           loaded once and accumulated into 16 registers (no weights written back).
 * The exp needs no range checks: score - M <= 1/2 always, and one fmax clamps it from below
 * at -126 (weights under 2^-126 of the largest add nothing to a float sum); as the weights
 * are divided by their sum, a degree-4 polynomial does (irt__exp2_softmax: relative error
 * below 3e-6, 12 instructions per weight).
 * Instruction budget per cached position and pair of heads: pass 1 about 29 (8 loads,
 * 16 multiply-adds, 2 stores, 2 fmax, 3 loop per 4 rows), pass 2 about 55 (2 score loads,
 * 2 x 12 for the weights, 2 adds, 8 value loads, 16 multiply-adds, 5 loop per 2 rows; in
 * RV32F asm, as gcc spills registers there): 42 per head and position.
 */
#include "irt_internal.h"

#include <stddef.h>

/* A run of cached rows: n rows of 8 floats from `row`. */
typedef struct {
    const float *row;
    int n;
} irt__rows;

/* The scores of key row kp for queries a and b into sp[0], sp[1]; the maxima updated. */
#define IRT_SCORE2(kp, sp)                                                              \
    do {                                                                                \
        const float k0 = (kp)[0], k1 = (kp)[1], k2 = (kp)[2], k3 = (kp)[3];             \
        const float k4 = (kp)[4], k5 = (kp)[5], k6 = (kp)[6], k7 = (kp)[7];             \
        float sa, sb;                                                                   \
        IRT_DOT8_PAIR(sa, sb);                                                          \
        (sp)[0] = sa;                                                                   \
        (sp)[1] = sb;                                                                   \
        xa = IRT_FMAXF(xa, sa);                                                         \
        xb = IRT_FMAXF(xb, sb);                                                         \
    } while (0)


/* Value row vp weighted by pa (head a) and pb (head b) into the accumulators. */
#define IRT_VALUE2(vp, pa, pb)                                                          \
    do {                                                                                \
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

/* The weights of one cached position for heads a and b, p = 2^(s - M) from the scores sp[0],
 * sp[1], added to the sums ta, tb; then value row vp weighted by them into the accumulators. */
#define IRT_WEIGH2(vp, sp)                                                              \
    do {                                                                                \
        const float pa = irt__exp2_softmax((sp)[0], sha, c);                            \
        const float pb = irt__exp2_softmax((sp)[1], shb, c);                            \
        ta += pa;                                                                       \
        tb += pb;                                                                       \
        IRT_VALUE2(vp, pa, pb);                                                         \
    } while (0)

#if IRT_RISCV_F_ASM
/* Pass 2 of irt__attend2 in RV32F asm (gcc 12 spills a quarter of the loop when it
 * allocates the float registers itself): 16 accumulators (ft4-ft11 for head a, fs0-fs7 for
 * b), the sums (fs8, fs9), the polynomial's constants c1..c4 (fs10, fs11, fa0, fa1) and the
 * shifts (fa3 = c and fa4 = lo of head a, fa5 and fa6 of head b) stay in registers; ft0-ft3
 * and fa7 are the temporaries.  The same operations in the same order as irt__exp2_softmax
 * and IRT_VALUE2, so the same bits as the C below.  Per cached row 55 instructions: 2 x (a
 * score load, 12 for the weight, a sum), 8 value loads, 16 fmadd.s, and 2.5 loop. */
/* p = 2^(score at OFF(s) - M) into P with the head's shift C, LO; added to SUM. */
#define IRT_A_EXP2(OFF, C, LO, P, SUM)                                                  \
    "flw ft0, " #OFF "(%[s])\n\t"                                                       \
    "fmax.s ft0, ft0, " LO "\n\t"        /* s = max(s, M - 126) */                      \
    "fadd.s ft1, ft0, " C "\n\t"         /* t = s + c: the integer c + round(s) */      \
    "fsub.s ft2, ft1, " C "\n\t"                                                        \
    "fsub.s ft0, ft0, ft2\n\t"           /* r = s - round(s) */                         \
    "fmv.x.w %[i], ft1\n\tslli %[i], %[i], 23\n\tfmv.w.x ft1, %[i]\n\t" /* e */          \
    "fmadd.s ft2, fa1, ft0, fa0\n\t"     /* Q(r), Horner */                             \
    "fmadd.s ft2, ft2, ft0, fs11\n\t"                                                   \
    "fmadd.s ft2, ft2, ft0, fs10\n\t"                                                   \
    "fmul.s ft0, ft1, ft0\n\t"                                                          \
    "fmadd.s " P ", ft0, ft2, ft1\n\t"   /* e + e r Q(r) */                             \
    "fadd.s " SUM ", " SUM ", " P "\n\t"
/* Element d of the value row: a_d += pa * v[d] (fa7), b_d += pb * v[d] (ft3). */
#define IRT_A_VALUE(d, A, B)                                                            \
    "flw ft0, " #d "*4(%[v])\n\t"                                                       \
    "fmadd.s " A ", fa7, ft0, " A "\n\t"                                                \
    "fmadd.s " B ", ft3, ft0, " B "\n\t"
#define IRT_A_WEIGH2                                                                    \
    IRT_A_EXP2(0, "fa3", "fa4", "fa7", "fs8") IRT_A_EXP2(4, "fa5", "fa6", "ft3", "fs9")   \
    IRT_A_VALUE(0, "ft4", "fs0") IRT_A_VALUE(1, "ft5", "fs1")                            \
    IRT_A_VALUE(2, "ft6", "fs2") IRT_A_VALUE(3, "ft7", "fs3")                            \
    IRT_A_VALUE(4, "ft8", "fs4") IRT_A_VALUE(5, "ft9", "fs5")                            \
    IRT_A_VALUE(6, "ft10", "fs6") IRT_A_VALUE(7, "ft11", "fs7")
/* Output element d of both heads: acc * (1 / sum). */
#define IRT_A_OUT(d, A, B)                                                              \
    "fmul.s " A ", " A ", ft1\n\tfsw " A ", " #d "*4(%[oa])\n\t"                         \
    "fmul.s " B ", " B ", ft2\n\tfsw " B ", " #d "*4(%[ob])\n\t"

/* c the polynomial, sa and sb the heads' shifts; s the scores of both heads (two per row);
 * the rows of the two runs of values[] weighted and summed into oa, ob.  The constants go
 * to their registers as asm operands (register variables), not through memory. */
static void irt__weigh2(irt__exp2_poly4 c, irt__shift sa, irt__shift sb, const float *s,
                        const irt__rows *values, float *restrict oa, float *restrict ob)
{
    register float c1 __asm__("fs10") = c.c1;
    register float c2 __asm__("fs11") = c.c2;
    register float c3 __asm__("fa0") = c.c3;
    register float c4 __asm__("fa1") = c.c4;
    register float ca __asm__("fa3") = sa.c;
    register float loa __asm__("fa4") = sa.lo;
    register float cb __asm__("fa5") = sb.c;
    register float lob __asm__("fa6") = sb.lo;
    const float *v, *e;
    int n, left = 2, i;
    __asm__ volatile(
            "fmv.w.x ft4, zero\n\tfmv.w.x ft5, zero\n\tfmv.w.x ft6, zero\n\t"
            "fmv.w.x ft7, zero\n\tfmv.w.x ft8, zero\n\tfmv.w.x ft9, zero\n\t"
            "fmv.w.x ft10, zero\n\tfmv.w.x ft11, zero\n\tfmv.w.x fs0, zero\n\t"
            "fmv.w.x fs1, zero\n\tfmv.w.x fs2, zero\n\tfmv.w.x fs3, zero\n\t"
            "fmv.w.x fs4, zero\n\tfmv.w.x fs5, zero\n\tfmv.w.x fs6, zero\n\t"
            "fmv.w.x fs7, zero\n\tfmv.w.x fs8, zero\n\tfmv.w.x fs9, zero\n"
            "1:\n\t" /* a run of rows */
            "lw %[v], 0(%[runs])\n\tlw %[n], 4(%[runs])\n\taddi %[runs], %[runs], 8\n\t"
            "slli %[e], %[n], 5\n\tadd %[e], %[e], %[v]\n\t"
            "andi %[n], %[n], 1\n\tbeqz %[n], 2f\n\t" /* an odd row first */
            IRT_A_WEIGH2
            "addi %[s], %[s], 8\n\taddi %[v], %[v], 32\n"
            "2:\n\t"
            "beq %[v], %[e], 4f\n"
            "3:\n\t" /* two rows per turn */
            IRT_A_WEIGH2
            "addi %[v], %[v], 32\n\t"
            IRT_A_EXP2(8, "fa3", "fa4", "fa7", "fs8") IRT_A_EXP2(12, "fa5", "fa6", "ft3", "fs9")
            IRT_A_VALUE(0, "ft4", "fs0") IRT_A_VALUE(1, "ft5", "fs1")
            IRT_A_VALUE(2, "ft6", "fs2") IRT_A_VALUE(3, "ft7", "fs3")
            IRT_A_VALUE(4, "ft8", "fs4") IRT_A_VALUE(5, "ft9", "fs5")
            IRT_A_VALUE(6, "ft10", "fs6") IRT_A_VALUE(7, "ft11", "fs7")
            "addi %[s], %[s], 16\n\taddi %[v], %[v], 32\n\t"
            "bne %[v], %[e], 3b\n"
            "4:\n\t"
            "addi %[left], %[left], -1\n\tbnez %[left], 1b\n\t"
            "lui %[i], 0x3f800\n\tfmv.w.x ft0, %[i]\n\t" /* 1.0f */
            "fdiv.s ft1, ft0, fs8\n\tfdiv.s ft2, ft0, fs9\n\t"
            IRT_A_OUT(0, "ft4", "fs0") IRT_A_OUT(1, "ft5", "fs1")
            IRT_A_OUT(2, "ft6", "fs2") IRT_A_OUT(3, "ft7", "fs3")
            IRT_A_OUT(4, "ft8", "fs4") IRT_A_OUT(5, "ft9", "fs5")
            IRT_A_OUT(6, "ft10", "fs6") IRT_A_OUT(7, "ft11", "fs7")
            : [s] "+&r"(s), [runs] "+&r"(values), [v] "=&r"(v), [e] "=&r"(e), [n] "=&r"(n),
              [left] "+&r"(left), [i] "=&r"(i)
            : [oa] "r"(oa), [ob] "r"(ob), "f"(c1), "f"(c2), "f"(c3), "f"(c4), "f"(ca),
              "f"(loa), "f"(cb), "f"(lob)
            : "ft0", "ft1", "ft2", "ft3", "ft4", "ft5", "ft6", "ft7", "ft8", "ft9", "ft10",
              "ft11", "fa7", "fs0", "fs1", "fs2", "fs3", "fs4", "fs5", "fs6", "fs7", "fs8", "fs9",
              "memory");
}
#endif

/* Two query heads (qi[0..7] and qi[8..15]) over the same cached rows: oa, ob = their outputs.
 * Pass 1 keeps both queries, pre-scaled, in 16 registers and writes the scores to s (two per
 * row), tracking the maxima; pass 2 turns each pair of scores into weights and accumulates
 * the value row at once (16 accumulators, 2 sums, the polynomial's 5 constants and the 2
 * shifts stay in registers). */
/* Out of line: called for every pair of query heads, with the loops around it kept small
 * (inlined into both loops of irt_cached_attention_hd8_f32 it costs more). */
#if defined(__GNUC__)
__attribute__((noinline))
#endif
static void irt__attend2(const float *restrict qi, float qscale, const irt__rows *keys,
                         const irt__rows *values, float *restrict s, float *restrict oa,
                         float *restrict ob)
{
    float *sp = s;
    float xa = -INFINITY, xb = -INFINITY;
    int run;
    {
        const float a0 = qi[0] * qscale, a1 = qi[1] * qscale, a2 = qi[2] * qscale;
        const float a3 = qi[3] * qscale, a4 = qi[4] * qscale, a5 = qi[5] * qscale;
        const float a6 = qi[6] * qscale, a7 = qi[7] * qscale;
        const float b0 = qi[8] * qscale, b1 = qi[9] * qscale, b2 = qi[10] * qscale;
        const float b3 = qi[11] * qscale, b4 = qi[12] * qscale, b5 = qi[13] * qscale;
        const float b6 = qi[14] * qscale, b7 = qi[15] * qscale;
        for (run = 0; run < 2; ++run) {
            const float *k = keys[run].row;
            const float *const end = k + 8 * keys[run].n;
            const float *const end4 = k + 8 * (keys[run].n & ~3);
            for (; k != end4; k += 32, sp += 8) { /* four rows per turn */
                IRT_SCORE2(k, sp);
                IRT_SCORE2(k + 8, sp + 2);
                IRT_SCORE2(k + 16, sp + 4);
                IRT_SCORE2(k + 24, sp + 6);
            }
            for (; k != end; k += 8, sp += 2)
                IRT_SCORE2(k, sp);
        }
    }
#if IRT_RISCV_F_ASM
    {
        const irt__shift sha = irt__shift_of(xa), shb = irt__shift_of(xb);
        const irt__exp2_poly4 c = irt__exp2_softmax_coefficients();
        irt__weigh2(c, sha, shb, s, values, oa, ob);
    }
#else
    {
        const irt__shift sha = irt__shift_of(xa), shb = irt__shift_of(xb);
        const irt__exp2_poly4 c = irt__exp2_softmax_coefficients();
        float a0 = 0.0f, a1 = 0.0f, a2 = 0.0f, a3 = 0.0f, a4 = 0.0f, a5 = 0.0f, a6 = 0.0f;
        float a7 = 0.0f, b0 = 0.0f, b1 = 0.0f, b2 = 0.0f, b3 = 0.0f, b4 = 0.0f, b5 = 0.0f;
        float b6 = 0.0f, b7 = 0.0f, ta = 0.0f, tb = 0.0f, fa, fb;
        sp = s;
        for (run = 0; run < 2; ++run) {
            const float *v = values[run].row;
            const float *const end = v + 8 * values[run].n;
            const float *const end2 = v + 8 * (values[run].n & ~1);
            for (; v != end2; v += 16, sp += 4) { /* two rows per turn */
                IRT_WEIGH2(v, sp);
                IRT_WEIGH2(v + 8, sp + 2);
            }
            if (v != end) {
                IRT_WEIGH2(v, sp);
                sp += 2;
            }
        }
        fa = 1.0f / ta, fb = 1.0f / tb;
        oa[0] = a0 * fa, oa[1] = a1 * fa, oa[2] = a2 * fa, oa[3] = a3 * fa;
        oa[4] = a4 * fa, oa[5] = a5 * fa, oa[6] = a6 * fa, oa[7] = a7 * fa;
        ob[0] = b0 * fb, ob[1] = b1 * fb, ob[2] = b2 * fb, ob[3] = b3 * fb;
        ob[4] = b4 * fb, ob[5] = b5 * fb, ob[6] = b6 * fb, ob[7] = b7 * fb;
    }
#endif
}

/* Both passes for one head alone (a group of odd size leaves one). */
static void irt__attend1(const float *restrict q, const irt__rows *keys,
                         const irt__rows *values, float *restrict s, float *restrict o)
{
    float a[8] = {0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f};
    float mx = -INFINITY, sum = 0.0f, f;
    float *sp = s;
    irt__shift sh;
    irt__exp2_poly4 c;
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
    c = irt__exp2_softmax_coefficients();
    sp = s;
    for (run = 0; run < 2; ++run) {
        const float *v = values[run].row;
        const float *const end = v + 8 * values[run].n;
        for (; v != end; v += 8, ++sp) {
            const float p = irt__exp2_softmax(*sp, sh, c);
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

    if (T == 1 && group % 2 == 0) { /* decode, query heads in pairs: this loop alone */
        const int n = end - first;
        const int n1 = n < capacity - slot0 ? n : capacity - slot0;
        const float *kh = kcache + (ptrdiff_t)layer * kv_heads * plane;
        const float *vh = vcache + (ptrdiff_t)layer * kv_heads * plane;
        for (kvh = 0; kvh < kv_heads; ++kvh, kh += plane, vh += plane) {
            const irt__rows keys[2] = {{kh + slot0 * 8, n1}, {kh, n - n1}};
            const irt__rows values[2] = {{vh + slot0 * 8, n1}, {vh, n - n1}};
            for (h = 0; h < group; h += 2, q += 16, out += 16)
                irt__attend2(q, qscale, keys, values, scratch, out, out + 8);
        }
        return;
    }
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
                if (h + 1 < (kvh + 1) * group) {
                    irt__attend2(qi, qscale, keys, values, scratch, oi, oi + 8);
                } else {
                    float qa[8];
                    for (d = 0; d < 8; ++d)
                        qa[d] = qi[d] * qscale;
                    irt__attend1(qa, keys, values, scratch, oi);
                }
            }
        }
    }
}
