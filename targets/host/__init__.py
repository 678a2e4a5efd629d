"""host: the development machine itself, one flat RAM, the system C compiler, run natively.

Used to plan and check memory layouts and to run a compiled model without a cross toolchain
(`irtool compile --target host -o DIR && make -C DIR run`).
"""

from pathlib import Path

from irtool.targets.c.target import CTarget


def make_target() -> CTarget:
    return CTarget.from_folder(Path(__file__).resolve().parent, reference="host")
