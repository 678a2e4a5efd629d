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
    from irtool.errors import IrtoolError
    from irtool.module_io import module_text, write_module
    from irtool.output_safety import current
    from irtool.passes.quantize import QuantOptions
    from irtool.quality import blas_threads

    options = QuantOptions(args.scheme, args.kv, args.per_tensor, args.quantize_lm_head,
                           integer_only=args.integer_only)
    options.check()
    if (args.capacity is not None or args.window is not None) and args.kv != "int8":
        raise IrtoolError("--capacity and --window size the int8 KV cache: use them with "
                          "--kv int8")
    model = Path(args.model)
    eval_path = check_inputs_and_output(args, model)
    with blas_threads(1):
        reference, store, module, new_store = quantized_model(args, model, options)
        store_path = write_module(module, new_store, args.output)
        report = None if eval_path is None else quality_report(
            reference, store, module, new_store, options, model, eval_path, args.tokenizer)
    outputs = current()
    if outputs is not None:  # written now, so "wrote" names files that exist
        outputs.commit()
    print(f"wrote {args.output} ({len(module_text(module))} bytes of IR) and {store_path} "
          f"({len(new_store.arrays)} weights, {new_store.nbytes:,} bytes; float32 store "
          f"{store.nbytes:,} bytes)")
    if report is not None:
        print(report.format())


def quantized_model(args: argparse.Namespace, model: Path, options):
    """(float32 module for --report or None, its store, quantized module, its new store):
    import, calibrate (--calibration), extract-kv-cache (--kv int8 on @forward), quantize."""
    from irtool.context import make_context
    from irtool.frontend.load import import_model
    from irtool.passes.calibrate import calibrate_module
    from irtool.passes.extract_kv_cache import ExtractKVCachePass
    from irtool.passes.quantize import quantize_module
    from irtool.quality import load_sequences

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
    return reference, store, module, new_store


def check_inputs_and_output(args: argparse.Namespace, model: Path) -> Path | None:
    """What can be checked before the work (an import, a calibration, a quantization, an
    evaluation): the output and its store (irtool.module_io.check_module_destination), not the
    model; the calibration file; the evaluation set of --report, returned (None without)."""
    from irtool.errors import IrtoolError
    from irtool.module_io import check_module_destination
    from irtool.output_safety import note_input

    note_input(model, "model")
    check_module_destination(args.output)
    if args.calibration and not Path(args.calibration).is_file():
        raise IrtoolError(f"calibration file '{args.calibration}' not found (--calibration)")
    if args.eval is not None and not args.report:
        raise IrtoolError("--eval is the evaluation set of --report: give both")
    return eval_set(model, args.eval) if args.report else None


def eval_set(model: Path, eval_path: str | None) -> Path:
    """--eval, or eval_tokens.json beside the model; it must exist."""
    from irtool.errors import IrtoolError
    from irtool.quality import EVAL_FILE

    path = Path(eval_path) if eval_path else model.parent / EVAL_FILE
    if not path.is_file():
        raise IrtoolError(f"no evaluation set for --report: '{path}' not found; pass --eval "
                          "FILE (eval_tokens.json, a token-id file, or text with --tokenizer)")
    return path


def quality_report(reference, store, module, new_store, options, model: Path,
                   path: Path, tokenizer: str | None):
    """Evaluate `module` against the float32 `reference` on the evaluation set `path` (see
    irtool.quality)."""
    from xdsl.dialects.builtin import IntegerAttr

    from irtool.interpreter.runner import ModelRunner
    from irtool.ir_names import KV_CAPACITY_ATTR, KV_WINDOW_ATTR
    from irtool.quality import (
        GREEDY_STEPS,
        QualityReport,
        check_sequences,
        evaluate,
        golden_prompt,
        load_sequences,
        weight_bytes,
    )

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
