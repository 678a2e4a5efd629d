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
from irtool.targets.c.target import HARTCOUNT_PLUGIN as PLUGIN
from irtool.targets.c.target import CTarget
from irtool.targets.description import TargetDescription
from irtool.targets.target import PipelineOptions, quote

FOLDER = Path(__file__).resolve().parent
HART_STACK_BYTES = 4096
WEIGHT_HOME = "l2"
NPU_WEIGHTS = "wmem"
TILE_MAC_CYCLES = 0.55
"""The tile planner's compute per multiply-accumulate: a W8A8 row block on 8 cores (4.25
instructions per MAC / 8, CPI 1)."""
TILE_MAX = 64
"""Most tiles per decode step (a bound on the code size); every tile is one fork/join of the
cluster, which the tile planner charges per tile (the cluster's `fork_join_cycles`)."""
WINDOW_SPACE = "l1"
CRT0 = "/usr/lib/picolibc/riscv64-unknown-elf/lib/rv32imafc/ilp32f/crt0-semihost.o"
"""picolibc's semihosting crt0 for rv32imafc/ilp32f (Debian's path; `-print-file-name`
does not find it, ../shared/anchors/CLUSTER_RV32.md). `make PICOLIBC_CRT0=...` overrides."""

MAKE_VARIABLES = """CORES ?= {cores}
# the ELF is rebuilt when CORES changes
ELF_VARS += CORES
ifeq ($(filter $(CORES),{team_sizes}),)
$(error error: CORES=$(CORES): the cluster has 1 to {cores} cores (make run CORES=1..{cores}))
endif"""
"""`make run CORES=N`: the team's size (default all the cluster's cores) and a stamp of it for
the ELF's build; another size is refused (9 ran a ninth hart the chip has not, 0 one core)."""
RUN_RULES = """
NM ?= riscv64-unknown-elf-nm
PICOLIBC_CRT0 ?= {crt0}
ENTRY = runtime/irt_cluster_entry.S
QEMU = {qemu}

irt_hartcount.so: irt_hartcount_plugin.c
\t$(HOST_CC) -shared -fPIC -O2 -Wall -o $@ $<

# the plugin watches the program's marker functions (irt_team.h) at their ELF addresses
run: model.elf irt_hartcount.so
\tmarks=$$($(NM) model.elf | awk '$$3 ~ /^irt_(step|prefill|phase|device)_(begin|end)$$/ \\
\t    {{ sub("irt_", "", $$3); printf ",%s=0x%s", $$3, $$1 }}'); \\
\ttimeout $(RUN_TIMEOUT) $(QEMU) -smp $(CORES) -plugin ./irt_hartcount.so$$marks -d plugin \\
\t    -kernel model.elf
"""


class SiracusaTarget(CTarget):
    def cost_model(self, schedule: str | None = None):
        """`irtool estimate --target siracusa`: schedules npu, cluster and single (cost.py)."""
        from irtool.targets.siracusa.cost import SCHEDULES, SiracusaCostModel

        schedule = schedule or SCHEDULES[0]
        if schedule not in SCHEDULES:
            raise IrtoolError(f"siracusa has the schedules {', '.join(SCHEDULES)}, not "
                              f"'{schedule}'")
        return SiracusaCostModel(self.description, schedule)

    def stages(self, opts: PipelineOptions) -> dict[str, str]:
        """The generic stages with weights copied at start-up into L2, or into the NPU's
        weight memory for the linears only the NPU runs (the cluster does not read L3, and L1
        stays free for the windows), and `tile` after `allocate`: every weight left in L2
        streams L2 -> L1 through two windows (double-buffered DMA)."""
        stages = super().stages(dataclasses.replace(opts, copy_weights=True))
        weights = f'weights_in="{WEIGHT_HOME},{NPU_WEIGHTS}"'
        lower, n = re.subn(r"(allocate\{[^}]*)\}", rf"\1 {weights}}}", stages["lower"], count=1)
        at = lower.find("lower-to-hw{")
        if n != 1 or at < 0:
            raise IrtoolError("siracusa: the generic pipeline changed shape; update "
                              "targets/siracusa/target.py")
        tile = (f"tile{{target={quote(self.reference)} mac_cycles={TILE_MAC_CYCLES} "
                f"max_tiles={TILE_MAX}}}")
        stages["lower"] = f"{lower[:at]}{tile},{lower[at:]}"
        return stages

    def mapping_report(self, module) -> list[str]:
        from irtool.targets.siracusa.mapping import mapping_lines

        return mapping_lines(module, self.description)

    def project(self, module, store):
        check_streamed(module, self.description)
        return super().project(module, store)

    default_prefill = "batched"

    stream_window_refusal = ("sizes its L2 -> L1 weight tiles itself (the tile pass: "
                             "tile{max_tiles=N} with irtool-opt), with no cap per window")

    def main_hooks(self) -> str:
        """The team, NPU and DMA headers; the plugin's markers around each decode step and
        each batched prefill call, outside which the NPU's and DMA's counters set a prefill
        call's work apart (their per-step figures are the decode steps'); their counts after
        the run."""
        return "\n".join([
            '#include "irt_team.h"', '#include "npu.h"', '#include "irt_dma.h"',
            "#define IRT_STEP_BEGIN() irt_step_begin()",
            "#define IRT_STEP_END() irt_step_end()",
            "#define IRT_PREFILL_BEGIN() \\",
            "    do { npu_prefill_mark(0); irt_dma_prefill_mark(0); irt_prefill_begin(); } "
            "while (0)",
            "#define IRT_PREFILL_END() \\",
            "    do { irt_prefill_end(); npu_prefill_mark(1); irt_dma_prefill_mark(1); } while (0)",
            "#define IRT_REPORT(steps) \\",
            "    do { npu_report(steps); irt_dma_report(steps); IRT_MINSTRET_NOTE(); } while (0)",
            # minstret is one counter for every hart, and qemu runs the NPU model and the DMA
            # memcpy on them: main.c's instruction lines are not the cluster's time
            "#define IRT_MINSTRET_NOTE() \\",
            "    do { if (IRT_HAS_INSTRUCTION_COUNTER) printf( \\",
            "        \"instructions per token above: minstret, one counter for every hart, \" \\",
            "        \"the NPU and DMA models included; the cluster's time per step is \" \\",
            "        \"hartcount's per-step\\n\"); } while (0)",
            ""])

    def make_variables(self) -> str:
        cores = self.description.core.cores
        return MAKE_VARIABLES.format(cores=cores,
                                     team_sizes=" ".join(map(str, range(1, cores + 1))))

    def project_files(self, prompt: Sequence[int], steps: int,
                      table: TokenTable) -> dict[str, str]:
        files = super().project_files(prompt, steps, table)
        files["Makefile"] = self.makefile(files["Makefile"])
        files["irt_hartcount_plugin.c"] = PLUGIN.read_text()
        files["irt_sir_link.h"] = link_header(self.description)
        return files

    def makefile(self, generic: str) -> str:
        """The generic Makefile with the multi-hart link and the plugin run."""
        qemu = re.sub(r"\s*-smp \d+", "", self.description.toolchain.run)
        qemu = qemu.replace(" -kernel {elf}", "")
        edits = [
            (r"^CFLAGS_COMMON = (.*)$",
             rf"CFLAGS_COMMON = \1 -DIRT_HART_STACK_BYTES={HART_STACK_BYTES}"),
            (r"^model\.elf: \$\(SRCS\) (.*)$", r"model.elf: $(SRCS) $(ENTRY) \1"),
            (r"^\t\$\(CC_TARGET\) \$\(TARGET_FLAGS\) \$\(CFLAGS_COMMON\) -o \$@ \$\(SRCS\)",
             "\t$(CC_TARGET) $(TARGET_FLAGS) $(CFLAGS_COMMON) -DIRT_CORES=$(CORES) "
             "-nostartfiles -o $@ $(ENTRY) $(PICOLIBC_CRT0) $(SRCS)"),
            (r"^run: model\.elf\n\ttimeout .*\n", ""),
            (r"^\trm -f (model\.elf .*)$", r"\trm -f \1 irt_hartcount.so"),
        ]
        text = generic
        for pattern, repl in edits:
            text, n = re.subn(pattern, repl, text, count=1, flags=re.M)
            if n != 1:
                raise IrtoolError(f"siracusa: the generic Makefile has no line matching "
                                  f"{pattern!r}; update targets/siracusa/target.py")
        return text + RUN_RULES.format(crt0=CRT0, qemu=qemu)


def link_header(description: TargetDescription) -> str:
    link = description.link(WEIGHT_HOME, WINDOW_SPACE)
    if link is None:
        raise IrtoolError(f"target {description.name}: no DMA link {WEIGHT_HOME} -> "
                          f"{WINDOW_SPACE} in the description (the tile windows need it)")
    return "\n".join([
        f"/* Generated by irtool: the {WEIGHT_HOME} -> {WINDOW_SPACE} DMA link of "
        f"{description.name}. */",
        "#ifndef IRT_SIR_LINK_H", "#define IRT_SIR_LINK_H",
        f"#define IRT_DMA_BYTES_PER_CYCLE {float(link.bytes_per_cycle)!r}",
        f"#define IRT_DMA_SETUP_CYCLES {link.setup_cycles}", "#endif", ""])


def check_streamed(module, description: TargetDescription) -> None:
    """Every linear's weight left in L2 must stream through L1: refuse a plan where L1 had no
    room for two windows of one weight row (the tile pass then reads weights in place)."""
    from irtool.dialects import memory
    from irtool.ir_names import DECODE, STREAM_ATTR
    from irtool.liveness import placed_end

    # (name, rows, bytes per row) of each matrix left in L2
    mats = [(op.sym_name.data, op.type.get_shape()[0], nbytes // op.type.get_shape()[0])
            for op in module.walk() if isinstance(op, memory.GlobalOp)
            and op.kind.data == "weight" and op.placement[0] == WEIGHT_HOME
            and len(op.type.get_shape()) == 2
            for nbytes in [_nbytes(op.type)]]
    if STREAM_ATTR in module.attributes or not mats:
        return
    l1 = description.memory(WINDOW_SPACE)
    # what is live while @decode runs (a batched prefill's activations are not)
    used = placed_end(module, WINDOW_SPACE, DECODE)
    # the tile pass streams all of them in at most TILE_MAX tiles in all, through two windows
    # in what the plan leaves of L1 (the room of one row alone, which the message once gave,
    # can be far too little)
    free = max(0, l1.capacity - used)
    window = free // 2
    have = _tiles_needed(mats, window)
    head = (f"siracusa: L1 ({WINDOW_SPACE}, {l1.capacity} bytes, {used} used by the plan "
            "while decode runs) "
            f"leaves two DMA windows of {window} bytes; the {len(mats)} matrices left in L2 "
            f"stream in at most {TILE_MAX} tiles in all")
    if len(mats) > TILE_MAX:  # one tile each is already too many
        raise IrtoolError(f"{head}, one tile each at the least: keep fewer matrices in L2 (a "
                          "smaller model, or the NPU's weight memory for the W8A8 linears)")
    smallest = _smallest_window(mats)
    raise IrtoolError(
        f"{head}, and windows of {window} bytes "
        + (f"need {have} tiles" if have is not None else "do not hold one row of each")
        + f": give {WINDOW_SPACE} at least about {used + 2 * smallest} bytes in the "
        "description, or a smaller KV capacity (or fewer --prefill-tokens) so that "
        "activations and cache leave room")


def _smallest_window(mats) -> int:
    """The smallest window (bytes) through which every matrix streams in at most TILE_MAX
    tiles in all (bisection: fewer tiles as the window grows; one each at the largest)."""
    lo, hi = max(row for _, _, row in mats), max(n * row for _, n, row in mats)
    while lo < hi:
        mid = (lo + hi) // 2
        if (_tiles_needed(mats, mid) or TILE_MAX + 1) <= TILE_MAX:
            hi = mid
        else:
            lo = mid + 1
    return lo


def _tiles_needed(mats, window: int) -> int | None:
    """Tiles of whole rows that stream every matrix `(name, rows, row bytes)` through windows
    of `window` bytes, or None when a row does not fit one."""
    total = 0
    for _, n, row in mats:
        per = window // row
        if per < 1:
            return None
        total += -(-n // per)
    return total


def _nbytes(t) -> int:
    from irtool.targets.c.emit import nbytes

    return nbytes(t)


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
        "sir_silu_f32": _call("sir_silu_f32", "op:x op:y p:n p:cores"),
        "sir_int_silu_f32": _call("sir_int_silu_f32", "op:x op:y p:n p:cores"),
        **{name: _call(name, "op:x op:g op:y p:T p:D p:eps p:cores")
           for name in ("sir_rms_norm_f32", "sir_int_rms_norm_f32")},
        "sir_rope_f32": _call("sir_rope_f32", "op:x op:cos op:sin op:y p:T p:heads p:head_dim "
                                              "p:rotary_dim op:start p:style p:cores"),
        "sir_kv_write_i8": _call("sir_kv_write_i8", "op:cache op:scales op:new p:layer "
                                 "p:kv_heads p:capacity p:head_dim p:T op:pos p:ring p:cores"),
        "sir_quantize_act_i8": _call("sir_quantize_act_i8",
                                     "op:x op:xq p:n val:scale val:zp p:cores"),
        "sir_quantize_act_i8_sym": _call("sir_quantize_act_i8",
                                         "op:x op:xq p:n val:scale p:zero_point p:cores"),
        **{name: _call(name, "op:q op:kcache op:kscales op:vcache op:vscales op:out SCRATCH "
                             "p:layer p:heads p:kv_heads p:head_dim p:capacity p:T op:end "
                             "p:ring p:scale p:cores")
           for name in ("sir_cached_attention_i8", "sir_cached_attention_i8_isoftmax")},
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
