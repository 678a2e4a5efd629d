"""The accumulating linears (targets/c/runtime/irt_linear_acc.[ch]) against numpy.

`y += x @ W^T (+ b)` for fp32, w8, w4g, w1 and w1a4 weights, built under AddressSanitizer and
UBSan (every buffer exactly sized) by a driver of their own
(targets/c/runtime/tests/irt_linear_acc_test_driver.c). The references are the independent
numpy references of tests/test_c_quant_kernels.py (float64 sums, or the w1a4 contract bit
for bit) plus the accumulator. Then a row is cut along K as the `tile` pass cuts it (at
multiples of the quantization group, packed bytes and per-group scales sliced with it) and
the pieces, accumulated one after the other, give the whole row's product.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pytest

from tests.c_kernel_harness import HOST_CC, HOST_FLAGS, RUNTIME
from tests.requirements import need
from tests.test_c_quant_kernels import (
    F32,
    a4_input,
    assert_bits_equal,
    check_close,
    randn,
    ref_pack_bits,
    ref_pack_int4,
    ref_quantize_w4,
    ref_quantize_w8,
    ref_w1,
    ref_w1a4,
    ref_w4g,
    rng_for,
)

DRIVER = RUNTIME / "tests" / "irt_linear_acc_test_driver.c"
SOURCES = ("irt_linear_acc.c", "irt_linear.c", "irt_quant.c", "irt_elementwise.c")
"""The kernels under test and what they call (a build of these alone is a third of the
whole runtime's under the sanitizers)."""


@pytest.fixture(scope="module")
def acc_driver(tmp_path_factory) -> Path:
    need("cc")
    exe = tmp_path_factory.mktemp("irt_linear_acc_build") / "irt_linear_acc_test_driver"
    cmd = [HOST_CC, *HOST_FLAGS, f"-I{RUNTIME}", str(DRIVER),
           *(str(RUNTIME / s) for s in SOURCES), "-o", str(exe), "-lm"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 0, f"{' '.join(cmd)}\n{proc.stderr}"
    return exe


def run(exe: Path, kind: str, params: dict, arrays: dict[str, np.ndarray]) -> np.ndarray:
    d = Path(tempfile.mkdtemp(prefix=f"acc-{kind}-"))
    try:
        (d / "params.txt").write_text("".join(f"{k} {int(v)}\n" for k, v in params.items()))
        for name, arr in arrays.items():
            np.ascontiguousarray(arr).tofile(d / f"{name}.bin")
        proc = subprocess.run([str(exe), kind, str(d)], capture_output=True, text=True)
        assert proc.returncode == 0, f"driver failed on {kind} {params}:\n{proc.stderr}"
        return np.fromfile(d / "y.out", dtype=F32).reshape(params["T"], params["N"])
    finally:
        shutil.rmtree(d)


class Case:
    """One linear of a kind: its stored weight, scales and the float64 reference."""

    def __init__(self, kind: str, T: int, K: int, N: int, group: int = 32,
                 per_tensor: bool = False):
        rng = rng_for("acc", kind, T, K, N, group, per_tensor)
        self.kind, self.T, self.K, self.N, self.group = kind, T, K, N, group
        self.per_tensor = per_tensor
        self.x = a4_input(rng, T, K, group) if kind == "w1a4" else randn(rng, T, K)
        w = randn(rng, N, K)
        self.b = randn(rng, N)
        if kind == "f32":
            self.w, self.s = w, None
        elif kind == "w8":
            self.q, self.s = ref_quantize_w8(w, per_tensor)
            self.w = self.q
        elif kind == "w4g":
            self.q, self.s = ref_quantize_w4(w, group)
            self.w = ref_pack_int4(self.q)
        else:
            self.bits = (w >= 0).astype(np.uint8)
            self.s = np.abs(w).mean(axis=1).astype(F32)
            self.w = ref_pack_bits(self.bits)

    def reference(self, bias: bool) -> tuple[np.ndarray, np.ndarray]:
        """float64 product (+ b) and the magnitude of its terms."""
        b = self.b if bias else None
        if self.kind in ("f32", "w8"):
            wf = self.w.astype(np.float64)
            sn = (np.ones(self.N) if self.s is None
                  else np.broadcast_to(self.s, (self.N,)).astype(np.float64))
            terms = self.x.astype(np.float64)[:, None, :] * wf[None]
            want, mag = terms.sum(-1) * sn, np.abs(terms).sum(-1) * np.abs(sn)
            return (want + b, mag + np.abs(b)) if bias else (want, mag)
        if self.kind == "w4g":
            return ref_w4g(self.x, self.q, self.s, b, self.group)
        if self.kind == "w1":
            return ref_w1(self.x, self.bits, self.s, b)
        want = ref_w1a4(self.x, self.bits, self.s, b, self.group).astype(np.float64)
        return want, np.abs(want) + 1e-30

    def params(self, K: int, bias: bool) -> dict:
        return {"T": self.T, "K": K, "N": self.N, "group": self.group,
                "per_tensor": self.per_tensor, "has_bias": bias}

    def arrays(self, y: np.ndarray, bias: bool, lo: int = 0, hi: int | None = None) -> dict:
        """The operands of the piece of every row over inputs [lo, hi): x's columns, the
        weight's stored columns, the scales of its groups (as the tile pass slices them)."""
        hi = self.K if hi is None else hi
        out = {"x": np.ascontiguousarray(self.x[:, lo:hi]), "y": y.astype(F32)}
        per_input = {"f32": 1, "w8": 1, "w4g": 2, "w1": 8, "w1a4": 8}[self.kind]
        out["w"] = np.ascontiguousarray(self.w[:, lo // per_input:-(-hi // per_input)])
        if self.kind == "w4g":
            out["s"] = np.ascontiguousarray(self.s[:, lo // self.group:-(-hi // self.group)])
        elif self.s is not None:
            out["s"] = self.s
        if bias:
            out["bias"] = self.b
        return out


KINDS = [("f32", {}), ("w8", {}), ("w8", {"per_tensor": True}), ("w4g", {}), ("w1", {}),
         ("w1a4", {})]


@pytest.mark.parametrize("kind,extra", KINDS)
@pytest.mark.parametrize("T,K,N,bias", [(1, 100, 5, True), (2, 33, 3, False)])
def test_adds_the_product_to_the_accumulator(acc_driver, kind, extra, T, K, N, bias):
    c = Case(kind, T, K, N, **extra)
    y0 = randn(rng_for("y0", kind, T, K, N), T, N)
    got = run(acc_driver, kind, c.params(K, bias), c.arrays(y0, bias))
    want, mag = c.reference(bias)
    if kind == "w1a4":  # the contract's float32 product, then one float32 add
        assert_bits_equal(got, (y0 + want.astype(F32)).astype(F32))
    else:
        check_close(got, y0 + want, mag + np.abs(y0))


@pytest.mark.parametrize("kind,extra", KINDS)
def test_pieces_of_a_row_cut_along_k_sum_to_the_row(acc_driver, kind, extra):
    """K = 172 (stories260K's hidden width) cut at inputs 64 and 160 (multiples of the
    group 32 and of 8): the bias comes with the first piece onto zeros, the others add."""
    c = Case(kind, 1, 172, 7, **extra)
    y = np.zeros((1, c.N), F32)
    for lo, hi in ((0, 64), (64, 160), (160, 172)):
        first = lo == 0
        y = run(acc_driver, kind, c.params(hi - lo, first), c.arrays(y, first, lo, hi))
    want, mag = c.reference(True)
    check_close(y, want, mag, rtol=5e-5 if kind == "w1a4" else 2e-5)


def test_pedantic_build_and_the_header_in_c_and_cpp(tmp_path):
    """-O2 -pedantic on the host; the header alone (with the profiling wrappers) in C99 and
    C++11."""
    need("cc")
    cmd = [HOST_CC, "-std=c99", "-O2", "-Wall", "-Wextra", "-Werror", "-pedantic",
           f"-I{RUNTIME}", "-c", str(RUNTIME / "irt_linear_acc.c"), "-o", str(tmp_path / "a.o")]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    src = tmp_path / "inc.c"
    src.write_text('#define IRT_PROFILE 1\n#include "irt_linear_acc.h"\nint irt_acc_ok;\n')
    for cc, std in ((HOST_CC, "-std=c99"), ("g++", "-std=c++11")):
        if shutil.which(cc) is None:
            continue
        lang = ["-x", "c++"] if cc == "g++" else []
        proc = subprocess.run([cc, *lang, std, "-Wall", "-Wextra", "-Werror", "-pedantic",
                               f"-I{RUNTIME}", "-c", str(src), "-o", str(tmp_path / "i.o")],
                              capture_output=True, text=True)
        assert proc.returncode == 0, f"{cc}:\n{proc.stderr}"
