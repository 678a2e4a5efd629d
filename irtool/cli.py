"""`irtool`: the user-facing commands.

    irtool import MODEL -o OUT.mlir          # ONNX, HF folder or llama2.c -> IR + OUT.weights.npz
    irtool generate [MODEL_OR_MLIR] --prompt TEXT --steps N [--tokenizer FILE]
                    [--level decode [--capacity N | --window W]]
    irtool compile [MODEL] --target riscv-ulp -o DIR [--prompt TEXT | --prompt-tokens 1,2,3]
                   [--steps N] [--window W | --capacity N]   # then: make -C DIR run
                   [--quant w8|w8a8|w4g32|w1|w1a4] [--kv int8] [--calibration FILE]
                   [--integer-only] [--stream-window BYTES]
    irtool estimate MODEL|config.json --target T [--prefill N] [--positions P] [--json]
                    [--plot FILE.png]
    irtool quantize MODEL --scheme w8|w8a8|w4g32|w1|w1a4|none [--kv int8] [--integer-only]
                    [--calibration FILE] -o OUT.mlir [--report [--eval FILE]]

With no MODEL, `generate` uses the example model bundled with irtool (stories260K).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from irtool.startup import (
    freeze_imported,
    gc_paused,
    imports_without_gc,
    no_collection_at_exit,
    numpy_loaded_single_threaded,
)

with imports_without_gc(), numpy_loaded_single_threaded():  # see irtool.startup
    from irtool import progress
    from irtool.diagnostics import ArgumentParser, run_reporting_errors, wants_debug
    from irtool.errors import IrtoolError
    from irtool.ir_names import VOCAB_ATTR, has_decode
    from irtool.sampling import add_arguments as add_sampling_arguments
    from irtool.sampling import options_from_args
    freeze_imported()  # before the collector resumes (irtool.startup)


def cmd_import(args: argparse.Namespace) -> None:
    from irtool.frontend.load import import_model
    from irtool.module_io import module_text, write_module

    module, store = import_model(args.model)
    store_path = write_module(module, store, args.output)
    print(f"wrote {args.output} ({len(module_text(module))} bytes of IR) and {store_path} "
          f"({len(store.arrays)} weights, {store.nbytes} bytes)")


def find_tokenizer(model: Path, vocab_size: int | None, explicit: str | None):
    """--tokenizer, else one beside the model that fits its vocabulary, else the bundled one."""
    from irtool.frontend.load import DEFAULT_TOKENIZER
    from irtool.tokenizer import HFTokenizer, check_agreement, load_tokenizer

    if explicit:
        tok = load_tokenizer(explicit)
        check_agreement(tok, explicit, vocab_size, model)
        return tok
    if model.is_dir():  # a Hugging Face checkpoint folder: its tokenizer.json
        tok = load_tokenizer(model)
        check_agreement(tok, model / "tokenizer.json", vocab_size, model)
        return tok
    # tokenizer.json: an ONNX export's folder (optimum writes it beside model.onnx)
    candidates = [model.parent / "vocab.json", model.parent / HFTokenizer.HF_NAME]
    if vocab_size:
        candidates.insert(0, model.parent / f"tok{vocab_size}.bin")
        if vocab_size == 512:
            candidates.append(DEFAULT_TOKENIZER)
    for c in candidates:
        if c.is_file():
            tok = load_tokenizer(c)
            padded = isinstance(tok, HFTokenizer) and vocab_size and tok.vocab_size < vocab_size
            if vocab_size is None or tok.vocab_size == vocab_size or padded:
                check_agreement(tok, c, vocab_size, model)  # a truncated tok<N>.bin
                return tok
    raise IrtoolError(f"no tokenizer found for '{model}' (vocabulary {vocab_size}): pass "
                      "--tokenizer FILE (a llama2.c tok*.bin, a vocab.json or a Hugging Face "
                      "tokenizer.json)")


def module_at_level(model: Path, args: argparse.Namespace):
    """The imported module and store, lowered to the `--level` generation runs at.

    `decode` applies extract-kv-cache (batched prefill), so generation carries a KV cache.
    """
    from irtool.frontend.load import import_model

    module, store = import_model(model)
    cache_options = args.window is not None or args.capacity is not None
    if has_decode(module):  # runs as it is, with the cache it was given
        if cache_options:
            raise IrtoolError(f"'{model}' already has a KV cache (it has @decode): --window "
                              "and --capacity apply only to a model with @forward")
        return module, store
    if args.level == "forward":
        if cache_options:
            raise IrtoolError("--window and --capacity size the KV cache: use them with "
                              "--level decode")
        return module, store
    from irtool.context import make_context
    from irtool.passes.extract_kv_cache import ExtractKVCachePass

    ExtractKVCachePass(capacity=args.capacity, window=args.window).apply(make_context(), module)
    module.verify()
    return module, store


def _int_attr(module, name: str) -> int | None:
    from xdsl.dialects.builtin import IntegerAttr

    a = module.attributes.get(name)
    return a.value.data if isinstance(a, IntegerAttr) else None


def cmd_generate(args: argparse.Namespace) -> None:
    from irtool.blas import blas_threads
    from irtool.frontend.load import DEFAULT_MODEL
    from irtool.interpreter.runner import ModelRunner
    from irtool.run_limits import check_generation, check_steps, linear_cache_capacity

    model = Path(args.model) if args.model else DEFAULT_MODEL
    check_steps(args.steps)
    with progress.step(f"importing {model.name}"):
        runner = ModelRunner(*module_at_level(model, args))
    tok = find_tokenizer(model, runner.vocab_size, args.tokenizer)
    prompt = tok.encode(args.prompt)
    if not prompt:
        raise IrtoolError("the prompt is empty for this tokenizer: give some text with --prompt")
    prompt, _ = check_generation(prompt, args.steps, runner.vocab_size, runner.max_seq_len,
                                 linear_cache_capacity(runner.module), "the prompt")
    sampling = options_from_args(args, tok)
    sampling.check_stop(runner.vocab_size or tok.vocab_size)
    start = time.perf_counter()
    with blas_threads(1), progress.TokenBar(args.steps) as bar:  # tiny matmuls: 1 thread
        new = runner.generate(prompt, args.steps, sampling, on_token=bar)
    elapsed = time.perf_counter() - start
    print(tok.decode(prompt + new))
    print(f"tokens: {','.join(str(t) for t in prompt + new)}")
    if new:
        how = ("KV cache" if runner.uses_cache else "full-sequence recomputation")
        print(f"({len(new)} tokens in {elapsed:.2f} s, {len(new) / elapsed:.1f} tokens/s, "
              f"interpreter, {how})")


def _check_compile_request(module, prompt: list[int], args: argparse.Namespace) -> None:
    """The checks `-t c-project` makes too (irtool.run_limits), before any work is done."""
    from irtool.run_limits import (
        check_c_generation,
        check_cache_positions,
        check_time_limit,
    )

    check_time_limit(args.time_limit)
    context = _int_attr(module, "irtool.max_seq_len")
    for what, value in (("--window", args.window), ("--capacity", args.capacity)):
        if value is not None:
            check_cache_positions(value, what, context)
    ring = args.window is not None or _int_attr(module, "irtool.kv_window") is not None
    capacity = _int_attr(module, "irtool.kv_capacity") or args.capacity or context
    check_c_generation(prompt, args.steps, _int_attr(module, "irtool.vocab_size"), context,
                       capacity, ring, "the prompt")


def _adapter_files(specs) -> list[Path]:
    """The files of the --lora specs (`NAME=FILE[:SCALE]`)."""
    from irtool.frontend.lora import parse_spec

    return [Path(parse_spec(spec)[1]) for spec in specs]


def check_prefill_tokens(args: argparse.Namespace, default_prefill: str) -> None:
    """--prefill-tokens T is the batched prefill's size: refused where nothing is batched (it
    was ignored without a word) and over the KV cache (the pass's error named its own option)."""
    t = args.prefill_tokens
    if not t:
        return
    if (args.prefill or default_prefill) != "batched":
        how = "--prefill token" if args.prefill else f"the default of target {args.target}"
        raise IrtoolError(f"--prefill-tokens {t}: the prompt goes in token by token ({how}); "
                          "add --prefill batched to feed it in calls of T tokens")
    cache = args.window or args.capacity
    if cache and t > cache:
        raise IrtoolError(f"--prefill-tokens {t}: a call's tokens must fit the KV cache of "
                          f"{cache} positions; give at most --prefill-tokens {cache}")


def cmd_compile(args: argparse.Namespace) -> None:
    with gc_paused():  # its garbage is small, the collector's passes are not (irtool.startup)
        _compile(args)


def _compile(args: argparse.Namespace) -> None:
    from irtool.compile import CompileOptions, compile_to_c
    from irtool.frontend.load import DEFAULT_MODEL, import_model
    from irtool.output_safety import check_project_dir, refuse_inputs_inside
    from irtool.quality import EVAL_FILE
    from irtool.run import parse_token_list

    if args.report:
        from irtool.targets.registry import load_target

        target = load_target(args.target)
        if not hasattr(target, "project"):  # compile_to_c keeps model.hw.mlir for these only
            raise IrtoolError(f"--report: target '{target.name}' has no memory plan for "
                              f"irtool report to draw{getattr(target, 'report_instead', '')}; "
                              "drop --report")
    if args.integer_only and args.quant == "none":  # fp32 runs no quantize pass to say so
        raise IrtoolError("--integer-only replaces the non-linear ops of --quant w8a8 by "
                          "integer versions, and no --quant was given: add --quant w8a8 "
                          "--kv int8 (with --calibration FILE)")
    model = Path(args.model) if args.model else DEFAULT_MODEL
    check_project_dir(Path(args.output), args.force)  # before the work, not after it
    refuse_inputs_inside(Path(args.output), [model, *_adapter_files(args.lora), *(
        Path(f) for f in (args.calibration, args.tokenizer) if f)])
    with progress.step(f"importing {model.name}"):
        module, store = import_model(model)
    vocab = module.attributes[VOCAB_ATTR].value.data
    if args.prompt_tokens is not None:  # an empty one is an error, not the default prompt
        prompt = parse_token_list(args.prompt_tokens, "--prompt-tokens")
        try:  # a tokenizer only makes the program print text; ids are printed without one
            tok = find_tokenizer(model, vocab, args.tokenizer)
        except IrtoolError:
            if args.tokenizer:
                raise
            tok = None
            print(f"no tokenizer for '{model}': the program prints token ids as <id>")
    else:
        tok = find_tokenizer(model, vocab, args.tokenizer)
        prompt = tok.encode(args.prompt)
    if not prompt:
        raise IrtoolError("the prompt is empty: give --prompt TEXT or --prompt-tokens IDS")
    if args.steps < 1:
        raise IrtoolError("--steps must be at least 1")
    _check_compile_request(module, prompt, args)
    calibration = args.calibration
    if args.quant == "w8a8" and calibration is None:
        default = model.parent / EVAL_FILE
        if not default.is_file():
            raise IrtoolError(f"--quant w8a8 needs calibration data for the activation ranges: "
                              f"pass --calibration FILE (no {EVAL_FILE} beside '{model}' to "
                              "use by default)")
        calibration = str(default)
        print(f"calibrating w8a8 on the 'calib' stories of {default}")
    sampling = options_from_args(args, tok)
    opts = CompileOptions(target=args.target, capacity=args.capacity, window=args.window,
                          time_limit=args.time_limit, quant=args.quant, kv=args.kv,
                          calibration=calibration, calibration_tokenizer=args.tokenizer,
                          quantize_lm_head=args.quantize_lm_head,
                          lora=tuple(args.lora), adapter=args.adapter, prefill=args.prefill,
                          prefill_tokens=args.prefill_tokens, integer_only=args.integer_only,
                          stream_window=args.stream_window)
    if args.prefill_tokens < 0:
        raise IrtoolError("--prefill-tokens must be at least 1 (0: the prompt's length)")
    check_prefill_tokens(args, opts.load_target().default_prefill)
    mapping: list[str] = []  # printed after the project is written, as before
    out = compile_to_c(module, store, Path(args.output), prompt=prompt, steps=args.steps,
                       tokenizer=tok, opts=opts, sampling=sampling,
                       report=args.report, on_mapping=mapping.append)
    print("".join(mapping), end="")
    if args.report:
        print(f"wrote {out / 'report.html'} (irtool report: the memory plan as pictures)")
    what = ""
    if opts.quantized:
        parts = [] if opts.quant == "none" else [opts.quant]
        parts += ["int8 KV cache"] if opts.kv == "int8" else []
        parts += ["integer-only non-linear ops"] if opts.integer_only else []
        what = f" ({', '.join(parts)})"
    target = opts.load_target()
    if hasattr(target, "run_hint"):  # a project of another kind (u280-hls: ./csim.bin)
        how = target.run_hint(out)
    else:
        runner = target.description.toolchain.run.format(elf="model.elf").split()[0]
        how = (f"run it with 'make -C {out} run' ({runner}) or 'make -C {out} host' "
               "(natively)")
    print(f"wrote the project for {args.target}{what} to {out}: {how}")


def cmd_report(args: argparse.Namespace) -> None:
    from irtool.report import load_report_data, write_report

    print(f"wrote {write_report(load_report_data(Path(args.project)), Path(args.output))}")


def cmd_quantize(args: argparse.Namespace) -> None:
    from irtool.quantize_cmd import run

    run(args)


def cmd_estimate(args: argparse.Namespace) -> None:
    from irtool.estimate import run

    print(run(args.model, args.target, args.prefill, args.positions, args.schedule, args.json,
              args.plot, args.quant, args.quantize_lm_head))


def add_estimate_parser(sub) -> argparse.ArgumentParser:
    est = sub.add_parser("estimate", help="modelled MACs, bytes, cycles and tokens/s per layer "
                         "and op of a model (or a config.json) on a target")
    est.add_argument("model", help="a model file irtool imports, or a Hugging Face config.json")
    est.add_argument("--target", default="riscv-ulp", help="target name or folder")
    est.add_argument("--prefill", type=int, default=8, metavar="N",
                     help="prompt tokens processed at once (default 8)")
    est.add_argument("--positions", type=int, default=None, metavar="P",
                     help="tokens already in the KV cache for the decode step (default 128, "
                          "or the model's last position when it has no more)")
    est.add_argument("--schedule", action="append", metavar="S",
                     help="the target's schedule(s) to report (default: all it has)")
    est.add_argument("--quant", choices=("none", "w8a8"),
                     help="float32 or W8A8 linears (default: the target's, w8a8 for an "
                          "integer unit)")
    est.add_argument("--quantize-lm-head", action="store_true",
                     help="count the lm_head as quantized too (the quantize pass keeps it "
                          "float)")
    est.add_argument("--json", action="store_true", help="machine-readable output")
    est.add_argument("--plot", metavar="FILE.png", help="a per-layer bar chart of decode cycles")
    est.set_defaults(func=cmd_estimate)
    return est


def build_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog="irtool", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--debug", action="store_true", help="show Python tracebacks")
    p.add_argument("--quiet", action="store_true", help="no progress on the terminal")
    sub = p.add_subparsers(dest="command", required=True)
    imp = sub.add_parser("import", help="import an ONNX file, a Hugging Face checkpoint "
                         "folder or a llama2.c model to irtool IR")
    imp.add_argument("model")
    imp.add_argument("-o", "--output", required=True, metavar="OUT.mlir")
    imp.set_defaults(func=cmd_import)
    gen = sub.add_parser("generate", help="text generation with the interpreter (greedy, or "
                         "sampled: --temperature --top-k --top-p --seed)")
    gen.add_argument("model", nargs="?", help="model or .mlir (default: bundled stories260K)")
    gen.add_argument("--prompt", default="Once upon a time")
    gen.add_argument("--steps", type=int, default=64)
    gen.add_argument("--tokenizer", help="tok*.bin (llama2.c), vocab.json (characters) "
                     "or tokenizer.json (Hugging Face)")
    gen.add_argument("--level", choices=("forward", "decode"), default="forward",
                     help="forward: recompute the whole sequence per token; decode: run "
                          "extract-kv-cache and generate by decode steps with a KV cache")
    gen.add_argument("--capacity", type=int, metavar="N",
                     help="(decode) KV cache positions (default: the model's maximum length)")
    gen.add_argument("--window", type=int, metavar="W",
                     help="(decode) sliding window: a ring cache of the last W positions")
    add_sampling_arguments(gen)
    gen.set_defaults(func=cmd_generate)
    comp = sub.add_parser("compile", help="compile a model to a C project for a target")
    comp.add_argument("model", nargs="?", help="model or .mlir (default: bundled stories260K)")
    comp.add_argument("--target", default="riscv-ulp", help="target description (name or .json)")
    comp.add_argument("-o", "--output", required=True, metavar="DIR")
    group = comp.add_mutually_exclusive_group()
    group.add_argument("--prompt", default="Once upon a time")
    group.add_argument("--prompt-tokens", metavar="IDS",
                       help="token ids, separated by commas or spaces")
    comp.add_argument("--steps", type=int, default=64, help="tokens to generate")
    comp.add_argument("--tokenizer", help="tok*.bin (llama2.c), vocab.json (characters) "
                      "or tokenizer.json (Hugging Face)")
    kv = comp.add_mutually_exclusive_group()
    kv.add_argument("--window", type=int, metavar="W",
                    help="sliding-window KV cache of W positions")
    kv.add_argument("--capacity", type=int, metavar="N", help="KV cache of N positions")
    comp.add_argument("--prefill", choices=("batched", "token"),
                      help="how the prompt goes in: batched (chunks of --prefill-tokens tokens "
                           "per call, each linear a GEMM, beside the one-token decode step) or "
                           "token (through the decode step); default: the target's (siracusa: "
                           "batched, the others: token)")
    comp.add_argument("--prefill-tokens", type=int, default=0, metavar="T",
                      help="tokens per batched prefill call, static in the program (default: "
                           "the prompt's length); a longer prompt goes in chunks of T, the "
                           "rest through the decode step")
    comp.add_argument("--time-limit", type=float, default=10.0,
                      help="seconds for the CP-SAT memory allocator")
    comp.add_argument("--stream-window", type=int, metavar="BYTES",
                      help="cap on each of the two windows weights stream through from a slow "
                           "memory (targets with a tile pass, e.g. cortex-m7-256k; default: "
                           "the size the tile plan finds fastest in the free fast memory)")
    comp.add_argument("--quant", default="none",
                      choices=("none", "w8", "w8a8", "w4g32", "w1", "w1a4"),
                      help="quantize the linear layers (lm_head stays float): w8 int8 weights, "
                           "w8a8 int8 weights and activations (calibrated), w4g32 4-bit "
                           "weights in groups of 32, w1 sign weights, w1a4 sign weights and "
                           "4-bit activations (default: none, float32)")
    comp.add_argument("--kv", default="none", choices=("none", "int8"),
                      help="KV cache element type: int8 (one scale per cached row) or none "
                           "(float32)")
    comp.add_argument("--integer-only", action="store_true",
                      help="(--quant w8a8) RMSNorm, SiLU and attention's softmax by integer "
                           "approximations (I-BERT style; needs --kv int8)")
    comp.add_argument("--calibration", metavar="FILE",
                      help="(--quant w8a8) calibration token sequences for the activation "
                           "ranges: an eval_tokens.json (its 'calib' list), a token-id file or "
                           "a JSON list of id lists; default: eval_tokens.json beside the model "
                           "if there is one (stories260K has it)")
    comp.add_argument("--quantize-lm-head", action="store_true",
                      help="quantize the lm_head too, with the --quant scheme (it stays float "
                           "by default; a large vocabulary's float classifier may not fit); a "
                           "token embedding tied to it reads its quantized rows")
    comp.add_argument("--lora", action="append", default=[], metavar="NAME=FILE",
                      help="a task adapter (repeatable): a PEFT-style .safetensors file of "
                           "lora_A/lora_B matrices for named linears, scaled by alpha/r from "
                           "the adapter_config.json beside it (or NAME=FILE:SCALE); every "
                           "adapter is stored, the program chooses one at run time")
    comp.add_argument("--adapter", metavar="NAME",
                      help="the --lora adapter the program starts with (default: the first; "
                           "'none': the base model); the C API irt_select_adapter(i) changes it")
    add_sampling_arguments(comp)
    comp.add_argument("--report", action="store_true",
                      help="also write DIR/report.html (irtool report: the memory map)")
    comp.add_argument("--force", action="store_true",
                      help="write into a non-empty directory irtool did not create (its other "
                           "files are kept; files of the project's names are replaced)")
    comp.set_defaults(func=cmd_compile)
    est = add_estimate_parser(sub)
    rep = sub.add_parser("report", help="one HTML page with the memory plan as pictures")
    rep.add_argument("project", metavar="PROJECT_OR_MLIR",
                     help="a project written by irtool compile, or a placed .mlir")
    rep.add_argument("-o", "--output", required=True, metavar="report.html")
    rep.set_defaults(func=cmd_report)
    for sp in (imp, gen, comp, est, rep):
        sp.add_argument("--debug", action="store_true", help="show Python tracebacks")
        sp.add_argument("--quiet", action="store_true", help="no progress on the terminal")
    from irtool.quantize_cmd import add_arguments as add_quantize_arguments

    quant = sub.add_parser("quantize", help="quantize a model (int8/int4/1-bit weights, int8 "
                           "activations or KV cache) and report its quality")
    add_quantize_arguments(quant)
    quant.set_defaults(func=cmd_quantize)
    for sp in (imp, gen, comp, quant, est, rep):
        sp.add_argument("--allow-nonfinite", action="store_true",
                        help="accept NaN/Inf (and overflowing) weight values")
    return p


def run_command(args: argparse.Namespace) -> None:
    """One command as one output transaction (irtool.output_safety): its files appear only
    if it succeeds, never over what it reads."""
    from irtool.output_safety import writing
    from irtool.weights import nonfinite_allowed

    primary = args.output if args.command in ("import", "quantize") else None
    with writing(force=getattr(args, "force", False), primary=primary), \
            nonfinite_allowed(args.allow_nonfinite):
        args.func(args)


def main(argv: Sequence[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    freeze_imported()
    no_collection_at_exit()
    args = build_parser().parse_args(argv)
    progress.set_quiet("--quiet" in argv)
    run_reporting_errors(lambda: run_command(args), wants_debug(argv))


if __name__ == "__main__":
    main()
