"""cortex-m7-256k's 1-bit x 4-bit linear (targets/cortex_m7_256k/runtime/irt_m7_w1a4.c, a
table of partial sums per group) bit for bit against the numpy reference of the quantization
contract, on the host under AddressSanitizer and UBSan: the quantized-kernel test driver built
with its `irt_linear_w1a4` call taken by `irt_linear_w1a4_m7`. The same cases as the portable
kernel's (tests/test_c_quant_kernels.py), whose references are reused; on qemu-system-arm the
kernel runs in the w1a4 model test of tests/test_cortex_m7.py.
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

M7_RUNTIME = RUNTIME.parents[1] / "cortex_m7_256k" / "runtime"


@pytest.fixture(scope="module")
def m7runner(tmp_path_factory) -> QuantRunner:
    need("cc")
    build = tmp_path_factory.mktemp("irt_m7_w1a4_build")
    driver = build / "driver.o"
    # only the driver's call is renamed; irt_quant.c keeps the portable kernel
    cmd = [HOST_CC, *HOST_FLAGS, f"-I{RUNTIME}", "-Dirt_linear_w1a4=irt_linear_w1a4_m7", "-c",
           str(DRIVER_SOURCE), "-o", str(driver)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    exe = compile_driver(HOST_CC, [*HOST_FLAGS, f"-I{M7_RUNTIME}"], driver,
                         build / "irt_m7_w1a4_driver", (str(M7_RUNTIME / "irt_m7_w1a4.c"),))
    return QuantRunner(exe, tmp_path_factory.mktemp("irt_m7_w1a4_runs"))


@pytest.mark.parametrize("T,K,N,group", W1A4_CASES)
def test_table_kernel_equals_the_contract(m7runner, T, K, N, group):
    rng = rng_for("w1a4-m7", T, K, N, group)
    x = a4_input(rng, T, K, group)
    w, b = randn(rng, N, K), randn(rng, N)
    bits = (w >= 0).astype(np.uint8)
    alpha = np.abs(w).mean(axis=1).astype(np.float32)
    bias = N % 2 == 1  # with and without a bias across the cases
    arrays = {"x": x, "w": ref_pack_bits(bits, pad_bits=0xA5), "alpha": alpha}
    if bias:
        arrays["bias"] = b
    got = m7runner.run("linear_w1a4", {"T": T, "K": K, "N": N, "group": group,
                                       "has_bias": bias}, arrays, {"y": np.float32})["y"]
    assert_bits_equal(got, ref_w1a4(x, bits, alpha, b if bias else None, group))


def test_table_kernel_largest_sums(m7runner):
    """Every code at +-7 with all bits equal over the longest group: the table's int16
    entries and the int32 sums at their largest."""
    T, K, N, group = 2, 512, 4, 128
    x = np.full((T, K), 7.0, np.float32)
    x[1] = -7.0
    bits = np.zeros((N, K), np.uint8)
    bits[1] = 1
    bits[2, ::2] = 1
    bits[3] = rng_for("m7-lanes").integers(0, 2, K)
    alpha = np.array([1.0, 0.5, 2.0, 0.25], np.float32)
    got = m7runner.run("linear_w1a4", {"T": T, "K": K, "N": N, "group": group, "has_bias": 0},
                       {"x": x, "w": ref_pack_bits(bits), "alpha": alpha}, {"y": np.float32})
    want = ref_w1a4(x, bits, alpha, None, group)
    assert want[0, 0] == -7 * K and want[1, 1] == -7 * K * 0.5
    assert_bits_equal(got["y"], want)
