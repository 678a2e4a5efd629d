"""Quantization schemes on stories260K: sizes, quality against float32, interpreter time.

    .venv/bin/python bench/quant.py [--stories 150] [--schemes w8,w8a8,...] [--no-riscv]

For every scheme: bytes of the weight store (and of the linear layers' entries), perplexity on
the `eval` stories of eval_tokens.json and its change vs float32, top-1 agreement with
float32, leading greedy tokens equal to float32's from the golden prompt (64 steps), the
interpreter's time for the evaluation and its greedy generation speed. w8a8 is calibrated on
the 50 `calib` stories; kv8 schemes run through extract-kv-cache (prefill + decode).

The last columns are the riscv-ulp build of the same scheme (`irtool compile --target riscv-ulp
--quant S [--kv int8] --capacity 128`, in process): instructions per generated token from
qemu (`minstret` under `-icount shift=0`, mean over the 64 greedy tokens from the golden
prompt, so the tokens are the ones the interpreter's greedy column counts) with the ratio to
float32, and the bytes of the `.flash` weights arena. They need the RISC-V toolchain and qemu
(`scripts/setup.sh`); without them, or with --no-riscv, they read n/a. About 3 s per scheme.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from irtool.context import make_context
from irtool.frontend.load import import_model
from irtool.interpreter.runner import ModelRunner
from irtool.passes.calibrate import calibrate_module
from irtool.passes.extract_kv_cache import ExtractKVCachePass
from irtool.passes.quantize import QuantOptions, quantize_module
from irtool.quality import (
    agreement,
    blas_threads,
    evaluate,
    leading_equal,
    load_sequences,
    weight_bytes,
)

MODELS = Path(__file__).resolve().parents[2] / "shared" / "models" / "stories260K"
RISCV_TOOLS = ("riscv64-unknown-elf-gcc", "riscv64-unknown-elf-size", "qemu-system-riscv32",
               "make")
RISCV_CAPACITY = 128  # KV positions: float32 caches of 512 positions do not fit the SRAM
SCHEMES = {  # label: (scheme, kv)
    "fp32": (None, "none"), "w8": ("w8", "none"), "w8a8": ("w8a8", "none"),
    "kv8": ("none", "int8"), "w8a8+kv8": ("w8a8", "int8"), "w4g32": ("w4g32", "none"),
    "w1": ("w1", "none"), "w1a4": ("w1a4", "none"),
}


def build(label: str, calib: list[list[int]]):
    scheme, kv = SCHEMES[label]
    module, store = import_model(MODELS / "stories260K.bin")
    if scheme is None:
        return module, store
    if scheme == "w8a8":
        calibrate_module(module, store, calib)
    if kv == "int8":
        ExtractKVCachePass().apply(make_context(), module)
    return quantize_module(module, store, QuantOptions(scheme, kv))


def riscv_figures(label: str, prompt: list[int], work: Path) -> tuple[int, int]:
    """(instructions per generated token on qemu, .flash bytes) of the scheme's C build."""
    from irtool.compile import CompileOptions, compile_to_c
    from irtool.tokenizer import load_tokenizer

    scheme, kv = SCHEMES[label]
    opts = CompileOptions(target="riscv-ulp", capacity=RISCV_CAPACITY, quant=scheme or "none",
                          kv=kv, calibration=str(MODELS / "eval_tokens.json")
                          if scheme == "w8a8" else None)
    module, store = import_model(MODELS / "stories260K.bin")
    out = work / label.replace("+", "_")
    compile_to_c(module, store, out, prompt=prompt, steps=64,
                 tokenizer=load_tokenizer(MODELS / "tok512.bin"), opts=opts)
    run = subprocess.run(["make", "-s", "run"], cwd=out, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True, timeout=1200)
    m = re.search(r"^instructions per generated token: (\d+)$", run.stdout, re.M)
    if run.returncode != 0 or not m:
        raise RuntimeError(f"{label}: the riscv-ulp run failed:\n{run.stdout[-3000:]}")
    size = subprocess.run(["riscv64-unknown-elf-size", "-A", str(out / "model.elf")],
                          capture_output=True, text=True, check=True).stdout
    flash = next(int(line.split()[1]) for line in size.splitlines()
                 if line.startswith(".flash "))
    return int(m.group(1)), flash


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--stories", type=int, default=150, help="evaluation stories to use")
    ap.add_argument("--schemes", default=",".join(SCHEMES),
                    help=f"comma-separated, from {', '.join(SCHEMES)}")
    ap.add_argument("--no-riscv", action="store_true",
                    help="skip the riscv-ulp builds (the last columns read n/a)")
    args = ap.parse_args()
    missing = [t for t in RISCV_TOOLS if shutil.which(t) is None]
    riscv = not args.no_riscv and not missing
    if missing and not args.no_riscv:
        print(f"(no riscv-ulp figures: {', '.join(missing)} not found; bash scripts/setup.sh "
              "installs them)")
    labels = [s for s in args.schemes.split(",") if s]
    unknown = [s for s in labels if s not in SCHEMES]
    if unknown:
        ap.error(f"unknown scheme(s) {', '.join(unknown)}")
    evalset = load_sequences(MODELS / "eval_tokens.json", "eval")[:args.stories]
    calib = load_sequences(MODELS / "eval_tokens.json", "calib")
    prompt = json.loads((MODELS / "golden.json").read_text())["prompt_ids"]
    head = (f"{'scheme':9} {'store B':>9} {'linear B':>9} {'ppl':>9} {'change':>10} "
            f"{'top-1':>7} {'greedy':>7} {'eval s':>7} {'gen tok/s':>9} "
            f"{'rv instr/tok':>13} {'vs fp32':>7} {'rv flash B':>10}")
    print(f"stories260K, {len(evalset)} eval stories, {sum(len(s) - 1 for s in evalset)} "
          "targets")
    print(head)
    print("-" * len(head))
    work = Path(tempfile.mkdtemp(prefix="irtool-bench-quant-"))
    fp32_instr = riscv_figures("fp32", prompt, work)[0] if riscv else None
    with blas_threads(1):
        ref_module, ref_store = build("fp32", calib)
        ref_runner = ModelRunner(ref_module, ref_store)
        ref_eval = evaluate(ref_runner, evalset)
        ref_greedy = ref_runner.generate(prompt, 64)
        for label in labels:
            if label == "fp32":
                module, store, runner, ev = ref_module, ref_store, ref_runner, ref_eval
            else:
                module, store = build(label, calib)
                runner = ModelRunner(module, store)
                ev = evaluate(runner, evalset)
            start = time.perf_counter()
            greedy = runner.generate(prompt, 64)
            gen = len(greedy) / (time.perf_counter() - start)
            total, linear = weight_bytes(module, store)
            change = 100 * (ev.perplexity / ref_eval.perplexity - 1)
            if riscv:
                instr, flash = riscv_figures(label, prompt, work)
                rv = f"{instr:13,} {instr / fp32_instr:6.2f}x {flash:10,}"
            else:
                rv = f"{'n/a':>13} {'':7} {'n/a':>10}"
            print(f"{label:9} {total:9,} {linear:9,} {ev.perplexity:9.4f} {change:+9.2f}% "
                  f"{100 * agreement(ref_eval, ev):6.2f}% {leading_equal(ref_greedy, greedy):4}/64"
                  f" {ev.seconds:7.1f} {gen:9.1f} {rv}", flush=True)
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
