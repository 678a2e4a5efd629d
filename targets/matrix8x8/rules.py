"""Lowering rules of matrix8x8: W8A8 linears go to the unit, everything else to the host."""

from __future__ import annotations

from irtool.dialects import quant as q
from irtool.lowering import ArgMap, KernelCall
from irtool.targets.c.rules import PORTABLE_RULES, cols, rows, with_bias

ENGINE = "mxu"


def qlinear_on_unit(op: q.QLinearOp, arg: ArgMap, outs) -> KernelCall | None:
    """A quant.qlinear with one multiplier per output channel becomes an `hw.accel` of the
    unit's tiled kernel; any other form falls through to the host's rule."""
    t, k, n = rows(op.input), cols(op.input), rows(op.weight)
    if tuple(op.multiplier.type.get_shape()) != (n,):
        return None
    name, args = with_bias("mxu_linear_w8a8", [arg(op.input), arg(op.input_zero_point),
                                               arg(op.weight), arg(op.multiplier)],
                           op, arg, outs[0])
    return KernelCall(name, tuple(args), {"T": t, "K": k, "N": n}, engine=ENGINE)


RULES = PORTABLE_RULES.extended([(q.QLinearOp, qlinear_on_unit)])
