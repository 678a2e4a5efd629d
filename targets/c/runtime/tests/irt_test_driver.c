/*
 * irt_test_driver.c - runs one runtime kernel on inputs read from files (for the tests).
 *
 *   irt_test_driver KERNEL DIR
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
#include "irt_kernels.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *g_dir;

static void die(const char *what, const char *name)
{
    fprintf(stderr, "irt_test_driver: %s %s\n", what, name);
    exit(2);
}

static void path_of(char *buf, size_t size, const char *file)
{
    if ((size_t)snprintf(buf, size, "%s/%s", g_dir, file) >= size)
        die("path too long:", file);
}

static int find_param(const char *name, char *value, size_t size)
{
    char path[4096], key[128], val[128];
    FILE *f;
    int found = 0;
    path_of(path, sizeof path, "params.txt");
    f = fopen(path, "r");
    if (!f)
        die("cannot open", path);
    while (fscanf(f, "%127s %127s", key, val) == 2) {
        if (strcmp(key, name) == 0) {
            if (strlen(val) + 1 > size)
                die("parameter too long:", name);
            strcpy(value, val);
            found = 1;
            break;
        }
    }
    fclose(f);
    return found;
}

static int geti(const char *name)
{
    char v[128];
    if (!find_param(name, v, sizeof v))
        die("missing parameter", name);
    return (int)strtol(v, NULL, 10);
}

static int geti_or(const char *name, int fallback)
{
    char v[128];
    return find_param(name, v, sizeof v) ? (int)strtol(v, NULL, 10) : fallback;
}

static float getf(const char *name)
{
    char v[128];
    if (!find_param(name, v, sizeof v))
        die("missing parameter", name);
    return strtof(v, NULL);
}

/* Exactly `count` elements of 4 bytes from DIR/NAME.bin, in a buffer of exactly that size. */
static void *load(const char *name, size_t count)
{
    char file[256], path[4096];
    void *buf = malloc(count * 4 + (count == 0)); /* malloc(0) may return NULL */
    FILE *f;
    long size;
    if (!buf)
        die("out of memory for", name);
    snprintf(file, sizeof file, "%s.bin", name);
    path_of(path, sizeof path, file);
    f = fopen(path, "rb");
    if (!f)
        die("cannot open", path);
    fseek(f, 0, SEEK_END);
    size = ftell(f);
    fseek(f, 0, SEEK_SET);
    if (size != (long)(count * 4))
        die("wrong size of", path);
    if (count && fread(buf, 4, count, f) != count)
        die("cannot read", path);
    fclose(f);
    return buf;
}

static float *loadf(const char *name, size_t count)
{
    return (float *)load(name, count);
}

/* An output buffer of exactly `count` floats, filled with NaN. */
static float *output(size_t count)
{
    float *buf = (float *)malloc(count * 4 + (count == 0));
    size_t i;
    if (!buf)
        die("out of memory for", "output");
    for (i = 0; i < count; ++i)
        buf[i] = NAN;
    return buf;
}

static void save(const void *data, size_t count)
{
    char path[4096];
    FILE *f;
    path_of(path, sizeof path, "out.bin");
    f = fopen(path, "wb");
    if (!f)
        die("cannot create", path);
    if (count && fwrite(data, 4, count, f) != count)
        die("cannot write", path);
    fclose(f);
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
    } else if (strcmp(kernel, "rope") == 0) {
        const int T = geti("T"), heads = geti("heads"), hd = geti("head_dim");
        const int rd = geti("rotary_dim"), max_pos = geti("max_pos");
        const size_t n = (size_t)T * heads * hd;
        float *x = loadf("x", n);
        float *c = loadf("cos", (size_t)max_pos * (rd / 2));
        float *s = loadf("sin", (size_t)max_pos * (rd / 2));
        float *y = out_or_inplace(x, n);
        irt_rope_f32(x, c, s, y, T, heads, hd, rd, geti("start"), geti("style"));
        save(y, n);
        if (y != x)
            free(y);
        free(x), free(c), free(s);
    } else if (strcmp(kernel, "embedding") == 0) {
        const int T = geti("T"), D = geti("D");
        int32_t *tok = (int32_t *)load("tokens", T);
        float *table = loadf("table", (size_t)geti("vocab") * D), *y = output((size_t)T * D);
        irt_embedding_f32(tok, table, y, T, D);
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
    g_dir = argv[2];
    return run(argv[1]);
}
