"""The shared 1-bit x 4-bit linear through a table of partial sums per group
(targets/c/runtime/irt_linear_w1a4_table.c, chosen by cortex-m7-256k and riscv-ulp) bit for
bit against the numpy reference of the quantization contract, on the host under
AddressSanitizer and UBSan: the quantized-kernel test driver built with its `irt_linear_w1a4`
call taken by `irt_linear_w1a4_table`. The cases of the portable kernel
(tests/test_c_quant_kernels.py, whose references are reused) plus the shapes of stories260K's
linears (K 64 and 172: rows of 8 and 22 bytes, so half the rows of the latter start off a
word boundary); on qemu the kernel runs in the w1a4 model tests of tests/test_cortex_m7.py and
tests/test_riscv_ulp_quant.py.
"""

from __future__ import annotations

import subprocess

import numpy as np
import pytest

from tests.c_kernel_harness import HOST_CC, HOST_FLAGS, RUNTIME, compile_driver
from tests.requirements import need
from tests.test_c_quant_kernels import (
    DRIVER_SOURCE,
    W1A4_CASES,
    QuantRunner,
    a4_input,
    assert_bits_equal,
    randn,
    ref_pack_bits,
    ref_w1a4,
    rng_for,
)

# stories260K's linears: q/k/v/o and w1/w3 read 64 inputs, w2 172 (T 1: decode; 2: a prompt)
STORIES_CASES = [(1, 64, 64, 32), (1, 64, 32, 32), (1, 64, 172, 32), (1, 172, 64, 32),
                 (2, 172, 64, 32)]


@pytest.fixture(scope="module", params=["unaligned-words", "aligned-words-or-bytes"])
def table_runner(request, tmp_path_factory) -> QuantRunner:
    """The driver with the kernel as the host builds it (a word load anywhere, as on the
    Cortex-M7) and as RV32 does (word loads for rows on a word boundary, bytes otherwise)."""
    need("cc")
    build = tmp_path_factory.mktemp(f"irt_w1a4_table_{request.param}")
    driver = build / "driver.o"
    # only the driver's call is renamed; irt_quant.c keeps the portable kernel, and the table
    # kernel is one of the runtime sources every driver is linked with
    cmd = [HOST_CC, *HOST_FLAGS, f"-I{RUNTIME}", "-Dirt_linear_w1a4=irt_linear_w1a4_table",
           "-c", str(DRIVER_SOURCE), "-o", str(driver)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    flags = HOST_FLAGS if request.param == "unaligned-words" else [
        *HOST_FLAGS, "-DIRT_W1A4_UNALIGNED_WORDS=0"]
    exe = compile_driver(HOST_CC, flags, driver, build / "irt_w1a4_table_driver")
    return QuantRunner(exe, tmp_path_factory.mktemp(f"irt_w1a4_table_runs_{request.param}"))


@pytest.mark.parametrize("T,K,N,group", W1A4_CASES + STORIES_CASES)
def test_table_kernel_equals_the_contract(table_runner, T, K, N, group):
    rng = rng_for("w1a4-table", T, K, N, group)
    x = a4_input(rng, T, K, group)
    w, b = randn(rng, N, K), randn(rng, N)
    bits = (w >= 0).astype(np.uint8)
    alpha = np.abs(w).mean(axis=1).astype(np.float32)
    bias = N % 2 == 1  # with and without a bias across the cases
    arrays = {"x": x, "w": ref_pack_bits(bits, pad_bits=0xA5), "alpha": alpha}
    if bias:
        arrays["bias"] = b
    got = table_runner.run("linear_w1a4", {"T": T, "K": K, "N": N, "group": group,
                                       "has_bias": bias}, arrays, {"y": np.float32})["y"]
    assert_bits_equal(got, ref_w1a4(x, bits, alpha, b if bias else None, group))


def test_table_kernel_largest_sums(table_runner):
    """Every code at +-7 with all bits equal over the longest group: the table's biased byte
    entries at their ends (64 -+ 28) and the int32 sums at their largest."""
    T, K, N, group = 2, 512, 4, 128
    x = np.full((T, K), 7.0, np.float32)
    x[1] = -7.0
    bits = np.zeros((N, K), np.uint8)
    bits[1] = 1
    bits[2, ::2] = 1
    bits[3] = rng_for("table-lanes").integers(0, 2, K)
    alpha = np.array([1.0, 0.5, 2.0, 0.25], np.float32)
    got = table_runner.run("linear_w1a4", {"T": T, "K": K, "N": N, "group": group, "has_bias": 0},
                       {"x": x, "w": ref_pack_bits(bits), "alpha": alpha}, {"y": np.float32})
    want = ref_w1a4(x, bits, alpha, None, group)
    assert want[0, 0] == -7 * K and want[1, 1] == -7 * K * 0.5
    assert_bits_equal(got["y"], want)
