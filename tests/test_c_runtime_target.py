"""The kernels with RV32F assembly, run on the target (qemu-system-riscv32) against numpy.

The host build (tests/test_c_runtime.py, under ASan/UBSan) runs their portable C; here the
test driver is cross-built with the runtime and run on qemu, so the assembly paths (24-row
panels: the first 16 columns, 16-column turns, then 8, 4 and single columns; the bias or
residual added in registers) are checked against the same references.  One qemu run per case.
"""

from __future__ import annotations

import numpy as np
import pytest

from tests import test_c_runtime as host
from tests.c_kernel_harness import TargetKernelRunner, build_target_driver
from tests.requirements import need
from tests.test_c_runtime import check, linear_reference, packed_by_definition, randn, rng_for


@pytest.fixture(scope="module")
def target_runner(tmp_path_factory) -> TargetKernelRunner:
    need("riscv", "qemu")
    build = tmp_path_factory.mktemp("irt_rv32_driver")
    return TargetKernelRunner(build_target_driver(build), tmp_path_factory.mktemp("irt_rv32"))


# K: 16 (first block only), 17 (+ one single column), 29 (+ 8 + 4 + 1), 64, 172 (16-column
# turns + 8 + 4), 20 (+ 4); N: 24-row panels followed by 16, 8, 4, 2, 1-row ones (every
# width of the asm: 71 = 24 + 24 + 16 + 4 + 2 + 1, 32 = 24 + 8, 12 = 8 + 4 alone)
@pytest.mark.parametrize("T,K,N,bias", [(1, 16, 24, False), (1, 17, 48, True),
                                        (2, 29, 47, True), (1, 64, 64, False),
                                        (1, 172, 71, False), (1, 64, 32, True),
                                        (2, 20, 12, False)])
def test_linear_packed_on_target(target_runner, T, K, N, bias):
    rng = rng_for("linear_packed_rv32", T, K, N, bias)
    x, w, b = randn(rng, T, K), randn(rng, N, K), randn(rng, N)
    arrays = {"x": x, "wp": packed_by_definition(w), **({"bias": b} if bias else {})}
    got = target_runner.run("linear_packed", {"T": T, "K": K, "N": N, "has_bias": bias},
                            arrays)
    check(got, *linear_reference(x, w, b if bias else None))


@pytest.mark.parametrize("T,K,N,inplace", [(1, 64, 64, 1), (2, 21, 40, 0)])
def test_linear_packed_residual_on_target(target_runner, T, K, N, inplace):
    rng = rng_for("linear_packed_residual_rv32", T, K, N, inplace)
    x, w, r = randn(rng, T, K), randn(rng, N, K), randn(rng, T, N)
    got = target_runner.run("linear_packed_residual", {"T": T, "K": K, "N": N,
                                                       "inplace": inplace},
                            {"x": x, "wp": packed_by_definition(w), "r": r})
    want, mag = linear_reference(x, w, None)
    check(got, want + r.astype(np.float64), mag + np.abs(r))


# the asm pass 2 of irt_cached_attention_hd8_f32 (a pair of query heads: odd and even row
# counts, both runs of a wrapped ring) and its portable C single-head path, against numpy
@pytest.mark.parametrize("case", [host.HD8_CASES[i] for i in (1, 2, 3, 6, 8)])
def test_cached_attention_hd8_on_target(target_runner, case):
    host.test_cached_attention_hd8(target_runner, *case)


def test_exp2_softmax_error_bound_on_target(target_runner):
    host.exp2_softmax_case(target_runner, 3.3)


# the packed linear writing a KV-cache slot (asm: each group of 8 rows to its head's plane)
@pytest.mark.parametrize("case", host.KV_PRODUCER_CASES[:3])
def test_linear_packed_kv_on_target(target_runner, case):
    host.kv_producer_case(target_runner, "linear_packed_kv", *case)
