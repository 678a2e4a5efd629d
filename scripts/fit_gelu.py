"""Fits the polynomial of irtool/numerics/gelu.py and prints its coefficients.

    .venv/bin/python scripts/fit_gelu.py

GELU's tail term `a Phi(-a)` (a = |x|) is written as `a / (1 + exp(a R(a^2)))`, where
`a R(a^2)` is the logit of the normal distribution, `log Phi(a) - log Phi(-a)` (an odd,
smooth function of a). R is fitted here in float64 against scipy's `log_ndtr`, on a <= 6 (the
clip; beyond it the tail term is below 6e-9), by a weighted minimax fit (Lawson's iteration
on a least-squares fit in the Chebyshev basis of a^2). The weight asks for an absolute error of
GELU within 1e-7 (`a^2 Phi(a) Phi(-a) |dR|`), a relative error within 1.5e-6 for x >= -2
(`a |dR|`), and a logit within 0.1 up to the clip (so the constant tail stays within 10%).
The test (tests/test_gelu_erf.py) checks the float32 evaluation, not this fit.
"""

from __future__ import annotations

import numpy as np
from scipy.special import log_ndtr, ndtr

CLIP = 6.0
DEGREE = 7


def fit(clip: float = CLIP, degree: int = DEGREE, iterations: int = 150) -> np.ndarray:
    """R's coefficients in u = a^2, lowest power first."""
    a = np.linspace(1e-4, clip, 300_001)
    u = a * a
    target = (log_ndtr(a) - log_ndtr(-a)) / a
    weight = np.maximum.reduce([a * a * ndtr(a) * ndtr(-a) / 1e-7,
                                np.where(a <= 2.0, a / 1.5e-6, 0.0), a / 0.1])
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
    print(", ".join(repr(float(c)) for c in fit()))
