"""transformer.relu (OPT's MLP activation): the numpy reference against max(x, 0) written here
in plain Python, and its portable lowering rule. (The C kernel irt_relu_f32 is checked in
tests/test_c_runtime.py, in the session's AddressSanitizer/UBSan driver.)"""

from __future__ import annotations

import numpy as np

from irtool.dialects import transformer as tf
from irtool.numerics.transformer import relu
from tests.test_c_runtime import python_relu

F32 = np.float32


def test_numpy_reference():
    x = np.array([-2.5, -0.0, 0.0, 1e-30, -1e-30, 3.0, np.inf, -np.inf, np.nan], dtype=F32)
    got = relu(x)
    assert got.dtype == F32
    np.testing.assert_array_equal(got, np.array(python_relu(x), dtype=F32))
    assert not np.signbit(got[1])  # -0.0 becomes +0.0 as in the C kernel


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
