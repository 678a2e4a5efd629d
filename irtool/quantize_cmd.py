"""`irtool quantize`: quantize a model, write it with its new store, and report its quality.

    irtool quantize MODEL --scheme w8|w8a8|w4g32|w1|w1a4|none [--kv int8] [--integer-only]
                    [--calibration FILE [--tokenizer T] [--percentile P] [--max-sequences N]]
                    [--per-tensor] [--quantize-lm-head] [--capacity N | --window W]
                    -o OUT.mlir [--report [--eval FILE]]

MODEL is anything `irtool import` reads (or an irtool .mlir). The steps are the passes:
`calibrate` (when --calibration is given), `extract-kv-cache` (with --kv int8 on a model that
still has @forward, so the written module really keeps an int8 cache), then `quantize`. The
result runs with `irtool-run` like any other level.

--report evaluates the quantized module against the float32 original (see irtool.quality):
perplexity on the evaluation set (--eval, default: eval_tokens.json beside the model) and its
change, top-1 agreement, the leading greedy tokens equal to float32's from the golden prompt
(64 steps), and the weight bytes before and after.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="model file (ONNX, llama2.c) or irtool .mlir")
    p.add_argument("--scheme", required=True,
                   help="w8, w8a8, w4g32, w1, w1a4, or none (only the KV cache)")
    p.add_argument("--kv", default="none", help="none or int8 (an int8 KV cache)")
    p.add_argument("-o", "--output", required=True, metavar="OUT.mlir")
    p.add_argument("--calibration", metavar="FILE",
                   help="calibration token sequences for activation ranges (needed by w8a8): "
                        "eval_tokens.json (its 'calib' list), a token-id file, or text with "
                        "--tokenizer")
    p.add_argument("--tokenizer", metavar="FILE", help="tokenizer for text calibration/eval")
    p.add_argument("--percentile", type=float, default=100.0,
                   help="activation range percentile (default 100: min/max)")
    p.add_argument("--max-sequences", type=int, metavar="N",
                   help="use at most N calibration sequences")
    p.add_argument("--per-tensor", action="store_true",
                   help="one weight scale per matrix instead of per output channel (w8, w8a8)")
    p.add_argument("--integer-only", action="store_true",
                   help="(w8a8) RMSNorm, SiLU and attention's softmax by integer "
                        "approximations too (I-BERT style, irtool.numerics.intops)")
    p.add_argument("--quantize-lm-head", action="store_true",
                   help="quantize the linear producing the logits too (default: kept float)")
    kv = p.add_mutually_exclusive_group()
    kv.add_argument("--capacity", type=int, metavar="N",
                    help="(--kv int8 on a @forward model) KV cache positions")
    kv.add_argument("--window", type=int, metavar="W",
                    help="(--kv int8 on a @forward model) sliding-window ring cache")
    p.add_argument("--report", action="store_true",
                   help="print perplexity, agreement, greedy match and sizes vs float32")
    p.add_argument("--eval", metavar="FILE",
                   help="evaluation set for --report (default: eval_tokens.json beside the "
                        "model)")
    p.add_argument("--debug", action="store_true", help="show Python tracebacks")


def _has_forward(module) -> bool:
    from irtool.ir_names import FORWARD, entry_points

    return FORWARD in entry_points(module)


def run(args: argparse.Namespace) -> None:
    from irtool.context import make_context
    from irtool.errors import IrtoolError
    from irtool.frontend.load import import_model
    from irtool.module_io import module_text, write_module
    from irtool.passes.calibrate import calibrate_module
    from irtool.passes.extract_kv_cache import ExtractKVCachePass
    from irtool.passes.quantize import QuantOptions, quantize_module
    from irtool.quality import blas_threads, load_sequences

    options = QuantOptions(args.scheme, args.kv, args.per_tensor, args.quantize_lm_head,
                           integer_only=args.integer_only)
    options.check()
    if (args.capacity is not None or args.window is not None) and args.kv != "int8":
        raise IrtoolError("--capacity and --window size the int8 KV cache: use them with "
                          "--kv int8")
    model = Path(args.model)
    with blas_threads(1):
        module, store = import_model(model)
        reference = module.clone() if args.report else None
        if args.calibration:
            seqs = load_sequences(args.calibration, key="calib", tokenizer=args.tokenizer,
                                  what="calibration")
            ranges = calibrate_module(module, store, seqs, args.percentile, args.max_sequences,
                                      where=f"calibration file '{args.calibration}'")
            print(f"calibrated {len(ranges)} linear layers on "
                  f"{min(len(seqs), args.max_sequences or len(seqs))} sequences of "
                  f"'{args.calibration}'")
        if args.kv == "int8" and _has_forward(module):
            ExtractKVCachePass(capacity=args.capacity, window=args.window).apply(
                make_context(), module)
            print("applied extract-kv-cache (the int8 KV cache lives in @prefill/@decode)")
        module, new_store = quantize_module(module, store, options)
        store_path = write_module(module, new_store, args.output)
        print(f"wrote {args.output} ({len(module_text(module))} bytes of IR) and {store_path} "
              f"({len(new_store.arrays)} weights, {new_store.nbytes:,} bytes; float32 store "
              f"{store.nbytes:,} bytes)")
        if args.report:
            print(quality_report(reference, store, module, new_store, options, model,
                                 args.eval, args.tokenizer).format())


def quality_report(reference, store, module, new_store, options, model: Path,
                   eval_path: str | None, tokenizer: str | None):
    """Evaluate `module` against the float32 `reference` (see irtool.quality)."""
    from xdsl.dialects.builtin import IntegerAttr

    from irtool.errors import IrtoolError
    from irtool.interpreter.runner import ModelRunner
    from irtool.ir_names import KV_CAPACITY_ATTR, KV_WINDOW_ATTR
    from irtool.quality import (
        EVAL_FILE,
        GREEDY_STEPS,
        QualityReport,
        check_sequences,
        evaluate,
        golden_prompt,
        load_sequences,
        weight_bytes,
    )

    path = Path(eval_path) if eval_path else model.parent / EVAL_FILE
    if not path.is_file():
        raise IrtoolError(f"no evaluation set for --report: '{path}' not found; pass --eval "
                          "FILE (eval_tokens.json, a token-id file, or text with --tokenizer)")
    ref_runner = ModelRunner(reference, store)
    q_runner = ModelRunner(module, new_store)
    notes = []
    max_len = ref_runner.max_seq_len
    capacity = module.attributes.get(KV_CAPACITY_ATTR)
    if isinstance(capacity, IntegerAttr) and KV_WINDOW_ATTR not in module.attributes:
        # a linear KV cache holds only `capacity` positions: cut the stories to fit
        max_len = min(max_len or capacity.value.data, capacity.value.data)
        notes.append(f"stories cut to {max_len + 1} tokens (the KV cache holds {max_len} "
                     "positions)")
    stories = check_sequences(load_sequences(path, key="eval", tokenizer=tokenizer,
                                             what="evaluation"),
                              ref_runner.vocab_size, max_len + 1 if max_len else None,
                              f"evaluation set '{path}'", min_len=2)
    ref_eval = evaluate(ref_runner, stories)
    q_eval = evaluate(q_runner, stories)
    prompt = golden_prompt(model.parent, stories)
    label = options.scheme + (" + int8 KV cache" if options.kv == "int8" else "")
    if options.per_tensor:
        label += ", per-tensor weight scales"
    if options.integer_only:
        label += ", integer RMSNorm/SiLU/softmax"
    label += ", lm_head " + ("quantized" if options.quantize_lm_head else "float")
    return QualityReport(
        label=label, reference=ref_eval, quantized=q_eval,
        greedy_reference=ref_runner.generate(prompt, GREEDY_STEPS),
        greedy_quantized=q_runner.generate(prompt, GREEDY_STEPS),
        bytes_before=weight_bytes(reference, store),
        bytes_after=weight_bytes(module, new_store),
        notes=[f"{len(stories)} stories from '{path}'"] + notes)
