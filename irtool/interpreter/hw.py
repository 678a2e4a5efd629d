"""Interpreter implementations of the `hw` dialect.

A `hw.call` runs the numpy reference of its kernel signature (`irtool.kernels`), the same
reference the C kernels are tested against; buffers are the numpy arrays (arena views once
placed) that the memory-level interpreter hands out. Before a kernel runs, the parts of the
operands it writes that overlap an operand it only reads, of another buffer, are poisoned (see
`irtool.interpreter.memory.poison_overlapping_outs`): a plan that puts a kernel's output on its
own still-needed input fails here as it would in C. (`may_alias` in a signature allows the
written operand to BE the read one, the same value; that is never poisoned.)
"""

from __future__ import annotations

from xdsl.interpreter import Interpreter, InterpreterFunctions, impl, register_impls

from irtool.adapter_guard import runs_compiled
from irtool.dialects import hw
from irtool.interpreter.memory import poison_overlapping_outs
from irtool.kernels import checked_signature


@register_impls
class HwFunctions(InterpreterFunctions):
    @impl(hw.CallOp)
    def run_call(self, interpreter: Interpreter, op: hw.CallOp, args):
        _run(op, args)
        return ()

    @impl(hw.ParallelOp)
    def run_parallel(self, interpreter: Interpreter, op: hw.ParallelOp, args):
        interpreter.run_ssacfg_region(op.body, (), "hw.parallel")
        return ()

    @impl(hw.AccelOp)
    def run_accel(self, interpreter: Interpreter, op: hw.AccelOp, args):
        _run(op, args)
        return ()


def _run(op: hw.CallOp | hw.AccelOp, args) -> None:
    """Run the kernel's numpy reference on the operands, after poisoning (module docstring);
    a task adapter's kernel not at all when the base model alone is chosen."""
    if not runs_compiled(op):
        return
    spec = checked_signature(op)
    named = list(zip(spec.operands, op.args, args, strict=False))
    poison_overlapping_outs([(v, a) for n, v, a in named if n in spec.writes],
                            [(v, a) for n, v, a in named if n not in spec.writes])
    spec.reference({n: a for n, _, a in named}, {k: op.param(k) for k in spec.params})
