/*
 * irt_test_io.h - file I/O shared by the kernel test drivers (test code, not runtime).
 *
 * A test run is a directory: params.txt holds "name value" lines, every array input NAME is
 * NAME.bin holding exactly the bytes the kernel reads, loaded into a buffer of exactly that
 * size so AddressSanitizer flags any access past it.  A driver sets g_dir from its argv and
 * names itself in g_driver for error messages.  Functions are static inline so a driver may
 * leave some unused under -Werror.
 */
#ifndef IRT_TEST_IO_H
#define IRT_TEST_IO_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *g_dir;
static const char *g_driver = "irt_test_driver";

static inline void die(const char *what, const char *name)
{
    fprintf(stderr, "%s: %s %s\n", g_driver, what, name);
    exit(2);
}

static inline void path_of(char *buf, size_t size, const char *file)
{
    if ((size_t)snprintf(buf, size, "%s/%s", g_dir, file) >= size)
        die("path too long:", file);
}

static inline int find_param(const char *name, char *value, size_t size)
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

static inline int geti(const char *name)
{
    char v[128];
    if (!find_param(name, v, sizeof v))
        die("missing parameter", name);
    return (int)strtol(v, NULL, 10);
}

static inline int geti_or(const char *name, int fallback)
{
    char v[128];
    return find_param(name, v, sizeof v) ? (int)strtol(v, NULL, 10) : fallback;
}

static inline float getf(const char *name)
{
    char v[128];
    if (!find_param(name, v, sizeof v))
        die("missing parameter", name);
    return strtof(v, NULL);
}

/* Exactly `count` elements of `size` bytes from DIR/NAME.bin, in a buffer of exactly that
 * size. */
static inline void *load(const char *name, size_t count, size_t size)
{
    char file[256], path[4096];
    void *buf = malloc(count * size + (count == 0)); /* malloc(0) may return NULL */
    FILE *f;
    long bytes;
    if (!buf)
        die("out of memory for", name);
    snprintf(file, sizeof file, "%s.bin", name);
    path_of(path, sizeof path, file);
    f = fopen(path, "rb");
    if (!f)
        die("cannot open", path);
    fseek(f, 0, SEEK_END);
    bytes = ftell(f);
    fseek(f, 0, SEEK_SET);
    if (bytes != (long)(count * size))
        die("wrong size of", path);
    if (count && fread(buf, size, count, f) != count)
        die("cannot read", path);
    fclose(f);
    return buf;
}

static inline float *loadf(const char *name, size_t count)
{
    return (float *)load(name, count, 4);
}

/* An output of exactly `count` floats, every one NaN, so an element the kernel forgets to
 * write is caught. */
static inline float *nan_floats(size_t count)
{
    float *buf = (float *)malloc(count * 4 + (count == 0));
    size_t i;
    if (!buf)
        die("out of memory for", "output");
    for (i = 0; i < count; ++i)
        buf[i] = NAN;
    return buf;
}

/* `count` elements of `size` bytes to DIR/FILE. */
static inline void save_array(const char *file, const void *data, size_t count, size_t size)
{
    char path[4096];
    FILE *f;
    path_of(path, sizeof path, file);
    f = fopen(path, "wb");
    if (!f)
        die("cannot create", path);
    if (count && fwrite(data, size, count, f) != count)
        die("cannot write", path);
    fclose(f);
}

#endif /* IRT_TEST_IO_H */
