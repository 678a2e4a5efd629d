/*
 * irt_test_driver.c - runs one runtime kernel on inputs read from files (for the tests).
 *
 *   irt_test_driver KERNEL DIR
 *   irt_test_driver              (other argument counts: "KERNEL DIR" read from
 *                                 ./irt_test_args.txt, on a bare-metal target run by qemu,
 *                                 which passes no arguments)
 *
 * DIR/params.txt holds "name value" lines (integers, or floats for eps/scale); every
 * array input NAME is DIR/NAME.bin (raw little-endian float32, or int32 for tokens) and
 * must hold exactly the number of elements the kernel reads.  The result goes to
 * DIR/out.bin (float32, or int32 for argmax).  Every buffer is allocated with exactly
 * its size (so AddressSanitizer flags any access past it) and outputs start as NaN (so
 * elements a kernel forgets to write are caught).  Exit status 0 on success.
 *
 * This is test code: unlike the runtime it may allocate and do I/O.
 */
#include "irt_internal.h" /* the inline exp of the attention kernel */
#include "irt_kernels.h"
#include "irt_relu.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "irt_test_io.h"


static float *output(size_t count)
{
    return nan_floats(count);
}

static void save(const void *data, size_t count)
{
    save_array("out.bin", data, count, 4);
}

/* y is x itself when the parameter inplace is 1, else a fresh NaN-filled buffer. */
static float *out_or_inplace(float *x, size_t count)
{
    return geti_or("inplace", 0) ? x : output(count);
}

static int run(const char *kernel)
{
    if (strcmp(kernel, "linear") == 0) {
        const int T = geti("T"), K = geti("K"), N = geti("N");
        float *x = loadf("x", (size_t)T * K), *w = loadf("w", (size_t)N * K);
        float *b = geti("has_bias") ? loadf("bias", N) : NULL;
        float *y = output((size_t)T * N);
        irt_linear_f32(x, w, b, y, T, K, N);
        save(y, (size_t)T * N);
        free(x), free(w), free(b), free(y);
    } else if (strcmp(kernel, "linear_packed") == 0) {
        const int T = geti("T"), K = geti("K"), N = geti("N");
        float *x = loadf("x", (size_t)T * K), *wp = loadf("wp", (size_t)N * K);
        float *b = geti("has_bias") ? loadf("bias", N) : NULL;
        float *y = output((size_t)T * N);
        irt_linear_packed_f32(x, wp, b, y, T, K, N);
        save(y, (size_t)T * N);
        free(x), free(wp), free(b), free(y);
    } else if (strcmp(kernel, "linear_packed_residual") == 0) {
        /* inplace: 1 y = r (the residual stream updated in place) */
        const int T = geti("T"), K = geti("K"), N = geti("N");
        float *x = loadf("x", (size_t)T * K), *wp = loadf("wp", (size_t)N * K);
        float *r = loadf("r", (size_t)T * N);
        float *y = geti_or("inplace", 0) ? r : output((size_t)T * N);
        irt_linear_packed_residual_f32(x, wp, r, y, T, K, N);
        save(y, (size_t)T * N);
        if (y != r)
            free(y);
        free(x), free(wp), free(r);
    } else if (strcmp(kernel, "matmul") == 0) {
        const int M = geti("M"), K = geti("K"), N = geti("N");
        float *a = loadf("a", (size_t)M * K), *b = loadf("b", (size_t)K * N);
        float *y = output((size_t)M * N);
        irt_matmul_f32(a, b, y, M, K, N, geti("transpose_b"));
        save(y, (size_t)M * N);
        free(a), free(b), free(y);
    } else if (strcmp(kernel, "rms_norm") == 0 || strcmp(kernel, "layer_norm") == 0) {
        const int T = geti("T"), D = geti("D");
        float *x = loadf("x", (size_t)T * D), *g = loadf("g", D);
        float *y = out_or_inplace(x, (size_t)T * D);
        if (kernel[0] == 'r') {
            irt_rms_norm_f32(x, g, y, T, D, getf("eps"));
        } else {
            float *b = loadf("b", D);
            irt_layer_norm_f32(x, g, b, y, T, D, getf("eps"));
            free(b);
        }
        save(y, (size_t)T * D);
        if (y != x)
            free(y);
        free(x), free(g);
    } else if (strcmp(kernel, "rope") == 0 || strcmp(kernel, "rope_hd8") == 0) {
        const int T = geti("T"), heads = geti("heads"), hd = geti("head_dim");
        const int rd = geti("rotary_dim"), max_pos = geti("max_pos");
        const size_t n = (size_t)T * heads * hd;
        float *x = loadf("x", n);
        float *c = loadf("cos", (size_t)max_pos * (rd / 2));
        float *s = loadf("sin", (size_t)max_pos * (rd / 2));
        float *y = out_or_inplace(x, n);
        if (strcmp(kernel, "rope") == 0)
            irt_rope_f32(x, c, s, y, T, heads, hd, rd, geti("start"), geti("style"));
        else /* head_dim == rotary_dim == 8 */
            irt_rope_hd8_f32(x, c, s, y, T, heads, geti("start"), geti("style"));
        save(y, n);
        if (y != x)
            free(y);
        free(x), free(c), free(s);
    } else if (strcmp(kernel, "embedding") == 0) {
        const int T = geti("T"), D = geti("D");
        int32_t *tok = (int32_t *)load("tokens", T, 4);
        float *table = loadf("table", (size_t)geti("vocab") * D), *y = output((size_t)T * D);
        irt_embedding_f32(tok, table, y, T, D);
        save(y, (size_t)T * D);
        free(tok), free(table), free(y);
    } else if (strcmp(kernel, "embedding_packed") == 0) {
        const int T = geti("T"), D = geti("D"), V = geti("vocab");
        int32_t *tok = (int32_t *)load("tokens", T, 4);
        float *table = loadf("table", (size_t)V * D), *y = output((size_t)T * D);
        irt_embedding_packed_f32(tok, table, y, T, D, V);
        save(y, (size_t)T * D);
        free(tok), free(table), free(y);
    } else if (strcmp(kernel, "position_embedding") == 0) {
        const int T = geti("T"), D = geti("D");
        float *table = loadf("table", (size_t)geti("max_pos") * D);
        float *y = output((size_t)T * D);
        irt_position_embedding_f32(table, y, T, D, geti("start"));
        save(y, (size_t)T * D);
        free(table), free(y);
    } else if (strcmp(kernel, "add") == 0 || strcmp(kernel, "mul") == 0) {
        /* inplace: 0 fresh y, 1 y = a, 2 y = b, 3 b = a and y = a (x op x in place). */
        const int n = geti("n"), mode = geti_or("inplace", 0);
        float *a = loadf("a", n);
        float *b = mode == 3 ? a : loadf("b", n);
        float *y = mode == 1 || mode == 3 ? a : mode == 2 ? b : output(n);
        if (kernel[0] == 'a')
            irt_add_f32(a, b, y, n);
        else
            irt_mul_f32(a, b, y, n);
        save(y, n);
        if (y != a && y != b)
            free(y);
        if (b != a)
            free(b);
        free(a);
    } else if (strcmp(kernel, "silu_mul") == 0) {
        /* inplace: 0 fresh y, 1 y = a, 2 y = b. */
        const int n = geti("n"), mode = geti_or("inplace", 0);
        float *a = loadf("a", n), *b = loadf("b", n);
        float *y = mode == 1 ? a : mode == 2 ? b : output(n);
        irt_silu_mul_f32(a, b, y, n);
        save(y, n);
        if (y != a && y != b)
            free(y);
        free(a), free(b);
    } else if (strcmp(kernel, "add_inplace") == 0) {
        const int n = geti("n");
        float *y = loadf("y", n), *x = loadf("x", n);
        irt_add_inplace_f32(y, x, n);
        save(y, n);
        free(y), free(x);
    } else if (strcmp(kernel, "exp2_softmax") == 0) {
        /* the softmax weights of irt_cached_attention_hd8_f32: 2^(s - round(max)) */
        const int n = geti("n");
        const irt__shift sh = irt__shift_of(getf("max"));
        const irt__exp2_poly4 c = irt__exp2_softmax_coefficients();
        float *x = loadf("x", n), *y = output(n);
        int i;
        for (i = 0; i < n; ++i)
            y[i] = irt__exp2_softmax(x[i], sh, c);
        save(y, n);
        free(x), free(y);
    } else if (strcmp(kernel, "silu") == 0 || strcmp(kernel, "gelu") == 0) {
        const int n = geti("n");
        float *x = loadf("x", n), *y = out_or_inplace(x, n);
        if (kernel[0] == 's')
            irt_silu_f32(x, y, n);
        else
            irt_gelu_f32(x, y, n, geti("tanh_approx"));
        save(y, n);
        if (y != x)
            free(y);
        free(x);
    } else if (strcmp(kernel, "relu") == 0) {
        const int n = geti("n");
        float *x = loadf("x", n), *y = out_or_inplace(x, n);
        irt_relu_f32(x, y, n);
        save(y, n);
        if (y != x)
            free(y);
        free(x);
    } else if (strcmp(kernel, "softmax") == 0) {
        const int T = geti("T"), N = geti("N");
        float *x = loadf("x", (size_t)T * N), *y = out_or_inplace(x, (size_t)T * N);
        irt_softmax_f32(x, y, T, N);
        save(y, (size_t)T * N);
        if (y != x)
            free(y);
        free(x);
    } else if (strcmp(kernel, "argmax") == 0) {
        const int n = geti("n");
        float *x = loadf("x", n);
        int32_t r = irt_argmax_f32(x, n);
        save(&r, 1);
        free(x);
    } else if (strcmp(kernel, "attention") == 0) {
        const int T = geti("T"), S = geti("S"), H = geti("heads"), KV = geti("kv_heads");
        const int hd = geti("head_dim");
        float *q = loadf("q", (size_t)T * H * hd);
        float *k = loadf("k", (size_t)S * KV * hd), *v = loadf("v", (size_t)S * KV * hd);
        float *out = output((size_t)T * H * hd), *scratch = output(S);
        irt_attention_f32(q, k, v, out, scratch, T, S, H, KV, hd, getf("scale"),
                          geti("causal"), geti("window"));
        save(out, (size_t)T * H * hd);
        free(q), free(k), free(v), free(out), free(scratch);
    } else if (strcmp(kernel, "kv_write") == 0) {
        const int KV = geti("kv_heads"), cap = geti("capacity"), hd = geti("head_dim");
        const int T = geti("T");
        const size_t n = (size_t)geti("layers") * KV * cap * hd;
        float *cache = loadf("cache", n), *rows = loadf("new", (size_t)T * KV * hd);
        irt_kv_write_f32(cache, rows, geti("layer"), KV, cap, hd, T, geti("pos"),
                         geti("ring"));
        save(cache, n);
        free(cache), free(rows);
    } else if (strcmp(kernel, "linear_packed_kv") == 0 || strcmp(kernel, "rope_hd8_kv") == 0) {
        /* a producer of T rows of kv_heads x 8 writing them into the cache (head_dim 8) */
        const int KV = geti("kv_heads"), cap = geti("capacity"), T = geti("T");
        const size_t n = (size_t)geti("layers") * KV * cap * 8;
        float *cache = loadf("cache", n);
        if (kernel[0] == 'l') {
            const int K = geti("K");
            float *x = loadf("x", (size_t)T * K), *wp = loadf("wp", (size_t)KV * 8 * K);
            irt_linear_packed_kv_f32(x, wp, cache, T, K, KV * 8, geti("layer"), cap,
                                     geti("pos"), geti("ring"));
            free(x), free(wp);
        } else {
            const int max_pos = geti("max_pos");
            float *x = loadf("x", (size_t)T * KV * 8);
            float *c = loadf("cos", (size_t)max_pos * 4), *s = loadf("sin", (size_t)max_pos * 4);
            irt_rope_hd8_kv_f32(x, c, s, cache, T, KV, geti("start"), geti("style"),
                                geti("layer"), cap, geti("pos"), geti("ring"));
            free(x), free(c), free(s);
        }
        save(cache, n);
        free(cache);
    } else if (strcmp(kernel, "cached_attention") == 0) {
        const int H = geti("heads"), KV = geti("kv_heads"), hd = geti("head_dim");
        const int cap = geti("capacity"), T = geti("T");
        const size_t n = (size_t)geti("layers") * KV * cap * hd;
        float *q = loadf("q", (size_t)T * H * hd);
        float *kc = loadf("kcache", n), *vc = loadf("vcache", n);
        float *out = output((size_t)T * H * hd), *scratch = output(cap);
        irt_cached_attention_f32(q, kc, vc, out, scratch, geti("layer"), H, KV, hd, cap, T,
                                 geti("end"), geti("ring"), getf("scale"));
        save(out, (size_t)T * H * hd);
        free(q), free(kc), free(vc), free(out), free(scratch);
    } else if (strcmp(kernel, "cached_attention_hd8") == 0) {
        const int H = geti("heads"), KV = geti("kv_heads"), cap = geti("capacity");
        const int T = geti("T");
        const size_t n = (size_t)geti("layers") * KV * cap * 8;
        float *q = loadf("q", (size_t)T * H * 8);
        float *kc = loadf("kcache", n), *vc = loadf("vcache", n);
        float *out = output((size_t)T * H * 8), *scratch = output(2 * (size_t)cap);
        irt_cached_attention_hd8_f32(q, kc, vc, out, scratch, geti("layer"), H, KV, cap, T,
                                     geti("end"), geti("ring"), getf("scale"));
        save(out, (size_t)T * H * 8);
        free(q), free(kc), free(vc), free(out), free(scratch);
    } else {
        die("unknown kernel", kernel);
    }
    return 0;
}

int main(int argc, char **argv)
{
    static char kernel[64], dir[4096];
    if (argc == 3) {
        g_dir = argv[2];
        return run(argv[1]);
    }
    { /* picolibc's semihosting start-up gives argc 2 with an empty argument */
        FILE *f = fopen("irt_test_args.txt", "r");
        const int got = f != NULL ? fscanf(f, "%63s %4095s", kernel, dir) : 0;
        if (f != NULL)
            fclose(f);
        if (got == 2) {
            g_dir = dir;
            return run(kernel);
        }
    }
    fprintf(stderr, "usage: %s KERNEL DIR (or KERNEL DIR in ./irt_test_args.txt)\n",
            argc > 0 ? argv[0] : "irt_test_driver");
    return 2;
}
