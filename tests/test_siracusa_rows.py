"""siracusa's norms, RoPE and KV writes over the cores (runtime/sir_rows.c), and the rules
that choose them (split_rules.py).

The split kernels are checked natively (the team simulated one core after another, ASan and
UBSan on) against the portable single-core kernels they share out, which
tests/test_c_runtime.py and tests/test_c_quant_kernels.py check against numpy: every output
byte must be equal, for one token (by heads) and for blocks of rows, with ring caches that
wrap and one that is written with more rows than it holds. The rules fork exactly when the
modelled parallel phase (slowest core's share + the fork/join) is shorter than core 0 alone.
"""

from __future__ import annotations

import subprocess

import pytest

from tests.c_kernel_harness import HOST_CC, HOST_FLAGS, RUNTIME, runtime_sources
from tests.requirements import need

SIRACUSA_RUNTIME = RUNTIME.parents[1] / "siracusa" / "runtime"

DRIVER = r"""
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "irt_intops.h"
#include "irt_kernels.h"
#include "irt_quant.h"
#include "sir_kernels.h"

static unsigned seed = 12345u;
static float rnd(void)
{
    seed = seed * 1103515245u + 12345u;
    return (float)((int)(seed >> 8) % 2001 - 1000) / 250.0f;
}
static float *floats(size_t n)
{
    float *p = malloc(n * sizeof *p);
    for (size_t i = 0; i < n; ++i)
        p[i] = rnd();
    return p;
}
static int fails = 0;
static void same(const char *what, const void *a, const void *b, size_t bytes)
{
    if (memcmp(a, b, bytes) != 0) { printf("MISMATCH %s\n", what); fails++; }
}

static void norms(int T, int D)
{
    float *x = floats((size_t)T * D), *g = floats(D);
    float *a = malloc((size_t)T * D * 4), *b = malloc((size_t)T * D * 4);
    irt_rms_norm_f32(x, g, a, T, D, 1e-5f);
    sir_rms_norm_f32(x, g, b, T, D, 1e-5f, 8);
    same("rms_norm", a, b, (size_t)T * D * 4);
    irt_int_rms_norm_f32(x, g, a, T, D, 1e-5f);
    sir_int_rms_norm_f32(x, g, b, T, D, 1e-5f, 8);
    same("int_rms_norm", a, b, (size_t)T * D * 4);
    free(x), free(g), free(a), free(b);
}

static void rope(int T, int heads, int hd, int rot, int start, int style)
{
    const size_t n = (size_t)T * heads * hd;
    const size_t table = (size_t)(start + T) * rot / 2;
    float *x = floats(n), *c = floats(table), *s = floats(table);
    float *a = malloc(n * 4), *b = malloc(n * 4);
    irt_rope_f32(x, c, s, a, T, heads, hd, rot, start, style);
    sir_rope_f32(x, c, s, b, T, heads, hd, rot, start, style, 8);
    same("rope", a, b, n * 4);
    free(x), free(c), free(s), free(a), free(b);
}

static void kv(int L, int layer, int KV, int cap, int hd, int T, int pos, int ring)
{
    const size_t cells = (size_t)L * KV * cap;
    int8_t *ca = calloc(cells * hd, 1), *cb = calloc(cells * hd, 1);
    float *sa = calloc(cells, 4), *sb = calloc(cells, 4);
    float *rows = floats((size_t)T * KV * hd);
    irt_kv_write_i8(ca, sa, rows, layer, KV, cap, hd, T, pos, ring);
    sir_kv_write_i8(cb, sb, rows, layer, KV, cap, hd, T, pos, ring, 8);
    same("kv_write cache", ca, cb, cells * hd);
    same("kv_write scales", sa, sb, cells * 4);
    free(ca), free(cb), free(sa), free(sb), free(rows);
}

int main(void)
{
    norms(1, 64); norms(5, 48); norms(13, 7);
    rope(1, 8, 8, 8, 3, 0); rope(1, 3, 16, 8, 0, 1);
    rope(6, 4, 8, 8, 2, 0); rope(11, 2, 4, 4, 0, 1);
    kv(2, 1, 4, 16, 8, 1, 5, 0); kv(1, 0, 3, 4, 8, 1, 6, 1); kv(2, 0, 4, 16, 8, 9, 3, 0);
    kv(1, 0, 2, 8, 4, 5, 6, 1); kv(1, 0, 2, 4, 4, 11, 1, 1);
    printf(fails ? "FAILED\n" : "ok\n");
    return fails != 0;
}
"""


def test_split_kernels_equal_the_portable_ones(tmp_path):
    need("cc")
    (tmp_path / "driver.c").write_text(DRIVER)
    sources = [*map(str, runtime_sources()),
               *(str(SIRACUSA_RUNTIME / f) for f in ("sir_rows.c", "irt_team.c"))]
    exe = tmp_path / "driver"
    proc = subprocess.run([HOST_CC, *HOST_FLAGS, f"-I{RUNTIME}", f"-I{SIRACUSA_RUNTIME}",
                           str(tmp_path / "driver.c"), *sources, "-o", str(exe), "-lm"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    run = subprocess.run([str(exe)], capture_output=True, text=True)
    assert run.returncode == 0 and run.stdout.strip() == "ok", run.stdout + run.stderr


@pytest.mark.parametrize("units,per_unit,forks", [
    (8, 48, True),      # RoPE of stories260K's query: 8 heads of 8 values at 6 each
    (4, 48, False),     # its key: 4 heads (192 on core 0 < 48 + 300)
    (4, 112, True),     # the int8 KV write of one token: 4 kv heads of 8 values at 14 each
    (1, 512, False),    # a one-token norm: one row cannot be split
    (16, 512, True),    # a 16-row norm
    (9, 40, False),     # 9 units on 8 cores: the slowest core does 2 (80 + 300 > 360)
])
def test_fork_when_the_parallel_phase_is_shorter(units, per_unit, forks):
    from irtool.targets.siracusa.split_rules import fork_pays
    from irtool.targets.siracusa.target import make_target

    cluster = make_target().description.core
    assert cluster.cores == 8 and cluster.cpi == 1.0 and cluster.fork_join_cycles == 300
    slowest = -(-units // 8) * per_unit + 300
    assert (slowest < units * per_unit) == forks  # the criterion, written out here
    assert fork_pays(units, per_unit, 8, cluster.fork_join_cycles) == forks
    assert not fork_pays(units, per_unit, 1, 300)
