"""Quantization schemes on stories260K: sizes, quality against float32, interpreter time.

    .venv/bin/python bench/quant.py [--stories 150] [--schemes w8,w8a8,...]

For every scheme: bytes of the weight store (and of the linear layers' entries), perplexity on
the `eval` stories of eval_tokens.json and its change vs float32, top-1 agreement with
float32, leading greedy tokens equal to float32's from the golden prompt (64 steps), the
interpreter's time for the evaluation and its greedy generation speed. w8a8 is calibrated on
the 50 `calib` stories; kv8 schemes run through extract-kv-cache (prefill + decode).

The last column is a placeholder for riscv-ulp instructions per generated token: it needs the
quantized C kernels and `irtool compile --quant` (not available yet).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from irtool.context import make_context
from irtool.frontend.load import import_model
from irtool.interpreter.runner import ModelRunner
from irtool.passes.calibrate import calibrate_module
from irtool.passes.extract_kv_cache import ExtractKVCachePass
from irtool.passes.quantize import QuantOptions, quantize_module
from irtool.quality import agreement, blas_threads, evaluate, leading_equal, load_sequences
from irtool.quality import weight_bytes

MODELS = Path(__file__).resolve().parents[2] / "shared" / "models" / "stories260K"
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--stories", type=int, default=150, help="evaluation stories to use")
    ap.add_argument("--schemes", default=",".join(SCHEMES),
                    help=f"comma-separated, from {', '.join(SCHEMES)}")
    args = ap.parse_args()
    labels = [s for s in args.schemes.split(",") if s]
    unknown = [s for s in labels if s not in SCHEMES]
    if unknown:
        ap.error(f"unknown scheme(s) {', '.join(unknown)}")
    evalset = load_sequences(MODELS / "eval_tokens.json", "eval")[:args.stories]
    calib = load_sequences(MODELS / "eval_tokens.json", "calib")
    prompt = json.loads((MODELS / "golden.json").read_text())["prompt_ids"]
    head = (f"{'scheme':9} {'store B':>9} {'linear B':>9} {'ppl':>9} {'change':>10} "
            f"{'top-1':>7} {'greedy':>7} {'eval s':>7} {'gen tok/s':>9}  riscv-ulp instr/token")
    print(f"stories260K, {len(evalset)} eval stories, {sum(len(s) - 1 for s in evalset)} "
          "targets")
    print(head)
    print("-" * len(head))
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
            print(f"{label:9} {total:9,} {linear:9,} {ev.perplexity:9.4f} {change:+9.2f}% "
                  f"{100 * agreement(ref_eval, ev):6.2f}% {leading_equal(ref_greedy, greedy):4}/64"
                  f" {ev.seconds:7.1f} {gen:9.1f}  n/a (irtool compile --quant pending)")


if __name__ == "__main__":
    main()
