"""Findings of the irtool-opt user audit that a filecheck file cannot pin down as well: a
hw.call whose parameters disagree with its buffers (the C kernels walk buffers by their
parameters alone, so such a call ran past its buffers on the device while the interpreter,
which reads the buffers' own shapes, computed the right numbers)."""

from __future__ import annotations

import pytest

from irtool.errors import IrtoolError
from irtool.kernels import checked_signature
from irtool.module_io import parse_module

RMS = """
func.func @f(%x: memref<2x8xf32>, %g: memref<8xf32>, %y: memref<2x8xf32>) {
  hw.call @irt_rms_norm_f32(%x, %g, %y) params {T = 2 : i64, D = DIM : i64, eps = 1.0e-05 : f32}
    : memref<2x8xf32>, memref<8xf32>, memref<2x8xf32>
  func.return
}
"""

LINEAR = """
func.func @f(%x: memref<1x8xf32>, %w: memref<4x8xf32>, %b: memref<4xf32>,
             %y: memref<1x4xf32>) {
  hw.call @irt_linear_bias_f32(%x, %w, %b, %y) params {T = 1 : i64, K = 8 : i64, N = OUT : i64}
    : memref<1x8xf32>, memref<4x8xf32>, memref<4xf32>, memref<1x4xf32>
  func.return
}
"""


def _call(text: str):
    module = parse_module(text, "test")
    return next(op for op in module.walk() if op.name == "hw.call")


def test_a_call_whose_parameters_fit_its_buffers_is_accepted():
    assert checked_signature(_call(RMS.replace("DIM", "8"))).name == "irt_rms_norm_f32"
    assert checked_signature(_call(LINEAR.replace("OUT", "4"))).name == "irt_linear_bias_f32"


@pytest.mark.parametrize("text,message", [
    (RMS.replace("DIM", "80"), "'x' holds 16 elements but its parameters T * D = 160"),
    (RMS.replace("DIM", "4"), "'x' holds 16 elements but its parameters T * D = 8"),
    (LINEAR.replace("OUT", "5"), "'w' holds 32 elements but its parameters N * K = 40"),
])
def test_a_call_whose_parameters_overrun_its_buffers_is_refused(text, message):
    with pytest.raises(IrtoolError, match=message.replace("*", r"\*")):
        checked_signature(_call(text))
