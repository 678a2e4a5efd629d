/*
 * irt_quant_test_driver.c - runs one quantized kernel (irt_quant.h) on inputs read from
 * files, for tests/test_c_quant_kernels.py.
 *
 *   irt_quant_test_driver KERNEL DIR
 *
 * DIR/params.txt holds "name value" lines (integers, or floats for scale); every array
 * input NAME is DIR/NAME.bin, raw little-endian data of the kernel's element type
 * (float32, int8, uint8 or int32) holding exactly the number of elements the kernel reads.
 * Each output NAME goes to DIR/NAME.out (same element type as in the kernel; `int`
 * exponents as int32).  Every buffer is allocated with exactly its size (so
 * AddressSanitizer flags any access past it); float outputs start as NaN and integer
 * outputs as a fill pattern, so elements a kernel forgets to write show up.  Exit status 0
 * on success.
 *
 * This is test code: unlike the runtime it may allocate and do I/O.
 */
#include "irt_intops.h"
#include "irt_quant.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "irt_test_io.h"


/* NULL unless the parameter has_bias is nonzero. */
static float *load_bias(size_t count)
{
    return geti("has_bias") ? loadf("bias", count) : NULL;
}

/* An output buffer of exactly `count` elements of `size` bytes: floats NaN, else 0x5a. */
static void *output(size_t count, size_t size, int is_float)
{
    void *buf;
    if (is_float)
        return nan_floats(count);
    buf = malloc(count * size + (count == 0));
    if (!buf)
        die("out of memory for", "output");
    memset(buf, 0x5a, count * size);
    return buf;
}

static float *outputf(size_t count)
{
    return nan_floats(count);
}

static void save(const char *name, const void *data, size_t count, size_t size)
{
    char file[256];
    snprintf(file, sizeof file, "%s.out", name);
    save_array(file, data, count, size);
}

static int run(const char *kernel)
{
    if (strcmp(kernel, "quantize_act_i8") == 0) {
        const int n = geti("n");
        float *x = loadf("x", n);
        int8_t *xq = (int8_t *)output(n, 1, 0);
        irt_quantize_act_i8(x, xq, n, getf("scale"), geti("zero_point"));
        save("xq", xq, n, 1);
        free(x), free(xq);
    } else if (strcmp(kernel, "matvec_i8_acc") == 0 || strcmp(kernel, "linear_w8a8") == 0) {
        const int T = geti("T"), K = geti("K"), N = geti("N"), zx = geti("zx");
        int8_t *xq = (int8_t *)load("xq", (size_t)T * K, 1);
        int8_t *wq = (int8_t *)load("wq", (size_t)N * K, 1);
        if (kernel[0] == 'm') {
            int32_t *acc = (int32_t *)output((size_t)T * N, 4, 0);
            irt_matvec_i8_acc(xq, zx, wq, acc, T, K, N);
            save("acc", acc, (size_t)T * N, 4);
            free(acc);
        } else {
            float *m = loadf("m", N), *b = load_bias(N), *y = outputf((size_t)T * N);
            irt_linear_w8a8(xq, zx, wq, m, b, y, T, K, N);
            save("y", y, (size_t)T * N, 4);
            free(m), free(b), free(y);
        }
        free(xq), free(wq);
    } else if (strcmp(kernel, "linear_w8") == 0) {
        const int T = geti("T"), K = geti("K"), N = geti("N"), per_tensor = geti("per_tensor");
        float *x = loadf("x", (size_t)T * K);
        int8_t *wq = (int8_t *)load("wq", (size_t)N * K, 1);
        float *s = loadf("s", per_tensor ? 1 : N), *b = load_bias(N);
        float *y = outputf((size_t)T * N);
        irt_linear_w8(x, wq, s, b, y, T, K, N, per_tensor);
        save("y", y, (size_t)T * N, 4);
        free(x), free(wq), free(s), free(b), free(y);
    } else if (strcmp(kernel, "linear_w4g") == 0) {
        const int T = geti("T"), K = geti("K"), N = geti("N"), G = geti("group");
        float *x = loadf("x", (size_t)T * K);
        uint8_t *w = (uint8_t *)load("w", (size_t)N * ((K + 1) / 2), 1);
        float *s = loadf("scales", (size_t)N * ((K + G - 1) / G)), *b = load_bias(N);
        float *y = outputf((size_t)T * N);
        irt_linear_w4g(x, w, s, b, y, T, K, N, G);
        save("y", y, (size_t)T * N, 4);
        free(x), free(w), free(s), free(b), free(y);
    } else if (strcmp(kernel, "linear_w1") == 0 || strcmp(kernel, "linear_w1a4") == 0) {
        const int T = geti("T"), K = geti("K"), N = geti("N");
        float *x = loadf("x", (size_t)T * K);
        uint8_t *w = (uint8_t *)load("w", (size_t)N * ((K + 7) / 8), 1);
        float *alpha = loadf("alpha", N), *b = load_bias(N);
        float *y = outputf((size_t)T * N);
        if (strcmp(kernel, "linear_w1") == 0)
            irt_linear_w1(x, w, alpha, b, y, T, K, N);
        else
            irt_linear_w1a4(x, w, alpha, b, y, T, K, N, geti("group"));
        save("y", y, (size_t)T * N, 4);
        free(x), free(w), free(alpha), free(b), free(y);
    } else if (strcmp(kernel, "quantize_act_a4") == 0) {
        /* T rows, one call per row. */
        const int T = geti("T"), K = geti("K"), G = geti("group");
        const int ng = (K + G - 1) / G;
        float *x = loadf("x", (size_t)T * K);
        int8_t *xq = (int8_t *)output((size_t)T * K, 1, 0);
        int *e = (int *)output((size_t)T * ng, sizeof(int), 0);
        int32_t *e32 = (int32_t *)output((size_t)T * ng, 4, 0);
        int t, i;
        for (t = 0; t < T; ++t)
            irt_quantize_act_a4(x + (size_t)t * K, xq + (size_t)t * K, e + (size_t)t * ng, K,
                                G);
        for (i = 0; i < T * ng; ++i)
            e32[i] = (int32_t)e[i];
        save("xq", xq, (size_t)T * K, 1);
        save("exponents", e32, (size_t)T * ng, 4);
        free(x), free(xq), free(e), free(e32);
    } else if (strcmp(kernel, "kv_write_i8") == 0) {
        const int KV = geti("kv_heads"), cap = geti("capacity"), hd = geti("head_dim");
        const int T = geti("T");
        const size_t rows = (size_t)geti("layers") * KV * cap;
        int8_t *cache = (int8_t *)load("cache", rows * hd, 1);
        float *scales = loadf("scales", rows), *rows_in = loadf("new", (size_t)T * KV * hd);
        irt_kv_write_i8(cache, scales, rows_in, geti("layer"), KV, cap, hd, T, geti("pos"),
                        geti("ring"));
        save("cache", cache, rows * hd, 1);
        save("scales", scales, rows, 4);
        free(cache), free(scales), free(rows_in);
    } else if (strcmp(kernel, "cached_attention_i8") == 0
               || strcmp(kernel, "cached_attention_i8_isoftmax") == 0) {
        const int H = geti("heads"), KV = geti("kv_heads"), hd = geti("head_dim");
        const int cap = geti("capacity"), T = geti("T");
        const size_t rows = (size_t)geti("layers") * KV * cap;
        float *q = loadf("q", (size_t)T * H * hd);
        int8_t *kc = (int8_t *)load("kcache", rows * hd, 1);
        int8_t *vc = (int8_t *)load("vcache", rows * hd, 1);
        float *ks = loadf("kscales", rows), *vs = loadf("vscales", rows);
        float *out = outputf((size_t)T * H * hd), *scratch = outputf(cap);
        (strcmp(kernel, "cached_attention_i8") == 0 ? irt_cached_attention_i8
                                                     : irt_cached_attention_i8_isoftmax)(
            q, kc, ks, vc, vs, out, scratch, geti("layer"), H, KV, hd, cap, T, geti("end"),
            geti("ring"), getf("scale"));
        save("out", out, (size_t)T * H * hd, 4);
        free(q), free(kc), free(vc), free(ks), free(vs), free(out), free(scratch);
    } else if (strcmp(kernel, "int_silu") == 0) { /* irt_intops.h */
        const int n = geti("n");
        float *x = loadf("x", n), *y = outputf(n);
        irt_int_silu_f32(x, y, n);
        save("y", y, n, 4);
        free(x), free(y);
    } else if (strcmp(kernel, "int_rms_norm") == 0) {
        const int T = geti("T"), D = geti("D");
        float *x = loadf("x", (size_t)T * D), *g = loadf("g", D);
        float *y = outputf((size_t)T * D);
        irt_int_rms_norm_f32(x, g, y, T, D, getf("eps"));
        save("y", y, (size_t)T * D, 4);
        free(x), free(g), free(y);
    } else if (strcmp(kernel, "int_softmax") == 0) {
        const int n = geti("n");
        float *s = loadf("s", n);
        irt_int_softmax_f32(s, n, getf("scale"));
        save("p", s, n, 4);
        free(s);
    } else {
        die("unknown kernel", kernel);
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: %s KERNEL DIR\n", argv[0]);
        return 2;
    }
    g_driver = "irt_quant_test_driver";
    g_dir = argv[2];
    return run(argv[1]);
}
