"""The integer non-linear ops of `--integer-only` (I-BERT style; irtool/numerics/intops.py and
targets/c/runtime/irt_intops.c).

The reference here is written from the contract independently of both, one value at a time
in Python integers (`exp`, sigmoid, integer square root by `math.isqrt`), and float32 only
where the contract says float32. It checks the numpy functions the interpreter runs and the C
kernels (built with AddressSanitizer and UBSan by the quant kernels' driver) bit for bit, and
the approximations against the float functions they stand for.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from irtool.numerics import intops
from irtool.numerics.transformer import rms_norm, silu, softmax
from tests.test_c_quant_kernels import (  # noqa: F401  (qrunner is a fixture)
    F32,
    assert_bits_equal,
    attention_reference,
    check_close,
    qrunner,
    randn,
    rng_for,
)

LN2_Q, B_Q = round(math.log(2) * 1024), round(1.353 * 1024)
C_Q = round(0.344 / 0.3585 * 2 ** 20)
ONE_Q = round(2 ** 20 / 0.3585)


def grid(v: float, frac: int, limit: int) -> int:
    """float32 v * 2^frac, clipped, rounded half to even (Python's round)."""
    x = float(np.float32(v) * np.float32(2 ** frac))
    if math.isnan(x):
        return -limit
    return round(min(max(x, -limit), limit))


def exp_q(qx: int) -> int:
    """I-BERT's exp of qx * 2^-10 (qx <= 0): qx = -z ln2 + p, a (p + b)^2 + c, >> z."""
    z = -qx // LN2_Q
    p = qx + z * LN2_Q
    return ((p + B_Q) ** 2 + C_Q) >> min(z, 31)


def silu_one(v: float) -> np.float32:
    q = grid(v, 10, 2 ** 20)
    e = exp_q(-abs(q))
    num = ONE_Q if q >= 0 else e
    sig = ((num >> 6) << 15) // ((ONE_Q + e) >> 6)
    return np.float32((q * sig) >> 15) * np.float32(2 ** -10)


def softmax_row(s: np.ndarray, scale: float) -> np.ndarray:
    t = [np.float32(scale) * np.float32(v) for v in s]
    m = max(t)
    e = [exp_q(grid(np.float32(v - m), 10, 2 ** 20)) for v in t]
    factor = 2 ** 47 // sum(e)
    return np.array([np.float32((x * factor) >> 31) * np.float32(2 ** -16) for x in e], F32)


def rms_row(x: np.ndarray, g: np.ndarray, eps: float) -> np.ndarray:
    q = [grid(v, 12, 2 ** 22) for v in x]
    eps_q = min(max(1, round(float(np.float32(eps)) * 2 ** 24)), 2 ** 22)
    r = math.isqrt(sum(v * v for v in q) // len(q) + eps_q)
    inv = 2 ** 40 // r
    return np.array([(np.float32((v * inv) >> 25) * np.float32(2 ** -15)) * np.float32(gi)
                     for v, gi in zip(q, g, strict=True)], F32)


def silu_inputs(n: int, seed: str) -> np.ndarray:
    rng = rng_for("int_silu", seed)
    x = randn(rng, n, scale=6.0)
    x[:12] = [0.0, -0.0, 1e-9, -1e-9, 1500.0, -1500.0, np.nan, np.inf, -np.inf,
              0.00048828125, -0.00048828125, 0.693359375]  # zero, tiny, clipped, NaN, ties
    return x


def test_numpy_reference_is_the_contract():
    x = silu_inputs(300, "numpy")
    assert_bits_equal(intops.int_silu(x), np.array([silu_one(v) for v in x], F32))
    rng = rng_for("int_numpy")
    s = randn(rng, 5, 37, scale=4.0)
    s[1, 3] = 200.0  # one dominant score: the rest underflow to 0
    assert_bits_equal(intops.int_softmax(s), np.stack([softmax_row(r, 1.0) for r in s]))
    xr = randn(rng, 4, 48, scale=2.0)
    xr[2] = 0.0  # an all-zero row divides by isqrt(eps_q)
    g = randn(rng, 48)
    assert_bits_equal(intops.int_rms_norm(xr, g, 1e-5),
                      np.stack([rms_row(r, g, 1e-5) for r in xr]))
    v = np.array([0, 1, 3, 4, 2 ** 52 - 1, 2 ** 52, 2 ** 61 + 12345], np.int64)
    assert intops.isqrt(v).tolist() == [math.isqrt(int(a)) for a in v]


def test_approximations_are_close_to_float():
    """The integer versions stay near the float functions they replace (I-BERT reports
    errors of this size for its polynomial exp)."""
    x = np.linspace(-30, 30, 6001, dtype=F32)
    assert np.abs(intops.int_silu(x) - silu(x)).max() < 3e-3
    rng = rng_for("int_close")
    s = randn(rng, 64, 100, scale=3.0)
    s[:, 50:] = np.where(np.arange(50) % 3 == 0, -np.inf, s[:, 50:])  # masked keys
    p = intops.int_softmax(s)
    assert np.abs(p - softmax(s)).max() < 1.5e-3
    assert np.all(p[np.isneginf(s)] == 0)
    assert np.abs(p.sum(-1) - 1).max() < 2e-3
    xr = randn(rng, 16, 64, scale=3.0)
    g = randn(rng, 64)
    want = rms_norm(xr, g, 1e-5)
    assert np.abs(intops.int_rms_norm(xr, g, 1e-5) - want).max() < 2e-3 * np.abs(g).max()


@pytest.mark.parametrize("n", [1, 7, 300])
def test_c_int_silu(qrunner, n):  # noqa: F811
    x = silu_inputs(max(n, 12), str(n))[:n]
    got = qrunner.run("int_silu", {"n": n}, {"x": x}, {"y": F32})["y"]
    assert_bits_equal(got, np.array([silu_one(v) for v in x], F32))


@pytest.mark.parametrize("T,D,eps", [(1, 1, 1e-5), (3, 48, 1e-5), (2, 260, 0.5)])
def test_c_int_rms_norm(qrunner, T, D, eps):  # noqa: F811
    rng = rng_for("int_rms", T, D)
    x = randn(rng, T, D, scale=5.0)
    x[0, 0] = 5000.0  # clipped to the grid's limit
    if T > 1:
        x[1] = 0.0
    g = randn(rng, D)
    got = qrunner.run("int_rms_norm", {"T": T, "D": D, "eps": eps}, {"x": x, "g": g},
                      {"y": F32})["y"]
    assert_bits_equal(got, np.stack([rms_row(r, g, eps) for r in x]))


@pytest.mark.parametrize("n,scale", [(1, 1.0), (9, 0.35355339), (130, 2.0)])
def test_c_int_softmax(qrunner, n, scale):  # noqa: F811
    s = randn(rng_for("int_softmax", n), n, scale=5.0)
    got = qrunner.run("int_softmax", {"n": n, "scale": scale}, {"s": s}, {"p": F32})["p"]
    assert_bits_equal(got, softmax_row(s, scale))


def test_c_cached_attention_isoftmax(qrunner):  # noqa: F811
    """One decode step over an int8 cache (rows written as irt_kv_write_i8 stores them):
    the integer softmax's probabilities from the float scores, then the values."""
    heads, kv_heads, hd, capacity, end = 4, 2, 8, 16, 11
    rng = rng_for("isoftmax_attention")
    kq = rng.integers(-127, 128, (1, kv_heads, capacity, hd)).astype(np.int8)
    vq = rng.integers(-127, 128, (1, kv_heads, capacity, hd)).astype(np.int8)
    ks = (rng.random((1, kv_heads, capacity)) * 0.05 + 0.01).astype(F32)
    vs = (rng.random((1, kv_heads, capacity)) * 0.05 + 0.01).astype(F32)
    q = randn(rng, 1, heads * hd)
    scale = F32(1 / math.sqrt(hd))
    k = (kq[0, :, :end].astype(F32) * ks[0, :, :end, None]).astype(F32)
    v = (vq[0, :, :end].astype(F32) * vs[0, :, :end, None]).astype(F32)
    want = np.zeros((heads, hd))
    for h in range(heads):
        g = h // (heads // kv_heads)
        scores = (k[g].astype(np.float64) @ q[0, h * hd:(h + 1) * hd]).astype(F32)
        want[h] = softmax_row(scores, float(scale)).astype(np.float64) @ v[g]
    got = qrunner.run("cached_attention_i8_isoftmax",
                      {"layers": 1, "layer": 0, "heads": heads, "kv_heads": kv_heads,
                       "head_dim": hd, "capacity": capacity, "T": 1, "end": end, "ring": 0,
                       "scale": scale},
                      {"q": q, "kcache": kq, "kscales": ks, "vcache": vq, "vscales": vs},
                      {"out": F32})["out"]
    # float scores summed in another order: within 1e-5 of the values' magnitude (the float
    # softmax would differ by about 1e-3)
    check_close(got, want.reshape(-1), np.full(heads * hd, np.abs(v).max()), rtol=1e-5)


@pytest.mark.parametrize("argv,message", [
    (["--scheme", "w8", "--integer-only"],
     "integer-only needs the integer linears of scheme w8a8, not w8"),
    (["--scheme", "w4g32", "--kv", "int8", "--integer-only"], "not w4g32"),
])
def test_integer_only_errors(tmp_path, shared_models, capsys, argv, message):
    from irtool.cli import main

    with pytest.raises(SystemExit) as e:
        main(["quantize", str(shared_models / "stories260K" / "stories260K.bin"), "-o",
              str(tmp_path / "m.mlir"), *argv])
    assert e.value.code == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and "Traceback" not in err


def test_integer_only_needs_the_int8_cache(shared_models):
    """A float KV cache has no integer-softmax attention: refused, not left in float."""
    from irtool.context import make_context
    from irtool.errors import IrtoolError
    from irtool.frontend.load import import_model
    from irtool.passes.calibrate import calibrate_module
    from irtool.passes.extract_kv_cache import ExtractKVCachePass
    from irtool.passes.quantize import QuantOptions, quantize_module
    from irtool.quality import load_sequences

    d = shared_models / "stories260K"
    module, store = import_model(d / "stories260K.bin")
    calibrate_module(module, store, load_sequences(d / "eval_tokens.json", "calib")[:2])
    ExtractKVCachePass(capacity=16).apply(make_context(), module)
    with pytest.raises(IrtoolError, match=r"integer-only attention reads an int8 KV cache: "
                                          r"add kv=int8 \(--kv int8\)"):
        quantize_module(module, store, QuantOptions("w8a8", integer_only=True))
