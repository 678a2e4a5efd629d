"""The quantized C kernels (targets/c/runtime/irt_quant.[ch]) against numpy.

A test driver (targets/c/runtime/tests/irt_quant_test_driver.c) is built once per session
with AddressSanitizer and UBSan (buffers exactly sized, float outputs start as NaN, integer
outputs as a fill pattern).  The references here are written from the quantization contract
(irt_quant.h; irtool/numerics/quant.py is the project's numpy reference of the same
contract) independently of both: plain numpy / Python, float32 where the contract says
float32.  What the contract makes bit-exact is compared bit for bit (int8 codes, int32
accumulators, exponents, the w8a8 and w1a4 outputs, KV rows and scales); float-accumulation
kernels within a tolerance relative to the magnitude of their terms, and bit-exactly on
inputs chosen so that every float sum is exact (small integers and power-of-two scales),
which pins down the packing / unpacking interpretation.

At the end the kernels are also compared directly with irtool.numerics.quant.
"""

from __future__ import annotations

import math
import shutil
import subprocess
import tempfile
import zlib
from pathlib import Path

import numpy as np
import pytest

from tests.c_kernel_harness import (
    HOST_CC,
    HOST_FLAGS,
    RUNTIME,
    TARGET_CC,
    TARGET_FLAGS,
    compile_driver,
    have_tool,
    runtime_sources,
)
from tests.requirements import need

F32 = np.float32
DRIVER_SOURCE = RUNTIME / "tests" / "irt_quant_test_driver.c"
QUANT_SOURCE = RUNTIME / "irt_quant.c"
QUANT_HEADER = RUNTIME / "irt_quant.h"


# ------------------------------------------------------------------------- the driver

class QuantRunner:
    """Runs one kernel per call of the driver, in a fresh directory under `work`."""

    def __init__(self, exe: Path, work: Path):
        self.exe = exe
        self.work = work

    def run(self, kernel: str, params: dict, arrays: dict[str, np.ndarray],
            outputs: dict[str, type]) -> dict[str, np.ndarray]:
        d = Path(tempfile.mkdtemp(prefix=kernel + "-", dir=self.work))
        lines = []
        for key, value in params.items():
            if isinstance(value, (float, np.floating)):
                value = repr(float(np.float32(value)))  # strtof reads back the same float32
            elif isinstance(value, (bool, np.bool_)):
                value = int(value)
            lines.append(f"{key} {value}")
        (d / "params.txt").write_text("\n".join(lines) + "\n")
        for name, arr in arrays.items():
            arr = np.ascontiguousarray(arr)
            assert arr.dtype in (np.float32, np.int32, np.int8, np.uint8), (name, arr.dtype)
            arr.tofile(d / f"{name}.bin")
        proc = subprocess.run([str(self.exe), kernel, str(d)], capture_output=True, text=True)
        if proc.returncode != 0:
            raise AssertionError(f"driver failed on {kernel} {params}:\n{proc.stderr}")
        out = {name: np.fromfile(d / f"{name}.out", dtype=dtype)
               for name, dtype in outputs.items()}
        shutil.rmtree(d)
        return out


@pytest.fixture(scope="session")
def qrunner(tmp_path_factory) -> QuantRunner:
    need("cc")
    build = tmp_path_factory.mktemp("irt_quant_build")
    exe = compile_driver(HOST_CC, HOST_FLAGS, DRIVER_SOURCE, build / "irt_quant_test_driver")
    return QuantRunner(exe, tmp_path_factory.mktemp("irt_quant_runs"))


def rng_for(*key) -> np.random.Generator:
    """A generator seeded from the test's parameters (the same on every run)."""
    return np.random.default_rng(zlib.crc32(repr(("quant",) + key).encode()))


def randn(rng, *shape, scale=1.0) -> np.ndarray:
    return (rng.standard_normal(shape) * scale).astype(F32)


def assert_bits_equal(got, want):
    """Bit-for-bit equality of float32 arrays (so -0.0 != 0.0), or equality of integers."""
    got, want = np.asarray(got), np.asarray(want)
    assert got.size == want.size, (got.shape, want.shape)
    got, want = got.reshape(-1), want.reshape(-1)
    if want.dtype == np.float32:
        assert got.dtype == np.float32
        got, want = got.view(np.uint32), want.view(np.uint32)
    bad = np.flatnonzero(got != want)
    if bad.size:
        i = bad[0]
        raise AssertionError(f"{bad.size} of {got.size} elements differ; first at {i}: "
                             f"got {got[i]!r}, want {want[i]!r}")


def check_close(got, want, mag, rtol=2e-5, atol=1e-30):
    """|got - want| <= rtol * mag + atol elementwise (mag: sum of |terms| of each output)."""
    got = np.asarray(got, np.float64).reshape(-1)
    want = np.asarray(want, np.float64).reshape(-1)
    mag = np.asarray(mag, np.float64).reshape(-1)
    assert got.shape == want.shape, (got.shape, want.shape)
    assert not np.isnan(got).any(), f"NaN in output at {np.flatnonzero(np.isnan(got))[:8]}"
    err = np.abs(got - want)
    bad = err > rtol * mag + atol
    if bad.any():
        i = int(np.argmax(np.where(bad, err, -1)))
        raise AssertionError(f"{int(bad.sum())} of {got.size} elements differ; worst at {i}: "
                             f"got {got[i]!r}, want {want[i]!r} (mag {mag[i]!r})")


def ceil_div(a, b):
    return -(-a // b)


# ------------------------------------------------------------------------- references
# Written from the contract, independently of irtool.numerics.quant.

def ref_round_clip(v, lo, hi):
    """clip(round half to even(v), lo, hi) as int64, for a float32 array v."""
    v = np.asarray(v, F32)
    return np.clip(np.rint(v).astype(np.float64), lo, hi).astype(np.int64)


def ref_activation_params(lo, hi):
    """(sx, zx) of a calibrated range, per the contract (compile-time arithmetic)."""
    lo, hi = min(F32(lo), F32(0)), max(F32(hi), F32(0))
    sx = F32(F32(hi - lo) / F32(255))
    if sx == 0:
        sx = F32(1.0)
    zx = int(np.clip(np.rint(F32(F32(-128) - F32(lo) / sx)), -128, 127))
    return sx, zx


def ref_quantize_act_i8(x, sx, zx):
    q = np.rint(np.asarray(x, F32) / F32(sx)).astype(np.float64) + zx  # exact in float64
    return np.clip(q, -128, 127).astype(np.int8)


def ref_acc_i8(xq, zx, wq):
    acc = (xq.astype(np.int64) - zx) @ wq.astype(np.int64).T
    assert np.abs(acc).max(initial=0) < 2 ** 31
    return acc.astype(np.int32)


def ref_w8a8(xq, zx, wq, m, b):
    y = ref_acc_i8(xq, zx, wq).astype(F32) * m.astype(F32)  # one float32 multiply
    if b is not None:
        y = (y + b).astype(F32)  # one float32 add
    return y.astype(F32)


def ref_quantize_w8(w, per_tensor=False):
    amax = np.abs(w).max(axis=1, keepdims=True)
    if per_tensor:
        amax = np.abs(w).max().reshape(1, 1)
    s = (amax / F32(127)).astype(F32)
    s[s == 0] = 1.0
    q = ref_round_clip(w / s, -127, 127).astype(np.int8)
    return q, s.reshape(-1)


def ref_quantize_w4(w, group):
    n, k = w.shape
    q = np.zeros((n, k), np.int8)
    s = np.zeros((n, ceil_div(k, group)), F32)
    for g in range(s.shape[1]):
        sl = slice(g * group, min(k, (g + 1) * group))
        sg = (np.abs(w[:, sl]).max(axis=1) / F32(7)).astype(F32)
        sg[sg == 0] = 1.0
        s[:, g] = sg
        q[:, sl] = ref_round_clip(w[:, sl] / sg[:, None], -7, 7)
    return q, s


def ref_pack_int4(q, pad_nibble=0):
    """Byte j of a row: q[2j] in the low nibble, q[2j+1] in the high one (two's complement);
    an odd row's last high nibble is `pad_nibble` (0 per the contract)."""
    n, k = q.shape
    out = np.zeros((n, ceil_div(k, 2)), np.uint8)
    for r in range(n):
        for j in range(out.shape[1]):
            lo = int(q[r, 2 * j]) & 15
            hi = int(q[r, 2 * j + 1]) & 15 if 2 * j + 1 < k else pad_nibble
            out[r, j] = lo | (hi << 4)
    return out


def ref_pack_bits(bits, pad_bits=0):
    """Bit k of a row is bit k % 8 of byte k // 8; the padding bits are `pad_bits`."""
    n, k = bits.shape
    out = np.zeros((n, ceil_div(k, 8)), np.uint8)
    for r in range(n):
        for kk in range(k):
            out[r, kk // 8] |= np.uint8(int(bits[r, kk]) << (kk % 8))
        if k % 8:
            out[r, -1] |= np.uint8(pad_bits & (0xFF << (k % 8)) & 0xFF)
    return out


def ref_a4_exponent(m) -> int:
    """ceil(log2(float32(m / 7))) exactly; 0 when that quotient is 0."""
    r = float(F32(F32(m) / F32(7)))
    if r == 0:
        return 0
    e = math.ceil(math.log2(r))
    while 2.0 ** e < r:
        e += 1
    while 2.0 ** (e - 1) >= r:
        e -= 1
    return e


def ref_quantize_a4(x, group):
    """x [K] -> (xq int8 [K], e int32 [ceil(K/group)])."""
    k = x.shape[0]
    xq = np.zeros(k, np.int8)
    es = np.zeros(ceil_div(k, group), np.int32)
    for g in range(es.size):
        sl = slice(g * group, min(k, (g + 1) * group))
        e = ref_a4_exponent(np.abs(x[sl]).max())
        sx = F32(2.0 ** e)
        xq[sl] = ref_round_clip(x[sl] / sx, -8, 7)
        es[g] = e
    # By the choice of e the codes never need the -8 clip.
    assert np.abs(xq).max(initial=0) <= 7
    return xq, es


def ref_w1a4(x, bits, alpha, b, group):
    """The contract's y, with the float32 sum over groups in increasing order."""
    t_rows, k = x.shape
    signs = 2 * bits.astype(np.int64) - 1
    y = np.zeros((t_rows, bits.shape[0]), F32)
    for t in range(t_rows):
        xq, es = ref_quantize_a4(x[t], group)
        total = None
        for g in range(es.size):
            sl = slice(g * group, min(k, (g + 1) * group))
            acc = signs[:, sl] @ xq[sl].astype(np.int64)
            term = (acc.astype(F32) * F32(2.0 ** int(es[g]))).astype(F32)  # exact
            total = term if total is None else (total + term).astype(F32)
        if total is None:
            total = np.zeros(bits.shape[0], F32)
        y[t] = (total * alpha).astype(F32)
        if b is not None:
            y[t] = (y[t] + b).astype(F32)
    return y


def ref_kv_row(r):
    """One cached row -> (int8 codes, float32 scale)."""
    s = F32(np.abs(r).max() / F32(127))
    if s == 0:
        s = F32(1.0)
    return ref_round_clip(r / s, -127, 127).astype(np.int8), s


# ------------------------------------------------------------------------- int8 activations

def quantize_act(qrunner, x, sx, zx):
    return qrunner.run("quantize_act_i8", {"n": x.size, "scale": sx, "zero_point": zx},
                       {"x": x.reshape(-1)}, {"xq": np.int8})["xq"]


SPECIAL_X = np.array([0.0, -0.0, 0.5, -0.5, 1.5, -1.5, 2.5, -2.5, 126.5, -127.5, 127.49,
                      -128.5, 1e6, -1e6, 3e38, -3e38, np.inf, -np.inf, 1e-30, -1e-45],
                     dtype=F32)


@pytest.mark.parametrize("n,sx,zx", [
    (1, 1.0, 0), (20, 1.0, 0), (20, 1.0, -128), (20, 0.5, 17), (20, 0.031, 127),
    (57, 0.0173, -3), (300, 2.75, 64)])
def test_quantize_act_i8(qrunner, n, sx, zx):
    rng = rng_for("qi8", n, sx, zx)
    x = randn(rng, n, scale=float(F32(sx)) * 90)
    k = min(n, SPECIAL_X.size)
    with np.errstate(over="ignore"):
        x[:k] = SPECIAL_X[:k] * F32(sx)
    # exact ties of x / sx (half-integers) decide the rounding direction
    ties = ((np.round(x[k:] / F32(sx) - 0.5) + F32(0.5)) * F32(sx)).astype(F32)
    x[k:] = np.where(rng.random(n - k) < 0.3, ties, x[k:])
    got = quantize_act(qrunner, x, sx, zx)
    assert_bits_equal(got, ref_quantize_act_i8(x, sx, zx))
    if n >= 20:  # saturation both ways
        assert {-128, 127} <= set(got.tolist())


def test_quantize_act_i8_nan(qrunner):
    """Not in the contract: the kernel documents NaN -> the lowest code."""
    x = np.array([np.nan, 1.0, -np.nan], dtype=F32)
    assert got_list(quantize_act(qrunner, x, 1.0, 5)) == [-128, 6, -128]


def got_list(a):
    return [int(v) for v in a]


def test_quantize_act_i8_zero_range(qrunner):
    """A calibration range of [0, 0]: sx falls back to 1.0 and zx = -128, so x = 0 maps to
    -128 (the code of zero) and anything else to round(x) - 128."""
    sx, zx = ref_activation_params(0.0, 0.0)
    assert (sx, zx) == (F32(1.0), -128)
    x = np.array([0.0, -0.0, 0.4, 0.5, 1.5, 3.0, -1.0, 300.0], dtype=F32)
    got = quantize_act(qrunner, x, sx, zx)
    assert got_list(got) == [-128, -128, -128, -128, -126, -125, -128, 127]
    assert_bits_equal(got, ref_quantize_act_i8(x, sx, zx))


# ------------------------------------------------------------------------- w8a8

W8A8_SHAPES = [(1, 1, 1), (1, 5, 3), (3, 17, 9), (2, 64, 12), (4, 33, 5), (1, 300, 7),
               (5, 2, 4), (2, 8, 6)]


def random_i8(rng, *shape):
    return rng.integers(-128, 128, shape).astype(np.int8)


@pytest.mark.parametrize("zx", [-128, 0, 37, 127])
@pytest.mark.parametrize("T,K,N", W8A8_SHAPES)
def test_matvec_i8_acc(qrunner, T, K, N, zx):
    rng = rng_for("acc", T, K, N, zx)
    xq, wq = random_i8(rng, T, K), random_i8(rng, N, K)
    got = qrunner.run("matvec_i8_acc", {"T": T, "K": K, "N": N, "zx": zx},
                      {"xq": xq, "wq": wq}, {"acc": np.int32})["acc"]
    assert_bits_equal(got, ref_acc_i8(xq, zx, wq))


def test_matvec_i8_acc_extremes(qrunner):
    """The largest terms, (-128 - 127) * -128 = 32640, over a long row (and rows that
    alternate signs to cancel)."""
    T, K, N = 2, 4099, 6
    xq = np.full((T, K), -128, np.int8)
    xq[1, ::2] = 127
    wq = np.full((N, K), -128, np.int8)
    wq[1] = 127
    wq[2, ::3] = 127
    wq[3:] = random_i8(rng_for("acc-extremes"), 3, K)
    got = qrunner.run("matvec_i8_acc", {"T": T, "K": K, "N": N, "zx": 127},
                      {"xq": xq, "wq": wq}, {"acc": np.int32})["acc"]
    want = ref_acc_i8(xq, 127, wq)
    assert want[0, 0] == 32640 * K
    assert_bits_equal(got, want)


@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("T,K,N", W8A8_SHAPES)
def test_linear_w8a8(qrunner, T, K, N, bias):
    """Calibrated activations and per-channel weights, quantized and multiplied in C; every
    step bit-exact with the references."""
    rng = rng_for("w8a8", T, K, N, bias)
    x = randn(rng, T, K, scale=2.0)
    w = randn(rng, N, K, scale=0.2)
    if N > 1:
        w[-1] = 0.0  # an all-zero row: s = 1.0
    b = randn(rng, N) if bias else None
    lo, hi = float(x.min()) * 0.8, float(x.max()) * 0.9  # some saturation
    sx, zx = ref_activation_params(lo, hi)
    wq, s = ref_quantize_w8(w)
    m = (sx * s).astype(F32)
    xq = quantize_act(qrunner, x, sx, zx).reshape(T, K)
    assert_bits_equal(xq, ref_quantize_act_i8(x, sx, zx))
    arrays = {"xq": xq, "wq": wq, "m": m}
    if bias:
        arrays["bias"] = b
    got = qrunner.run("linear_w8a8", {"T": T, "K": K, "N": N, "zx": zx, "has_bias": bias},
                      arrays, {"y": F32})["y"]
    assert_bits_equal(got, ref_w8a8(xq, zx, wq, m, b))


def test_linear_w8a8_zero_range(qrunner):
    """Activations calibrated to [0, 0] (sx = 1.0, zx = -128): x = 0 gives xq = -128 and
    acc = 0, so y is exactly the bias; other x saturate consistently."""
    T, K, N = 2, 9, 5
    rng = rng_for("w8a8-zero")
    x = np.zeros((T, K), F32)
    x[1] = randn(rng, K, scale=100.0)
    sx, zx = ref_activation_params(0.0, 0.0)
    wq, s = ref_quantize_w8(randn(rng, N, K))
    m = (sx * s).astype(F32)
    b = randn(rng, N)
    xq = quantize_act(qrunner, x, sx, zx).reshape(T, K)
    assert (xq[0] == -128).all()
    got = qrunner.run("linear_w8a8", {"T": T, "K": K, "N": N, "zx": zx, "has_bias": 1},
                      {"xq": xq, "wq": wq, "m": m, "bias": b}, {"y": F32})["y"].reshape(T, N)
    assert_bits_equal(got[0], b)
    assert_bits_equal(got, ref_w8a8(xq, zx, wq, m, b))


# ------------------------------------------------------------------------- w8 (float x)

@pytest.mark.parametrize("per_tensor", [0, 1])
@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("T,K,N", [(1, 1, 1), (3, 7, 9), (2, 64, 12), (1, 33, 5), (4, 100, 3)])
def test_linear_w8(qrunner, T, K, N, bias, per_tensor):
    rng = rng_for("w8", T, K, N, bias, per_tensor)
    x, w, b = randn(rng, T, K), randn(rng, N, K), randn(rng, N)
    wq, s = ref_quantize_w8(w, bool(per_tensor))
    sn = np.broadcast_to(s, (N,)).astype(np.float64)
    terms = x.astype(np.float64)[:, None, :] * wq.astype(np.float64)[None, :, :]
    want = terms.sum(-1) * sn
    mag = np.abs(terms).sum(-1) * sn
    arrays = {"x": x, "wq": wq, "s": s}
    if bias:
        arrays["bias"] = b
        want, mag = want + b, mag + np.abs(b)
    got = qrunner.run("linear_w8", {"T": T, "K": K, "N": N, "per_tensor": per_tensor,
                                    "has_bias": bias}, arrays, {"y": F32})["y"]
    check_close(got, want, mag)


# ------------------------------------------------------------------------- w4 (grouped)

def ref_w4g(x, q, s, b, group):
    """float64 value and term magnitude of sum_g s[n, g] * dot_g(x, q) (+ b)."""
    t_rows, k = x.shape
    want = np.zeros((t_rows, q.shape[0]))
    mag = np.zeros_like(want)
    for g in range(s.shape[1]):
        sl = slice(g * group, min(k, (g + 1) * group))
        terms = x[:, None, sl].astype(np.float64) * q[None, :, sl].astype(np.float64)
        want += terms.sum(-1) * s[:, g]
        mag += np.abs(terms).sum(-1) * np.abs(s[:, g])
    if b is not None:
        want, mag = want + b, mag + np.abs(b)
    return want, mag


W4_CASES = [  # T, K, N, group
    (1, 1, 1, 32), (1, 2, 3, 32), (2, 7, 5, 32), (1, 31, 4, 32), (3, 32, 9, 32),
    (1, 33, 6, 32), (2, 64, 4, 32), (1, 65, 7, 32), (4, 100, 5, 32), (1, 95, 13, 32),
    (2, 40, 5, 16), (1, 9, 6, 2)]


@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("T,K,N,group", W4_CASES)
def test_linear_w4g(qrunner, T, K, N, group, bias):
    rng = rng_for("w4", T, K, N, group, bias)
    x, w, b = randn(rng, T, K), randn(rng, N, K), randn(rng, N)
    w[0, :min(K, group)] = 0.0  # an all-zero group: s = 1.0
    q, s = ref_quantize_w4(w, group)
    arrays = {"x": x, "w": ref_pack_int4(q), "scales": s}
    if bias:
        arrays["bias"] = b
    want, mag = ref_w4g(x, q, s, b if bias else None, group)
    got = qrunner.run("linear_w4g", {"T": T, "K": K, "N": N, "group": group,
                                     "has_bias": bias}, arrays, {"y": F32})["y"]
    check_close(got, want, mag)


@pytest.mark.parametrize("T,K,N,group", [(2, 37, 5, 32), (1, 64, 4, 32), (3, 9, 7, 4),
                                         (1, 1, 2, 32)])
def test_linear_w4g_exact_nibbles(qrunner, T, K, N, group):
    """Every code -8..7 (the kernel decodes the full 4-bit range), small integer activations
    and power-of-two scales: every float sum is exact, so the result must be bit-exact,
    whatever the order.  An odd row's padding nibble is set to garbage (ignored)."""
    rng = rng_for("w4x", T, K, N, group)
    x = rng.integers(-3, 4, (T, K)).astype(F32)
    q = rng.integers(-8, 8, (N, K)).astype(np.int8)
    q[0, :min(K, 16)] = np.arange(-8, 8)[:min(K, 16)]
    s = (2.0 ** rng.integers(-3, 3, (N, ceil_div(K, group)))).astype(F32)
    b = rng.integers(-5, 6, N).astype(F32)
    want, _ = ref_w4g(x, q, s, b, group)
    got = qrunner.run("linear_w4g", {"T": T, "K": K, "N": N, "group": group, "has_bias": 1},
                      {"x": x, "w": ref_pack_int4(q, pad_nibble=0xB), "scales": s, "bias": b},
                      {"y": F32})["y"]
    assert_bits_equal(got, want.astype(F32))


# ------------------------------------------------------------------------- w1 (float x)

def ref_w1(x, bits, alpha, b):
    signs = 2.0 * bits.astype(np.float64) - 1.0
    terms = x.astype(np.float64)[:, None, :] * signs[None, :, :]
    want = terms.sum(-1) * alpha
    mag = np.abs(terms).sum(-1) * np.abs(alpha)
    if b is not None:
        want, mag = want + b, mag + np.abs(b)
    return want, mag


W1_SHAPES = [(1, 1, 1), (1, 7, 3), (2, 8, 4), (3, 9, 5), (1, 15, 9), (2, 16, 7),
             (1, 33, 4), (2, 64, 6), (4, 100, 13)]


@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("T,K,N", W1_SHAPES)
def test_linear_w1(qrunner, T, K, N, bias):
    rng = rng_for("w1", T, K, N, bias)
    x, w, b = randn(rng, T, K), randn(rng, N, K), randn(rng, N)
    bits = (w >= 0).astype(np.uint8)
    alpha = np.abs(w).mean(axis=1).astype(F32)
    arrays = {"x": x, "w": ref_pack_bits(bits), "alpha": alpha}
    if bias:
        arrays["bias"] = b
    want, mag = ref_w1(x, bits, alpha, b if bias else None)
    got = qrunner.run("linear_w1", {"T": T, "K": K, "N": N, "has_bias": bias}, arrays,
                      {"y": F32})["y"]
    check_close(got, want, mag)


@pytest.mark.parametrize("T,K,N", [(2, 13, 5), (1, 8, 4), (3, 70, 9), (1, 3, 1)])
def test_linear_w1_exact_bits(qrunner, T, K, N):
    """Integer activations, power-of-two alpha: exact sums, so the bit order (LSB first) is
    checked bit-exactly; the padding bits of the last byte are set (ignored)."""
    rng = rng_for("w1x", T, K, N)
    x = rng.integers(-4, 5, (T, K)).astype(F32)
    bits = rng.integers(0, 2, (N, K)).astype(np.uint8)
    alpha = (2.0 ** rng.integers(-2, 3, N)).astype(F32)
    b = rng.integers(-3, 4, N).astype(F32)
    want, _ = ref_w1(x, bits, alpha, b)
    got = qrunner.run("linear_w1", {"T": T, "K": K, "N": N, "has_bias": 1},
                      {"x": x, "w": ref_pack_bits(bits, pad_bits=0xFF), "alpha": alpha,
                       "bias": b}, {"y": F32})["y"]
    assert_bits_equal(got, want.astype(F32))


# ------------------------------------------------------------------------- a4 and w1a4

def a4_input(rng, T, K, group):
    """Rows with groups of very different magnitudes, exact exponent boundaries, ties and
    an all-zero group."""
    x = randn(rng, T, K) * (10.0 ** rng.uniform(-3, 3, (T, 1))).astype(F32)
    x = x.astype(F32)
    ng = ceil_div(K, group)
    for t in range(T):
        for g in range(ng):
            sl = slice(g * group, min(K, (g + 1) * group))
            n = sl.stop - sl.start
            kind = (t + g) % 6
            e = int(rng.integers(-10, 10))
            if kind == 1:  # max exactly 7 * 2^e: exponent e, no rounding of m / 7
                x[t, sl.start] = F32(7.0 * 2.0 ** e)
                x[t, sl] = np.clip(x[t, sl], -F32(7.0 * 2.0 ** e), F32(7.0 * 2.0 ** e))
            elif kind == 2:  # just above 7 * 2^e: exponent e + 1
                top = np.nextafter(F32(7.0 * 2.0 ** e), F32(np.inf))
                x[t, sl] = (x[t, sl] / np.abs(x[t, sl]).max() * F32(6.0 * 2.0 ** e)).astype(F32)
                x[t, sl.start] = -top
            elif kind == 3:  # ties: half-integers times 2^e under a max of 7 * 2^e
                x[t, sl] = ((rng.integers(-7, 7, n) + 0.5) * 2.0 ** e).astype(F32)
                x[t, sl.start] = F32(7.0 * 2.0 ** e)
            elif kind == 4 and n > 1:
                x[t, sl] = 0.0  # m = 0: exponent 0, codes 0
            elif kind == 5:  # just below a boundary
                x[t, sl.start] = np.nextafter(F32(7.0 * 2.0 ** e), F32(0))
    return x


@pytest.mark.parametrize("T,K,group", [(1, 1, 32), (2, 5, 32), (3, 31, 32), (2, 32, 32),
                                       (3, 33, 32), (2, 70, 32), (4, 96, 32), (2, 40, 8),
                                       (1, 23, 5), (2, 300, 128)])
def test_quantize_act_a4(qrunner, T, K, group):
    rng = rng_for("a4", T, K, group)
    x = a4_input(rng, T, K, group)
    out = qrunner.run("quantize_act_a4", {"T": T, "K": K, "group": group}, {"x": x},
                      {"xq": np.int8, "exponents": np.int32})
    want = [ref_quantize_a4(x[t], group) for t in range(T)]
    assert_bits_equal(out["exponents"], np.concatenate([e for _, e in want]))
    assert_bits_equal(out["xq"], np.concatenate([q for q, _ in want]))


def test_quantize_act_a4_exponent_edges(qrunner):
    """Exponents at the ends of the float range: m / 7 subnormal (exact ceil(log2) of the
    subnormal quotient), m / 7 underflowing to 0 (exponent 0), huge m."""
    tiny = np.float32(2.0 ** -149)
    groups = [
        [tiny],                                   # m / 7 rounds to 0 -> e = 0, code 0
        [F32(4 * tiny)],                          # m / 7 = 2^-149 (rounded): e = -149
        [F32(7.0 * 2.0 ** -140), F32(-3.0 * 2.0 ** -140)],
        [F32(1e-38), F32(-2e-39)],                # subnormal quotient
        [F32(7.0 * 2.0 ** -126)],                 # the smallest normal quotient
        [F32(3e38), F32(-1e38)],                  # e = 126
        [np.finfo(F32).max],
        [F32(7.0), F32(3.5), F32(-0.5)],          # e = 0 with ties
        [np.nextafter(F32(7.0), F32(8.0))],       # e = 1
        [np.nextafter(F32(7.0), F32(0.0))],       # e = 0
        [F32(1.0)],                               # e = -2 (4 <= 7 < 8)
    ]
    group = 3
    x = np.zeros(len(groups) * group, F32)
    for g, vals in enumerate(groups):
        x[g * group:g * group + len(vals)] = vals
    out = qrunner.run("quantize_act_a4", {"T": 1, "K": x.size, "group": group}, {"x": x},
                      {"xq": np.int8, "exponents": np.int32})
    xq, es = ref_quantize_a4(x, group)
    assert_bits_equal(out["exponents"], es)
    assert_bits_equal(out["xq"], xq)
    assert es[0] == 0 and es[1] == -149 and es[5] == 126 and es[-1] == -2
    assert list(xq[21:24]) == [7, 4, 0]  # 3.5 -> 4 and -0.5 -> 0: ties to even


W1A4_CASES = [  # T, K, N, group
    (1, 1, 1, 32), (2, 7, 3, 32), (1, 8, 4, 32), (3, 31, 5, 32), (2, 32, 9, 32),
    (1, 33, 4, 32), (2, 64, 6, 32), (3, 100, 13, 32), (1, 200, 7, 32), (2, 72, 5, 8),
    (2, 300, 6, 128), (1, 129, 3, 128)]


@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("T,K,N,group", W1A4_CASES)
def test_linear_w1a4(qrunner, T, K, N, group, bias):
    rng = rng_for("w1a4", T, K, N, group, bias)
    x = a4_input(rng, T, K, group)
    w, b = randn(rng, N, K), randn(rng, N)
    bits = (w >= 0).astype(np.uint8)
    alpha = np.abs(w).mean(axis=1).astype(F32)
    arrays = {"x": x, "w": ref_pack_bits(bits, pad_bits=0xA5), "alpha": alpha}
    if bias:
        arrays["bias"] = b
    got = qrunner.run("linear_w1a4", {"T": T, "K": K, "N": N, "group": group,
                                      "has_bias": bias}, arrays, {"y": F32})["y"]
    assert_bits_equal(got, ref_w1a4(x, bits, alpha, b if bias else None, group))


def test_linear_w1a4_full_lanes(qrunner):
    """Every code at +-7 with all bits equal, over the longest group (128: 4 lane flushes)
    and many groups: the largest accumulators."""
    T, K, N, group = 2, 512, 4, 128
    x = np.full((T, K), 7.0, F32)
    x[1] = -7.0
    x[1, ::5] = 7.0
    bits = np.zeros((N, K), np.uint8)
    bits[1] = 1
    bits[2, ::2] = 1
    bits[3] = rng_for("lanes").integers(0, 2, K)
    alpha = np.array([1.0, 0.5, 2.0, 0.25], F32)
    got = qrunner.run("linear_w1a4", {"T": T, "K": K, "N": N, "group": group, "has_bias": 0},
                      {"x": x, "w": ref_pack_bits(bits), "alpha": alpha}, {"y": F32})["y"]
    want = ref_w1a4(x, bits, alpha, None, group)
    assert want[0, 0] == -7 * K and want[0, 1] == 7 * K * 0.5
    assert_bits_equal(got, want)


# ------------------------------------------------------------------------- int8 KV cache

class CacheSimI8:
    """int8 caches [layers][kv_heads][capacity][head_dim] plus scales, with the contract's
    writes (slot = pos + t, or (pos + t) % capacity for a ring)."""

    def __init__(self, rng, layers, kv_heads, capacity, head_dim, ring):
        self.shape = (layers, kv_heads, capacity, head_dim)
        self.ring = ring
        # Unwritten slots hold garbage that must stay untouched.
        self.k = random_i8(rng, *self.shape)
        self.v = random_i8(rng, *self.shape)
        self.ks = rng.uniform(0.5, 2.0, self.shape[:3]).astype(F32)
        self.vs = rng.uniform(0.5, 2.0, self.shape[:3]).astype(F32)

    def write(self, cache, scales, layer, rows, pos):
        _, kv_heads, capacity, head_dim = self.shape
        for t in range(rows.shape[0]):
            slot = (pos + t) % capacity if self.ring else pos + t
            assert slot < capacity
            for h in range(kv_heads):
                q, s = ref_kv_row(rows[t, h * head_dim:(h + 1) * head_dim])
                cache[layer, h, slot] = q
                scales[layer, h, slot] = s


def kv_write(qrunner, sim, cache, scales, layer, rows, pos):
    layers, kv_heads, capacity, head_dim = sim.shape
    out = qrunner.run("kv_write_i8", {"layers": layers, "layer": layer, "kv_heads": kv_heads,
                                      "capacity": capacity, "head_dim": head_dim,
                                      "T": rows.shape[0], "pos": pos, "ring": sim.ring},
                      {"cache": cache, "scales": scales, "new": rows},
                      {"cache": np.int8, "scales": F32})
    return out["cache"].reshape(sim.shape), out["scales"].reshape(sim.shape[:3])


@pytest.mark.parametrize("layers,layer,kv_heads,capacity,hd,T,pos,ring", [
    (1, 0, 1, 4, 1, 1, 0, 0),
    (2, 1, 2, 8, 3, 5, 2, 0),     # linear, multi-row
    (3, 1, 2, 5, 4, 3, 3, 1),     # ring wrap-around
    (2, 0, 1, 4, 6, 9, 2, 1),     # ring, T > capacity: the last rows win
    (1, 0, 3, 6, 8, 6, 6, 1),     # ring, exactly one full turn
    (1, 0, 2, 8, 64, 2, 1, 0),
])
def test_kv_write_i8(qrunner, layers, layer, kv_heads, capacity, hd, T, pos, ring):
    rng = rng_for("kvw8", layers, layer, kv_heads, capacity, hd, T, pos, ring)
    sim = CacheSimI8(rng, layers, kv_heads, capacity, hd, ring)
    new = randn(rng, T, kv_heads * hd, scale=3.0)
    new[0, :hd] = 0.0  # an all-zero row: scale 1.0, codes 0
    if T > 1:
        new[1, :] *= F32(1e30)  # huge rows still code to +-127 at the max
        if hd > 1:
            new[1, 1] = F32(0.5) * np.abs(new[1, :hd]).max()  # a tie-ish value
    want_c, want_s = sim.k.copy(), sim.ks.copy()
    sim.write(want_c, want_s, layer, new, pos)
    got_c, got_s = kv_write(qrunner, sim, sim.k, sim.ks, layer, new, pos)
    assert_bits_equal(got_c, want_c)
    assert_bits_equal(got_s, want_s)


def attention_reference(q, k, v, heads, kv_heads, hd, scale, first_visible):
    """float64 causal attention of q [T] over k, v [S] (float32 rows, already
    dequantized); query i sees keys 0 .. first_visible + i.  Returns (out, mag)."""
    T, S = q.shape[0], k.shape[0]
    group = heads // kv_heads
    qh = q.astype(np.float64).reshape(T, heads, hd)
    kh = k.astype(np.float64).reshape(S, kv_heads, hd)
    vh = v.astype(np.float64).reshape(S, kv_heads, hd)
    out = np.zeros((T, heads, hd))
    mag = np.zeros((T, heads, hd))
    for i in range(T):
        n = first_visible + i + 1
        for h in range(heads):
            g = h // group
            scores = scale * (kh[:n, g] @ qh[i, h])
            p = np.exp(scores - scores.max())
            p /= p.sum()
            out[i, h] = p @ vh[:n, g]
            mag[i, h] = p @ np.abs(vh[:n, g])
    return out.reshape(T, -1), mag.reshape(T, -1)


CACHED_CASES = [
    # layers, layer, heads, kv_heads, hd, capacity, ring, writes [(pos, T)], T of the query
    (1, 0, 2, 2, 8, 8, 0, [(0, 5)], 5),                 # linear prefill
    (2, 1, 4, 2, 8, 8, 0, [(0, 3), (3, 1)], 1),         # linear decode, GQA, layer 1
    (1, 0, 2, 1, 5, 8, 0, [(0, 8)], 3),                 # linear, full, last 3 rows
    (1, 0, 2, 2, 4, 4, 1, [(0, 3), (3, 1), (4, 1), (5, 1)], 1),  # ring decode, wrapped
    (2, 0, 6, 2, 12, 5, 1, [(0, 3), (3, 2), (5, 2)], 2),         # ring, 2 rows, wrapped
    (1, 0, 3, 3, 9, 4, 1, [(0, 6)], 4),                 # ring prefill longer than capacity
    (1, 0, 4, 1, 16, 6, 1, [(0, 4), (4, 3), (7, 3)], 3),         # MQA, rows straddle the wrap
    (1, 0, 1, 1, 1, 1, 1, [(0, 1), (1, 1)], 1),         # capacity 1
]


@pytest.mark.parametrize("layers,layer,heads,kv_heads,hd,capacity,ring,writes,T", CACHED_CASES)
def test_cached_attention_i8(qrunner, layers, layer, heads, kv_heads, hd, capacity, ring,
                             writes, T):
    rng = rng_for("cached8", layers, layer, heads, kv_heads, hd, capacity, ring, str(writes), T)
    end = max(p + n for p, n in writes)
    kpos = randn(rng, layers, end, kv_heads * hd)  # the key/value row of every position
    vpos = randn(rng, layers, end, kv_heads * hd)
    sim = CacheSimI8(rng, layers, kv_heads, capacity, hd, ring)
    kc, ks, vc, vs = sim.k.copy(), sim.ks.copy(), sim.v.copy(), sim.vs.copy()
    want = [sim.k.copy(), sim.ks.copy(), sim.v.copy(), sim.vs.copy()]
    for pos, n in writes:  # only the layer under test: the others are covered above
        sim.write(want[0], want[1], layer, kpos[layer, pos:pos + n], pos)
        sim.write(want[2], want[3], layer, vpos[layer, pos:pos + n], pos)
        kc, ks = kv_write(qrunner, sim, kc, ks, layer, kpos[layer, pos:pos + n], pos)
        vc, vs = kv_write(qrunner, sim, vc, vs, layer, vpos[layer, pos:pos + n], pos)
    for got, w in zip((kc, ks, vc, vs), want, strict=True):
        assert_bits_equal(got, w)

    # The held positions first .. end-1 in order, dequantized as float32(q) * s.
    first = max(0, end - capacity)
    slots = [(p % capacity) if ring else p for p in range(first, end)]

    def dequant(cache, scales):
        rows = cache[layer][:, slots].astype(F32) * scales[layer][:, slots][..., None]
        return rows.astype(F32).transpose(1, 0, 2).reshape(len(slots), kv_heads * hd)

    q = randn(rng, T, heads * hd)
    scale = F32(1.0 / math.sqrt(hd))
    want_out, mag = attention_reference(q, dequant(kc, ks), dequant(vc, vs), heads, kv_heads,
                                        hd, float(scale), end - T - first)
    got = qrunner.run("cached_attention_i8",
                      {"layers": layers, "layer": layer, "heads": heads, "kv_heads": kv_heads,
                       "head_dim": hd, "capacity": capacity, "T": T, "end": end, "ring": ring,
                       "scale": scale},
                      {"q": q, "kcache": kc, "kscales": ks, "vcache": vc, "vscales": vs},
                      {"out": F32})["out"]
    check_close(got, want_out, mag + 1e-7)


# ------------------------------------------------------------------------- the builds

def test_host_pedantic_build(tmp_path):
    """-O2 -pedantic on the host, and the header alone in C99 and C++."""
    need("cc")
    proc = subprocess.run([HOST_CC, "-std=c99", "-O2", "-Wall", "-Wextra", "-Werror",
                           "-pedantic", "-c", str(QUANT_SOURCE), "-o", str(tmp_path / "q.o")],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    src = tmp_path / "inc.c"
    src.write_text('#include "irt_quant.h"\nint irt_quant_header_ok;\n')
    for cc, std in ((HOST_CC, "-std=c99"), ("g++", "-std=c++11")):
        if not have_tool(cc):
            continue
        lang = ["-x", "c++"] if cc == "g++" else []
        proc = subprocess.run([cc, *lang, std, "-Wall", "-Wextra", "-Werror", "-pedantic",
                               f"-I{RUNTIME}", "-c", str(src), "-o", str(tmp_path / "i.o")],
                              capture_output=True, text=True)
        assert proc.returncode == 0, f"{cc}:\n{proc.stderr}"


# What the quantized kernels may take from picolibc: no libm at all (the rounding is
# their own), only what GCC may emit for block moves.
QUANT_EXTERNALS = {"memcpy", "memset", "memmove"}


@pytest.mark.needs("riscv")
def test_target_build(tmp_path):
    obj = tmp_path / "irt_quant.o"
    proc = subprocess.run([TARGET_CC, *TARGET_FLAGS, "-c", str(QUANT_SOURCE), "-o", str(obj)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, f"irt_quant.c for rv32imafc:\n{proc.stderr}"
    nm = TARGET_CC.replace("gcc", "nm")
    out = subprocess.run([nm, "-u", str(obj)], capture_output=True, text=True,
                         check=True).stdout
    undefined = {line.split()[-1] for line in out.splitlines() if line.strip()}
    foreign = {s for s in undefined if not s.startswith("irt_")} - QUANT_EXTERNALS
    assert not foreign, foreign
    objdump = TARGET_CC.replace("gcc", "objdump")
    dis = subprocess.run([objdump, "-d", str(obj)], capture_output=True, text=True,
                         check=True).stdout
    # the rounding is one fcvt.w.s with a static round-to-nearest-even
    assert "fcvt.w.s" in dis and ",rne" in dis.replace(", ", ",")


# ------------------------------------------------------------------------- on the target
# The host build rounds with the 1.5 * 2^23 trick; rv32imafc uses fcvt.w.s with a static
# round-to-nearest-even and fuses multiply-adds: run the bit-exact kernels there too (bare
# metal on qemu, semihosting), on inputs and expected outputs embedded in a generated C file.

QEMU = "qemu-system-riscv32"
QEMU_LINK = ["--oslib=semihost", "--crt0=semihost", "-Tpicolibc.ld",
             "-Wl,--defsym=__flash=0x80000000,--defsym=__flash_size=0x200000,"
             "--defsym=__ram=0x80200000,--defsym=__ram_size=0x200000,"
             "--defsym=__stack_size=0x10000"]
C_TYPES = {np.dtype(np.float32): "float", np.dtype(np.int8): "int8_t",
           np.dtype(np.uint8): "uint8_t", np.dtype(np.int32): "int32_t"}


def c_literal(v, dtype) -> str:
    if dtype != np.float32:
        return str(int(v))
    v = float(v)
    if math.isnan(v):
        return "NAN"
    if math.isinf(v):
        return "INFINITY" if v > 0 else "-INFINITY"
    return f"{v.hex()}f"


class TargetProgram:
    """A self-checking C program: arrays, kernel calls and comparisons."""

    def __init__(self):
        self.decls: list[str] = []
        self.body: list[str] = []
        self.count = 0

    def array(self, arr, const=True, ctype=None) -> str:
        arr = np.ascontiguousarray(arr).reshape(-1)
        name = f"a{self.count}"
        self.count += 1
        values = ", ".join(c_literal(v, arr.dtype) for v in arr) or "0"
        qual = "static const" if const else "static"
        self.decls.append(f"{qual} {ctype or C_TYPES[arr.dtype]} {name}[{max(arr.size, 1)}] = "
                          f"{{{values}}};")
        return name

    def output(self, like, ctype=None) -> str:
        like = np.asarray(like)
        return self.array(np.zeros(like.size, like.dtype), const=False, ctype=ctype)

    def call(self, code: str):
        self.body.append(code + ";")

    def expect(self, label: str, got: str, want, mag=None, rtol=2e-5):
        want = np.asarray(want).reshape(-1)
        w = self.array(want)
        if mag is None:
            self.body.append(f'check_bits("{label}", {got}, {w}, sizeof {w}[0], {want.size});')
        else:
            m = self.array(np.asarray(mag, F32).reshape(-1) * F32(rtol) + F32(1e-30))
            self.body.append(f'check_close("{label}", {got}, {w}, {m}, {want.size});')

    def source(self) -> str:
        return "\n".join([
            '#include "irt_quant.h"', "#include <math.h>", "#include <stdio.h>",
            "#include <string.h>", "static int bad;",
            "static void check_bits(const char *label, const void *got, const void *want,"
            " size_t size, int n) {",
            "    int i;",
            "    for (i = 0; i < n; ++i)",
            "        if (memcmp((const char *)got + i * size, (const char *)want + i * size,"
            " size) != 0) {",
            '            printf("FAIL %s at %d\\n", label, i); ++bad; return; }',
            "}",
            "static void check_close(const char *label, const float *got, const float *want,"
            " const float *tol, int n) {",
            "    int i;",
            "    for (i = 0; i < n; ++i)",
            "        if (!(fabsf(got[i] - want[i]) <= tol[i])) {",
            '            printf("FAIL %s at %d\\n", label, i); ++bad; return; }',
            "}",
            *self.decls,
            "int main(void) {",
            *("    " + line for line in self.body),
            '    printf("checked, %d failures\\n", bad);',
            "    return bad != 0;",
            "}", ""])


def build_target_program(rng) -> TargetProgram:
    prog = TargetProgram()
    # int8 activations: ties, saturation, inf, NaN
    for sx, zx in ((1.0, 0), (0.5, -7), (0.0173, 127), (1.0, -128)):
        x = np.concatenate([SPECIAL_X * F32(sx),
                            (np.arange(-300, 300, dtype=F32) * F32(0.25) * F32(sx)),
                            randn(rng, 64, scale=100 * sx)]).astype(F32)
        xq = prog.output(np.zeros(x.size, np.int8))
        prog.call(f"irt_quantize_act_i8({prog.array(x)}, {xq}, {x.size}, "
                  f"{c_literal(F32(sx), np.float32)}, {zx})")
        prog.expect(f"quantize_act_i8 sx={sx} zx={zx}", xq, ref_quantize_act_i8(x, sx, zx))
    x = np.array([np.nan], F32)
    xq = prog.output(np.zeros(1, np.int8))
    prog.call(f"irt_quantize_act_i8({prog.array(x)}, {xq}, 1, 1.0f, 3)")
    prog.expect("quantize_act_i8 NaN", xq, np.array([-128], np.int8))

    # w8a8: accumulators and outputs
    T, K, N = 3, 37, 6
    xf, w, b = randn(rng, T, K, scale=2.0), randn(rng, N, K), randn(rng, N)
    sx, zx = ref_activation_params(float(xf.min()) * 0.8, float(xf.max()) * 0.9)
    xqv = ref_quantize_act_i8(xf, sx, zx)
    wq, s = ref_quantize_w8(w)
    m = (sx * s).astype(F32)
    acc = prog.output(np.zeros(T * N, np.int32))
    y = prog.output(np.zeros(T * N, F32))
    xa, wa = prog.array(xqv), prog.array(wq)
    prog.call(f"irt_matvec_i8_acc({xa}, {zx}, {wa}, {acc}, {T}, {K}, {N})")
    prog.expect("matvec_i8_acc", acc, ref_acc_i8(xqv, zx, wq))
    prog.call(f"irt_linear_w8a8({xa}, {zx}, {wa}, {prog.array(m)}, {prog.array(b)}, {y}, "
              f"{T}, {K}, {N})")
    prog.expect("linear_w8a8", y, ref_w8a8(xqv, zx, wq, m, b))

    # 4-bit activations and w1a4
    for T, K, group in ((3, 100, 32), (2, 300, 128)):
        x = a4_input(rng, T, K, group)
        ng = ceil_div(K, group)
        xa = prog.array(x)
        for t in range(T):
            xq = prog.output(np.zeros(K, np.int8))
            ex = prog.output(np.zeros(ng, np.int32), ctype="int")  # 32 bits on rv32
            prog.call(f"irt_quantize_act_a4({xa} + {t * K}, {xq}, {ex}, {K}, {group})")
            want_q, want_e = ref_quantize_a4(x[t], group)
            prog.expect(f"quantize_act_a4 {K}/{group} row {t} xq", xq, want_q)
            prog.expect(f"quantize_act_a4 {K}/{group} row {t} e", ex, want_e)
        N = 5
        bits = rng.integers(0, 2, (N, K)).astype(np.uint8)
        alpha, b = np.abs(randn(rng, N)), randn(rng, N)
        y = prog.output(np.zeros(T * N, F32))
        prog.call(f"irt_linear_w1a4({xa}, {prog.array(ref_pack_bits(bits))}, "
                  f"{prog.array(alpha)}, {prog.array(b)}, {y}, {T}, {K}, {N}, {group})")
        prog.expect(f"linear_w1a4 {K}/{group}", y, ref_w1a4(x, bits, alpha, b, group))

    # exact-sum inputs for the float kernels (fused multiply-adds on the target)
    T, K, N = 2, 37, 5
    x = rng.integers(-3, 4, (T, K)).astype(F32)
    q = rng.integers(-8, 8, (N, K)).astype(np.int8)
    s4 = (2.0 ** rng.integers(-3, 3, (N, ceil_div(K, 32)))).astype(F32)
    b = rng.integers(-5, 6, N).astype(F32)
    y = prog.output(np.zeros(T * N, F32))
    prog.call(f"irt_linear_w4g({prog.array(x)}, {prog.array(ref_pack_int4(q, 0xB))}, "
              f"{prog.array(s4)}, {prog.array(b)}, {y}, {T}, {K}, {N}, 32)")
    prog.expect("linear_w4g exact", y, ref_w4g(x, q, s4, b, 32)[0].astype(F32))
    bits = rng.integers(0, 2, (N, K)).astype(np.uint8)
    alpha = (2.0 ** rng.integers(-2, 3, N)).astype(F32)
    y = prog.output(np.zeros(T * N, F32))
    prog.call(f"irt_linear_w1({prog.array(x)}, {prog.array(ref_pack_bits(bits, 0xFF))}, "
              f"{prog.array(alpha)}, {prog.array(b)}, {y}, {T}, {K}, {N})")
    prog.expect("linear_w1 exact", y, ref_w1(x, bits, alpha, b)[0].astype(F32))
    y = prog.output(np.zeros(T * N, F32))
    prog.call(f"irt_linear_w8({prog.array(x)}, {prog.array(q)}, {prog.array(alpha)}, "
              f"{prog.array(b)}, {y}, {T}, {K}, {N}, 0)")
    want = (x.astype(np.float64) @ q.T.astype(np.float64)) * alpha + b
    prog.expect("linear_w8 exact", y, want.astype(F32))

    # int8 KV cache: a ring that wraps, then attention over it
    layers, layer, kv_heads, heads, capacity, hd, ring = 2, 1, 2, 4, 5, 8, 1
    sim = CacheSimI8(rng, layers, kv_heads, capacity, hd, ring)
    caches = [sim.k.copy(), sim.ks.copy(), sim.v.copy(), sim.vs.copy()]
    names = [prog.array(c, const=False) for c in caches]
    end = 0
    for pos, n in ((0, 3), (3, 2), (5, 2)):
        for (ci, si) in ((0, 1), (2, 3)):
            rows = randn(rng, n, kv_heads * hd, scale=2.0)
            rows[0, :hd] = 0.0
            sim.write(caches[ci], caches[si], layer, rows, pos)
            prog.call(f"irt_kv_write_i8({names[ci]}, {names[si]}, {prog.array(rows)}, {layer}, "
                      f"{kv_heads}, {capacity}, {hd}, {n}, {pos}, {ring})")
        end = pos + n
    labels = ("kcache", "kscales", "vcache", "vscales")
    for label, name, want in zip(labels, names, caches, strict=True):
        prog.expect(f"kv_write_i8 {label}", name, want)
    T = 2
    first = max(0, end - capacity)
    slots = [p % capacity for p in range(first, end)]

    def dequant(cache, scales):
        r = cache[layer][:, slots].astype(F32) * scales[layer][:, slots][..., None]
        return r.astype(F32).transpose(1, 0, 2).reshape(len(slots), kv_heads * hd)

    qv = randn(rng, T, heads * hd)
    scale = F32(1.0 / math.sqrt(hd))
    want, mag = attention_reference(qv, dequant(caches[0], caches[1]),
                                    dequant(caches[2], caches[3]), heads, kv_heads, hd,
                                    float(scale), end - T - first)
    out = prog.output(np.zeros(T * heads * hd, F32))
    scratch = prog.output(np.zeros(capacity, F32))
    prog.call(f"irt_cached_attention_i8({prog.array(qv)}, {names[0]}, {names[1]}, {names[2]}, "
              f"{names[3]}, {out}, {scratch}, {layer}, {heads}, {kv_heads}, {hd}, {capacity}, "
              f"{T}, {end}, {ring}, {c_literal(scale, np.float32)})")
    prog.expect("cached_attention_i8", out, want.astype(F32), mag=mag + 1e-7, rtol=5e-5)
    return prog


@pytest.mark.needs("riscv", "qemu")
def test_bit_exact_on_rv32_qemu(tmp_path):
    prog = build_target_program(rng_for("qemu"))
    src = tmp_path / "quant_check.c"
    src.write_text(prog.source())
    elf = tmp_path / "quant_check.elf"
    sources = [src, QUANT_SOURCE, *(p for p in runtime_sources() if p != QUANT_SOURCE)]
    proc = subprocess.run([TARGET_CC, *TARGET_FLAGS, f"-I{RUNTIME}", *map(str, sources),
                           *QEMU_LINK, "-o", str(elf), "-lm"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    run = subprocess.run([QEMU, "-M", "virt", "-nographic", "-bios", "none",
                          "-semihosting-config", "enable=on,target=native", "-kernel", str(elf)],
                         capture_output=True, text=True, timeout=60)
    output = run.stdout + run.stderr
    assert "checked, 0 failures" in output and run.returncode == 0, output[-3000:]


# ------------------------------------------------------------------------- vs quant.py

def quant_reference():
    """The quantization contract's numpy reference, irtool.numerics.quant: a renamed or
    missing function fails the tests below (AttributeError), it never skips them."""
    import irtool.numerics.quant as qref

    return qref


@pytest.mark.parametrize("T,K,N", [(1, 33, 5), (3, 64, 12), (2, 7, 4)])
def test_w8a8_matches_interpreter(qrunner, T, K, N):
    qref = quant_reference()
    rng = rng_for("ref-w8a8", T, K, N)
    x, w, b = randn(rng, T, K, scale=2.0), randn(rng, N, K, scale=0.3), randn(rng, N)
    sx, zx = qref.activation_params(float(x.min()) * 0.7, float(x.max()) * 0.8)
    assert (F32(sx), int(zx)) == ref_activation_params(float(x.min()) * 0.7,
                                                       float(x.max()) * 0.8)
    xq = quantize_act(qrunner, x, F32(sx), int(zx)).reshape(T, K)
    assert_bits_equal(xq, np.asarray(qref.quantize_activations(x, sx, zx), np.int8))
    wq, s = qref.quantize_weights_w8(w)
    wq = np.asarray(wq, np.int8)
    m = (F32(sx) * np.asarray(s, F32)).astype(F32)
    acc = qrunner.run("matvec_i8_acc", {"T": T, "K": K, "N": N, "zx": int(zx)},
                      {"xq": xq, "wq": wq}, {"acc": np.int32})["acc"]
    assert_bits_equal(acc, np.asarray(qref.w8a8_accumulate(xq, zx, wq), np.int32))
    y = qrunner.run("linear_w8a8", {"T": T, "K": K, "N": N, "zx": int(zx), "has_bias": 1},
                    {"xq": xq, "wq": wq, "m": m, "bias": b}, {"y": F32})["y"]
    assert_bits_equal(y, np.asarray(qref.w8a8_linear(xq, zx, wq, m, b), F32))


@pytest.mark.parametrize("T,K,N", [(2, 37, 5), (1, 64, 9)])
def test_weight_only_match_interpreter(qrunner, T, K, N):
    """w4g32 and w1 packed by the interpreter's functions: the C kernels read the same
    layout (tolerance: float accumulation); w8 likewise."""
    qref = quant_reference()
    rng = rng_for("ref-wo", T, K, N)
    x, w, b = randn(rng, T, K), randn(rng, N, K), randn(rng, N)

    q4, s4 = qref.quantize_weights_w4(w, 32)
    packed4 = np.asarray(qref.pack_int4(q4), np.uint8)
    assert_bits_equal(packed4, ref_pack_int4(np.asarray(q4, np.int8)))
    want = np.asarray(qref.w4_linear(x, packed4, s4, b, 32), np.float64)
    _, mag = ref_w4g(x, np.asarray(q4), np.asarray(s4, F32), b, 32)
    got = qrunner.run("linear_w4g", {"T": T, "K": K, "N": N, "group": 32, "has_bias": 1},
                      {"x": x, "w": packed4, "scales": np.asarray(s4, F32), "bias": b},
                      {"y": F32})["y"]
    check_close(got, want, mag, rtol=5e-5)

    bits, alpha = qref.quantize_weights_w1(w)
    packed1 = np.asarray(qref.pack_bits(bits), np.uint8)
    assert_bits_equal(packed1, ref_pack_bits(np.asarray(bits, np.uint8)))
    want = np.asarray(qref.w1_linear(x, packed1, alpha, b), np.float64)
    _, mag = ref_w1(x, np.asarray(bits), np.asarray(alpha, F32), b)
    got = qrunner.run("linear_w1", {"T": T, "K": K, "N": N, "has_bias": 1},
                      {"x": x, "w": packed1, "alpha": np.asarray(alpha, F32), "bias": b},
                      {"y": F32})["y"]
    check_close(got, want, mag, rtol=5e-5)


@pytest.mark.parametrize("T,K,N", [(3, 100, 7), (2, 33, 4), (1, 64, 9)])
def test_a4_matches_interpreter(qrunner, T, K, N):
    qref = quant_reference()
    rng = rng_for("ref-a4", T, K, N)
    x = a4_input(rng, T, K, 32)
    w, b = randn(rng, N, K), randn(rng, N)
    out = qrunner.run("quantize_act_a4", {"T": T, "K": K, "group": 32}, {"x": x},
                      {"xq": np.int8, "exponents": np.int32})
    xq, e = qref.quantize_a4(x, 32)
    assert_bits_equal(out["exponents"], np.asarray(e, np.int32))
    assert_bits_equal(out["xq"], np.asarray(xq, np.int8))
    bits, alpha = qref.quantize_weights_w1(w)
    packed = np.asarray(qref.pack_bits(bits), np.uint8)
    got = qrunner.run("linear_w1a4", {"T": T, "K": K, "N": N, "group": 32, "has_bias": 1},
                      {"x": x, "w": packed, "alpha": np.asarray(alpha, F32), "bias": b},
                      {"y": F32})["y"]
    assert_bits_equal(got, np.asarray(qref.w1a4_linear(x, packed, alpha, b, 32), F32))


@pytest.mark.parametrize("kv_heads,capacity,hd,T,pos,ring", [(2, 5, 4, 3, 3, 1),
                                                            (1, 4, 6, 9, 2, 1),
                                                            (3, 8, 16, 2, 1, 0)])
def test_kv_write_matches_interpreter(qrunner, kv_heads, capacity, hd, T, pos, ring):
    qref = quant_reference()
    layers, layer = 2, 1
    rng = rng_for("ref-kv", kv_heads, capacity, hd, T, pos, ring)
    sim = CacheSimI8(rng, layers, kv_heads, capacity, hd, ring)
    new = randn(rng, T, kv_heads * hd, scale=2.0)
    new[0, :hd] = 0.0
    want_c, want_s = qref.kv_write_int8(sim.k, sim.ks, new, pos, layer, bool(ring))
    got_c, got_s = kv_write(qrunner, sim, sim.k, sim.ks, layer, new, pos)
    assert_bits_equal(got_c, np.asarray(want_c, np.int8))
    assert_bits_equal(got_s, np.asarray(want_s, F32))
