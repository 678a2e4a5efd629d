"""riscv-ulp: an ultra-low-power RV32IMAFC core with Flash, SRAM and DTIM, run on qemu virt.

Everything that is only this target's lives in this folder: its description (memories,
engine, clock, toolchain: riscv64-unknown-elf-gcc + picolibc, qemu-system-riscv32 -icount)
and its lowering rules (`rules.py`: kernels chosen from shapes, in front of the portable C
rules; `quant_rules.py`: the quantized linears in 16-row panels, in front of those).
"""

from pathlib import Path

from irtool.targets.c.target import CTarget
from irtool.targets.riscv_ulp.quant_rules import RULES as QUANT_RULES
from irtool.targets.riscv_ulp.rules import LOWERING


def make_target() -> CTarget:
    return CTarget.from_folder(Path(__file__).resolve().parent, reference="riscv-ulp",
                               rules=LOWERING.extended(QUANT_RULES))
