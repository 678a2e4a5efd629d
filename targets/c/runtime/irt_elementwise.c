/*
 * irt_elementwise.c - embeddings, element-wise arithmetic, activations, softmax, argmax.
 *
 * The element-wise kernels allow y == a / y == b / y == x: each element is read before
 * the same element is written (the unrolled bodies load all four before storing).
 */
#include "irt_internal.h"

#include <stddef.h>

void irt_embedding_f32(const int32_t *restrict tokens, const float *restrict table,
                       float *restrict y, int T, int D)
{
    int t;
    for (t = 0; t < T; ++t)
        irt__copy_f32(y + t * D, table + (ptrdiff_t)tokens[t] * D, D);
}

void irt_position_embedding_f32(const float *restrict table, float *restrict y, int T,
                                int D, int start)
{
    irt__copy_f32(y, table + start * D, T * D);
}

void irt_add_f32(const float *a, const float *b, float *y, int n)
{
    int i = 0;
    for (; i + 4 <= n; i += 4) {
        const float s0 = a[i] + b[i], s1 = a[i + 1] + b[i + 1];
        const float s2 = a[i + 2] + b[i + 2], s3 = a[i + 3] + b[i + 3];
        y[i] = s0;
        y[i + 1] = s1;
        y[i + 2] = s2;
        y[i + 3] = s3;
    }
    for (; i < n; ++i)
        y[i] = a[i] + b[i];
}

void irt_add_inplace_f32(float *restrict y, const float *restrict x, int n)
{
    int i = 0;
    for (; i + 8 <= n; i += 8) {
        float *const yi = y + i;
        const float *const xi = x + i;
        const float s0 = yi[0] + xi[0], s1 = yi[1] + xi[1], s2 = yi[2] + xi[2];
        const float s3 = yi[3] + xi[3], s4 = yi[4] + xi[4], s5 = yi[5] + xi[5];
        const float s6 = yi[6] + xi[6], s7 = yi[7] + xi[7];
        yi[0] = s0, yi[1] = s1, yi[2] = s2, yi[3] = s3;
        yi[4] = s4, yi[5] = s5, yi[6] = s6, yi[7] = s7;
    }
    for (; i < n; ++i)
        y[i] += x[i];
}

void irt_mul_f32(const float *a, const float *b, float *y, int n)
{
    int i = 0;
    for (; i + 4 <= n; i += 4) {
        const float p0 = a[i] * b[i], p1 = a[i + 1] * b[i + 1];
        const float p2 = a[i + 2] * b[i + 2], p3 = a[i + 3] * b[i + 3];
        y[i] = p0;
        y[i + 1] = p1;
        y[i + 2] = p2;
        y[i + 3] = p3;
    }
    for (; i < n; ++i)
        y[i] = a[i] * b[i];
}

/* exp(-v) for SiLU without a library call or branch: 2^(-v log2 e) with the exponent kept in
 * [-126, 127] (SiLU is then v / 2^127 or v / (1 + 2^-126): as close to the exact value as
 * float32 allows). */
static inline float irt__exp_neg(float v, irt__shift none, irt__exp2_poly c, float hi)
{
    return irt__exp2_shifted(irt__fmin(v * -IRT_LOG2E, hi), none, c);
}

void irt_silu_f32(const float *x, float *y, int n)
{
    const irt__exp2_poly c = irt__exp2_coefficients();
    const irt__shift none = irt__shift_of(0.0f); /* M = 0: plain 2^x for x >= -126 */
    float hi = 127.0f;
    int i;
    irt__pin(hi);
    for (i = 0; i < n; ++i) {
        const float v = x[i];
        y[i] = v / (1.0f + irt__exp_neg(v, none, c, hi));
    }
}

void irt_silu_mul_f32(const float *a, const float *b, float *y, int n)
{
    const irt__exp2_poly c = irt__exp2_coefficients();
    const irt__shift none = irt__shift_of(0.0f);
    float hi = 127.0f;
    int i;
    irt__pin(hi);
    for (i = 0; i + 2 <= n; i += 2) { /* two per turn: all four loads before the stores */
        const float v0 = a[i], w0 = b[i], v1 = a[i + 1], w1 = b[i + 1];
        const float y0 = v0 / (1.0f + irt__exp_neg(v0, none, c, hi)) * w0;
        const float y1 = v1 / (1.0f + irt__exp_neg(v1, none, c, hi)) * w1;
        y[i] = y0;
        y[i + 1] = y1;
    }
    if (i < n) {
        const float v = a[i], w = b[i];
        y[i] = v / (1.0f + irt__exp_neg(v, none, c, hi)) * w;
    }
}

/* Exact GELU, x Phi(x) = max(x, 0) - a Phi(-a) with a = |x|: the tail term is small and
 * positive, so nothing cancels for negative x and a positive x loses only its last rounding.
 * For a <= 4 the tail is a / (1 + exp(a R(a^2))), a R(a^2) the normal distribution's logit
 * and R of degree 7 fitted for the tail's relative error (scripts/fit_gelu.py --c: 1e-6 in
 * float64): about 25 instructions on rv32imafc where picolibc's erfcf took about 120.
 * Further out (rare for a GELU's inputs) erfcf, whose form keeps the relative accuracy
 * where 1 + erf(.) cancels. */
#define IRT_GELU_TAIL_MAX 4.0f

/* R log2(e), lowest power first (scripts/fit_gelu.py --c), and the constants of the loop, in
 * registers across it (irt__pin) rather than loaded again for every element. */
typedef struct {
    float r[8], one, zero;
    irt__shift none;
    irt__exp2_poly exp2;
} irt__gelu_consts;

static inline irt__gelu_consts irt__gelu_constants(void)
{
    irt__gelu_consts k = {{2.3022177122310934f, 0.10480759642208612f, -6.92844028257268e-05f,
                           -0.0001688806153153453f, 1.3129246356811537e-05f,
                           -5.357175718348082e-07f, 1.17418823168252e-08f,
                           -1.0712220905241291e-10f},
                          1.0f, 0.0f, irt__shift_of(0.0f), irt__exp2_coefficients()};
    int j;
    for (j = 0; j < 8; ++j)
        irt__pin(k.r[j]);
    irt__pin(k.one);
    irt__pin(k.zero);
    irt__pin(k.none.c);
    irt__pin(k.none.lo);
    return k;
}

/* a Phi(-a) for 0 <= a <= IRT_GELU_TAIL_MAX: a / (1 + 2^(a R(a^2) log2 e)). */
static inline float irt__gelu_tail(float a, const irt__gelu_consts *k)
{
    const float u = a * a;
    float p = IRT_FMA(k->r[7], u, k->r[6]);
    p = IRT_FMA(p, u, k->r[5]);
    p = IRT_FMA(p, u, k->r[4]);
    p = IRT_FMA(p, u, k->r[3]);
    p = IRT_FMA(p, u, k->r[2]);
    p = IRT_FMA(p, u, k->r[1]);
    p = IRT_FMA(p, u, k->r[0]);
    return a / (k->one + irt__exp2_shifted(a * p, k->none, k->exp2));
}

static float irt__gelu_erfc(float v)
{
    return 0.5f * v * erfcf(-v * 0.7071067811865476f); /* 1 / sqrt(2) */
}

void irt_gelu_f32(const float *x, float *y, int n, int tanh_approx)
{
    int i;
    if (tanh_approx) {
        const float k0 = 0.7978845608028654f; /* sqrt(2 / pi) */
        const float k1 = 0.044715f;
        for (i = 0; i < n; ++i) {
            const float v = x[i];
            const float inner = k0 * (v + k1 * v * v * v);
            y[i] = 0.5f * v * (1.0f + tanhf(inner));
        }
    } else {
        const irt__gelu_consts k = irt__gelu_constants();
        float top = IRT_GELU_TAIL_MAX;
        irt__pin(top);
        for (i = 0; i < n; ++i) {
            const float v = x[i], a = fabsf(v);
            y[i] = a <= top ? irt__fmax(v, k.zero) - irt__gelu_tail(a, &k) : irt__gelu_erfc(v);
        }
    }
}

float irt__softmax_numerators_f32(float *s, int J, float scale)
{
    float mx, sum = 0.0f;
    int j;
    if (scale != 1.0f) {
        for (j = 0; j < J; ++j)
            s[j] *= scale;
    }
    mx = s[0];
    for (j = 1; j < J; ++j)
        if (s[j] > mx)
            mx = s[j];
    for (j = 0; j < J; ++j) {
        const float e = irt__expf(s[j] - mx);
        s[j] = e;
        sum += e;
    }
    return sum;
}

void irt_softmax_f32(const float *x, float *y, int T, int N)
{
    int t, j;
    if (N <= 0)
        return;
    for (t = 0; t < T; ++t) {
        const float *xr = x + t * N;
        float *yr = y + t * N;
        float mx = xr[0], sum = 0.0f, inv;
        for (j = 1; j < N; ++j)
            if (xr[j] > mx)
                mx = xr[j];
        for (j = 0; j < N; ++j) {
            const float e = irt__expf(xr[j] - mx);
            yr[j] = e;
            sum += e;
        }
        inv = 1.0f / sum;
        for (j = 0; j < N; ++j)
            yr[j] *= inv;
    }
}

int irt_argmax_f32(const float *x, int n)
{
    int i, best = 0;
    float mx;
    if (n <= 0)
        return -1;
    mx = x[0];
    for (i = 1; i < n; ++i)
        if (x[i] > mx) {
            mx = x[i];
            best = i;
        }
    return best;
}
