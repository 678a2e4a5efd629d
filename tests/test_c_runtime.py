"""The fp32 C kernel runtime (targets/c/runtime) against naive numpy references.

Every kernel runs in a test driver built once per session with AddressSanitizer and UBSan
(buffers are exactly sized, outputs start as NaN, unused cache slots hold NaN).  The
references below are written from the kernel semantics in irt_kernels.h, in float64 with
explicit loops where the indexing is the point; they do not use irtool's interpreter.
Tolerances are relative to the magnitude of the terms that make up each output
(e.g. sum_k |x_k w_k| for a dot product), so float32 cancellation does not cause flakes.
"""

from __future__ import annotations

import math
import re
import subprocess
import zlib

import numpy as np
import pytest

from tests.c_kernel_harness import (
    RUNTIME,
    TARGET_CC,
    TARGET_FLAGS,
    KernelRunner,
    build_driver,
    runtime_sources,
)
from tests.requirements import need

F32 = np.float32
RTOL = 1e-5


@pytest.fixture(scope="session")
def runner(tmp_path_factory) -> KernelRunner:
    need("cc")
    build = tmp_path_factory.mktemp("irt_build")
    return KernelRunner(build_driver(build), tmp_path_factory.mktemp("irt_runs"))


def rng_for(*key) -> np.random.Generator:
    """A generator seeded from the test's parameters (the same on every run)."""
    return np.random.default_rng(zlib.crc32(repr(key).encode()))


def randn(rng, *shape, scale=1.0) -> np.ndarray:
    return (rng.standard_normal(shape) * scale).astype(F32)


def check(got, want, mag=None, rtol=RTOL, atol=0.0):
    """|got - want| <= rtol * mag + atol elementwise (mag defaults to |want|)."""
    want = np.asarray(want, dtype=np.float64).reshape(-1)
    got = np.asarray(got, dtype=np.float64).reshape(-1)
    assert got.shape == want.shape, (got.shape, want.shape)
    mag = np.abs(want) if mag is None else np.asarray(mag, dtype=np.float64).reshape(-1)
    assert not np.isnan(got).any(), f"NaN in output at {np.flatnonzero(np.isnan(got))[:8]}"
    err = np.abs(got - want)
    bad = err > rtol * mag + atol
    if bad.any():
        i = int(np.argmax(np.where(bad, err, -1)))
        raise AssertionError(f"{int(bad.sum())} of {got.size} elements differ; worst at {i}: "
                             f"got {got[i]!r}, want {want[i]!r} (mag {mag[i]!r})")


# ------------------------------------------------------------------------- linear algebra

def linear_reference(x, w, b=None):
    """x w^T (+ b) in float64, and the magnitude sum_k |x_k w_k| (+ |b|) of each output."""
    x64, w64 = x.astype(np.float64), w.astype(np.float64)
    want = np.einsum("tk,nk->tn", x64, w64)
    mag = np.einsum("tk,nk->tn", np.abs(x64), np.abs(w64))
    if b is not None:
        want, mag = want + b, mag + np.abs(b)
    return want, mag


LINEAR_SHAPES = [(1, 1, 1), (1, 1, 5), (3, 7, 9), (2, 16, 12), (5, 37, 6), (1, 64, 3),
                 (4, 300, 13), (2, 8, 4), (1, 13, 2), (3, 4, 7), (2, 12, 8), (1, 2, 11)]


@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("T,K,N", LINEAR_SHAPES)
def test_linear(runner, T, K, N, bias):
    rng = rng_for("linear", T, K, N, bias)
    x, w, b = randn(rng, T, K), randn(rng, N, K), randn(rng, N)
    arrays = {"x": x, "w": w, **({"bias": b} if bias else {})}
    got = runner.run("linear", {"T": T, "K": K, "N": N, "has_bias": bias}, arrays)
    check(got, *linear_reference(x, w, b if bias else None))


def packed_by_definition(w: np.ndarray) -> np.ndarray:
    """w [N][K] packed by the words of irt_kernels.h, element by element: panels of 24 rows
    while 24 remain, then one each of 16, 8, 4, 2, 1 for the bits of N % 24; [k][r] inside."""
    N, K = w.shape
    widths = [24] * (N // 24) + [p for p in (16, 8, 4, 2, 1) if (N % 24) & p]
    out, n0 = [], 0
    for p in widths:
        for k in range(K):
            for r in range(p):
                out.append(w[n0 + r, k])
        n0 += p
    return np.array(out, dtype=w.dtype)


PACKED_SHAPES = [(1, 64, 64), (1, 64, 32), (1, 64, 172), (1, 172, 64), (2, 13, 31), (3, 9, 16),
                 (1, 1, 1), (1, 5, 7), (2, 8, 24), (1, 3, 2), (1, 20, 15), (2, 31, 47),
                 (1, 16, 24), (1, 29, 71)]


@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("T,K,N", PACKED_SHAPES)
def test_linear_packed(runner, T, K, N, bias):
    from irtool.targets.panel_layout import pack_row_panels, unpack_row_panels

    rng = rng_for("linear_packed", T, K, N, bias)
    x, w, b = randn(rng, T, K), randn(rng, N, K), randn(rng, N)
    wp = packed_by_definition(w)
    assert np.array_equal(pack_row_panels(w), wp)
    assert np.array_equal(unpack_row_panels(wp, N, K), w)
    arrays = {"x": x, "wp": wp, **({"bias": b} if bias else {})}
    got = runner.run("linear_packed", {"T": T, "K": K, "N": N, "has_bias": bias}, arrays)
    check(got, *linear_reference(x, w, b if bias else None))


@pytest.mark.parametrize("inplace", [0, 1])
@pytest.mark.parametrize("T,K,N", [(1, 64, 64), (1, 172, 64), (2, 13, 31), (1, 20, 47)])
def test_linear_packed_residual(runner, T, K, N, inplace):
    rng = rng_for("linear_packed_residual", T, K, N, inplace)
    x, w, r = randn(rng, T, K), randn(rng, N, K), randn(rng, T, N)
    got = runner.run("linear_packed_residual", {"T": T, "K": K, "N": N, "inplace": inplace},
                     {"x": x, "wp": packed_by_definition(w), "r": r})
    want, mag = linear_reference(x, w, None)
    check(got, want + r.astype(np.float64), mag + np.abs(r))


@pytest.mark.parametrize("transpose_b", [0, 1])
@pytest.mark.parametrize("M,K,N", [(1, 1, 1), (3, 5, 7), (2, 9, 13), (4, 16, 8), (1, 3, 21),
                                   (5, 2, 12), (2, 17, 4)])
def test_matmul(runner, M, K, N, transpose_b):
    rng = rng_for("matmul", M, K, N, transpose_b)
    a = randn(rng, M, K)
    b = randn(rng, N, K) if transpose_b else randn(rng, K, N)
    b64 = b.astype(np.float64).T if transpose_b else b.astype(np.float64)
    want = np.zeros((M, N))
    mag = np.zeros((M, N))
    for m in range(M):
        for n in range(N):
            terms = [float(a[m, k]) * b64[k, n] for k in range(K)]
            want[m, n] = sum(terms)
            mag[m, n] = sum(abs(t) for t in terms)
    got = runner.run("matmul", {"M": M, "K": K, "N": N, "transpose_b": transpose_b},
                     {"a": a, "b": b})
    check(got, want, mag)


# ------------------------------------------------------------------------- normalisation

NORM_SHAPES = [(1, 1), (1, 7), (3, 16), (2, 33), (5, 64), (1, 288)]


@pytest.mark.parametrize("inplace", [0, 1])
@pytest.mark.parametrize("T,D", NORM_SHAPES)
def test_rms_norm(runner, T, D, inplace):
    rng = rng_for("rms", T, D, inplace)
    x, g = randn(rng, T, D, scale=3.0), randn(rng, D)
    eps = 1e-5
    x64 = x.astype(np.float64)
    want = np.empty_like(x64)
    for t in range(T):
        ms = sum(v * v for v in x64[t]) / D
        want[t] = x64[t] / math.sqrt(ms + float(F32(eps))) * g
    got = runner.run("rms_norm", {"T": T, "D": D, "eps": eps, "inplace": inplace},
                     {"x": x, "g": g})
    check(got, want)


@pytest.mark.parametrize("inplace", [0, 1])
@pytest.mark.parametrize("T,D", NORM_SHAPES)
def test_layer_norm(runner, T, D, inplace):
    rng = rng_for("ln", T, D, inplace)
    x = (randn(rng, T, D, scale=2.0) + F32(5.0)).astype(F32)
    g, b = randn(rng, D), randn(rng, D)
    eps = 1e-6
    x64 = x.astype(np.float64)
    want = np.empty_like(x64)
    mag = np.empty_like(x64)
    for t in range(T):
        mean = sum(x64[t]) / D
        var = sum((v - mean) ** 2 for v in x64[t]) / D
        normed = (x64[t] - mean) / math.sqrt(var + float(F32(eps))) * g
        want[t] = normed + b
        mag[t] = np.abs(normed) + np.abs(b)
    got = runner.run("layer_norm", {"T": T, "D": D, "eps": eps, "inplace": inplace},
                     {"x": x, "g": g, "b": b})
    check(got, want, mag)


# ------------------------------------------------------------------------- rotary embedding

ROPE_SHAPES = [(1, 1, 2, 2, 0), (3, 2, 8, 8, 0), (4, 3, 16, 8, 5), (2, 2, 10, 6, 3),
               (1, 4, 12, 12, 9), (5, 1, 7, 4, 1)]
ROPE_HD8_SHAPES = [(3, 2, 8, 8, 0), (1, 8, 8, 8, 7), (2, 4, 8, 8, 3)]


@pytest.mark.parametrize("inplace", [0, 1])
@pytest.mark.parametrize("style", [0, 1])
@pytest.mark.parametrize("kernel,T,heads,head_dim,rotary_dim,start",
                         [("rope", *s) for s in ROPE_SHAPES]
                         + [("rope_hd8", *s) for s in ROPE_HD8_SHAPES])
def test_rope(runner, kernel, T, heads, head_dim, rotary_dim, start, style, inplace):
    rng = rng_for("rope", T, heads, head_dim, rotary_dim, start, style, inplace)
    max_pos = start + T + 2
    x = randn(rng, T, heads * head_dim)
    cos, sin = rope_tables(rng, max_pos, rotary_dim)
    want, mag = rope_reference(x, cos, sin, start, heads, head_dim, rotary_dim, style)
    params = {"T": T, "heads": heads, "head_dim": head_dim, "rotary_dim": rotary_dim,
              "start": start, "style": style, "max_pos": max_pos, "inplace": inplace}
    got = runner.run(kernel, params, {"x": x, "cos": cos, "sin": sin})
    check(got, want, mag)


def rope_tables(rng, max_pos, rotary_dim):
    angles = rng.uniform(-4, 4, (max_pos, rotary_dim // 2))
    return np.cos(angles).astype(F32), np.sin(angles).astype(F32)


def rope_reference(x, cos, sin, start, heads, head_dim, rotary_dim, style):
    """The rotated rows in Python floats, and each element's magnitude |a| + |b|."""
    half = rotary_dim // 2
    want = x.astype(np.float64).copy()
    mag = np.abs(want)
    for t in range(x.shape[0]):
        for h in range(heads):
            base = h * head_dim
            for i in range(half):
                if style == 0:
                    ia, ib = base + 2 * i, base + 2 * i + 1
                else:
                    ia, ib = base + i, base + i + half
                a, b = float(x[t, ia]), float(x[t, ib])
                c, s = float(cos[start + t, i]), float(sin[start + t, i])
                want[t, ia], want[t, ib] = a * c - b * s, a * s + b * c
                mag[t, ia] = mag[t, ib] = abs(a) + abs(b)
    return want, mag


# ------------------------------------------------------------------------- embeddings

@pytest.mark.parametrize("T,D,vocab", [(1, 1, 1), (4, 7, 10), (9, 16, 5)])
def test_embedding(runner, T, D, vocab):
    rng = rng_for("emb", T, D, vocab)
    table = randn(rng, vocab, D)
    tokens = rng.integers(0, vocab, T).astype(np.int32)
    tokens[-1] = vocab - 1
    got = runner.run("embedding", {"T": T, "D": D, "vocab": vocab},
                     {"tokens": tokens, "table": table})
    want = np.stack([table[int(tok)] for tok in tokens])
    assert np.array_equal(got.reshape(T, D), want)


@pytest.mark.parametrize("T,D,vocab", [(1, 1, 1), (6, 7, 45), (40, 16, 40), (3, 64, 512),
                                       (31, 5, 31)])
def test_embedding_packed(runner, T, D, vocab):
    rng = rng_for("emb_packed", T, D, vocab)
    table = randn(rng, vocab, D)
    tokens = rng.integers(0, vocab, T).astype(np.int32)
    tokens[:2] = [vocab - 1, 0][:T]
    if T >= vocab:
        tokens[:vocab] = np.arange(vocab)  # every row, every panel
    got = runner.run("embedding_packed", {"T": T, "D": D, "vocab": vocab},
                     {"tokens": tokens, "table": packed_by_definition(table)})
    assert np.array_equal(got.reshape(T, D), table[tokens])


@pytest.mark.parametrize("T,D,start", [(1, 1, 0), (3, 5, 0), (2, 8, 6), (1, 3, 9)])
def test_position_embedding(runner, T, D, start):
    rng = rng_for("pos", T, D, start)
    max_pos = start + T
    table = randn(rng, max_pos, D)
    got = runner.run("position_embedding", {"T": T, "D": D, "start": start, "max_pos": max_pos},
                     {"table": table})
    assert np.array_equal(got.reshape(T, D), table[start:start + T])


# ------------------------------------------------------------------------- element-wise

@pytest.mark.parametrize("inplace", [0, 1, 2, 3])
@pytest.mark.parametrize("op", ["add", "mul"])
@pytest.mark.parametrize("n", [1, 3, 4, 17])
def test_add_mul(runner, op, n, inplace):
    rng = rng_for(op, n, inplace)
    a, b = randn(rng, n), randn(rng, n)
    if inplace == 3:
        b = a
    arrays = {"a": a} if inplace == 3 else {"a": a, "b": b}
    got = runner.run(op, {"n": n, "inplace": inplace}, arrays)
    want = [float(p) + float(q) if op == "add" else float(p) * float(q)
            for p, q in zip(a, b, strict=True)]
    check(got, want, np.abs(a) + np.abs(b) if op == "add" else None)


ACT_SPECIAL = np.array([0.0, -0.0, 1e-8, -1e-8, 0.5, -0.5, 3.0, -3.0, 10.0, -10.0, 20.0, -20.0,
                        -80.0, 80.0, -100.0, 100.0], dtype=F32)


def activation_input(rng, n):
    x = randn(rng, n, scale=3.0)
    k = min(n, ACT_SPECIAL.size)
    x[:k] = ACT_SPECIAL[:k]
    return x


@pytest.mark.parametrize("inplace", [0, 1])
@pytest.mark.parametrize("n", [1, 5, 40])
def test_silu(runner, n, inplace):
    x = activation_input(rng_for("silu", n, inplace), n)
    got = runner.run("silu", {"n": n, "inplace": inplace}, {"x": x})
    want = [v / (1.0 + math.exp(-v)) if v > -700 else 0.0 for v in map(float, x)]
    check(got, want, atol=1e-30)


@pytest.mark.parametrize("inplace", [0, 1, 2])
@pytest.mark.parametrize("n", [1, 5, 40, 172])
def test_silu_mul(runner, n, inplace):
    rng = rng_for("silu_mul", n, inplace)
    a, b = activation_input(rng, n), randn(rng, n, scale=2.0)
    got = runner.run("silu_mul", {"n": n, "inplace": inplace}, {"a": a, "b": b})
    want = [(u / (1.0 + math.exp(-u)) if u > -700 else 0.0) * float(w) for u, w in
            zip(map(float, a), b, strict=False)]
    check(got, want, atol=1e-30)


@pytest.mark.parametrize("n", [1, 7, 8, 19, 64])
def test_add_inplace(runner, n):
    rng = rng_for("add_inplace", n)
    y, x = randn(rng, n), randn(rng, n)
    got = runner.run("add_inplace", {"n": n}, {"y": y, "x": x})
    check(got, [float(p) + float(q) for p, q in zip(y, x, strict=False)], np.abs(y) + np.abs(x))


@pytest.mark.parametrize("inplace", [0, 1])
@pytest.mark.parametrize("tanh_approx", [0, 1])
@pytest.mark.parametrize("n", [1, 6, 40])
def test_gelu(runner, n, tanh_approx, inplace):
    x = activation_input(rng_for("gelu", n, tanh_approx, inplace), n)
    xs = [float(v) for v in x]
    if tanh_approx:
        c = math.sqrt(2.0 / math.pi)
        want = [0.5 * v * (1.0 + math.tanh(c * (v + 0.044715 * v ** 3))) for v in xs]
        mag = np.abs(x)  # 1 + tanh(.) cancels for negative x: error relative to |x|
    else:
        want = [0.5 * v * math.erfc(-v / math.sqrt(2.0)) for v in xs]
        mag = None
    got = runner.run("gelu", {"n": n, "tanh_approx": tanh_approx, "inplace": inplace},
                     {"x": x})
    check(got, want, mag, rtol=2e-5, atol=1e-30)


def test_gelu_exact_everywhere(runner):
    """Exact GELU over every region of its evaluation: the fitted tail for |x| <= 4 (checked
    densely, the fit's worst places included), erfcf beyond, the switch itself (4 and the
    floats beside it), and the far tails; relative error against float64 erfc. The bound is
    float32's: the rounding of the logit (up to about 9 at |x| = 4) and, beyond, of erfcf's
    argument move the result by up to about 3e-6 relatively."""
    four = F32(4.0)
    edges = [np.nextafter(four, F32(0)), four, np.nextafter(four, F32(9))]
    x = np.concatenate([np.linspace(-6, 6, 24001, dtype=F32), edges, [-e for e in edges],
                        np.array([-13.0, -9.5, 7.25, 1e-30, -1e-30, 2e-38], dtype=F32)])
    want = [0.5 * v * math.erfc(-v / math.sqrt(2.0)) for v in map(float, x)]
    got = runner.run("gelu", {"n": x.size, "tanh_approx": 0, "inplace": 0}, {"x": x})
    check(got, want, rtol=5e-6, atol=1e-37)


@pytest.mark.parametrize("inplace", [0, 1])
@pytest.mark.parametrize("T,N,spread", [(1, 1, 1.0), (3, 7, 1.0), (2, 33, 10.0), (4, 5, 30.0)])
def test_softmax(runner, T, N, spread, inplace):
    x = randn(rng_for("softmax", T, N, spread, inplace), T, N, scale=spread)
    want = np.empty((T, N))
    for t in range(T):
        e = [math.exp(float(v) - float(x[t].max())) for v in x[t]]
        want[t] = [v / sum(e) for v in e]
    got = runner.run("softmax", {"T": T, "N": N, "inplace": inplace}, {"x": x})
    check(got, want, atol=1e-38)


@pytest.mark.parametrize("values,want", [
    ([5.0], 0), ([1.0, 3.0, 3.0, 2.0], 1), ([-2.0, -1.0, -1.0], 1), ([0.0, 0.0], 0),
    ([1.0, 2.0, 3.0, 4.0, 9.0], 4), ([-np.inf, -5.0, np.inf, np.inf], 2)])
def test_argmax(runner, values, want):
    x = np.array(values, dtype=F32)
    got = runner.run("argmax", {"n": x.size}, {"x": x}, out_dtype=np.int32)
    assert int(got[0]) == want


def test_argmax_random(runner):
    rng = rng_for("argmax")
    for n in (2, 7, 100):
        x = np.round(randn(rng, n, scale=2.0))  # many ties
        got = runner.run("argmax", {"n": n}, {"x": x.astype(F32)}, out_dtype=np.int32)
        assert int(got[0]) == int(np.flatnonzero(x == x.max())[0])


# ------------------------------------------------------------------------- attention

def attention_reference(q, k, v, T, S, heads, kv_heads, hd, scale, visible):
    """out[i, head h] = sum_{j visible(i, j)} softmax_j(scale q.k) v_j, and the magnitude
    sum_j p_j |v_j| that bounds its rounding error."""
    group = heads // kv_heads
    qh = q.astype(np.float64).reshape(T, heads, hd)
    kh = k.astype(np.float64).reshape(-1, kv_heads, hd)
    vh = v.astype(np.float64).reshape(-1, kv_heads, hd)
    out = np.zeros((T, heads, hd))
    mag = np.zeros((T, heads, hd))
    for i in range(T):
        keys = [j for j in range(S) if visible(i, j)]
        for h in range(heads):
            g = h // group
            if not keys:
                continue
            scores = [scale * float(np.dot(qh[i, h], kh[j, g])) for j in keys]
            top = max(scores)
            e = [math.exp(s - top) for s in scores]
            p = [w / sum(e) for w in e]
            for pj, j in zip(p, keys, strict=True):
                out[i, h] += pj * vh[j, g]
                mag[i, h] += pj * np.abs(vh[j, g])
    return out.reshape(T, heads * hd), mag.reshape(T, heads * hd)


ATTENTION_CASES = [
    # T, S, heads, kv_heads, head_dim, causal, window
    (1, 1, 1, 1, 1, 0, 0),
    (4, 4, 2, 2, 8, 0, 0),
    (4, 4, 2, 2, 8, 1, 0),
    (3, 7, 4, 2, 5, 1, 0),      # GQA, causal with a key prefix, odd head_dim
    (1, 9, 6, 2, 12, 1, 0),     # decode-like T = 1
    (6, 6, 3, 1, 16, 1, 3),     # multi-query, sliding window
    (2, 10, 4, 4, 9, 1, 4),     # window with S > T
    (5, 5, 2, 1, 24, 1, 1),     # window 1: only the own position
    (3, 8, 2, 2, 4, 0, 3),      # window is ignored without causal
    (5, 13, 8, 2, 3, 0, 0),
    (4, 2, 2, 1, 4, 1, 0),      # T > S: the first rows see no key -> zeros
]


@pytest.mark.parametrize("T,S,heads,kv_heads,hd,causal,window", ATTENTION_CASES)
def test_attention(runner, T, S, heads, kv_heads, hd, causal, window):
    rng = rng_for("attn", T, S, heads, kv_heads, hd, causal, window)
    q, k, v = randn(rng, T, heads * hd), randn(rng, S, kv_heads * hd), randn(rng, S, kv_heads * hd)
    scale = 1.0 / math.sqrt(hd) * 1.5

    def visible(i, j):
        if not causal:
            return True
        last = i + (S - T)
        return j <= last and (window <= 0 or j > last - window)

    want, mag = attention_reference(q, k, v, T, S, heads, kv_heads, hd, float(F32(scale)),
                                    visible)
    params = {"T": T, "S": S, "heads": heads, "kv_heads": kv_heads, "head_dim": hd,
              "scale": scale, "causal": causal, "window": window}
    got = runner.run("attention", params, {"q": q, "k": k, "v": v})
    check(got, want, mag + 1e-7)


# ------------------------------------------------------------------------- KV cache

class CacheSim:
    """A KV cache [layers][kv_heads][capacity][head_dim] that remembers the position held
    by each slot; slots never written hold NaN."""

    def __init__(self, layers, kv_heads, capacity, head_dim, ring):
        self.shape = (layers, kv_heads, capacity, head_dim)
        self.k = np.full(self.shape, np.nan, dtype=F32)
        self.v = np.full(self.shape, np.nan, dtype=F32)
        self.held = [dict() for _ in range(layers)]  # slot -> position
        self.ring = ring

    def write(self, cache, layer, rows, pos):
        _, kv_heads, capacity, head_dim = self.shape
        for t in range(rows.shape[0]):
            slot = (pos + t) % capacity if self.ring else pos + t
            assert slot < capacity
            for h in range(kv_heads):
                cache[layer, h, slot] = rows[t, h * head_dim:(h + 1) * head_dim]


@pytest.mark.parametrize("layers,layer,kv_heads,capacity,hd,T,pos,ring", [
    (1, 0, 1, 4, 1, 1, 0, 0),
    (2, 1, 2, 8, 3, 5, 2, 0),     # linear, multi-row
    (3, 1, 2, 5, 4, 3, 3, 1),     # ring wrap-around
    (2, 0, 1, 4, 6, 9, 2, 1),     # ring, T > capacity: the last rows win
    (1, 0, 3, 6, 8, 6, 6, 1),     # ring, exactly one full turn
])
def test_kv_write(runner, layers, layer, kv_heads, capacity, hd, T, pos, ring):
    rng = rng_for("kvw", layers, layer, kv_heads, capacity, hd, T, pos, ring)
    cache = randn(rng, layers, kv_heads, capacity, hd)
    new = randn(rng, T, kv_heads * hd)
    want = cache.copy()
    sim = CacheSim(layers, kv_heads, capacity, hd, ring)
    sim.write(want, layer, new, pos)
    params = {"layers": layers, "layer": layer, "kv_heads": kv_heads, "capacity": capacity,
              "head_dim": hd, "T": T, "pos": pos, "ring": ring}
    got = runner.run("kv_write", params, {"cache": cache, "new": new})
    assert np.array_equal(got.reshape(cache.shape), want)


# layers, layer, kv_heads, capacity, T, pos, ring, K: producers of new cache rows (head_dim 8)
# writing them into the cache themselves
KV_PRODUCER_CASES = [
    (2, 1, 4, 16, 1, 5, 0, 64),   # stories260K's decode: N = 32 = 24 + 8 rows
    (1, 0, 2, 8, 3, 2, 0, 20),    # three rows at once, N = 16, K = 16 + 4
    (2, 0, 6, 5, 7, 3, 1, 17),    # ring, wraps, T > capacity: the last rows win; N = 2 x 24
    (1, 0, 5, 4, 1, 3, 1, 9),     # N = 24 + 16, K < 16 (the portable path on every core)
]


def kv_producer_case(runner, kernel, layers, layer, kv_heads, capacity, T, pos, ring, K):
    """`kernel` (linear_packed_kv or rope_hd8_kv) against numpy: the rows it produces written
    into a random cache as irt_kv_write_f32 writes them (CacheSim), every other slot kept."""
    rng = rng_for(kernel, layers, layer, kv_heads, capacity, T, pos, ring, K)
    N = kv_heads * 8
    cache = randn(rng, layers, kv_heads, capacity, 8)
    params = {"layers": layers, "layer": layer, "kv_heads": kv_heads, "capacity": capacity,
              "T": T, "pos": pos, "ring": ring}
    if kernel == "linear_packed_kv":
        x, w = randn(rng, T, K), randn(rng, N, K)
        rows, rows_mag = linear_reference(x, w)
        arrays = {"x": x, "wp": packed_by_definition(w), "cache": cache}
        params["K"] = K
    else:
        start = pos + 1
        x = randn(rng, T, N)
        cos, sin = rope_tables(rng, start + T, 8)
        rows, rows_mag = rope_reference(x, cos, sin, start, kv_heads, 8, 8, ring)
        arrays = {"x": x, "cos": cos, "sin": sin, "cache": cache}
        params.update(start=start, style=ring, max_pos=start + T)  # both styles covered
    want, mag = cache.astype(np.float64), np.abs(cache.astype(np.float64))
    sim = CacheSim(layers, kv_heads, capacity, 8, ring)
    sim.write(want, layer, rows, pos)
    sim.write(mag, layer, rows_mag, pos)
    got = runner.run(kernel, params, arrays).reshape(cache.shape)
    check(got, want, mag)


@pytest.mark.parametrize("kernel", ["linear_packed_kv", "rope_hd8_kv"])
@pytest.mark.parametrize("case", KV_PRODUCER_CASES)
def test_kv_producer(runner, kernel, case):
    kv_producer_case(runner, kernel, *case)


CACHED_CASES = [
    # layers, layer, heads, kv_heads, hd, capacity, ring, writes [(pos, T)], T of the query
    (1, 0, 2, 2, 8, 8, 0, [(0, 5)], 5),                 # linear prefill
    (2, 1, 4, 2, 8, 8, 0, [(0, 3), (3, 1)], 1),         # linear decode, GQA, layer 1
    (1, 0, 2, 1, 5, 8, 0, [(0, 8)], 3),                 # linear, full, last 3 rows
    (1, 0, 2, 2, 4, 4, 1, [(0, 3), (3, 1), (4, 1), (5, 1)], 1),  # ring decode, wrapped
    (2, 0, 6, 2, 12, 5, 1, [(0, 3), (3, 2), (5, 2)], 2),         # ring, 2 rows, wrapped
    (1, 0, 3, 3, 9, 4, 1, [(0, 6)], 4),                 # ring prefill longer than capacity
    (1, 0, 4, 1, 16, 6, 1, [(0, 4), (4, 3), (7, 3)], 3),         # MQA, rows straddle the wrap
    (1, 0, 2, 2, 3, 3, 1, [(0, 1), (1, 1), (2, 1), (3, 1), (4, 1)], 1),
    (1, 0, 1, 1, 1, 1, 1, [(0, 1), (1, 1)], 1),         # capacity 1
]


HD8_CASES = [
    # layers, layer, heads, kv_heads, hd, capacity, ring, writes [(pos, T)], T, score spread
    (1, 0, 2, 2, 8, 8, 0, [(0, 5)], 5, 1.0),                 # no sharing: single heads
    (2, 1, 8, 4, 8, 128, 0, [(0, 37)], 1, 1.0),             # stories260K's shape
    (1, 0, 6, 2, 8, 16, 0, [(0, 9), (9, 1)], 1, 1.0),       # groups of 3: a pair + a single
    (1, 0, 4, 1, 8, 6, 1, [(0, 4), (4, 3), (7, 3)], 3, 1.0),  # MQA, rows straddle the wrap
    (2, 0, 4, 2, 8, 5, 1, [(0, 3), (3, 2), (5, 2)], 2, 1.0),  # ring, 2 rows, wrapped
    (1, 0, 2, 1, 8, 1, 1, [(0, 1), (1, 1)], 1, 1.0),        # capacity 1
    (1, 0, 4, 2, 8, 12, 0, [(0, 12)], 4, 60.0),             # scores 100s apart: the clamp
    (1, 0, 8, 2, 8, 16, 0, [(0, 9), (9, 1)], 1, 1.0),       # decode, two pairs per kv head
    (1, 0, 4, 2, 8, 5, 1, [(0, 3), (3, 2), (5, 1)], 1, 1.0),  # ring decode, wrapped, pairs
]


EXP2_SOFTMAX_RTOL = 3e-6  # IRT_EXP2_SOFTMAX_RTOL in irt_internal.h


def exp2_softmax_case(runner, top: float) -> None:
    """The weights of irt_cached_attention_hd8_f32, 2^(s - round(top)), over scores from
    126.5 below the maximum to the maximum (every fraction between two integers, and the
    clamp at round(top) - 126 below), against Python's 2.0 ** x."""
    m = round(top)
    s = np.concatenate([np.linspace(top - 126.5, top, 20011), [top - 300.0, -3.0e38]])
    x = s.astype(F32)
    got = runner.run("exp2_softmax", {"n": x.size, "max": top}, {"x": x}).astype(np.float64)
    want = np.array([2.0 ** max(float(v) - m, -126.0) for v in x])
    assert np.all(got > 0)
    err = np.abs(got - want) / want
    assert err.max() <= EXP2_SOFTMAX_RTOL, (err.max(), x[int(np.argmax(err))])


@pytest.mark.parametrize("top", [0.0, 3.3, -17.75, 90.25])  # no ties: round() as C rounds
def test_exp2_softmax_error_bound(runner, top):
    exp2_softmax_case(runner, top)


@pytest.mark.parametrize("layers,layer,heads,kv_heads,hd,capacity,ring,writes,T,spread",
                         HD8_CASES)
def test_cached_attention_hd8(runner, layers, layer, heads, kv_heads, hd, capacity, ring,
                              writes, T, spread):
    test_cached_attention(runner, layers, layer, heads, kv_heads, hd, capacity, ring, writes,
                          T, kernel="cached_attention_hd8", spread=spread)


@pytest.mark.parametrize("layers,layer,heads,kv_heads,hd,capacity,ring,writes,T", CACHED_CASES)
def test_cached_attention(runner, layers, layer, heads, kv_heads, hd, capacity, ring, writes,
                          T, kernel="cached_attention", spread=1.0):
    rng = rng_for("cached", layers, layer, heads, kv_heads, hd, capacity, ring, str(writes), T)
    end = max(p + n for p, n in writes)
    kpos = randn(rng, layers, end, kv_heads * hd)  # the key/value row of every position
    vpos = randn(rng, layers, end, kv_heads * hd)
    sim = CacheSim(layers, kv_heads, capacity, hd, ring)
    params = {"layers": layers, "kv_heads": kv_heads, "capacity": capacity, "head_dim": hd,
              "ring": ring}
    # Fill the caches through the C kernel, step by step, checking it against the model.
    kcache, vcache = sim.k.copy(), sim.v.copy()
    held = {}
    for pos, n in writes:
        for lay in range(layers):
            for cache, rows in ((sim.k, kpos), (sim.v, vpos)):
                sim.write(cache, lay, rows[lay, pos:pos + n], pos)
            kcache = runner.run("kv_write", {**params, "layer": lay, "T": n, "pos": pos},
                                {"cache": kcache, "new": kpos[lay, pos:pos + n]})
            vcache = runner.run("kv_write", {**params, "layer": lay, "T": n, "pos": pos},
                                {"cache": vcache, "new": vpos[lay, pos:pos + n]})
        for t in range(n):
            held[(pos + t) % capacity if ring else pos + t] = pos + t
    np.testing.assert_array_equal(kcache.reshape(sim.shape), sim.k)
    np.testing.assert_array_equal(vcache.reshape(sim.shape), sim.v)

    # Query row i is at position end - T + i and sees every held position up to its own.
    p0 = end - T
    q = randn(rng, T, heads * hd, scale=spread)
    scale = 1.0 / math.sqrt(hd)
    positions = sorted(held.values())
    assert positions == list(range(max(0, end - capacity), end))
    k_seq = kpos[layer, positions[0]:end]  # held positions in order
    v_seq = vpos[layer, positions[0]:end]

    def visible(i, j):
        return positions[0] + j <= p0 + i

    want, mag = attention_reference(q, k_seq, v_seq, T, len(positions), heads, kv_heads, hd,
                                    float(F32(scale)), visible)
    got = runner.run(kernel,
                     {**params, "layer": layer, "heads": heads, "T": T, "end": end,
                      "scale": scale},
                     {"q": q, "kcache": kcache, "vcache": vcache})
    check(got, want, mag + 1e-7)


# ------------------------------------------------------------------------- the builds

def test_host_optimised_build(tmp_path):
    """-O2 -pedantic on the host: warnings that only show with optimisation."""
    need("cc")
    for src in runtime_sources():
        proc = subprocess.run(["gcc", "-std=c99", "-O2", "-Wall", "-Wextra", "-Werror",
                               "-pedantic", "-c", str(src), "-o", str(tmp_path / "x.o")],
                              capture_output=True, text=True)
        assert proc.returncode == 0, f"{src.name}:\n{proc.stderr}"


needs_target_cc = pytest.mark.needs("riscv")

# What the runtime may take from picolibc (everything else must be its own); qsort: the
# sampler (irt_sample.c) sorts candidates for top-p or a top-k above 64; __divdi3 and
# __udivdi3: libgcc's 64-bit divisions (irt_intops.c divides once per row).
ALLOWED_EXTERNALS = {"expf", "sqrtf", "tanhf", "erff", "erfcf", "memcpy", "memset", "memmove",
                     "qsort", "__divdi3", "__udivdi3"}


@pytest.fixture(scope="module")
def target_objects(tmp_path_factory):
    need("riscv")
    out = tmp_path_factory.mktemp("irt_rv32")
    objects = []
    for src in runtime_sources():
        obj = out / (src.stem + ".o")
        proc = subprocess.run([TARGET_CC, *TARGET_FLAGS, "-c", str(src), "-o", str(obj)],
                              capture_output=True, text=True)
        assert proc.returncode == 0, f"{src.name} for rv32imafc:\n{proc.stderr}"
        objects.append(obj)
    return objects


@needs_target_cc
def test_target_compiles(target_objects):
    names = {o.stem for o in target_objects}
    assert {"irt_linear", "irt_norm", "irt_attention", "irt_elementwise", "irt_rope"} <= names


@needs_target_cc
def test_target_externals(target_objects):
    nm = TARGET_CC.replace("gcc", "nm")
    proc = subprocess.run([nm, "-u", *map(str, target_objects)], capture_output=True,
                          text=True, check=True)
    undefined = {line.split()[-1] for line in proc.stdout.splitlines()
                 if line.strip().startswith("U ")}
    own = {s for s in undefined if s.startswith("irt_")}
    assert undefined - own <= ALLOWED_EXTERNALS, undefined - own - ALLOWED_EXTERNALS


@needs_target_cc
def test_counters_header(tmp_path):
    src = tmp_path / "counters.c"
    src.write_text('#include "irt_counters.h"\n'
                   "uint64_t instret(void) { return irt_read_minstret(); }\n"
                   "uint64_t cycles(void) { return irt_read_mcycle(); }\n")
    obj = tmp_path / "counters.o"
    proc = subprocess.run([TARGET_CC, *TARGET_FLAGS, f"-I{RUNTIME}", "-c", str(src), "-o",
                           str(obj)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    objdump = TARGET_CC.replace("gcc", "objdump")
    dis = subprocess.run([objdump, "-d", str(obj)], capture_output=True, text=True,
                         check=True).stdout
    for csr in ("minstret", "minstreth", "mcycle", "mcycleh"):
        assert re.search(rf"csrr\s+\w+,\s*{csr}\b", dis), csr
    # On the host the counters compile and read as 0.
    host = subprocess.run(["gcc", "-std=c99", "-Wall", "-Wextra", "-Werror", f"-I{RUNTIME}",
                           "-c", str(src), "-o", str(tmp_path / "host.o")],
                          capture_output=True, text=True)
    assert host.returncode == 0, host.stderr


def innermost_loop(disassembly: str, function: str, macs: int | None = None) -> list[str]:
    """The mnemonics of the innermost loop of `function` with the most fmadd.s (with `macs`:
    the longest one with that many)."""
    insns = []
    current = None
    for line in disassembly.splitlines():
        label = re.match(r"[0-9a-f]+ <([^>]+)>:", line)
        if label:
            if not label.group(1).startswith(".L"):  # local labels stay in the function
                current = label.group(1)
            continue
        m = re.match(r"\s*([0-9a-f]+):\s+(?:[0-9a-f]{4,8}\s+)?(\S+)\s*(.*)", line)
        if m and current == function:
            insns.append((int(m.group(1), 16), m.group(2), m.group(3)))
    loops = []  # (start, end) of each backward branch's body
    for end, (addr, mnem, ops) in enumerate(insns):
        target = re.search(r"\b([0-9a-f]+) <", ops)
        if mnem.startswith("b") and target and int(target.group(1), 16) < addr:
            start = next(i for i, ins in enumerate(insns) if ins[0] == int(target.group(1), 16))
            loops.append((start, end))
    best: list[str] = []
    for start, end in loops:
        if any(start <= s0 and e0 < end for s0, e0 in loops if (s0, e0) != (start, end)):
            continue  # holds another loop: not innermost
        loop = [ins[1] for ins in insns[start:end + 1]]
        if macs is not None:
            if loop.count("fmadd.s") == macs and len(loop) > len(best):
                best = loop
        elif loop.count("fmadd.s") > best.count("fmadd.s"):
            best = loop
    return best


@needs_target_cc
@pytest.mark.parametrize("source,function,macs,max_insns", [
    ("irt_linear", "irt__dot_rows_f32", 32, 80),       # 4 rows x 8 columns: ~2.44 / MAC
    ("irt_linear", "irt__weighted_rows_f32", 16, 40),  # 8 columns x 2 rows:  ~2.4 / MAC
    # 24-row panels x 16 columns (asm): 16 + 384 loads, 384 fmadd.s, 3 loop: ~2.05 / MAC
    ("irt_linear_packed", "irt__row", 384, 787),
    # the score pass for two heads, four rows: 32 loads, 56 fmadd.s + 8 fmul.s, 8 stores,
    # 8 fmax.s, 3 loop
    ("irt_attention_hd8", "irt__attend2", 56, 115),
    # the weight-and-value pass (asm) for two heads, two rows: 2 x (2 x (a score load, 12 for
    # the weight, a sum), 8 loads, 16 fmadd.s), 5 loop
    ("irt_attention_hd8", "irt__attend2", 48, 109),
])
def test_inner_loop_cost(target_objects, source, function, macs, max_insns):
    objdump = TARGET_CC.replace("gcc", "objdump")
    obj = next(o for o in target_objects if o.stem == source)
    dis = subprocess.run([objdump, "-d", "--no-show-raw-insn", str(obj)], capture_output=True,
                         text=True, check=True).stdout
    loop = innermost_loop(dis, function, macs)
    assert loop.count("fmadd.s") == macs, loop
    assert len(loop) <= max_insns, (len(loop), loop)


# ------------------------------------------------------------------------- relu (irt_relu.h)

def python_relu(x: np.ndarray) -> list[float]:
    """max(v, 0) per element in Python floats; NaN stays NaN."""
    return [v if (v > 0.0 or math.isnan(v)) else 0.0 for v in map(float, x)]


@pytest.mark.parametrize("inplace", [0, 1])
@pytest.mark.parametrize("n", [1, 5, 40, 173])
def test_relu(runner, n, inplace):
    x = activation_input(rng_for("relu", n, inplace), n)
    got = runner.run("relu", {"n": n, "inplace": inplace}, {"x": x})
    np.testing.assert_array_equal(got, np.array(python_relu(x), dtype=F32))


def test_relu_keeps_nan(runner):
    x = np.array([np.nan, -1.0, 2.0], dtype=F32)
    got = runner.run("relu", {"n": 3, "inplace": 0}, {"x": x})
    assert math.isnan(got[0]) and list(got[1:]) == [0.0, 2.0]
