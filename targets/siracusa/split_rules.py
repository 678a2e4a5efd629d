"""Lowering rules of siracusa for the small per-token ops: norms, RoPE and KV-cache writes
split over the cluster (runtime/sir_rows.c) when the split pays for its fork/join.

A norm splits by rows (a row's reduction stays on one core), RoPE and the int8 KV write by
heads of one token (T = 1) or by rows of a longer block. The modelled time of the parallel
phase is the slowest core's share plus the cluster's `fork_join_cycles` (the description);
the op forks when that is shorter than running it on core 0, from the per-value instruction
estimates below at the cluster's CPI.
Otherwise (a one-token norm, whose single row cannot be split) the portable rule runs it.
"""

from __future__ import annotations

import dataclasses
import math

from irtool.dialects import quant as q
from irtool.dialects import transformer as tf
from irtool.lowering import ArgMap, KernelCall
from irtool.targets.c.rules import int_rms_norm, kv_write_i8, rms_norm, rope
from irtool.targets.description import EngineSpec

RMS_NORM_INSTRUCTIONS = 8
"""Per value of irt_rms_norm_f32 (load, fmadd, multiply twice, store; an estimate)."""
INT_RMS_NORM_INSTRUCTIONS = 20
"""Per value of irt_int_rms_norm_f32 (two rounding converts, int64 square and product)."""
ROPE_INSTRUCTIONS = 6
"""Per value of irt_rope_f32 (a pair: two table loads, four multiply-adds, two stores)."""
KV_WRITE_INSTRUCTIONS = 14
"""Per value of irt_kv_write_i8 (absmax, one fdiv.s, a rounding convert, clip, store)."""


def fork_pays(units: int, per_unit: float, cores: int, fork_join: float) -> bool:
    """Slowest core's share (whole units) plus one fork/join beats one core (all in cycles)."""
    return (cores > 1 and units > 1
            and math.ceil(units / cores) * per_unit + fork_join < units * per_unit)


def _on_cores(call: KernelCall, cores: int) -> KernelCall:
    return dataclasses.replace(call, kernel=call.kernel.replace("irt_", "sir_", 1),
                               params={**call.params, "cores": cores})


def split_rules(cluster: EngineSpec) -> list:
    """(op type, rule) pairs for siracusa's rule set (put before the portable rules)."""
    cores, cpi = cluster.cores, cluster.cpi

    def pays(units: int, per_unit: float) -> bool:
        return fork_pays(units, per_unit * cpi, cores, cluster.fork_join_cycles)

    def norm(portable, per_value: float):
        def rule(op, arg: ArgMap, outs) -> KernelCall | None:
            call = portable(op, arg, outs)
            t, d = call.params["T"], call.params["D"]
            return _on_cores(call, cores) if pays(t, d * per_value) else None
        return rule

    def by_heads_or_rows(portable, heads_param: str, per_value: float):
        def rule(op, arg: ArgMap, outs) -> KernelCall | None:
            call = portable(op, arg, outs)
            p = call.params
            row = p[heads_param] * p["head_dim"] * per_value
            units, per_unit = ((p[heads_param], row / p[heads_param]) if p["T"] == 1
                               else (p["T"], row))
            return _on_cores(call, cores) if pays(units, per_unit) else None
        return rule

    return [(tf.RMSNormOp, norm(rms_norm, RMS_NORM_INSTRUCTIONS)),
            (q.IntRMSNormOp, norm(int_rms_norm, INT_RMS_NORM_INSTRUCTIONS)),
            (tf.RopeOp, by_heads_or_rows(rope, "heads", ROPE_INSTRUCTIONS)),
            (q.KVWriteOp, by_heads_or_rows(kv_write_i8, "kv_heads", KV_WRITE_INSTRUCTIONS))]
