"""Interpreter implementations of the `hw` dialect.

A `hw.call` runs the numpy reference of its kernel signature (`irtool.kernels`), the same
reference the C kernels are tested against; buffers are the numpy arrays (arena views once placed) that
the memory-level interpreter hands out.
"""

from __future__ import annotations

from xdsl.interpreter import Interpreter, InterpreterFunctions, impl, register_impls

from irtool.dialects import hw
from irtool.kernels import checked_signature


@register_impls
class HwFunctions(InterpreterFunctions):
    @impl(hw.CallOp)
    def run_call(self, interpreter: Interpreter, op: hw.CallOp, args):
        spec = checked_signature(op)
        spec.reference(dict(zip(spec.operands, args)), {k: op.param(k) for k in spec.params})
        return ()

    @impl(hw.ParallelOp)
    def run_parallel(self, interpreter: Interpreter, op: hw.ParallelOp, args):
        interpreter.run_ssacfg_region(op.body, (), "hw.parallel")
        return ()

    @impl(hw.AccelOp)
    def run_accel(self, interpreter: Interpreter, op: hw.AccelOp, args):
        spec = checked_signature(op)
        spec.reference(dict(zip(spec.operands, args)), {k: op.param(k) for k in spec.params})
        return ()
