"""siracusa: an 8-core RV32 cluster with L1/L2/L3 and an NPU (Deeploy's Siracusa), run on
qemu-system-riscv32 -M virt -smp 8 with a fork/join runtime of its own (target.py)."""

from irtool.targets.siracusa.target import SiracusaTarget
from irtool.targets.siracusa.target import make_target as _make


def make_target() -> SiracusaTarget:
    target = _make()
    target.reference = "siracusa"
    return target
