"""riscv-ulp: an ultra-low-power RV32IMAFC core with Flash, SRAM and DTIM, run on qemu virt.

Everything that is only this target's lives in this folder: its description (memories,
engine, clock, toolchain: riscv64-unknown-elf-gcc + picolibc, qemu-system-riscv32 -icount).
It uses the portable C rules and kernels.
"""

from pathlib import Path

from irtool.targets.c.target import CTarget


def make_target() -> CTarget:
    return CTarget.from_folder(Path(__file__).resolve().parent, reference="riscv-ulp")
