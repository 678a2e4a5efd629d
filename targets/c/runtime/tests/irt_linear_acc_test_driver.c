/*
 * irt_linear_acc_test_driver.c - runs one accumulating linear (irt_linear_acc.h) on inputs
 * read from files, for tests/test_c_linear_acc.py.
 *
 *   irt_linear_acc_test_driver KIND DIR
 *
 * KIND is f32, w8, w4g, w1 or w1a4.  DIR/params.txt holds "name value" lines (T, K, N,
 * group, per_tensor, has_bias); the arrays are DIR/NAME.bin, raw little-endian data of
 * exactly the size the kernel reads: x [T][K] float32, w (float32 [N][K], int8 [N][K],
 * packed uint8 [N][(K+1)/2] or [N][(K+7)/8]), s (per-channel, per-tensor or per-group
 * float32 scales, alpha for 1 bit), bias [N] when has_bias, and y [T][N] float32, the
 * accumulator the kernel adds to; the result goes to DIR/y.out.  Every buffer has exactly
 * its size, so AddressSanitizer flags any access past it.  Exit status 0 on success.
 *
 * This is test code: unlike the runtime it may allocate and do I/O.
 */
#include "irt_linear_acc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "irt_test_io.h"

int main(int argc, char **argv)
{
    int T, K, N, G;
    float *x, *s = NULL, *b = NULL, *y;
    void *w;
    const char *kind;

    if (argc != 3) {
        fprintf(stderr, "usage: %s KIND DIR\n", argv[0]);
        return 2;
    }
    kind = argv[1];
    g_driver = "irt_linear_acc_test_driver";
    g_dir = argv[2];
    T = geti("T"), K = geti("K"), N = geti("N"), G = geti_or("group", 0);
    x = loadf("x", (size_t)T * K);
    y = loadf("y", (size_t)T * N);
    if (geti_or("has_bias", 0))
        b = loadf("bias", N);
    if (strcmp(kind, "f32") == 0) {
        w = loadf("w", (size_t)N * K);
        irt_linear_acc_f32(x, (const float *)w, b, y, T, K, N);
    } else if (strcmp(kind, "w8") == 0) {
        const int per_tensor = geti("per_tensor");
        w = load("w", (size_t)N * K, 1);
        s = loadf("s", per_tensor ? 1 : N);
        irt_linear_w8_acc(x, (const int8_t *)w, s, b, y, T, K, N, per_tensor);
    } else if (strcmp(kind, "w4g") == 0) {
        w = load("w", (size_t)N * ((K + 1) / 2), 1);
        s = loadf("s", (size_t)N * ((K + G - 1) / G));
        irt_linear_w4g_acc(x, (const uint8_t *)w, s, b, y, T, K, N, G);
    } else if (strcmp(kind, "w1") == 0 || strcmp(kind, "w1a4") == 0) {
        w = load("w", (size_t)N * ((K + 7) / 8), 1);
        s = loadf("s", N);
        if (kind[2] == 'a')
            irt_linear_w1a4_acc(x, (const uint8_t *)w, s, b, y, T, K, N, G);
        else
            irt_linear_w1_acc(x, (const uint8_t *)w, s, b, y, T, K, N);
    } else {
        die("unknown kind", kind);
        return 2;
    }
    save_array("y.out", y, (size_t)T * N, 4);
    free(x), free(y), free(w), free(s), free(b);
    return 0;
}
