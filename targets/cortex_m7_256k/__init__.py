"""cortex-m7-256k: a 480 MHz Cortex-M7 with 256 KiB of SRAM, internal Flash for code and a
16 MiB external QSPI Flash for the model, run on qemu-system-arm -M mps2-an500.

Everything that is only this target's lives in this folder: its description, its runtime
(the SysTick instruction counter under qemu -icount) and `M7Target`, which lays the memories
out at the board's addresses (Flash at 0x0, SRAM at 0x20000000, external Flash at
0x60000000; ../shared/anchors/CORTEX_M7.md) instead of the generic one-MiB-apart layout.
"""

from pathlib import Path

from irtool.targets.cortex_m7_256k.target import M7Target


def make_target() -> M7Target:
    return M7Target.from_folder(Path(__file__).resolve().parent, reference="cortex-m7-256k")
