/*
 * irt_linear_packed.c - linear layers over weights packed in row panels (irt_linear_packed_f32).
 *
 * Why a packed layout: with the rows of a panel interleaved ([K][P] per panel) every weight of
 * a P-row block is reached from ONE pointer with immediate offsets, so P rows cost one pointer
 * bump instead of P, and P accumulators stay in registers while one activation load feeds P
 * fused multiply-adds.  The body for P = 24 rows and 16 columns (RV32F asm below) is 16
 * activation loads, 384 weight loads, 384 fmadd.s, 2 pointer bumps and a branch: 787
 * instructions for 384 multiply-accumulates, 2.05 per MAC (the floor with one load per weight
 * is 2); the 16-row panels in C take 8 columns per turn, 2.09 per MAC.
 * The layout is defined in irt_kernels.h; passes pack the weights at compile time.
 */
#include "irt_internal.h"

#include <stddef.h>

/* Kept out of line: one copy of the panels for both entry points, and the narrow panels in
 * functions of their own, so that a call saves only the registers its panels use. */
#if defined(__GNUC__)
#define IRT__NOINLINE __attribute__((noinline))
#else
#define IRT__NOINLINE
#endif

/* The width of the full panels (irt_kernels.h; PANEL_ROWS in targets/panel_layout.py). */
#define IRT_PANEL_ROWS 24

/* acc_r += w[c][r] * x[c] for r in [r0, r0 + 4) of a panel P floats wide. */
#define IRT_MAC4(P, c, r0, a, b, d, e)                                                   \
    do {                                                                                \
        a = IRT_FMA(wk[(c) * (P) + (r0)], xv, a);                                       \
        b = IRT_FMA(wk[(c) * (P) + (r0) + 1], xv, b);                                   \
        d = IRT_FMA(wk[(c) * (P) + (r0) + 2], xv, d);                                   \
        e = IRT_FMA(wk[(c) * (P) + (r0) + 3], xv, e);                                   \
    } while (0)

/* acc_r = w[c][r] * x[c]: the first column sets the accumulators (no zeroing pass). */
#define IRT_MUL4(P, c, r0, a, b, d, e)                                                   \
    do {                                                                                \
        a = wk[(c) * (P) + (r0)] * xv;                                                  \
        b = wk[(c) * (P) + (r0) + 1] * xv;                                              \
        d = wk[(c) * (P) + (r0) + 2] * xv;                                              \
        e = wk[(c) * (P) + (r0) + 3] * xv;                                              \
    } while (0)

#define IRT_P16_FIRST(c)                                                                \
    do {                                                                                \
        const float xv = xk[c];                                                         \
        IRT_MUL4(16, c, 0, a0, a1, a2, a3);                                             \
        IRT_MUL4(16, c, 4, a4, a5, a6, a7);                                             \
        IRT_MUL4(16, c, 8, a8, a9, a10, a11);                                           \
        IRT_MUL4(16, c, 12, a12, a13, a14, a15);                                        \
    } while (0)

#define IRT_P16_COLUMN(c)                                                               \
    do {                                                                                \
        const float xv = xk[c];                                                         \
        IRT_MAC4(16, c, 0, a0, a1, a2, a3);                                             \
        IRT_MAC4(16, c, 4, a4, a5, a6, a7);                                             \
        IRT_MAC4(16, c, 8, a8, a9, a10, a11);                                           \
        IRT_MAC4(16, c, 12, a12, a13, a14, a15);                                        \
    } while (0)

#define IRT_P8_COLUMN(c)                                                                \
    do {                                                                                \
        const float xv = xk[c];                                                         \
        IRT_MAC4(8, c, 0, a0, a1, a2, a3);                                              \
        IRT_MAC4(8, c, 4, a4, a5, a6, a7);                                              \
    } while (0)

#define IRT_P4_COLUMN(c)                                                                \
    do {                                                                                \
        const float xv = xk[c];                                                         \
        IRT_MAC4(4, c, 0, a0, a1, a2, a3);                                              \
    } while (0)

/* y[r] = acc_r (+ bias[r]) for r in [r0, r0 + 4), straight from the registers. */
#define IRT_STORE4(r0, a, b, d, e)                                                       \
    do {                                                                                \
        if (bias != NULL) {                                                             \
            y[(r0)] = a + bias[(r0)];                                                   \
            y[(r0) + 1] = b + bias[(r0) + 1];                                           \
            y[(r0) + 2] = d + bias[(r0) + 2];                                           \
            y[(r0) + 3] = e + bias[(r0) + 3];                                           \
        } else {                                                                        \
            y[(r0)] = a;                                                                \
            y[(r0) + 1] = b;                                                            \
            y[(r0) + 2] = d;                                                            \
            y[(r0) + 3] = e;                                                            \
        }                                                                               \
    } while (0)

/* One panel of 16 rows: y[0..15] = wp-panel . x (+ bias). */
static IRT__NOINLINE void irt__panel16(const float *restrict x, const float *restrict wk,
                         const float *bias, float *y, int K)
{
    float a0, a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, a11, a12, a13, a14, a15;
    const float *xk = x;
    const float *const x8 = x + (K & ~7);
    const float *const xe = x + K;
    if (K >= 8) { /* the first 8 columns, column 0 setting the accumulators */
        IRT_P16_FIRST(0);
        IRT_P16_COLUMN(1);
        IRT_P16_COLUMN(2);
        IRT_P16_COLUMN(3);
        IRT_P16_COLUMN(4);
        IRT_P16_COLUMN(5);
        IRT_P16_COLUMN(6);
        IRT_P16_COLUMN(7);
        xk += 8;
        wk += 8 * 16;
    } else {
        a0 = a1 = a2 = a3 = a4 = a5 = a6 = a7 = 0.0f;
        a8 = a9 = a10 = a11 = a12 = a13 = a14 = a15 = 0.0f;
    }
    while (xk != x8) {
        IRT_P16_COLUMN(0);
        IRT_P16_COLUMN(1);
        IRT_P16_COLUMN(2);
        IRT_P16_COLUMN(3);
        IRT_P16_COLUMN(4);
        IRT_P16_COLUMN(5);
        IRT_P16_COLUMN(6);
        IRT_P16_COLUMN(7);
        xk += 8;
        wk += 8 * 16;
    }
    while (xk != xe) {
        IRT_P16_COLUMN(0);
        xk += 1;
        wk += 16;
    }
    IRT_STORE4(0, a0, a1, a2, a3);
    IRT_STORE4(4, a4, a5, a6, a7);
    IRT_STORE4(8, a8, a9, a10, a11);
    IRT_STORE4(12, a12, a13, a14, a15);
}

/* ---------------------------------------------------------------- 24-row panels, RV32F asm
 * gcc 12 spills registers when it schedules 24 accumulators itself (and an asm statement
 * takes at most 30 operands), so on RV32F all the 24-row panels of a layer are one asm
 * statement (a loop over the panels around the loop over the columns), with the
 * accumulators in fixed registers: per column one activation load (ft0) and 24 weight loads
 * (ft1/ft2 in turn) at immediate offsets from one pointer, each followed by its fmadd.s;
 * 16 columns per loop turn (offsets up to 1532 bytes, inside the 12-bit immediate).  Per 16
 * columns: 16 + 384 loads, 384 fmadd.s and 3 loop instructions, 2.05 per multiply-accumulate.
 * Each row is still summed in column order with one rounding per fused multiply-add (the
 * first column a plain product), as the C panels do, so the results are the same bits.
 */
#if IRT_RISCV_F_ASM
#define IRT_A24_FMA(c, r, t, a)                                                          \
    "flw " t ", (" #c "*24+" #r ")*4(%[w])\n\tfmadd.s " a ", " t ", ft0, " a "\n\t"
#define IRT_A24_MUL(c, r, t, a)                                                          \
    "flw " t ", (" #c "*24+" #r ")*4(%[w])\n\tfmul.s " a ", " t ", ft0\n\t"
/* One column c: x[c] into ft0, then the 24 rows with OP (IRT_A24_FMA or IRT_A24_MUL). */
#define IRT_A24_COLUMN(c, OP)                                                            \
    "flw ft0, " #c "*4(%[x])\n\t"                                                        \
    OP(c, 0, "ft1", "ft3") \
    OP(c, 1, "ft2", "ft4") \
    OP(c, 2, "ft1", "ft5") \
    OP(c, 3, "ft2", "ft6") \
    OP(c, 4, "ft1", "ft7") \
    OP(c, 5, "ft2", "ft8") \
    OP(c, 6, "ft1", "ft9") \
    OP(c, 7, "ft2", "ft10") \
    OP(c, 8, "ft1", "ft11") \
    OP(c, 9, "ft2", "fa0") \
    OP(c, 10, "ft1", "fa1") \
    OP(c, 11, "ft2", "fa2") \
    OP(c, 12, "ft1", "fa3") \
    OP(c, 13, "ft2", "fa4") \
    OP(c, 14, "ft1", "fa5") \
    OP(c, 15, "ft2", "fa6") \
    OP(c, 16, "ft1", "fa7") \
    OP(c, 17, "ft2", "fs0") \
    OP(c, 18, "ft1", "fs1") \
    OP(c, 19, "ft2", "fs2") \
    OP(c, 20, "ft1", "fs3") \
    OP(c, 21, "ft2", "fs4") \
    OP(c, 22, "ft1", "fs5") \
    OP(c, 23, "ft2", "fs6")
#define IRT_A24_COLUMNS4(c0, c1, c2, c3)                                                 \
    IRT_A24_COLUMN(c0, IRT_A24_FMA) IRT_A24_COLUMN(c1, IRT_A24_FMA)                      \
    IRT_A24_COLUMN(c2, IRT_A24_FMA) IRT_A24_COLUMN(c3, IRT_A24_FMA)
/* acc_r += bias[r]: the bias (or residual) added in registers, before any store (y may be
 * the residual). */
#define IRT_A24_ADD_BIAS                                                                 \
    "flw ft1, 0(%[b])\n\tfadd.s ft3, ft3, ft1\n\tflw ft2, 4(%[b])\n\tfadd.s ft4, ft4, ft2\n\t" \
    "flw ft1, 8(%[b])\n\tfadd.s ft5, ft5, ft1\n\tflw ft2, 12(%[b])\n\tfadd.s ft6, ft6, ft2\n\t" \
    "flw ft1, 16(%[b])\n\tfadd.s ft7, ft7, ft1\n\tflw ft2, 20(%[b])\n\tfadd.s ft8, ft8, ft2\n\t" \
    "flw ft1, 24(%[b])\n\tfadd.s ft9, ft9, ft1\n\tflw ft2, 28(%[b])\n\tfadd.s ft10, ft10, ft2\n\t" \
    "flw ft1, 32(%[b])\n\tfadd.s ft11, ft11, ft1\n\tflw ft2, 36(%[b])\n\tfadd.s fa0, fa0, ft2\n\t" \
    "flw ft1, 40(%[b])\n\tfadd.s fa1, fa1, ft1\n\tflw ft2, 44(%[b])\n\tfadd.s fa2, fa2, ft2\n\t" \
    "flw ft1, 48(%[b])\n\tfadd.s fa3, fa3, ft1\n\tflw ft2, 52(%[b])\n\tfadd.s fa4, fa4, ft2\n\t" \
    "flw ft1, 56(%[b])\n\tfadd.s fa5, fa5, ft1\n\tflw ft2, 60(%[b])\n\tfadd.s fa6, fa6, ft2\n\t" \
    "flw ft1, 64(%[b])\n\tfadd.s fa7, fa7, ft1\n\tflw ft2, 68(%[b])\n\tfadd.s fs0, fs0, ft2\n\t" \
    "flw ft1, 72(%[b])\n\tfadd.s fs1, fs1, ft1\n\tflw ft2, 76(%[b])\n\tfadd.s fs2, fs2, ft2\n\t" \
    "flw ft1, 80(%[b])\n\tfadd.s fs3, fs3, ft1\n\tflw ft2, 84(%[b])\n\tfadd.s fs4, fs4, ft2\n\t" \
    "flw ft1, 88(%[b])\n\tfadd.s fs5, fs5, ft1\n\tflw ft2, 92(%[b])\n\tfadd.s fs6, fs6, ft2\n\t"
#define IRT_A24_STORE                                                                    \
    "fsw ft3, 0(%[y])\n\tfsw ft4, 4(%[y])\n\t" \
    "fsw ft5, 8(%[y])\n\tfsw ft6, 12(%[y])\n\t" \
    "fsw ft7, 16(%[y])\n\tfsw ft8, 20(%[y])\n\t" \
    "fsw ft9, 24(%[y])\n\tfsw ft10, 28(%[y])\n\t" \
    "fsw ft11, 32(%[y])\n\tfsw fa0, 36(%[y])\n\t" \
    "fsw fa1, 40(%[y])\n\tfsw fa2, 44(%[y])\n\t" \
    "fsw fa3, 48(%[y])\n\tfsw fa4, 52(%[y])\n\t" \
    "fsw fa5, 56(%[y])\n\tfsw fa6, 60(%[y])\n\t" \
    "fsw fa7, 64(%[y])\n\tfsw fs0, 68(%[y])\n\t" \
    "fsw fs1, 72(%[y])\n\tfsw fs2, 76(%[y])\n\t" \
    "fsw fs3, 80(%[y])\n\tfsw fs4, 84(%[y])\n\t" \
    "fsw fs5, 88(%[y])\n\tfsw fs6, 92(%[y])\n\t"

/* `count` >= 1 panels of 24 rows one after the other, K >= 16: y[24p + r] = panel p . x
 * (+ bias[24p + r]).  One asm statement for all of them: the panels follow each other in wp,
 * so the weight pointer runs on; x restarts, y and the bias move on by 24 per panel. */
static void irt__panels24(const float *restrict x, const float *restrict wk,
                          const float *bias, float *y, int K, int count)
{
    const float *xk = x;
    const float *const x16 = x + (K & ~15);
    const float *const xe = x + K;
    int flag;
    __asm__ volatile(/* volatile: its outputs are the stores, not the operands */
            "0:\n\t" /* a panel: columns 0..15, column 0 setting the accumulators */
            "mv %[x], %[x0]\n\t"
            IRT_A24_COLUMN(0, IRT_A24_MUL) IRT_A24_COLUMN(1, IRT_A24_FMA)
            IRT_A24_COLUMN(2, IRT_A24_FMA) IRT_A24_COLUMN(3, IRT_A24_FMA)
            IRT_A24_COLUMNS4(4, 5, 6, 7) IRT_A24_COLUMNS4(8, 9, 10, 11)
            IRT_A24_COLUMNS4(12, 13, 14, 15)
            "addi %[x], %[x], 64\n\taddi %[w], %[w], 1536\n\t"
            "beq %[x], %[x16], 2f\n"
            "1:\n\t" /* 16 columns per turn */
            IRT_A24_COLUMNS4(0, 1, 2, 3) IRT_A24_COLUMNS4(4, 5, 6, 7)
            IRT_A24_COLUMNS4(8, 9, 10, 11) IRT_A24_COLUMNS4(12, 13, 14, 15)
            "addi %[x], %[x], 64\n\taddi %[w], %[w], 1536\n\t"
            "bne %[x], %[x16], 1b\n"
            "2:\n\t" /* then 8, 4, 1 columns */
            "andi %[f], %[K], 8\n\tbeqz %[f], 3f\n\t"
            IRT_A24_COLUMNS4(0, 1, 2, 3) IRT_A24_COLUMNS4(4, 5, 6, 7)
            "addi %[x], %[x], 32\n\taddi %[w], %[w], 768\n"
            "3:\n\t"
            "andi %[f], %[K], 4\n\tbeqz %[f], 4f\n\t"
            IRT_A24_COLUMNS4(0, 1, 2, 3)
            "addi %[x], %[x], 16\n\taddi %[w], %[w], 384\n"
            "4:\n\t"
            "beq %[x], %[xe], 6f\n"
            "5:\n\t"
            IRT_A24_COLUMN(0, IRT_A24_FMA)
            "addi %[x], %[x], 4\n\taddi %[w], %[w], 96\n\t"
            "bne %[x], %[xe], 5b\n"
            "6:\n\t"
            "beqz %[b], 7f\n\t"
            IRT_A24_ADD_BIAS
            "addi %[b], %[b], 96\n"
            "7:\n\t"
            IRT_A24_STORE
            "addi %[y], %[y], 96\n\t"
            "addi %[n], %[n], -1\n\t"
            "bnez %[n], 0b\n\t"
            /* early-clobber: changed before the inputs are last read (x0 each panel) */
            : [x] "+&r"(xk), [w] "+&r"(wk), [y] "+&r"(y), [b] "+&r"(bias), [n] "+&r"(count),
              [f] "=&r"(flag)
            : [x0] "r"(x), [x16] "r"(x16), [xe] "r"(xe), [K] "r"(K)
            : "ft0", "ft1", "ft2", "ft3", "ft4", "ft5", "ft6", "ft7", "ft8", "ft9", "ft10",
              "ft11", "fa0", "fa1", "fa2", "fa3", "fa4", "fa5", "fa6", "fa7", "fs0", "fs1",
              "fs2", "fs3", "fs4", "fs5", "fs6", "memory");
}
#endif

/* One panel of 8 rows. */
static IRT__NOINLINE void irt__panel8(const float *restrict x, const float *restrict wk,
                        const float *bias, float *y, int K)
{
    float a0 = 0.0f, a1 = 0.0f, a2 = 0.0f, a3 = 0.0f, a4 = 0.0f, a5 = 0.0f, a6 = 0.0f;
    float a7 = 0.0f;
    const float *xk = x;
    const float *const x8 = x + (K & ~7);
    const float *const xe = x + K;
    while (xk != x8) {
        IRT_P8_COLUMN(0);
        IRT_P8_COLUMN(1);
        IRT_P8_COLUMN(2);
        IRT_P8_COLUMN(3);
        IRT_P8_COLUMN(4);
        IRT_P8_COLUMN(5);
        IRT_P8_COLUMN(6);
        IRT_P8_COLUMN(7);
        xk += 8;
        wk += 8 * 8;
    }
    while (xk != xe) {
        IRT_P8_COLUMN(0);
        xk += 1;
        wk += 8;
    }
    IRT_STORE4(0, a0, a1, a2, a3);
    IRT_STORE4(4, a4, a5, a6, a7);
}

/* One panel of 4 rows. */
static IRT__NOINLINE void irt__panel4(const float *restrict x, const float *restrict wk,
                        const float *bias, float *y, int K)
{
    float a0 = 0.0f, a1 = 0.0f, a2 = 0.0f, a3 = 0.0f;
    const float *xk = x;
    const float *const x8 = x + (K & ~7);
    const float *const xe = x + K;
    while (xk != x8) {
        IRT_P4_COLUMN(0);
        IRT_P4_COLUMN(1);
        IRT_P4_COLUMN(2);
        IRT_P4_COLUMN(3);
        IRT_P4_COLUMN(4);
        IRT_P4_COLUMN(5);
        IRT_P4_COLUMN(6);
        IRT_P4_COLUMN(7);
        xk += 8;
        wk += 8 * 4;
    }
    while (xk != xe) {
        IRT_P4_COLUMN(0);
        xk += 1;
        wk += 4;
    }
    IRT_STORE4(0, a0, a1, a2, a3);
}

/* A panel of P rows, [K][P], one row at a time: the 2- and 1-row panels, and the 24-row
 * panels where the asm above is not used (K < 16, or a core without RV32F). */
static IRT__NOINLINE void irt__panel_small(const float *restrict x, const float *restrict wk,
                             const float *bias, float *y, int K, int P)
{
    int r, k;
    for (r = 0; r < P; ++r) {
        float a = 0.0f;
        for (k = 0; k < K; ++k)
            a = IRT_FMA(wk[k * P + r], x[k], a);
        y[r] = bias != NULL ? a + bias[r] : a;
    }
}

/* Both entry points: bias_or_null + t * ldb is the row added to output row t (ldb 0: a
 * bias; N: a residual, which may be y itself: each output element reads its own addend
 * before it is stored, and no other). */
static IRT__NOINLINE void irt__linear_packed(const float *restrict x, const float *restrict wp,
                               const float *bias_or_null, int ldb, float *y, int T, int K,
                               int N)
{
    int t;
    for (t = 0; t < T; ++t) {
        const float *xt = x + (ptrdiff_t)t * K;
        float *yt = y + (ptrdiff_t)t * N;
        const float *w = wp;
        const float *const bt = bias_or_null == NULL ? NULL : bias_or_null + (ptrdiff_t)t * ldb;
        int n = 0;
#if IRT_RISCV_F_ASM
        if (K >= 16 && N >= IRT_PANEL_ROWS) {
            const int count = N / IRT_PANEL_ROWS;
            irt__panels24(xt, w, bt, yt, K, count);
            n = count * IRT_PANEL_ROWS;
            w += (ptrdiff_t)n * K;
        }
#endif
        for (; n + IRT_PANEL_ROWS <= N; n += IRT_PANEL_ROWS, w += IRT_PANEL_ROWS * K)
            irt__panel_small(xt, w, bt == NULL ? NULL : bt + n, yt + n, K, IRT_PANEL_ROWS);
        if (N - n >= 16) {
            irt__panel16(xt, w, bt == NULL ? NULL : bt + n, yt + n, K);
            n += 16, w += 16 * K;
        }
        if (N - n >= 8) {
            irt__panel8(xt, w, bt == NULL ? NULL : bt + n, yt + n, K);
            n += 8, w += 8 * K;
        }
        if (N - n >= 4) {
            irt__panel4(xt, w, bt == NULL ? NULL : bt + n, yt + n, K);
            n += 4, w += 4 * K;
        }
        if (N - n >= 2) {
            irt__panel_small(xt, w, bt == NULL ? NULL : bt + n, yt + n, K, 2);
            n += 2, w += 2 * K;
        }
        if (N - n == 1)
            irt__panel_small(xt, w, bt == NULL ? NULL : bt + n, yt + n, K, 1);
    }
}

void irt_linear_packed_f32(const float *restrict x, const float *restrict wp,
                           const float *restrict bias_or_null, float *restrict y, int T,
                           int K, int N)
{
    irt__linear_packed(x, wp, bias_or_null, 0, y, T, K, N);
}

void irt_linear_packed_residual_f32(const float *restrict x, const float *restrict wp,
                                    const float *r, float *y, int T, int K, int N)
{
    irt__linear_packed(x, wp, r, N, y, T, K, N);
}

void irt_embedding_packed_f32(const int32_t *restrict tokens, const float *restrict table,
                              float *restrict y, int T, int D, int vocab)
{
    const int full = vocab - vocab % IRT_PANEL_ROWS; /* rows in full-width panels */
    int t, k;
    for (t = 0; t < T; ++t) {
        const int n = tokens[t];
        int n0, P = IRT_PANEL_ROWS;
        const float *row;
        float *yt = y + (ptrdiff_t)t * D;
        if (n < full) {
            n0 = n - n % IRT_PANEL_ROWS;
        } else { /* the panels of 16, 8, 4, 2, 1 rows after the full ones */
            n0 = full;
            for (P = 16; P > 0; P >>= 1) {
                if ((vocab - full) & P) {
                    if (n < n0 + P)
                        break;
                    n0 += P;
                }
            }
        }
        row = table + (ptrdiff_t)n0 * D + (n - n0); /* element k at row[k * P] */
        for (k = 0; k < D; ++k)
            yt[k] = row[(ptrdiff_t)k * P];
    }
}
