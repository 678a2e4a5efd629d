"""Lowering rules of siracusa: linears split by output rows over the cluster, or offloaded to
the NPU where its cycle formula beats the cluster's (cost.py).

A `quant.qlinear` with one multiplier per output channel becomes `hw.accel npu
@npu_linear_w8a8` when the description has an NPU and the NPU is cheaper, else
`sir_linear_w8a8`; a float `transformer.linear` (the lm_head) becomes `sir_linear_f32`; the
cluster kernels carry `cores` = the cluster's core count (the fork/join is inside the kernel,
runtime/sir_linear.c); attention over the int8 cache for one token becomes
`sir_cached_attention_i8`, its heads shared among the cores (runtime/sir_attention.c); SiLU
and activation quantization large enough to pay a fork/join are split by values
(runtime/sir_elementwise.c); norms, RoPE and KV writes by rows or heads when that pays
(split_rules.py). Any other form falls through to the portable single-core rules.
"""

from __future__ import annotations

from irtool.dialects import quant as q
from irtool.dialects import transformer as tf
from irtool.lowering import ArgMap, KernelCall, LoweringRules
from irtool.targets.c.rules import (
    PORTABLE_RULES,
    cached_attention_i8,
    cols,
    int_silu,
    quantize,
    rows,
    silu,
    with_bias,
)
from irtool.targets.description import TargetDescription
from irtool.targets.siracusa.cost import (
    FORK_JOIN_INSTRUCTIONS,
    cluster_linear_cycles,
    npu_linear_cycles,
)
from irtool.targets.siracusa.cost import NPU_ENGINE as NPU
from irtool.targets.siracusa.split_rules import split_rules

SILU_INSTRUCTIONS = 50
"""Per value of irt_silu_f32 on RV32IMF (an expf call dominates; an estimate)."""
INT_SILU_INSTRUCTIONS = 30
"""Per value of irt_int_silu_f32 (a rounding convert, the exp's divide and multiplies, one
32-bit divide, an int64 multiply; an estimate)."""
QUANTIZE_INSTRUCTIONS = 12
"""Per value of irt_quantize_act_i8 (one fdiv.s, a rounding convert, clips; an estimate)."""
PARALLEL_MIN_INSTRUCTIONS = 4 * FORK_JOIN_INSTRUCTIONS
"""An elementwise op forks when its work is at least four fork/joins."""


def siracusa_rules(description: TargetDescription) -> LoweringRules:
    cluster = description.core
    npu = next((e for e in description.engines if e.name == NPU), None)

    def qlinear(op: q.QLinearOp, arg: ArgMap, outs) -> KernelCall | None:
        t, k, n = rows(op.input), cols(op.input), rows(op.weight)
        if tuple(op.multiplier.type.get_shape()) != (n,):
            return None
        on_npu = npu is not None and (npu_linear_cycles(npu, t, k, n, cluster.cpi)
                                      < cluster_linear_cycles(t, k, n, cluster.cores,
                                                              cluster.cpi))
        kernel = "npu_linear_w8a8" if on_npu else "sir_linear_w8a8"
        name, args = with_bias(kernel, [arg(op.input), arg(op.input_zero_point),
                                        arg(op.weight), arg(op.multiplier)], op, arg, outs[0])
        if on_npu:
            return KernelCall(name, tuple(args), {"T": t, "K": k, "N": n}, engine=NPU)
        return KernelCall(name, tuple(args), {"T": t, "K": k, "N": n, "cores": cluster.cores})

    def linear(op: tf.LinearOp, arg: ArgMap, outs) -> KernelCall | None:
        if op.acc is not None:  # a piece of a row streamed along K: the portable kernel
            return None
        name, args = with_bias("sir_linear_f32", [arg(op.input), arg(op.weight)], op, arg,
                               outs[0])
        return KernelCall(name, tuple(args), {"T": rows(op.input), "K": cols(op.input),
                                              "N": rows(op.weight), "cores": cluster.cores})

    def attention(op: q.CachedAttentionOp, arg: ArgMap, outs) -> KernelCall | None:
        call = cached_attention_i8(op, arg, outs)
        if call.params["T"] != 1 and call.params["ring"]:  # sir_attention.c: rows unwrapped
            return None
        return KernelCall(call.kernel.replace("irt_", "sir_", 1), call.args,
                          {**call.params, "cores": cluster.cores})

    def elementwise(portable, per_value: float):
        """The portable rule's call on the cores when its values are worth a fork."""
        def rule(op, arg: ArgMap, outs) -> KernelCall | None:
            call = portable(op, arg, outs)
            if call.params["n"] * per_value < PARALLEL_MIN_INSTRUCTIONS:
                return None
            return KernelCall(call.kernel.replace("irt_", "sir_", 1), call.args,
                              {**call.params, "cores": cluster.cores})
        return rule

    return PORTABLE_RULES.extended([
        (q.QLinearOp, qlinear), (tf.LinearOp, linear), (q.CachedAttentionOp, attention),
        (tf.SiluOp, elementwise(silu, SILU_INSTRUCTIONS)),
        (q.IntSiluOp, elementwise(int_silu, INT_SILU_INSTRUCTIONS)),
        (q.QuantizeOp, elementwise(quantize, QUANTIZE_INSTRUCTIONS)),
        *split_rules(cluster)])
