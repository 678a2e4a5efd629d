/*
 * irt_quant_packed_test_driver.c - runs one quantized linear kernel, in its row-major form
 * (irt_quant.h) or over panel-packed weights (irt_linear_packed_q.h), or the int8 attention
 * for 8-wide heads (irt_attention_q.h), on inputs read from files, for
 * tests/test_c_quant_packed_kernels.py.
 *
 *   irt_quant_packed_test_driver KERNEL DIR
 *   KERNEL: linear_w8, linear_w4g, linear_w8a8 (y.out), cached_attention_i8_hd8 (out.out)
 *
 * DIR/params.txt holds "name value" lines (T, K, N, has_bias, packed, per_tensor, group,
 * zx); the inputs are DIR/NAME.bin, raw little-endian arrays of exactly the size the kernel
 * reads (so AddressSanitizer flags any access past them); y starts as NaN and goes to
 * DIR/y.out.  Exit status 0 on success.  Test code: it may allocate and do I/O.
 */
#include "irt_attention_q.h"
#include "irt_linear_packed_q.h"
#include "irt_quant.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "irt_test_io.h"

/* irt_cached_attention_i8_hd8 on caches [layers][kv_heads][capacity][8] and their scales. */
static int run_attention(void)
{
    const int H = geti("heads"), KV = geti("kv_heads"), cap = geti("capacity"), T = geti("T");
    const size_t rows = (size_t)geti("layers") * KV * cap;
    float *q = loadf("q", (size_t)T * H * 8);
    int8_t *kc = (int8_t *)load("kcache", rows * 8, 1);
    int8_t *vc = (int8_t *)load("vcache", rows * 8, 1);
    float *ks = loadf("kscales", rows), *vs = loadf("vscales", rows);
    float *out = nan_floats((size_t)T * H * 8), *scratch = nan_floats(2 * (size_t)cap);
    irt_cached_attention_i8_hd8(q, kc, ks, vc, vs, out, scratch, geti("layer"), H, KV, cap, T,
                                geti("end"), geti("ring"), getf("scale"));
    save_array("out.out", out, (size_t)T * H * 8, 4);
    free(q), free(kc), free(vc), free(ks), free(vs), free(out), free(scratch);
    return 0;
}

/* A linear kernel, row-major (packed 0) or over packed weights (packed 1). */
static int run_linear(const char *kernel)
{
    const int T = geti("T"), K = geti("K"), N = geti("N"), packed = geti("packed");
    float *b = geti("has_bias") ? loadf("bias", N) : NULL;
    float *y = nan_floats((size_t)T * N);
    if (strcmp(kernel, "linear_w8") == 0) {
        const int per_tensor = geti("per_tensor");
        float *x = loadf("x", (size_t)T * K), *s = loadf("s", per_tensor ? 1 : N);
        int8_t *w = (int8_t *)load("w", (size_t)N * K, 1);
        if (packed)
            irt_linear_w8_packed(x, w, s, b, y, T, K, N, per_tensor);
        else
            irt_linear_w8(x, w, s, b, y, T, K, N, per_tensor);
        free(x), free(s), free(w);
    } else if (strcmp(kernel, "linear_w4g") == 0) {
        const int G = geti("group");
        float *x = loadf("x", (size_t)T * K), *s = loadf("s", (size_t)N * ((K + G - 1) / G));
        uint8_t *w = (uint8_t *)load("w", (size_t)N * ((K + 1) / 2), 1);
        if (packed)
            irt_linear_w4g_packed(x, w, s, b, y, T, K, N, G);
        else
            irt_linear_w4g(x, w, s, b, y, T, K, N, G);
        free(x), free(s), free(w);
    } else if (strcmp(kernel, "linear_w8a8") == 0) {
        int8_t *xq = (int8_t *)load("xq", (size_t)T * K, 1);
        int8_t *w = (int8_t *)load("w", (size_t)N * K, 1);
        float *m = loadf("m", N);
        if (packed)
            irt_linear_w8a8_packed(xq, geti("zx"), w, m, b, y, T, K, N);
        else
            irt_linear_w8a8(xq, geti("zx"), w, m, b, y, T, K, N);
        free(xq), free(w), free(m);
    } else {
        die("unknown kernel", kernel);
    }
    save_array("y.out", y, (size_t)T * N, 4);
    free(b), free(y);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: %s KERNEL DIR\n", argv[0]);
        return 2;
    }
    g_driver = "irt_quant_packed_test_driver";
    g_dir = argv[2];
    return strcmp(argv[1], "cached_attention_i8_hd8") == 0 ? run_attention()
                                                           : run_linear(argv[1]);
}
