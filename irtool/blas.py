"""OpenBLAS threads for numpy: `blas_threads(1)` around the interpreter's tiny matmuls.

Its own small module so that every driver (compile, quantize, generate, irtool-run) can pin
the threads without importing the quality tools.
"""

from __future__ import annotations

from typing import Self


def _openblas_libraries():
    """The OpenBLAS shared libraries loaded in this process (ctypes handles)."""
    import ctypes

    try:
        with open("/proc/self/maps") as f:
            fields = [line.split() for line in f]
    except OSError:
        return []
    paths = {fl[-1] for fl in fields
             if len(fl) >= 6 and "openblas" in fl[-1].lower() and ".so" in fl[-1]}
    libraries = []
    for path in sorted(paths):
        try:
            libraries.append(ctypes.CDLL(path))
        except OSError:
            continue
    return libraries


# numpy's scipy-openblas build, OpenBLAS's 64-bit-integer build, its plain build
_PREFIXES_SUFFIXES = (("scipy_openblas_", "64_"), ("openblas_", "64_"), ("openblas_", ""))


def _openblas_function(name: str):
    """`openblas_<name>` of the loaded OpenBLAS under the names its builds export, or None."""
    for lib in _openblas_libraries():
        for prefix, suffix in _PREFIXES_SUFFIXES:
            fn = getattr(lib, f"{prefix}{name}{suffix}", None)
            if fn is not None:
                return fn
    return None


def _openblas_controls():
    """(get, set) of the OpenBLAS thread count numpy uses, found in the loaded libraries."""
    import ctypes

    get, put = _openblas_function("get_num_threads"), _openblas_function("set_num_threads")
    if get is None or put is None:
        return None
    get.restype = ctypes.c_int
    put.argtypes = [ctypes.c_int]
    return get, put


def openblas_corename() -> str | None:
    """The kernels the loaded OpenBLAS runs (`Haswell`, `SkylakeX`, ...: its choice for this
    CPU, or OPENBLAS_CORETYPE's when that was set as it loaded), or None without OpenBLAS."""
    import ctypes

    fn = _openblas_function("get_corename")
    if fn is None:
        return None
    fn.restype = ctypes.c_char_p
    name = fn()
    return name.decode() if name else None


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
