"""riscv-ulp: instructions, memory and multiply-accumulates of compiled models on qemu.

    .venv/bin/python bench/riscv_ulp.py [--keep DIR] [--time-limit 10]
    LLAMA2C_DIR=/path/to/llama2.c .venv/bin/python bench/riscv_ulp.py   # also run.c, measured

Compiles with `irtool compile --target riscv-ulp` (in process, so the placed module is at
hand), cross-builds for rv32imafc (picolibc, semihosting), runs under
`qemu-system-riscv32 -icount shift=0` and prints, per run:

* instructions per prompt token and per generated token (`minstret`, exact under icount);
* the multiply-accumulates of one generated token, counted from the hw-level `@decode`: the
  `T*K*N` of every linear/matmul kernel call, plus `2 * heads * head_dim` per cached position
  for every cached_attention call (q.k and p.v), averaged over the generated positions; and the
  instructions per multiply-accumulate;
* the ELF: code (.init + .text up to `__text_end`), .rodata (the rest of picolibc's .text
  output section), .data, .bss, the stack reserved by the linker script; Flash used (code,
  constants, weights arena and the .data image), the SRAM and DTIM arenas (the allocator's
  plan) and peak RAM = SRAM + DTIM arenas + .data + .bss + stack.

Runs: stories260K and nanogpt-tiny with their golden prompts and 64 steps; stories260K over
256 positions (prompt + 252 steps, KV capacity 256), comparable with llama2.c's run.c average;
and the same 256 positions with `--window 64` (a 64-position ring KV cache: the RAM figure).

run.c: with LLAMA2C_DIR naming a checkout of karpathy/llama2.c, its run.c (unmodified) is
built for the same core and model in a temporary folder outside the repository, following
../shared/anchors/RV32.md (a small shim supplies what picolibc lacks: mmap over read(),
clock_gettime, the arguments, whose prompt has spaces), and run over 256 positions; the
instructions of every `forward` call are counted with -finstrument-functions hooks limited
to `forward` (the kernels it calls are excluded). Without LLAMA2C_DIR the figures of RV32.md
are printed instead, labelled as such.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT.parent / "shared" / "models"
TARGET = "riscv-ulp"
RV_CC = "riscv64-unknown-elf-gcc"
QEMU_TIMEOUT = 1200

# ../shared/anchors/RV32.md: run.c, unmodified, -O2, same qemu, stories260K, 256 positions.
RUNC_REFERENCE = {
    "instr_prompt": 1_770_944,         # positions 1-3
    "instr_generated": 3_009_310,      # mean of positions 4-255
    "per_position": "1,720,128 + 9,958 * p",
    "instr_per_mac": "about 6 (279,808 MACs per token)",
    "peak_heap": 1_747_752,
    "text": "about 40 KB",
}


@dataclass
class Case:
    label: str
    model: Path
    tokenizer: Path
    golden: Path
    steps: int
    capacity: int | None = None
    window: int | None = None
    sram: int | None = None
    """Bytes of SRAM when the shipped description's is too small (a bench-only variant)."""
    figures: dict = field(default_factory=dict)


def cases() -> list[Case]:
    s = MODELS / "stories260K"
    n = MODELS / "nanogpt-tiny"
    return [
        Case("stories260K", s / "stories260K.bin", s / "tok512.bin", s / "golden.json", 64,
             capacity=128),
        Case("nanogpt-tiny", n / "nanogpt.onnx", n / "vocab.json", n / "golden.json", 64,
             capacity=80),
        # 256 positions of fp32 KV cache (327,680 B) exceed the 240 KiB the SRAM leaves to
        # the plan (at most 192 fit): this run uses the same core with a 512 KiB SRAM
        Case("stories260K 256 pos", s / "stories260K.bin", s / "tok512.bin", s / "golden.json",
             252, capacity=256, sram=512 * 1024),
        Case("stories260K win 64", s / "stories260K.bin", s / "tok512.bin", s / "golden.json",
             252, window=64),
    ]


# --- irtool ------------------------------------------------------------------------------------

def _sh(cmd, cwd=None, timeout=QEMU_TIMEOUT) -> str:
    proc = subprocess.run([str(c) for c in cmd], cwd=cwd, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, cmd))} failed:\n{proc.stdout[-4000:]}")
    return proc.stdout


VARIANT_PLUGIN = """from pathlib import Path

from irtool.targets.c.target import CTarget
from irtool.targets.riscv_ulp.rules import LOWERING


def make_target(folder):
    return CTarget.from_folder(Path(folder), rules=LOWERING)
"""


def target_for(case: Case, work: Path) -> tuple[str, Path]:
    """The target to compile for (as `--target` takes it) and its description: the shipped
    riscv-ulp, or a target folder with a copy of its description with a larger SRAM and the
    same lowering rules (a plug-in `target.py`)."""
    shipped = ROOT / "targets" / TARGET.replace("-", "_") / "description.json"
    if case.sram is None:
        return TARGET, shipped
    data = json.loads(shipped.read_text())
    data["name"] = f"{TARGET}-sram{case.sram // 1024}k"
    for m in data["memories"]:
        if m["name"] == "sram":
            m["size"] = case.sram
    folder = work / data["name"]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "description.json").write_text(json.dumps(data, indent=2))
    (folder / "target.py").write_text(VARIANT_PLUGIN)
    return str(folder), folder / "description.json"


def compile_case(case: Case, out: Path, target: str, time_limit: float):
    from irtool.compile import CompileOptions, compile_to_c
    from irtool.frontend.load import import_model
    from irtool.tokenizer import load_tokenizer

    golden = json.loads(case.golden.read_text())
    module, store = import_model(case.model)
    opts = CompileOptions(target=target, capacity=case.capacity, window=case.window,
                          time_limit=time_limit)
    compile_to_c(module, store, out, prompt=golden["prompt_ids"], steps=case.steps,
                 tokenizer=load_tokenizer(case.tokenizer), opts=opts)
    return module, golden


LINEAR_KERNELS = ("irt_linear_f32", "irt_linear_bias_f32", "irt_linear_packed_f32",
                  "irt_linear_packed_bias_f32", "irt_linear_packed_residual_f32",
                  "irt_linear_packed_kv_f32")
ATTENTION_KERNELS = ("irt_cached_attention_f32", "irt_cached_attention_hd8_f32")


def kernel_macs(module, positions: int) -> dict[str, float]:
    """MACs per position by C function (as irt_profile.h names them: without `irt_`), the
    attention's averaged over positions 0 .. positions-1."""
    from xdsl.dialects import func

    from irtool.dialects import hw
    from irtool.targets.c.calling import PORTABLE_CALLS

    decode = next(op for op in module.ops
                  if isinstance(op, func.FuncOp) and op.sym_name.data == "decode")
    out: dict[str, float] = {}
    for op in decode.walk():
        if not isinstance(op, hw.CallOp) or op.kernel not in PORTABLE_CALLS:
            continue
        name = PORTABLE_CALLS[op.kernel].function.removeprefix("irt_")
        if op.kernel in LINEAR_KERNELS:
            macs = op.param("T") * op.param("K") * op.param("N")
        elif op.kernel in ATTENTION_KERNELS:
            per = 2 * op.param("heads") * op.param("head_dim") * op.param("T")
            macs = sum(per * min(p + 1, op.param("capacity"))
                       for p in range(positions)) / positions
        else:
            continue
        out[name] = out.get(name, 0) + macs
    return out


def decode_macs(module) -> tuple[int, list[tuple[int, int]]]:
    """(MACs of the linear/matmul calls of one decode step, [(MACs per cached position,
    positions the cache holds)] of its cached_attention calls)."""
    from irtool.dialects import hw
    from irtool.ir_names import DECODE, entry_points

    decode = entry_points(module)[DECODE]
    linear, attention = 0, []
    for op in decode.walk():
        if not isinstance(op, hw.CallOp):
            continue
        if op.kernel in LINEAR_KERNELS:
            linear += op.param("T") * op.param("K") * op.param("N")
        elif op.kernel == "irt_matmul_f32":
            linear += op.param("M") * op.param("K") * op.param("N")
        elif op.kernel in ATTENTION_KERNELS:
            attention.append((2 * op.param("heads") * op.param("head_dim") * op.param("T"),
                              op.param("capacity")))
    return linear, attention


def elf_figures(project: Path, target: dict) -> dict:
    elf = project / "model.elf"
    secs = {}
    for line in _sh(["riscv64-unknown-elf-size", "-A", elf]).splitlines():
        p = line.split()
        if len(p) == 3 and p[0].startswith(".") and p[1].isdigit():
            secs[p[0]] = (int(p[1]), int(p[2]))
    syms = {}
    for line in _sh(["riscv64-unknown-elf-nm", elf]).splitlines():
        p = line.split()
        if len(p) == 3:
            syms[p[2]] = int(p[0], 16)
    text_size, text_addr = secs[".text"]
    code = secs[".init"][0] + syms["__text_end"] - text_addr
    rodata = text_addr + text_size - syms["__text_end"]
    # Flash image: every loaded byte whose load address lies in Flash
    base = secs[".init"][1]
    flash_end = base
    for line in _sh(["riscv64-unknown-elf-readelf", "-lW", elf]).splitlines():
        p = line.split()
        if p and p[0] == "LOAD":
            phys, filesz = int(p[3], 16), int(p[4], 16)
            if base <= phys < base + target["flash"]["size"] and filesz:
                flash_end = max(flash_end, phys + filesz)
    get = lambda s: secs.get(s, (0, 0))[0]  # noqa: E731
    ram = get(".sram") + get(".dtim") + get(".data") + get(".bss") + get(".stack")
    return {"code": code, "rodata": rodata, "data": get(".data"), "bss": get(".bss"),
            "stack": get(".stack"), "weights": get(".flash"), "flash": flash_end - base,
            "sram": get(".sram"), "dtim": get(".dtim"), "ram": ram}


def run_case(case: Case, work: Path, time_limit: float) -> None:
    out = work / re.sub(r"\W+", "_", case.label)
    target_spec, target_json = target_for(case, work)
    target = {m["name"]: m for m in json.loads(target_json.read_text())["memories"]}
    case.figures["target"] = json.loads(target_json.read_text())["name"]
    module, golden = compile_case(case, out, target_spec, time_limit)
    _sh(["make", "-s", "model.elf"], cwd=out)
    t0 = time.perf_counter()
    output = _sh(["make", "-s", "run"], cwd=out)
    wall = time.perf_counter() - t0
    f = case.figures
    tokens = [int(t) for t in re.search(r"^tokens: ([0-9,]*)$", output, re.M).group(1).split(",")]
    n_prompt = len(golden["prompt_ids"])
    f["prompt"] = n_prompt
    f["generated"] = len(tokens)
    f["positions"] = n_prompt + len(tokens) - 1  # the last generated token is not fed back
    f["golden"] = ("yes" if tokens[:64] == golden["new_ids"] else "no") \
        if case.window is None else "n/a"
    f["instr_prompt"] = int(re.search(r"per prompt token: (\d+)", output).group(1))
    f["instr_generated"] = int(re.search(r"per generated token: (\d+)", output).group(1))
    linear, attention = decode_macs(module)
    # main.c counts a decode call at positions n_prompt .. positions-1 as a generated token
    gen_positions = range(n_prompt, f["positions"])
    attn = sum(sum(per * min(p + 1, cap) for per, cap in attention)
               for p in gen_positions) / max(1, len(gen_positions))
    f["mean_gen_pos"] = sum(gen_positions) / max(1, len(gen_positions))
    f["mac_linear"] = linear
    f["mac_attention"] = attn
    f["macs"] = linear + attn
    f["instr_per_mac"] = f["instr_generated"] / f["macs"]
    f["wall"] = wall
    f["text"] = output[:output.index("\ntokens: ")]
    f.update(elf_figures(out, target))
    f["per_position"] = (f["instr_prompt"] * n_prompt + f["instr_generated"]
                         * len(gen_positions)) / (n_prompt + len(gen_positions))
    f["kernel_macs"] = kernel_macs(module, f["positions"])
    # the same program with a counter around every kernel call (runtime/irt_profile.h)
    profiled = _sh(["make", "-s", "run", "PROFILE=1"], cwd=out)  # rebuilt: PROFILE changed
    f["kernels"] = {m.group(1): (int(m.group(2)), int(m.group(3)))
                    for m in re.finditer(r"^irt-profile (\S+) (\d+) (\d+)$", profiled, re.M)}


# --- llama2.c's run.c ---------------------------------------------------------------------------

MMAN_H = """/* Shim for picolibc: mmap reads the file into the heap (no MMU, no mmap). */
#ifndef SHIM_SYS_MMAN_H
#define SHIM_SYS_MMAN_H
#include <stddef.h>
#include <sys/types.h>
#define PROT_READ 1
#define MAP_PRIVATE 2
#define MAP_FAILED ((void *)-1)
void *mmap(void *addr, size_t length, int prot, int flags, int fd, off_t offset);
int munmap(void *addr, size_t length);
#endif
"""

SHIM_C = r"""/* What picolibc on bare metal lacks for run.c, its arguments, and instruction
 * counters. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
#include "sys/mman.h"

#define MAX_CALLS 4096
static uint64_t calls[MAX_CALLS];
static int n_calls;
static uint64_t entered;
static uintptr_t heap_top;
extern char __heap_start[];
float *forward();

static inline uint64_t __attribute__((no_instrument_function)) minstret(void)
{
    uint32_t hi, lo, hi2;
    do {
        __asm__ volatile("csrr %0, minstreth" : "=r"(hi));
        __asm__ volatile("csrr %0, minstret" : "=r"(lo));
        __asm__ volatile("csrr %0, minstreth" : "=r"(hi2));
    } while (hi != hi2);
    return ((uint64_t)hi << 32) | lo;
}

void __attribute__((no_instrument_function)) __cyg_profile_func_enter(void *fn, void *site)
{
    (void)site;
    if (fn == (void *)forward) entered = minstret();
}

void __attribute__((no_instrument_function)) __cyg_profile_func_exit(void *fn, void *site)
{
    uint64_t now = minstret();
    (void)site;
    if (fn != (void *)forward) return;
    if (n_calls < MAX_CALLS) calls[n_calls++] = now - entered;
    uintptr_t top = (uintptr_t)sbrk(0);
    if (top > heap_top) heap_top = top;
}

void *mmap(void *addr, size_t length, int prot, int flags, int fd, off_t offset)
{
    (void)addr; (void)prot; (void)flags;
    char *buf = malloc(length);
    if (!buf || lseek(fd, offset, SEEK_SET) < 0) return MAP_FAILED;
    size_t got = 0;
    while (got < length) {
        ssize_t n = read(fd, buf + got, length - got);
        if (n <= 0) return MAP_FAILED;
        got += (size_t)n;
    }
    return buf;
}

int munmap(void *addr, size_t length) { (void)length; free(addr); return 0; }

int clock_gettime(clockid_t clock, struct timespec *ts)
{
    /* 32 MHz, one instruction per cycle under -icount shift=0 */
    uint64_t us = minstret() / 32;
    (void)clock;
    ts->tv_sec = (time_t)(us / 1000000);
    ts->tv_nsec = (long)(us % 1000000) * 1000;
    return 0;
}

int llama2c_main(int argc, char **argv);

int main(void)
{
    static char *argv[] = {"run", MODEL, "-z", TOKENIZER, "-t", "0.0", "-n", STEPS, "-i", PROMPT,
                           NULL};
    int rc = llama2c_main(10, argv);
    fflush(stdout);
    for (int i = 0; i < n_calls; i++) printf("irt-forward %d %lu\n", i, (unsigned long)calls[i]);
    printf("irt-heap %lu\n", (unsigned long)(heap_top - (uintptr_t)__heap_start));
    return rc;
}
"""

RV_FLAGS = ["-march=rv32imafc", "-mabi=ilp32f", "-O2", "--specs=picolibc.specs",
            "--oslib=semihost", "--crt0=semihost"]
RV_LINK = ["-Wl,--defsym=__flash=0x80000000,--defsym=__flash_size=0x400000",
           "-Wl,--defsym=__ram=0x80400000,--defsym=__ram_size=0x3c00000,"
           "--defsym=__stack_size=0x40000", "-Tpicolibc.ld"]


def run_llama2c(checkout: Path, positions: int) -> dict:
    run_c = checkout / "run.c"
    if not run_c.is_file():
        raise RuntimeError(f"LLAMA2C_DIR={checkout} has no run.c")
    s = MODELS / "stories260K"
    golden = json.loads((s / "golden.json").read_text())
    with tempfile.TemporaryDirectory(prefix="llama2c-rv32-") as tmp:
        tmp = Path(tmp)
        assert ROOT not in tmp.parents
        (tmp / "sys").mkdir()
        (tmp / "sys" / "mman.h").write_text(MMAN_H)
        defs = {"MODEL": str(s / "stories260K.bin"), "TOKENIZER": str(s / "tok512.bin"),
                "STEPS": str(positions), "PROMPT": golden["prompt"]}
        (tmp / "shim.c").write_text("".join(f"#define {k} {json.dumps(v)}\n"
                                            for k, v in defs.items()) + SHIM_C)
        _sh([RV_CC, *RV_FLAGS, "-I", tmp, "-Dmain=llama2c_main", "-finstrument-functions",
             "-finstrument-functions-exclude-function-list=rmsnorm,softmax,matmul",
             "-c", run_c, "-o", tmp / "run.o"], cwd=tmp)
        _sh([RV_CC, *RV_FLAGS, "-I", tmp, "-c", tmp / "shim.c", "-o", tmp / "shim.o"], cwd=tmp)
        _sh([RV_CC, *RV_FLAGS, "-o", tmp / "run.elf", tmp / "run.o", tmp / "shim.o", "-lm",
             *RV_LINK], cwd=tmp)
        size = _sh(["riscv64-unknown-elf-size", "-A", tmp / "run.elf"])
        secs = {p[0]: int(p[1]) for p in (ln.split() for ln in size.splitlines())
                if len(p) == 3 and p[0].startswith(".") and p[1].isdigit()}
        t0 = time.perf_counter()
        out = _sh(["timeout", QEMU_TIMEOUT, "qemu-system-riscv32", "-M", "virt", "-nographic",
                   "-bios", "none", "-semihosting-config", "enable=on,target=native",
                   "-icount", "shift=0", "-kernel", tmp / "run.elf"], cwd=tmp)
        wall = time.perf_counter() - t0
    counts = [int(m.group(2)) for m in re.finditer(r"^irt-forward (\d+) (\d+)$", out, re.M)]
    heap = int(re.search(r"^irt-heap (\d+)$", out, re.M).group(1))
    n_prompt = len(golden["prompt_ids"])
    text = out[:out.index("irt-forward")] if "irt-forward" in out else out
    text = re.sub(r"\nachieved tok/s: .*", "", text).strip("\n")
    # least-squares line through the generated positions
    ps = list(range(n_prompt - 1, len(counts)))
    mean_p = sum(ps) / len(ps)
    mean_c = sum(counts[p] for p in ps) / len(ps)
    slope = (sum((p - mean_p) * (counts[p] - mean_c) for p in ps)
             / sum((p - mean_p) ** 2 for p in ps))
    return {"instr_prompt": sum(counts[1:n_prompt - 1]) / (n_prompt - 2),
            "instr_generated": mean_c, "intercept": mean_c - slope * mean_p, "slope": slope,
            "instr_prompt_04": sum(counts[:n_prompt]) / n_prompt,
            "instr_generated_5": sum(counts[n_prompt:]) / (len(counts) - n_prompt),
            "positions": len(counts), "heap": heap, "text_sec": secs.get(".text", 0),
            "data": secs.get(".data", 0), "bss": secs.get(".bss", 0),
            "stack": secs.get(".stack", 0), "wall": wall, "text": text,
            "first_gen_pos": n_prompt - 1}


# --- report --------------------------------------------------------------------------------------

def _n(x) -> str:
    if isinstance(x, float):
        return f"{x:,.1f}" if x < 100 else f"{x:,.0f}"
    return f"{x:,}" if isinstance(x, int) else str(x)


ROWS = [("target description", lambda f: f["target"]),
        ("prompt tokens / generated tokens", lambda f: f"{f['prompt']} / {f['generated']}"),
        ("positions run", lambda f: f["positions"]),
        ("golden tokens reproduced", lambda f: f["golden"]),
        ("instructions / prompt token", lambda f: f["instr_prompt"]),
        ("instructions / generated token", lambda f: f["instr_generated"]),
        ("MACs / generated token: linear", lambda f: f["mac_linear"]),
        ("  + attention (mean)", lambda f: f["mac_attention"]),
        ("  = total", lambda f: f["macs"]),
        ("instructions / MAC", lambda f: f"{f['instr_per_mac']:.2f}"),
        ("code (.init + .text)", lambda f: f["code"]),
        (".rodata", lambda f: f["rodata"]),
        (".data", lambda f: f["data"]),
        (".bss", lambda f: f["bss"]),
        ("stack (reserved)", lambda f: f["stack"]),
        ("flash: weights arena", lambda f: f["weights"]),
        ("flash: total image", lambda f: f["flash"]),
        ("sram arena (plan)", lambda f: f["sram"]),
        ("dtim arena (plan)", lambda f: f["dtim"]),
        ("peak RAM (arenas+data+bss+stack)", lambda f: f["ram"]),
        ("qemu wall time (s)", lambda f: f"{f['wall']:.1f}")]


def report(runs: list[Case], target: dict) -> None:
    width = 34
    col = max(20, *(len(c.label) + 2 for c in runs))
    print(f"irtool on {TARGET} (qemu-system-riscv32 -icount shift=0, rv32imafc, -O2); memories: "
          + ", ".join(f"{m} {target[m]['size'] - target[m].get('reserved', 0):,} B"
                      + (" planned" if target[m].get("reserved") else "")
                      for m in ("flash", "sram", "dtim")))
    print(f"{'':<{width}}" + "".join(f"{c.label:>{col}}" for c in runs))
    for name, fn in ROWS:
        cells = []
        for c in runs:
            try:
                cells.append(_n(fn(c.figures)))
            except (KeyError, ZeroDivisionError):
                cells.append("-")
        print(f"{name:<{width}}" + "".join(f"{v:>{col}}" for v in cells))


def report_kernels(case: Case) -> None:
    """Instructions per position by kernel (mean over every position run, prompt included:
    the counters add up all calls), with instructions per MAC for the linear and attention
    kernels, and what the kernels leave to the rest of irt_decode (argument set-up, calls)."""
    f = case.figures
    kernels = f.get("kernels")
    if not kernels:
        return
    n = f["positions"]
    print(f"\n{case.label}: instructions per position by kernel (mean over the {n} positions "
          f"run; PROFILE=1 build)")
    print(f"  {'kernel':28} {'calls':>6} {'instr/pos':>11} {'share':>7} {'instr/MAC':>10}")
    total = 0.0
    for name, (calls, instr) in sorted(kernels.items(), key=lambda kv: -kv[1][1]):
        per = instr / n
        total += per
        macs = f["kernel_macs"].get(name)
        ipm = f"{per / macs:.2f}" if macs else ""
        print(f"  {name:28} {calls // n:>6} {per:>11,.0f} {per / f['per_position']:>7.1%} "
              f"{ipm:>10}")
    rest = f["per_position"] - total
    print(f"  {'(irt_decode: set-up, calls)':28} {'':>6} {rest:>11,.0f} "
          f"{rest / f['per_position']:>7.1%}")
    print(f"  {'= all of irt_decode':28} {'':>6} {f['per_position']:>11,.0f}")


def position_line(short: Case, long: Case) -> str:
    """irtool's instructions at position p, a + b * p, from two runs of the same model."""
    a, b = short.figures, long.figures
    try:
        slope = (b["instr_generated"] - a["instr_generated"]) / (b["mean_gen_pos"]
                                                                 - a["mean_gen_pos"])
        return f"{_n(a['instr_generated'] - slope * a['mean_gen_pos'])} + {_n(slope)} * p"
    except (KeyError, ZeroDivisionError):
        return "-"


def report_llama2c(ref: dict | None, irtool_256: Case, irtool_64: Case) -> None:
    f = irtool_256.figures
    at_p = position_line(irtool_64, irtool_256) + " (from 2 runs)"
    print()
    if ref is None:
        print("llama2.c run.c on the same core: REFERENCE figures from ../shared/anchors/RV32.md "
              "(not measured here; set LLAMA2C_DIR to a llama2.c checkout to measure):")
        r = RUNC_REFERENCE
        rows = [("instructions / prompt token (pos 1-3)", _n(r["instr_prompt"]),
                 _n(f.get("instr_prompt", "-")) + " (pos 0-4)"),
                ("instructions / generated token", _n(r["instr_generated"]) + " (pos 4-255)",
                 _n(f.get("instr_generated", "-")) + " (pos 5-255)"),
                ("instructions at position p", r["per_position"], at_p),
                ("instructions / MAC", r["instr_per_mac"],
                 f"{f['instr_per_mac']:.2f} ({_n(f['macs'])} MACs)" if "macs" in f else "-"),
                ("peak RAM", f"{_n(r['peak_heap'])} heap (+ .data/.bss/stack)",
                 _n(f.get("ram", "-"))),
                ("ELF .text", r["text"], _n(f.get("code", 0) + f.get("rodata", 0)))]
    else:
        print(f"llama2.c run.c on the same core, MEASURED (LLAMA2C_DIR, built in a temporary "
              f"folder, {ref['positions']} positions, forward() counted by "
              "-finstrument-functions hooks):")
        same = "yes" if f.get("text") and f["text"].strip() == ref["text"].strip() else "no"
        rows = [("instructions / prompt token", _n(ref["instr_prompt"]) + " (pos 1-3)",
                 _n(f.get("instr_prompt", "-")) + " (pos 0-4)"),
                ("  pos 0-4 (as irtool counts)", _n(ref["instr_prompt_04"]), ""),
                ("instructions / generated token", _n(ref["instr_generated"]) + " (pos 4-255)",
                 _n(f.get("instr_generated", "-")) + " (pos 5-255)"),
                ("  pos 5-255 (as irtool counts)", _n(ref["instr_generated_5"]), ""),
                ("instructions at position p",
                 f"{_n(ref['intercept'])} + {_n(ref['slope'])} * p", at_p),
                ("instructions / MAC (irtool's MAC count)",
                 f"{ref['instr_generated_5'] / f['macs']:.2f}" if "macs" in f else "-",
                 f"{f['instr_per_mac']:.2f}" if "macs" in f else "-"),
                ("peak RAM", f"{_n(ref['heap'] + ref['data'] + ref['bss'] + ref['stack'])} "
                 f"(heap {_n(ref['heap'])} + stack {_n(ref['stack'])})", _n(f.get("ram", "-"))),
                ("ELF .text (code + rodata)", _n(ref["text_sec"]),
                 _n(f.get("code", 0) + f.get("rodata", 0))),
                ("same text as irtool's run", same, ""),
                ("qemu wall time (s)", f"{ref['wall']:.1f}", f"{f.get('wall', 0):.1f}")]
    w0 = max(len(r[0]) for r in rows) + 2
    w1 = max(len("run.c"), *(len(r[1]) for r in rows)) + 2
    print(f"{'':<{w0}}{'run.c':>{w1}}   irtool ({irtool_256.label})")
    for name, a, b in rows:
        print(f"{name:<{w0}}{a:>{w1}}   {b}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--keep", type=Path, help="keep the generated projects in this folder")
    ap.add_argument("--time-limit", type=float, default=10.0, help="CP-SAT seconds per model")
    args = ap.parse_args(argv)
    for tool in (RV_CC, "qemu-system-riscv32", "make"):
        if shutil.which(tool) is None:
            print(f"error: {tool} not found: run bash scripts/setup.sh (installs the RISC-V "
                  "toolchain and qemu)", file=sys.stderr)
            return 1
    target = {m["name"]: m for m in json.loads(
        (ROOT / "targets" / TARGET.replace("-", "_") / "description.json").read_text())["memories"]}
    work_ctx = None
    if args.keep:
        args.keep.mkdir(parents=True, exist_ok=True)
        work = args.keep
    else:
        work_ctx = tempfile.TemporaryDirectory(prefix="irtool-riscv-ulp-")
        work = Path(work_ctx.name)
    runs = cases()
    try:
        for case in runs:
            try:
                run_case(case, work, args.time_limit)
            except Exception as e:  # noqa: BLE001 - report and go on with the other runs
                print(f"{case.label}: failed: {e}", file=sys.stderr)
        report(runs, target)
        for case in runs[:3]:
            report_kernels(case)
        ref = None
        llama2c = os.environ.get("LLAMA2C_DIR")
        if llama2c:
            try:
                ref = run_llama2c(Path(llama2c).expanduser().resolve(), 256)
            except Exception as e:  # noqa: BLE001
                print(f"llama2.c run.c: failed: {e}", file=sys.stderr)
        report_llama2c(ref, runs[2], runs[0])
    finally:
        if work_ctx is not None:
            work_ctx.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
