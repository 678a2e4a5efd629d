"""transformer.relu (OPT's MLP activation) at every level: the numpy reference, the C kernel
under AddressSanitizer/UBSan, and the lowering rule; each checked against max(x, 0) written
here in plain Python."""

from __future__ import annotations

import math

import numpy as np
import pytest

from irtool.dialects import transformer as tf
from irtool.numerics.transformer import relu
from tests.test_c_runtime import activation_input, rng_for, runner  # noqa: F401 (fixture)

F32 = np.float32


def python_relu(x: np.ndarray) -> list[float]:
    """max(v, 0) per element in Python floats; NaN stays NaN."""
    return [v if (v > 0.0 or math.isnan(v)) else 0.0 for v in map(float, x)]


def test_numpy_reference():
    x = np.array([-2.5, -0.0, 0.0, 1e-30, -1e-30, 3.0, np.inf, -np.inf, np.nan], dtype=F32)
    got = relu(x)
    assert got.dtype == F32
    np.testing.assert_array_equal(got, np.array(python_relu(x), dtype=F32))
    assert not np.signbit(got[1])  # -0.0 becomes +0.0 as in the C kernel


@pytest.mark.parametrize("inplace", [0, 1])
@pytest.mark.parametrize("n", [1, 5, 40, 173])
def test_c_kernel(runner, n, inplace):  # noqa: F811 (fixture)
    x = activation_input(rng_for("relu", n, inplace), n)
    got = runner.run("relu", {"n": n, "inplace": inplace}, {"x": x})
    np.testing.assert_array_equal(got, np.array(python_relu(x), dtype=F32))


def test_c_kernel_keeps_nan(runner):  # noqa: F811 (fixture)
    x = np.array([np.nan, -1.0, 2.0], dtype=F32)
    got = runner.run("relu", {"n": 3, "inplace": 0}, {"x": x})
    assert math.isnan(got[0]) and list(got[1:]) == [0.0, 2.0]


def test_portable_rule_and_call():
    from xdsl.dialects.builtin import TensorType, f32
    from xdsl.ir import Block

    from irtool.targets.c.calling import PORTABLE_CALLS
    from irtool.targets.c.rules import PORTABLE_RULES

    block = Block(arg_types=[TensorType(f32, [3, 8])])
    op = tf.ReluOp(block.args[0])
    call = PORTABLE_RULES.choose(op, lambda v: v, ["y"])
    assert (call.kernel, call.args, dict(call.params)) == \
        ("irt_relu_f32", (block.args[0], "y"), {"n": 24})
    assert PORTABLE_CALLS["irt_relu_f32"].function == "irt_relu_f32"
    assert "irt_relu.h" in PORTABLE_CALLS.headers
