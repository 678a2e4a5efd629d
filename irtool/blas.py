"""OpenBLAS threads for numpy: `blas_threads(1)` around the interpreter's tiny matmuls.

Its own small module so that every driver (compile, quantize, generate, irtool-run) can pin
the threads without importing the quality tools.
"""

from __future__ import annotations

from typing import Self


def _openblas_controls():
    """(get, set) of the OpenBLAS thread count numpy uses, found in the loaded libraries."""
    import ctypes

    try:
        with open("/proc/self/maps") as f:
            fields = [line.split() for line in f]
        paths = {fl[-1] for fl in fields
                 if len(fl) >= 6 and "openblas" in fl[-1].lower() and ".so" in fl[-1]}
    except OSError:
        return None
    for path in sorted(paths):
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for suffix in ("scipy_openblas_{}_num_threads64_", "openblas_{}_num_threads64_",
                       "openblas_{}_num_threads"):
            try:
                get = getattr(lib, suffix.format("get"))
                put = getattr(lib, suffix.format("set"))
            except AttributeError:
                continue
            get.restype = ctypes.c_int
            put.argtypes = [ctypes.c_int]
            return get, put
    return None


class blas_threads:
    """Context manager: run numpy's OpenBLAS with `n` threads (best effort, Linux).

    The interpreter multiplies tiny matrices ([257, 64] x [64, 172]); OpenBLAS threads cost
    more than they bring there, and on a loaded machine they made evaluation 10-20x slower.
    """

    def __init__(self, n: int = 1):
        self.n = n
        self.previous: int | None = None
        self.controls = _openblas_controls()

    def __enter__(self) -> Self:
        if self.controls is not None:
            get, put = self.controls
            self.previous = int(get())
            put(self.n)
        return self

    def __exit__(self, *exc) -> None:
        if self.controls is not None and self.previous is not None:
            self.controls[1](self.previous)
