"""Fits the polynomials of GELU's tail and prints their coefficients.

    .venv/bin/python scripts/fit_gelu.py          # irtool/numerics/gelu.py (numpy)
    .venv/bin/python scripts/fit_gelu.py --c      # irt_gelu_f32 (targets/c/runtime), x log2 e

GELU's tail term `a Phi(-a)` (a = |x|) is written as `a / (1 + exp(a R(a^2)))`, where
`a R(a^2)` is the logit of the normal distribution, `log Phi(a) - log Phi(-a)` (an odd,
smooth function of a). R is fitted here in float64 against scipy's `log_ndtr`, on a <= 6 (the
clip; beyond it the tail term is below 6e-9), by a weighted minimax fit (Lawson's iteration
on a least-squares fit in the Chebyshev basis of a^2). The weight asks for an absolute error of
GELU within 1e-7 (`a^2 Phi(a) Phi(-a) |dR|`), a relative error within 1.5e-6 for x >= -2
(`a |dR|`), and a logit within 0.1 up to the clip (so the constant tail stays within 10%).
The test (tests/test_gelu_erf.py) checks the float32 evaluation, not this fit.

The C kernel's R (`--c`, `fit_c`) serves a <= 4 only (beyond, the kernel calls erfcf: a branch
costs one instruction on the cores it targets, and GELU inputs rarely go there), with the
relative error of the tail term within 1e-6 everywhere on it: the kernel is checked against
float64 for its relative error at every x (tests/test_c_runtime.py).
"""

from __future__ import annotations

import numpy as np
from scipy.special import log_ndtr, ndtr

CLIP = 6.0
DEGREE = 7


C_CLIP = 4.0


def fit(clip: float = CLIP, degree: int = DEGREE, iterations: int = 150) -> np.ndarray:
    """R's coefficients in u = a^2, lowest power first (numpy's: an absolute bound)."""
    a = np.linspace(1e-4, clip, 300_001)
    weight = np.maximum.reduce([a * a * ndtr(a) * ndtr(-a) / 1e-7,
                                np.where(a <= 2.0, a / 1.5e-6, 0.0), a / 0.1])
    return _lawson(a, weight, clip, degree, iterations)


def fit_c(clip: float = C_CLIP, degree: int = DEGREE, iterations: int = 150) -> np.ndarray:
    """R's coefficients for the C kernel, lowest power first: the tail term's relative error
    (`a |dR|`) within 1e-6 on a <= clip."""
    a = np.linspace(1e-4, clip, 300_001)
    return _lawson(a, a / 1e-6, clip, degree, iterations)


def _lawson(a: np.ndarray, weight: np.ndarray, clip: float, degree: int,
            iterations: int) -> np.ndarray:
    """The weighted minimax fit of the logit over a, as a polynomial in a^2."""
    u = a * a
    target = (log_ndtr(a) - log_ndtr(-a)) / a
    basis = np.polynomial.chebyshev.chebvander(2 * u / clip ** 2 - 1, degree)
    lawson = np.ones_like(a)
    for _ in range(iterations):
        scale = np.sqrt(lawson) * weight
        cheb, *_ = np.linalg.lstsq(basis * scale[:, None], target * scale, rcond=None)
        lawson *= np.abs(basis @ cheb - target) * weight
        lawson /= lawson.sum()
    in_t = np.polynomial.Polynomial(np.polynomial.chebyshev.cheb2poly(cheb))
    return in_t(np.polynomial.Polynomial([-1.0, 2.0 / clip ** 2])).coef


if __name__ == "__main__":
    import sys

    # the C kernel takes 2^(a R(a^2) log2 e): its coefficients come scaled by log2 e
    coefficients = fit_c() / np.log(2.0) if "--c" in sys.argv[1:] else fit()
    print(", ".join(repr(float(c)) for c in coefficients))
