"""Lowering rules of siracusa: linears split by output rows over the cluster.

A `quant.qlinear` with one multiplier per output channel becomes `sir_linear_w8a8`, a float
`transformer.linear` (the lm_head) `sir_linear_f32`, both with `cores` = the cluster's core
count from the description (the fork/join is inside the kernel, runtime/sir_linear.c); any
other form falls through to the portable single-core rules.
"""

from __future__ import annotations

from irtool.dialects import quant as q
from irtool.dialects import transformer as tf
from irtool.lowering import ArgMap, KernelCall, LoweringRules
from irtool.targets.c.rules import PORTABLE_RULES, cols, rows, with_bias


def cluster_rules(cores: int) -> LoweringRules:
    def qlinear_on_cluster(op: q.QLinearOp, arg: ArgMap, outs) -> KernelCall | None:
        t, k, n = rows(op.input), cols(op.input), rows(op.weight)
        if tuple(op.multiplier.type.get_shape()) != (n,):
            return None
        name, args = with_bias("sir_linear_w8a8", [arg(op.input), arg(op.input_zero_point),
                                                   arg(op.weight), arg(op.multiplier)],
                               op, arg, outs[0])
        return KernelCall(name, tuple(args), {"T": t, "K": k, "N": n, "cores": cores})

    def linear_on_cluster(op: tf.LinearOp, arg: ArgMap, outs) -> KernelCall:
        name, args = with_bias("sir_linear_f32", [arg(op.input), arg(op.weight)], op, arg,
                               outs[0])
        return KernelCall(name, tuple(args), {"T": rows(op.input), "K": cols(op.input),
                                              "N": rows(op.weight), "cores": cores})

    return PORTABLE_RULES.extended([(q.QLinearOp, qlinear_on_cluster),
                                    (tf.LinearOp, linear_on_cluster)])
