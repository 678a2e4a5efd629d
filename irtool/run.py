"""`irtool-run`: execute a module at any IR level with the numpy interpreter.

    irtool-run model.mlir --tokens 1,403,407 [--dump-logits out.npy] [--generate N]

Prints the argmax of the last position, saves the float32 logits of every position
(`[T, vocab]`) with `--dump-logits`, and with `--generate N` prints the N greedy ids on a line
`tokens: id,id,...`. A model file (.onnx, llama2.c .bin) is imported on the fly.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from irtool.startup import no_collection_at_exit, numpy_loaded_single_threaded

with numpy_loaded_single_threaded():  # OpenBLAS without its thread pool: irtool.startup
    import numpy as np

from irtool.diagnostics import ArgumentParser, run_reporting_errors, wants_debug
from irtool.errors import IrtoolError
from irtool.output_safety import check_output, output_file, writing
from irtool.token_ids import parse_ids
from irtool.weights import nonfinite_allowed


def parse_token_list(text: str, flag: str = "--tokens") -> list[int]:
    """The ids of `flag` (irtool.token_ids: commas or spaces between them)."""
    return list(parse_ids(text, flag))


def build_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog="irtool-run", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("module", help="an irtool .mlir module (or a model file to import)")
    p.add_argument("--tokens", required=True,
                   help="token ids separated by commas or spaces, e.g. 1,403,407")
    p.add_argument("--dump-logits", metavar="OUT.npy",
                   help="save the float32 logits of every position, shape [T, vocab]")
    p.add_argument("--generate", type=int, default=0, metavar="N",
                   help="greedily generate N tokens and print them on a line 'tokens: ...'")
    p.add_argument("--allow-nonfinite", action="store_true",
                   help="accept NaN/Inf (and overflowing) weight values")
    p.add_argument("--no-verify-plan", action="store_true",
                   help="do not check the memory plan of a placed module before running it")
    p.add_argument("--debug", action="store_true", help="show Python tracebacks")
    return p


def verify_plan(module, when: str) -> None:
    """targets/plan_verifier.py on the target the module was planned for (irtool-run, irtool-opt).
    Without a loadable target whose memories hold the module's spaces (a description given by
    path records only its name) only overlaps are checked; the emitters check everything."""
    from irtool.targets.plan_verifier import (
        is_placed,
        module_target_name,
        spaces_of,
        verify_module_plan,
    )

    if not is_placed(module):
        return
    target, name = None, module_target_name(module)
    if name is not None:
        from irtool.targets.registry import load_target

        try:
            target = load_target(name).description
        except IrtoolError:
            target = None
    if target is not None and not spaces_of(module) <= {m.name for m in target.memories}:
        # labelled for another target (by hand, or by a lower-to-hw older than its default of
        # allocate's target): overlaps only
        target = None
    verify_module_plan(module, target, when)


def run(args: argparse.Namespace) -> None:
    from irtool.blas import blas_threads
    from irtool.frontend.load import import_model
    from irtool.interpreter.runner import ModelRunner
    from irtool.run_limits import check_generation, check_steps, linear_cache_capacity

    tokens = parse_token_list(args.tokens)
    check_steps(args.generate, "--generate")
    if args.dump_logits is not None:  # an empty or unwritable path: now, not after the run
        check_output(args.dump_logits, "logits file (--dump-logits)")
    module, store = import_model(args.module)
    if not args.no_verify_plan:
        verify_plan(module, f"in '{args.module}'")
    runner = ModelRunner(module, store)
    if args.generate:  # all of it fits, or an error now (not a shorter list later)
        check_generation(tokens, args.generate, runner.vocab_size, runner.max_seq_len,
                         linear_cache_capacity(module), "--tokens")
    with blas_threads(1):  # the interpreter's tiny matmuls: threads only slow them down
        _run(runner, tokens, args)


def _run(runner, tokens: list[int], args: argparse.Namespace) -> None:
    from irtool.interpreter.runner import greedy

    logits = runner.forward(tokens)
    if args.dump_logits is not None:  # renamed into place when the run succeeded
        with output_file(args.dump_logits, "logits file") as tmp, open(tmp, "wb") as f:
            np.save(f, logits)
    print(f"positions: {logits.shape[0]}, vocab: {logits.shape[1]}, "
          f"next token: {greedy(logits[-1], logits.shape[0] - 1)}")
    if args.generate:
        new = runner.generate(tokens, args.generate)
        print("tokens: " + ",".join(str(t) for t in new))


def main(argv: Sequence[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    no_collection_at_exit()
    args = build_parser().parse_args(argv)

    def body() -> None:
        with writing(), nonfinite_allowed(args.allow_nonfinite):
            run(args)

    run_reporting_errors(body, wants_debug(argv))


if __name__ == "__main__":
    main()
