"""The mapping report of a compiled siracusa program: for each mode (the batched prefill's
`@prefill` of T tokens, the decode step's `@decode`), which engine runs its W8A8 linears (the
lowering rules' choice by cost.py's formulas) and what the other choice would have cost by the
same formulas, so the user sees why prefill (GEMMs) and decode (GEMVs) are mapped as they are.
"""

from __future__ import annotations

from dataclasses import dataclass

from irtool.targets.description import TargetDescription
from irtool.targets.siracusa.cost import (
    NPU_ENGINE,
    cluster_linear_cycles,
    npu_linear_cycles,
)

LINEARS = ("sir_linear_w8a8", "npu_linear_w8a8")


@dataclass
class ModeMapping:
    """The W8A8 linears of one step function, by engine, with modelled cycles."""

    function: str
    tokens: int
    on_npu: int = 0
    on_cluster: int = 0
    chosen_cycles: float = 0.0
    all_cluster_cycles: float = 0.0
    all_npu_cycles: float | None = 0.0

    def line(self, cores: int) -> str:
        what = ("prefill" if self.function == "prefill" else "decode") + (
            f" ({self.tokens} tokens per call)" if self.function == "prefill" else " (1 token)")
        alt = [f"all on the {cores} cores {self.all_cluster_cycles:,.0f}"]
        if self.all_npu_cycles is not None:
            alt.append(f"all on the NPU {self.all_npu_cycles:,.0f}")
        return (f"mapping of {what}: W8A8 linears {self.on_npu} on the NPU, {self.on_cluster} "
                f"on the {cores} cores: {self.chosen_cycles:,.0f} modelled cycles per call "
                f"(alternatives: {', '.join(alt)})")


def mode_mappings(module, description: TargetDescription) -> list[ModeMapping]:
    from xdsl.dialects import func

    from irtool.dialects import hw

    cluster = description.core
    npu = next((e for e in description.engines if e.name == NPU_ENGINE), None)
    out = []
    for fn in module.body.block.ops:
        if not isinstance(fn, func.FuncOp) or fn.sym_name.data not in ("prefill", "decode"):
            continue
        mode = ModeMapping(fn.sym_name.data, fn.args[0].type.get_shape()[0],
                           all_npu_cycles=0.0 if npu is not None else None)
        for op in fn.walk():
            if (not isinstance(op, (hw.CallOp, hw.AccelOp))
                    or op.kernel.removesuffix("_bias") not in LINEARS):
                continue
            t, k, n = op.param("T"), op.param("K"), op.param("N")
            on_cluster = cluster_linear_cycles(t, k, n, cluster.cores, cluster.cpi)
            on_npu = npu_linear_cycles(npu, t, k, n, cluster.cpi) if npu else None
            accel = isinstance(op, hw.AccelOp)
            mode.on_npu += accel
            mode.on_cluster += not accel
            mode.chosen_cycles += on_npu if accel else on_cluster
            mode.all_cluster_cycles += on_cluster
            if on_npu is not None:
                mode.all_npu_cycles += on_npu
        out.append(mode)
    return out


def mapping_lines(module, description: TargetDescription) -> list[str]:
    return [m.line(description.core.cores) for m in mode_mappings(module, description)]
