/*
 * irt_linear_packed.c - linear layers over weights packed in row panels (irt_linear_packed_f32).
 *
 * Why a packed layout: with the rows of a panel interleaved ([K][P] per panel) every weight of
 * a P-row block is reached from ONE pointer with immediate offsets, so P rows cost one pointer
 * bump instead of P, and P accumulators stay in registers while one activation load feeds P
 * fused multiply-adds.  The body for P = 24 rows and 16 columns (RV32F asm below) is 16
 * activation loads, 384 weight loads, 384 fmadd.s, 2 pointer bumps and a branch: 787
 * instructions for 384 multiply-accumulates, 2.05 per MAC (the floor with one load per weight
 * is 2); the 16-, 8- and 4-row panels after the 24-row ones run the same asm, and all the
 * panels of an output row are one asm statement (the portable C panels below serve other
 * cores, K < 16 and the 2- and 1-row panels).
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

/* ---------------------------------------------------------------- row panels, RV32F asm
 * gcc 12 spills registers when it schedules 24 accumulators itself (and an asm statement
 * takes at most 30 operands), so on RV32F all the panels of one output row are one asm
 * statement: a loop over the 24-row panels, then the 16-, 8- and 4-row panel the shape has
 * (the binary digits of N % 24), each with its accumulators in fixed registers.  Per column
 * one activation load (ft0) and P weight loads (ft1/ft2 in turn) at immediate offsets from
 * one pointer, each followed by its fmadd.s; 16 columns per loop turn (offsets up to 1532
 * bytes, inside the 12-bit immediate).  Per 16 columns of a 24-row panel: 16 + 384 loads,
 * 384 fmadd.s and 3 loop instructions, 2.05 per multiply-accumulate (16 rows: 2.07, 8: 2.13,
 * 4: 2.26, the activation load shared by fewer rows).  One call per output row: the set-up,
 * the saved registers and the bias/NULL tests are paid once per layer, not once per panel.
 * Each row is still summed in column order with one rounding per fused multiply-add (the
 * first column a plain product), as the C panels do, so the results are the same bits (up to
 * the sign of an all-zero sum).
 */
#if IRT_RISCV_F_ASM
/* Row r of column c of a P-row panel with OP, the weight through temporary t into
 * accumulator a: */
#define IRT_A_FMA(P, c, r, t, a) /* a += w[c][r] * x[c] */                                \
    "flw " t ", (" #c "*" #P "+" #r ")*4(%[w])\n\tfmadd.s " a ", " t ", ft0, " a "\n\t"
#define IRT_A_MUL(P, c, r, t, a) /* a = w[c][r] * x[c] */                                 \
    "flw " t ", (" #c "*" #P "+" #r ")*4(%[w])\n\tfmul.s " a ", " t ", ft0\n\t"
#define IRT_A_BIAS(P, c, r, t, a) /* a += bias[r] (or the residual) */                    \
    "flw " t ", " #r "*4(%[b])\n\tfadd.s " a ", " a ", " t "\n\t"
#define IRT_A_STORE(P, c, r, t, a) /* y[r] = a */ "fsw " a ", " #r "*4(%[y])\n\t"
/* The rows of a panel 4, 8, 16 or 24 wide: OP per row with its accumulator register. */
#define IRT_ROWS4(OP, P, c)                                                              \
    OP(P, c, 0, "ft1", "ft3") OP(P, c, 1, "ft2", "ft4")                                  \
    OP(P, c, 2, "ft1", "ft5") OP(P, c, 3, "ft2", "ft6")
#define IRT_ROWS8(OP, P, c)                                                              \
    IRT_ROWS4(OP, P, c) OP(P, c, 4, "ft1", "ft7") OP(P, c, 5, "ft2", "ft8")              \
    OP(P, c, 6, "ft1", "ft9") OP(P, c, 7, "ft2", "ft10")
#define IRT_ROWS16(OP, P, c)                                                             \
    IRT_ROWS8(OP, P, c) OP(P, c, 8, "ft1", "ft11") OP(P, c, 9, "ft2", "fa0")             \
    OP(P, c, 10, "ft1", "fa1") OP(P, c, 11, "ft2", "fa2") OP(P, c, 12, "ft1", "fa3")     \
    OP(P, c, 13, "ft2", "fa4") OP(P, c, 14, "ft1", "fa5") OP(P, c, 15, "ft2", "fa6")
#define IRT_ROWS24(OP, P, c)                                                             \
    IRT_ROWS16(OP, P, c) OP(P, c, 16, "ft1", "fa7") OP(P, c, 17, "ft2", "fs0")           \
    OP(P, c, 18, "ft1", "fs1") OP(P, c, 19, "ft2", "fs2") OP(P, c, 20, "ft1", "fs3")     \
    OP(P, c, 21, "ft2", "fs4") OP(P, c, 22, "ft1", "fs5") OP(P, c, 23, "ft2", "fs6")
/* One column c: x[c] into ft0, then the rows with OP. */
#define IRT_A_COLUMN(ROWS, P, c, OP) "flw ft0, " #c "*4(%[x])\n\t" ROWS(OP, P, c)
#define IRT_A_COLUMNS4(ROWS, P, c0, c1, c2, c3)                                          \
    IRT_A_COLUMN(ROWS, P, c0, IRT_A_FMA) IRT_A_COLUMN(ROWS, P, c1, IRT_A_FMA)            \
    IRT_A_COLUMN(ROWS, P, c2, IRT_A_FMA) IRT_A_COLUMN(ROWS, P, c3, IRT_A_FMA)
/* The stores of a panel's accumulators: y[r] (then y moves on by the P floats, YB bytes),
 * or, for a KV-cache slot, each group of 8 rows to its own plane (y moves on by %[g] bytes
 * after every 8 rows; the assembler evaluates r % 8). */
#define IRT_A_GSTORE(P, c, r, t, a)                                                      \
    "fsw " a ", ((" #r ") %% 8)*4(%[y])\n\t"                                            \
    ".if ((" #r ") %% 8) == 7\n\tadd %[y], %[y], %[g]\n\t.endif\n\t"
#define IRT_A_STORE_ROWS(ROWS, P, YB) ROWS(IRT_A_STORE, P, 0) "addi %[y], %[y], " #YB "\n\t"
#define IRT_A_STORE_GROUPS(ROWS, P, YB) ROWS(IRT_A_GSTORE, P, 0)
/* One P-row panel (K >= 16), labels L0..L7: y[0..P) = panel . x (+ b[0..P)) with STORE;
 * x restarts at x0, w runs on to the next panel, b (when not NULL) moves on by P.  Wn are
 * the bytes of n columns of weights (n * P * 4) and YB the bytes of P floats. */
#define IRT_A_PANEL(ROWS, P, L, W16, W8, W4, W1, YB, STORE)                              \
    "mv %[x], %[x0]\n\t" /* columns 0..15, column 0 setting the accumulators */          \
    IRT_A_COLUMN(ROWS, P, 0, IRT_A_MUL) IRT_A_COLUMN(ROWS, P, 1, IRT_A_FMA)              \
    IRT_A_COLUMN(ROWS, P, 2, IRT_A_FMA) IRT_A_COLUMN(ROWS, P, 3, IRT_A_FMA)              \
    IRT_A_COLUMNS4(ROWS, P, 4, 5, 6, 7) IRT_A_COLUMNS4(ROWS, P, 8, 9, 10, 11)            \
    IRT_A_COLUMNS4(ROWS, P, 12, 13, 14, 15)                                              \
    "addi %[x], %[x], 64\n\taddi %[w], %[w], " #W16 "\n\t"                               \
    "beq %[x], %[x16], " #L "2f\n"                                                       \
    #L "1:\n\t" /* 16 columns per turn */                                                \
    IRT_A_COLUMNS4(ROWS, P, 0, 1, 2, 3) IRT_A_COLUMNS4(ROWS, P, 4, 5, 6, 7)              \
    IRT_A_COLUMNS4(ROWS, P, 8, 9, 10, 11) IRT_A_COLUMNS4(ROWS, P, 12, 13, 14, 15)        \
    "addi %[x], %[x], 64\n\taddi %[w], %[w], " #W16 "\n\t"                               \
    "bne %[x], %[x16], " #L "1b\n"                                                       \
    #L "2:\n\t" /* then 8, 4, 1 columns (none when 16 divides K) */                      \
    "beq %[x], %[xe], " #L "6f\n\t"                                                      \
    "andi %[f], %[K], 8\n\tbeqz %[f], " #L "3f\n\t"                                      \
    IRT_A_COLUMNS4(ROWS, P, 0, 1, 2, 3) IRT_A_COLUMNS4(ROWS, P, 4, 5, 6, 7)              \
    "addi %[x], %[x], 32\n\taddi %[w], %[w], " #W8 "\n"                                  \
    #L "3:\n\t"                                                                          \
    "andi %[f], %[K], 4\n\tbeqz %[f], " #L "4f\n\t"                                      \
    IRT_A_COLUMNS4(ROWS, P, 0, 1, 2, 3)                                                  \
    "addi %[x], %[x], 16\n\taddi %[w], %[w], " #W4 "\n"                                  \
    #L "4:\n\t"                                                                          \
    "beq %[x], %[xe], " #L "6f\n"                                                        \
    #L "5:\n\t"                                                                          \
    IRT_A_COLUMN(ROWS, P, 0, IRT_A_FMA)                                                  \
    "addi %[x], %[x], 4\n\taddi %[w], %[w], " #W1 "\n\t"                                 \
    "bne %[x], %[xe], " #L "5b\n"                                                        \
    #L "6:\n\t"                                                                          \
    "beqz %[b], " #L "7f\n\t"                                                            \
    ROWS(IRT_A_BIAS, P, 0)                                                               \
    "addi %[b], %[b], " #YB "\n"                                                         \
    #L "7:\n\t"                                                                          \
    STORE(ROWS, P, YB)
/* The 24-row panels (n of them), then one each of 16 and 8 rows as the bits of %[r] say. */
#define IRT_A_PANELS_24_16_8(STORE)                                                      \
    "beqz %[n], 19f\n"                                                                   \
    "10:\n\t" IRT_A_PANEL(IRT_ROWS24, 24, 1, 1536, 768, 384, 96, 96, STORE)              \
    "addi %[n], %[n], -1\n\t"                                                            \
    "bnez %[n], 10b\n"                                                                   \
    "19:\n\t"                                                                           \
    "andi %[f], %[r], 16\n\tbeqz %[f], 29f\n\t"                                          \
    IRT_A_PANEL(IRT_ROWS16, 16, 2, 1024, 512, 256, 64, 64, STORE)                         \
    "\n29:\n\t"                                                                         \
    "andi %[f], %[r], 8\n\tbeqz %[f], 39f\n\t"                                           \
    IRT_A_PANEL(IRT_ROWS8, 8, 3, 512, 256, 128, 32, 32, STORE)                            \
    "\n39:\n\t"
#define IRT_A_PANEL_CLOBBERS                                                             \
    "ft0", "ft1", "ft2", "ft3", "ft4", "ft5", "ft6", "ft7", "ft8", "ft9", "ft10", "ft11",  \
    "fa0", "fa1", "fa2", "fa3", "fa4", "fa5", "fa6", "fa7", "fs0", "fs1", "fs2", "fs3",   \
    "fs4", "fs5", "fs6", "memory"

/* The panels of rows [0, N - N % 4) of one output row, K >= 16: `full` panels of 24 rows,
 * then one each of 16, 8, 4 rows as the bits of `rest` (N % 24) say.  The pointers run on:
 * on return *w, *y and *b (when not NULL) point past those rows, at the 2- and 1-row panels. */
static inline void irt__panels_asm(const float *restrict x, const float **w, const float **b,
                            float **y, int K, int full, int rest)
{
    const float *xk = x, *wk = *w, *bias = *b;
    float *yk = *y;
    const float *const x16 = x + (K & ~15);
    const float *const xe = x + K;
    int flag;
    __asm__ volatile(/* volatile: its outputs are the stores, not the operands */
            IRT_A_PANELS_24_16_8(IRT_A_STORE_ROWS)
            "andi %[f], %[r], 4\n\tbeqz %[f], 49f\n\t"
            IRT_A_PANEL(IRT_ROWS4, 4, 4, 256, 128, 64, 16, 16, IRT_A_STORE_ROWS)
            "\n49:\n\t"
            /* early-clobber: changed before the inputs are last read (x0 each panel) */
            : [x] "+&r"(xk), [w] "+&r"(wk), [y] "+&r"(yk), [b] "+&r"(bias), [n] "+&r"(full),
              [f] "=&r"(flag)
            : [x0] "r"(x), [x16] "r"(x16), [xe] "r"(xe), [K] "r"(K), [r] "r"(rest)
            : IRT_A_PANEL_CLOBBERS);
    *w = wk;
    *b = bias;
    *y = yk;
}

/* The rows of one output row, N a multiple of 8, K >= 16, written to a KV-cache slot: rows
 * 8h..8h+7 (kv head h) at y + h * plane (plane: the floats between two heads' slots). */
static IRT__NOINLINE void irt__panels_asm_kv(const float *restrict x, const float *w,
                                             float *y, int K, int N, int plane)
{
    const float *xk = x, *bias = NULL;
    const float *const x16 = x + (K & ~15);
    const float *const xe = x + K;
    int full = N / IRT_PANEL_ROWS, flag;
    __asm__ volatile(
            IRT_A_PANELS_24_16_8(IRT_A_STORE_GROUPS)
            : [x] "+&r"(xk), [w] "+&r"(w), [y] "+&r"(y), [b] "+&r"(bias), [n] "+&r"(full),
              [f] "=&r"(flag)
            : [x0] "r"(x), [x16] "r"(x16), [xe] "r"(xe), [K] "r"(K),
              [r] "r"(N % IRT_PANEL_ROWS), [g] "r"(plane * 4)
            : IRT_A_PANEL_CLOBBERS);
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

/* Rows [n, N) of one output row in C: y[r] = w-panels . x (+ b[r]); w points at row n's
 * panel. */
static IRT__NOINLINE void irt__rows_c(const float *restrict x, const float *restrict w,
                                      const float *b, float *y, int K, int N, int n)
{
    for (; n + IRT_PANEL_ROWS <= N; n += IRT_PANEL_ROWS, w += IRT_PANEL_ROWS * K)
        irt__panel_small(x, w, b == NULL ? NULL : b + n, y + n, K, IRT_PANEL_ROWS);
    if (N - n >= 16) {
        irt__panel16(x, w, b == NULL ? NULL : b + n, y + n, K);
        n += 16, w += 16 * K;
    }
    if (N - n >= 8) {
        irt__panel8(x, w, b == NULL ? NULL : b + n, y + n, K);
        n += 8, w += 8 * K;
    }
    if (N - n >= 4) {
        irt__panel4(x, w, b == NULL ? NULL : b + n, y + n, K);
        n += 4, w += 4 * K;
    }
    if (N - n >= 2) {
        irt__panel_small(x, w, b == NULL ? NULL : b + n, y + n, K, 2);
        n += 2, w += 2 * K;
    }
    if (N - n == 1)
        irt__panel_small(x, w, b == NULL ? NULL : b + n, y + n, K, 1);
}

/* One output row: y = w-panels . x (+ b). Out of line, and the only call a one-row layer
 * makes: its set-up and saved registers are those of the asm alone. */
static IRT__NOINLINE void irt__row(const float *restrict x, const float *w, const float *b,
                                   float *y, int K, int N)
{
#if IRT_RISCV_F_ASM
    if (K >= 16) { /* every panel of 4 rows or more in one asm statement */
        irt__panels_asm(x, &w, &b, &y, K, N / IRT_PANEL_ROWS, N % IRT_PANEL_ROWS);
        if (N & 3) /* the 2- and 1-row panels; the pointers ran on to them */
            irt__rows_c(x, w, b, y, K, N & 3, 0);
        return;
    }
#endif
    irt__rows_c(x, w, b, y, K, N, 0);
}

/* Both entry points: bias_or_null + t * ldb is the row added to output row t (ldb 0: a
 * bias; N: a residual, which may be y itself: each output element reads its own addend
 * before it is stored, and no other). */
static IRT__NOINLINE void irt__rows_of(const float *restrict x, const float *restrict wp,
                                       const float *bias_or_null, int ldb, float *y, int T,
                                       int K, int N)
{
    int t;
    for (t = 0; t < T; ++t)
        irt__row(x + (ptrdiff_t)t * K, wp,
                 bias_or_null == NULL ? NULL : bias_or_null + (ptrdiff_t)t * ldb,
                 y + (ptrdiff_t)t * N, K, N);
}

/* T == 1 (decode) is a tail call to irt__row, without the loop's saved registers. */
static inline void irt__linear_packed(const float *restrict x, const float *restrict wp,
                                      const float *bias_or_null, int ldb, float *y, int T,
                                      int K, int N)
{
    if (T == 1)
        irt__row(x, wp, bias_or_null, y, K, N);
    else
        irt__rows_of(x, wp, bias_or_null, ldb, y, T, K, N);
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

void irt_linear_packed_kv_f32(const float *restrict x, const float *restrict wp,
                              float *restrict cache, int T, int K, int N, int layer,
                              int capacity, int pos, int ring)
{
    const int plane = capacity * 8; /* between two kv heads' rows of a slot */
    float *const base = cache + (ptrdiff_t)layer * (N / 8) * plane;
    int t;
    for (t = 0; t < T; ++t) { /* in order: a later row of a ring slot overwrites an earlier */
        const int slot = ring ? (pos + t) % capacity : pos + t;
        const float *const xt = x + (ptrdiff_t)t * K;
        float *const y = base + (ptrdiff_t)slot * 8;
#if IRT_RISCV_F_ASM
        if (K >= 16) {
            irt__panels_asm_kv(xt, wp, y, K, N, plane);
            continue;
        }
#endif
        {
            /* panel by panel (24, then 16 and 8 rows) into a buffer, then 8 rows per head */
            float rows[IRT_PANEL_ROWS];
            const float *w = wp;
            int n = 0, P, r;
            while (n < N) {
                P = N - n >= IRT_PANEL_ROWS ? IRT_PANEL_ROWS : (N - n) & 16 ? 16 : 8;
                irt__panel_small(xt, w, NULL, rows, K, P);
                for (r = 0; r < P; ++r)
                    y[(ptrdiff_t)((n + r) / 8) * plane + (n + r) % 8] = rows[r];
                n += P, w += (ptrdiff_t)P * K;
            }
        }
    }
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
