"""`SiracusaTarget`: the portable C target on an 8-hart qemu virt with siracusa's start-up,
fork/join runtime and per-hart instruction counts.

What differs from a one-core C target:

* start-up: every hart starts at 0x80000000; `runtime/irt_cluster_entry.S` (section
  `.text.init.enter`, which picolibc's script places first) sends hart 0 to picolibc's crt0
  and parks the others until the first fork. The Makefile links with `-nostartfiles`, the
  entry object before picolibc's `crt0-semihost.o`;
* `make run CORES=N` (default 8) builds the program for a team of N cores and runs it on
  `qemu -smp N` with the TCG plugin `irt_hartcount_plugin.c` (built with the host compiler),
  which prints per-hart instruction counts and the modelled instructions per decode step
  (hart 0's serial work + the slowest core of every parallel phase);
* weights are copied at start-up from the L3 image into L2/L1 (the cluster does not read L3),
  so the pipeline plans with `copy_weights` on.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from pathlib import Path

from irtool.errors import IrtoolError
from irtool.targets.c.emit import TokenTable
from irtool.targets.c.target import CTarget
from irtool.targets.target import PipelineOptions

FOLDER = Path(__file__).resolve().parent
PLUGIN = FOLDER / "plugin" / "irt_hartcount_plugin.c"
HART_STACK_BYTES = 4096
CRT0 = "/usr/lib/picolibc/riscv64-unknown-elf/lib/rv32imafc/ilp32f/crt0-semihost.o"
"""picolibc's semihosting crt0 for rv32imafc/ilp32f (Debian's path; `-print-file-name`
does not find it, ../shared/anchors/CLUSTER_RV32.md). `make PICOLIBC_CRT0=...` overrides."""

REPORT_AT = '    printf("memory (planned arenas)'
DECODE_CALL = "        const float *logits = irt_decode(&tok, pos);\n"
RUN_RULES = """
NM ?= riscv64-unknown-elf-nm
CORES ?= 8
PICOLIBC_CRT0 ?= {crt0}
ENTRY = runtime/irt_cluster_entry.S
QEMU = {qemu}

# the ELF is rebuilt when CORES changes
cores.stamp: FORCE
\t@echo $(CORES) | cmp -s - $@ || echo $(CORES) > $@
FORCE:

irt_hartcount.so: irt_hartcount_plugin.c
\t$(HOST_CC) -shared -fPIC -O2 -Wall -o $@ $<

# the plugin watches the program's marker functions (irt_team.h) at their ELF addresses
run: model.elf irt_hartcount.so
\tmarks=$$($(NM) model.elf | awk '$$3 ~ /^irt_(step|phase|device)_(begin|end)$$/ \\
\t    {{ sub("irt_", "", $$3); printf ",%s=0x%s", $$3, $$1 }}'); \\
\ttimeout $(RUN_TIMEOUT) $(QEMU) -smp $(CORES) -plugin ./irt_hartcount.so$$marks -d plugin \\
\t    -kernel model.elf
"""


class SiracusaTarget(CTarget):
    def stages(self, opts: PipelineOptions) -> dict[str, str]:
        return super().stages(dataclasses.replace(opts, copy_weights=True))

    def main_c(self, prompt: Sequence[int], steps: int, table: TokenTable) -> str:
        text = super().main_c(prompt, steps, table)
        if any(x not in text for x in (DECODE_CALL, REPORT_AT, '#include "irt_target.h"\n')):
            raise IrtoolError("siracusa: the generic main.c changed shape; update "
                              "targets/siracusa/target.py")
        text = text.replace('#include "irt_target.h"\n',
                            '#include "irt_target.h"\n#include "irt_team.h"\n'
                            '#include "npu.h"\n', 1)
        text = text.replace(REPORT_AT, "    npu_report(prefill_calls + decode_calls);\n"
                            + REPORT_AT, 1)
        return text.replace(DECODE_CALL, "        irt_step_begin();\n" + DECODE_CALL
                            + "        irt_step_end();\n", 1)

    def project_files(self, prompt: Sequence[int], steps: int,
                      table: TokenTable) -> dict[str, str]:
        files = super().project_files(prompt, steps, table)
        files["Makefile"] = self.makefile(files["Makefile"])
        files["irt_hartcount_plugin.c"] = PLUGIN.read_text()
        return files

    def makefile(self, generic: str) -> str:
        """The generic Makefile with the multi-hart link and the plugin run."""
        qemu = re.sub(r"\s*-smp \d+", "", self.description.toolchain.run)
        qemu = qemu.replace(" -kernel {elf}", "")
        edits = [
            (r"^CFLAGS_COMMON = (.*)$",
             rf"CFLAGS_COMMON = \1 -DIRT_HART_STACK_BYTES={HART_STACK_BYTES}"),
            (r"^model\.elf: \$\(SRCS\) (.*)$", r"model.elf: $(SRCS) $(ENTRY) cores.stamp \1"),
            (r"^\t\$\(CC_TARGET\) \$\(TARGET_FLAGS\) \$\(CFLAGS_COMMON\) -o \$@ \$\(SRCS\)",
             "\t$(CC_TARGET) $(TARGET_FLAGS) $(CFLAGS_COMMON) -DIRT_CORES=$(CORES) "
             "-nostartfiles -o $@ $(ENTRY) $(PICOLIBC_CRT0) $(SRCS)"),
            (r"^run: model\.elf\n\ttimeout .*\n", ""),
            (r"^\.PHONY: (.*)$", r".PHONY: \1 FORCE"),
            (r"^\trm -f (.*)$", r"\trm -f \1 irt_hartcount.so cores.stamp"),
        ]
        text = generic
        for pattern, repl in edits:
            text, n = re.subn(pattern, repl, text, count=1, flags=re.M)
            if n != 1:
                raise IrtoolError(f"siracusa: the generic Makefile has no line matching "
                                  f"{pattern!r}; update targets/siracusa/target.py")
        return text + RUN_RULES.format(crt0=CRT0, qemu=qemu)


def make_target(folder=FOLDER) -> SiracusaTarget:
    """The target of this folder (or of a copy of it given by path)."""
    from irtool.targets.description import load_description
    from irtool.targets.siracusa.kernels import KERNELS
    from irtool.targets.siracusa.rules import siracusa_rules

    folder = Path(folder)
    description = load_description(folder / "description.json")
    base = CTarget.from_folder(folder)
    calls = base.calls.extended({
        "sir_linear_w8a8": _call("sir_linear_w8a8",
                                 "op:xq val:zx op:w op:m NULL op:y p:T p:K p:N p:cores"),
        "sir_linear_w8a8_bias": _call("sir_linear_w8a8",
                                      "op:xq val:zx op:w op:m op:b op:y p:T p:K p:N p:cores"),
        "sir_linear_f32": _call("sir_linear_f32", "op:x op:w NULL op:y p:T p:K p:N p:cores"),
        "sir_linear_f32_bias": _call("sir_linear_f32",
                                     "op:x op:w op:b op:y p:T p:K p:N p:cores"),
        "npu_linear_w8a8": _call("npu_linear_w8a8",
                                 "op:xq val:zx op:w op:m NULL op:y p:T p:K p:N"),
        "npu_linear_w8a8_bias": _call("npu_linear_w8a8",
                                      "op:xq val:zx op:w op:m op:b op:y p:T p:K p:N"),
    }, headers=("sir_kernels.h", "npu.h"))
    return SiracusaTarget(description, siracusa_rules(description), calls=calls,
                          runtime_dirs=base.runtime_dirs[1:], folder=folder,
                          kernels=KERNELS)


def _call(function: str, args: str):
    from irtool.targets.c.calling import CCall

    return CCall(function, tuple(args.split()))
