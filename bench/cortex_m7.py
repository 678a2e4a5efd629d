"""stories260K on cortex-m7-256k: counted instructions and modelled time per token on qemu.

    .venv/bin/python bench/cortex_m7.py [--steps 64] [--schemes fp32,w8,w4g32,w1a4]

Each scheme is compiled with `irtool compile --target cortex-m7-256k --capacity 128` (quantized
ones with `--kv int8`), built with arm-none-eabi-gcc + picolibc and run on qemu-system-arm
-M mps2-an500 from the golden prompt. The figures are what the program prints: instructions
per generated token, exact from the TCG plugin (targets/c/plugin; the program's SysTick reading
is within 0.1%), without qemu's stand-in memcpy for the DMA, the external-Flash bytes streamed
through the SRAM windows and read in place per token, the share of the link's busy time hidden
behind compute by double buffering, the modelled cycles per token (CPI 1 assumed, plus stalls
and in-place reads at 12.6 cycles/B) and tokens/s at 480 MHz, and the SRAM map; w1a4 also with
the users' own 4 KB window (the tile pass's `window` cap) beside the window CP-SAT chose; w8a8
(calibrated on the eval stories) and w1a4 also built without the target's own kernels (`make
DSP=0`: SMLAD, the w1a4 partial-sum table) for the instruction change; `w1a4+lora` and
`fp32+lora`: the scheme with two task adapters (`--lora`, random rank-1 deltas of every layer's
wq, wv and wo written here, 7,040 B of float each, like the users' two 6 KB deltas), the
selected one streamed through the windows where the allocator left it in the external Flash.
Quality (perplexity, greedy agreement with float32) of every scheme: bench/quant.py
(target-independent). Needs the ARM toolchain and qemu (scripts/setup.sh); about 5 s per scheme.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

MODELS = Path(__file__).resolve().parents[2] / "shared" / "models" / "stories260K"
BIN = Path(sys.executable).parent
SCHEMES = {"fp32": ("none", "none"), "w8": ("w8", "int8"), "w4g32": ("w4g32", "int8"),
           "w1": ("w1", "int8"), "w1a4": ("w1a4", "int8"), "w8a8": ("w8a8", "int8"),
           "w1a4+lora": ("w1a4", "int8"), "fp32+lora": ("none", "none")}
DSP_SCHEMES = ("w8a8", "w1a4")
"""Schemes with kernels chosen for the target (runtime/irt_m7_dsp.c's SMLAD, the shared
irt_linear_w1a4_table.c's table): also run without (`make DSP=0`)."""
LORA_MODULES = ("self_attn.q_proj", "self_attn.v_proj", "self_attn.o_proj")
LORA_SHAPES = {"self_attn.q_proj": (64, 64), "self_attn.v_proj": (32, 64),
               "self_attn.o_proj": (64, 64)}
"""stories260K's [out, in] of the modules the bench's adapters change (5 layers each)."""


def write_adapters(folder: Path) -> list[str]:
    """Two PEFT-style rank-1 adapters (random, 7,040 B of float each); their --lora specs."""
    import numpy as np
    from safetensors.numpy import save_file

    specs = []
    for seed, name in enumerate(("task-a", "task-b")):
        rng = np.random.default_rng(seed)
        tensors = {}
        for layer in range(5):
            for module in LORA_MODULES:
                out, inp = LORA_SHAPES[module]
                key = f"base_model.model.model.layers.{layer}.{module}"
                tensors[f"{key}.lora_A.weight"] = rng.standard_normal((1, inp), np.float32)
                tensors[f"{key}.lora_B.weight"] = rng.standard_normal((out, 1), np.float32)
        path = folder / f"{name}.safetensors"
        save_file({k: v * np.float32(0.1) for k, v in tensors.items()}, str(path))
        specs.append(f"{name}={path}:1.0")
    return specs
ANCHORS = [
    ("stories260K on an RP2350 (2x Cortex-M33, 150 MHz) with 8 MB PSRAM, Pico LLaMA",
     "19 tokens/s"),
    ("the users' own 24-block model on this Cortex-M7 (1-bit weights, 4 KB window)",
     "8.3 tokens/s"),
    ("llama2.c run.c, stories260K fp32, RV32 on qemu (../shared/anchors/TARGETS.md)",
     "3.0 M instructions/token"),
]
FIGURES = {
    "instructions": r"^hartcount: exact instructions per prompt step \d+ per generated step "
                    r"(\d+)$",
    "systick": r"^instructions per generated token: (\d+)$",
    "memcpy": r"without the (\d+) instructions of qemu's stand-in memcpy",
    "cycles": r"^modelled cycles per generated token: (\d+) ",
    "tokens/s": r"^modelled tokens/s at 480 MHz: ([\d.]+)$",
    "streamed": r"^external Flash streamed per token: (\d+) B",
    "transfers": r"in ([\d.]+) DMA transfers",
    "in place": r"^external Flash read in place per generated token: (\d+) B",
    "hidden": r"hidden by double buffering: ([\d.]+)%",
    "window": r"through 2 windows of (\d+) B",
}


USERS_WINDOW = 4096
"""The users' own plan: a 4 KB weight window (the `tile` pass's `window` cap)."""


def compile_capped(label: str, steps: int, out: Path, window: int) -> None:
    """`irtool compile` in process with the tile pass's window capped (not a CLI flag)."""
    from irtool.compile import CompileOptions, _run, prepare_for_target
    from irtool.frontend.load import import_model
    from irtool.tokenizer import load_tokenizer

    quant, kv = SCHEMES[label]
    golden = json.loads((MODELS / "golden.json").read_text())
    opts = CompileOptions(target="cortex-m7-256k", capacity=128, quant=quant, kv=kv)
    module, store = import_model(MODELS / "stories260K.bin")
    module, store = prepare_for_target(module, store, opts)
    target = opts.load_target()
    lower = target.stages(opts.pipeline_options())["lower"]
    # the cap on both: allocate{tile=true} solves the windows that tile then applies
    capped = lower.replace("tile=true", f"tile=true window={window}", 1)
    _run(capped.replace("tile{", f"tile{{window={window} ", 1), module)
    target.write_project(module, store, out, prompt=golden["prompt_ids"], steps=steps,
                         tokenizer=load_tokenizer(MODELS / "tok512.bin"))


def run(label: str, steps: int, work: Path, window: int = 0, dsp: bool = True) -> dict:
    quant, kv = SCHEMES[label]
    out = work / f"{label}-{window}-{int(dsp)}"
    golden = json.loads((MODELS / "golden.json").read_text())
    cmd = [str(BIN / "irtool"), "compile", "--target", "cortex-m7-256k", "-o", str(out),
           "--capacity", "128", "--steps", str(steps), "--prompt", golden["prompt"]]
    if quant != "none":
        cmd += ["--quant", quant, "--kv", kv]
    if quant == "w8a8":
        cmd = [*cmd[:2], str(MODELS / "stories260K.bin"), *cmd[2:]]  # its calibration stories
    if label.endswith("+lora"):
        cmd += [a for spec in write_adapters(work) for a in ("--lora", spec)]
    if window:
        compile_capped(label, steps, out, window)
    else:
        subprocess.run(cmd, check=True, capture_output=True, text=True)
    proc = subprocess.run(["make", "-s", "-C", str(out), "run", f"DSP={int(dsp)}"],
                          stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, check=True)
    text = proc.stdout
    row = {}
    for key, pattern in FIGURES.items():
        m = re.search(pattern, text, re.M)
        row[key] = float(m.group(1)) if m else 0.0
    # the program models its cycles from SysTick's count: the exact count replaces it (CPI 1)
    row["cycles"] += row["instructions"] - row["systick"]
    row["tokens/s"] = 480e6 / row["cycles"] if row["cycles"] else 0.0
    plan = re.search(r"^tile plan \(CP-SAT\): (.*)$", text, re.M)
    row["plan"] = plan.group(1) if plan else "nothing streamed"
    row["sram"] = re.findall(r"^\| (.+?) +\| +(\d+) \| +[\d.]+% \|$", text, re.M)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=64)
    ap.add_argument("--schemes", default="fp32,w8,w4g32,w1a4,w8a8,w1a4+lora,fp32+lora")
    args = ap.parse_args()
    missing = [t for t in ("arm-none-eabi-gcc", "qemu-system-arm", "make") if not shutil.which(t)]
    if missing:
        sys.exit(f"error: {', '.join(missing)} not found; bash scripts/setup.sh installs them")
    labels = args.schemes.split(",")
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        for label in labels:
            rows[label] = run(label, args.steps, Path(tmp))
        users = f"w1a4, {USERS_WINDOW // 1024} KB window"
        if "w1a4" in labels:
            rows[users] = run("w1a4", args.steps, Path(tmp), USERS_WINDOW)
        portable = {label: run(label, args.steps, Path(tmp), dsp=False)
                    for label in labels if label in DSP_SCHEMES}
    print(f"stories260K on cortex-m7-256k (qemu mps2-an500), --capacity 128, {args.steps} "
          "greedy tokens from the golden prompt; quantized schemes with --kv int8")
    head = ("scheme", "instr/token", "compute", "cycles/token", "tok/s@480MHz",
            "Flash B/token", "streamed", "in place", "DMA/token", "hidden")
    print("| " + " | ".join(head) + " |")
    print("|" + "|".join(" --- " if i == 0 else " ---: " for i in range(len(head))) + "|")
    for label, r in rows.items():
        compute = r["instructions"] - r["memcpy"]
        print(f"| {label} | {r['instructions']:,.0f} | {compute:,.0f} | {r['cycles']:,.0f} | "
              f"{r['tokens/s']:.1f} | {r['streamed'] + r['in place']:,.0f} | "
              f"{r['streamed']:,.0f} | {r['in place']:,.0f} | {r['transfers']:.0f} | "
              f"{r['hidden']:.1f}% |")
    print()
    for label, r in rows.items():
        print(f"{label}: window {r['window']:,.0f} B; tile plan (CP-SAT): {r['plan']}")
    print()
    for label, r in portable.items():
        dsp, plain = rows[label]["instructions"], r["instructions"]
        own = {"w8a8": "DSP extension (SMLAD, runtime/irt_m7_dsp.c)",
               "w1a4": "partial-sum table (irt_linear_w1a4_table.c)"}[label]
        print(f"{label}: {own} {dsp:,.0f} instructions per token, portable C (make DSP=0) "
              f"{plain:,.0f}: {100 * (plain - dsp) / plain:.1f}% fewer")
    print()
    print("SRAM map (bytes of 262,144):")
    names = list(dict.fromkeys(name for r in rows.values() for name, _ in r["sram"]))
    print("| what | " + " | ".join(rows) + " |")
    print("| --- |" + " ---: |" * len(rows))
    for name in names:
        print(f"| {name} | " + " | ".join(f"{int(dict(r['sram']).get(name, 0)):,}"
                                          for r in rows.values()) + " |")
    print()
    print("Published anchors:")
    for what, figure in ANCHORS:
        print(f"  {figure:>26}  {what}")


if __name__ == "__main__":
    main()
