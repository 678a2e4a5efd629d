"""matrix8x8: the riscv-ulp host core plus one 8x8 matrix-multiply unit (engine `mxu`).

W8A8 linears (quant.qlinear from the quantize pass) become `hw.accel mxu @mxu_linear_w8a8`;
everything else runs on the host through the portable rules. On qemu the unit is the C model
in runtime/ behind its driver API (mxu_write / mxu_read / mxu_start / mxu_wait), which
counts tiles, words moved and cycles; the program prints them after generation, and
`irtool estimate --target matrix8x8` predicts the same figures (cost.py).
"""

from __future__ import annotations

from pathlib import Path

from irtool.targets.c.calling import CCall
from irtool.targets.c.target import CTarget

FOLDER = Path(__file__).resolve().parent


class Matrix8x8Target(CTarget):
    def cost_model(self, schedule: str | None = None):
        from irtool.errors import IrtoolError
        from irtool.targets.matrix8x8.cost import SCHEDULES, MxuCostModel

        schedule = schedule or "irtool"
        if schedule not in SCHEDULES:
            raise IrtoolError(f"matrix8x8 has the schedules {', '.join(SCHEDULES)}, not "
                              f"'{schedule}'")
        return MxuCostModel(self.description, schedule)

    def main_c(self, prompt, steps, table) -> str:
        text = super().main_c(prompt, steps, table)
        text = text.replace('#include "irt_target.h"\n',
                            '#include "irt_target.h"\n#include "mxu.h"\n', 1)
        return text.replace('    printf("memory (planned arenas)',
                            '    irt_mxu_report(prefill_calls + decode_calls);\n'
                            '    printf("memory (planned arenas)', 1)


def make_target() -> Matrix8x8Target:
    from irtool.targets.matrix8x8.kernels import KERNELS
    from irtool.targets.matrix8x8.rules import RULES

    base = CTarget.from_folder(FOLDER)
    calls = base.calls.extended({
        "mxu_linear_w8a8": CCall("mxu_linear_w8a8",
                                 ("op:xq", "val:zx", "op:w", "op:m", "NULL", "op:y", "p:T",
                                  "p:K", "p:N")),
        "mxu_linear_w8a8_bias": CCall("mxu_linear_w8a8",
                                      ("op:xq", "val:zx", "op:w", "op:m", "op:b", "op:y",
                                       "p:T", "p:K", "p:N"))}, headers=("mxu.h",))
    return Matrix8x8Target(base.description, RULES, calls=calls,
                           runtime_dirs=base.runtime_dirs[1:], folder=FOLDER,
                           reference="matrix8x8", kernels=KERNELS)
