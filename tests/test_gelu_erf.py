"""Exact GELU in float32 (irtool/numerics/gelu.py) against float64 references, with its stated
bounds: absolute error at most 1e-7 + half an ulp of the result for every float32 x, relative
error at most 1.5e-6 for x >= -2.

The references are scipy's float64 erfc (on millions of points) and, for a few hundred points,
Python's math.erf; the numerics module itself uses neither.
"""

import math

import numpy as np
from scipy.special import erfc

from irtool.numerics.gelu import gelu_erf
from irtool.numerics.transformer import gelu

F32 = np.float32
RNG = np.random.default_rng(14)


def _reference(x: np.ndarray) -> np.ndarray:
    x64 = x.astype(np.float64)
    return 0.5 * x64 * erfc(-x64 / math.sqrt(2.0))


def _points() -> np.ndarray:
    """A dense grid over [-20, 20] (beyond it the result is x or 0 in float32), uniform
    draws there, and random float32 bit patterns (any magnitude), finite."""
    bits = RNG.integers(0, 2 ** 32, 1_000_000, dtype=np.uint64).astype(np.uint32).view(F32)
    x = np.concatenate([np.linspace(-20, 20, 2_000_001, dtype=F32),
                        RNG.uniform(-20, 20, 1_000_000).astype(F32), bits])
    return x[np.isfinite(x)]


def test_gelu_erf_within_the_stated_bounds():
    x = _points()
    want = _reference(x)
    got = gelu_erf(x).astype(np.float64)
    err = np.abs(got - want)
    half_ulp = 0.5 * np.spacing(np.abs(want).astype(F32)).astype(np.float64)
    assert np.all(err <= 1e-7 + half_ulp), x[np.argmax(err - half_ulp)]
    near = (x >= -2) & (np.abs(want) >= np.finfo(F32).tiny)  # normal results
    rel = err[near] / np.abs(want[near])
    assert rel.max() <= 1.5e-6, x[near][np.argmax(rel)]
    assert x[near].min() < -1.99 and np.abs(want[near]).min() < 1e-30  # down to -2, and tiny x too


def test_gelu_erf_against_math_erf():
    x = np.concatenate([np.linspace(-6, 6, 240), RNG.standard_normal(200) * 3]).astype(F32)
    want = np.array([0.5 * v * (1.0 + math.erf(v / math.sqrt(2.0))) for v in x.tolist()])
    got = gelu(x.reshape(4, -1), "none").reshape(-1)
    assert got.dtype == F32
    np.testing.assert_allclose(got, want, rtol=1.5e-6, atol=1e-7)


def test_gelu_erf_special_values():
    x = np.array([np.inf, -np.inf, np.nan, 0.0, -0.0, 3e38, -3e38, 1.0], F32)
    got = gelu_erf(x)
    assert got[0] == np.inf and -1e-8 < got[1] <= 0.0 and np.isnan(got[2])
    assert got[3] == 0.0 and got[4] == 0.0 and got[5] == F32(3e38) and -1e-8 < got[6] <= 0.0
    assert abs(float(got[7]) - 0.8413447460685429) <= 1e-7  # Phi(1), tables
    assert x[0] == np.inf  # the input is not modified
