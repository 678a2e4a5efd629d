"""`irtool-opt`: xDSL's opt driver with irtool's dialects, passes and named pipelines.

Everything xdsl-opt offers keeps working (`-p`, `-o`, `--split-input-file`,
`--verify-diagnostics`, `--print-op-generic`, ...) except xDSL's printers of dialects irtool
never holds (`-t riscv-asm`, `llvm`, `wat`, ...: see XDSL_PRINTERS). irtool adds
`--pipeline=NAME` (run a named sequence before any `-p` passes), `--check-numerics[=TOL]
[--tokens IDS]` (run the interpreter after every pass and stop at the first that changes the
logits: see irtool.check_numerics), keeps the weight store reachable when the module is written
elsewhere (its path is rewritten relative to `-o`; a store a pass writes for a module printed
to stdout is named by its content), and reports errors on one line.
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import IO

from irtool.startup import no_collection_at_exit, numpy_loaded_single_threaded

with numpy_loaded_single_threaded():  # OpenBLAS without its thread pool: irtool.startup
    import numpy  # noqa: F401  (the passes' numpy, loaded here for that)

from xdsl.dialects.builtin import ModuleOp
from xdsl.utils.arg_spec import parse_spec
from xdsl.utils.exceptions import ArgSpecParseError
from xdsl.xdsl_opt_main import xDSLOptMain

from irtool import check_numerics
from irtool.context import register_dialects
from irtool.diagnostics import exit_1_on_usage_errors, run_reporting_errors, wants_debug
from irtool.errors import IrtoolError
from irtool.module_io import check_defined_before_use
from irtool.output_safety import IR_TEXT, WEIGHT_STORE, current, note_input, writing
from irtool.passes import get_all_passes as irtool_passes
from irtool.pipelines import expand_pipeline, pipeline_names
from irtool.run import parse_token_list, verify_plan
from irtool.weights import (
    absolutize_store_reference,
    content_named,
    nonfinite_allowed,
    relativize_store_reference,
    set_store_reference,
    store_digest,
    store_path_for,
    store_reference,
)

XDSL_PRINTERS = {"arm-asm": "arm", "csl": "csl", "llvm": "llvm", "mps": "mps",
                 "riscv-asm": "riscv", "wat": "wasm", "wgsl": "gpu", "x86-asm": "x86"}
"""xDSL's output formats of its own low-level dialects (target -> dialect). irtool-opt neither
parses nor produces those dialects, so on its modules these printers could only fail (an
assertion, a missing llvmlite, NotImplementedError) or print nothing: they are not offered."""

SHRINK_FAILURE = ("--shrink: no pass raised xDSL's ShrinkException, so this input is not one a "
                  "test-case reducer (shrinkray) may shrink to, and the exit code 1 says so; "
                  "irtool's passes never raise it: without such a reducer, leave --shrink out")


class IrToolOptMain(xDSLOptMain):
    def register_all_dialects(self) -> None:
        # Not super(): that would register xDSL's CIRCT `hw`, which clashes with ours.
        register_dialects(self.ctx)

    def register_all_passes(self) -> None:
        for name, factory in irtool_passes().items():
            self.register_pass(name, factory)

    def register_all_targets(self) -> None:
        """xDSL's output formats plus the emitters of every registered target."""
        from irtool.targets.registry import all_emitters

        super().register_all_targets()
        self.xdsl_printers = {name: XDSL_PRINTERS.get(name, "own")
                              for name in self.available_targets if name != "mlir"}
        for name in self.xdsl_printers:
            del self.available_targets[name]
        self.available_targets.update(all_emitters())

    def _target(self, text: str) -> str:
        """The -t argument; one of xDSL's printers dropped above is refused saying why."""
        name = text.split("{", 1)[0].strip()
        if name in self.xdsl_printers and name not in self.available_targets:
            raise argparse.ArgumentTypeError(
                f"'{name}' is xDSL's printer of its {self.xdsl_printers[name]} dialect, which "
                "irtool-opt neither reads nor produces, so it does not apply to transformer "
                "IR (a placed module becomes C with -t c or -t c-project{dir=...}; xdsl-opt "
                f"prints xDSL's dialects); irtool-opt's targets: "
                f"{', '.join(self.available_targets)}")
        return text

    def _check_target_options(self) -> None:
        """Bad `-t NAME{options}` fail here, before the passes run, naming the options."""
        spec = parse_spec(self.args.target)
        entry = self.available_targets[spec.name]
        if inspect.signature(entry).parameters:  # a printer function: it takes no options
            return
        try:  # xDSL's message names the options given and the ones the target takes
            entry().from_spec(spec)
        except (ValueError, TypeError) as e:
            hint = ("; --force is a flag of irtool-opt: give it after the target"
                    if "force" in spec.parameters else "")
            raise IrtoolError(f"bad target options '{self.args.target}': {e}{hint}") from None

    def register_all_arguments(self, arg_parser: argparse.ArgumentParser) -> None:
        super().register_all_arguments(arg_parser)
        arg_parser._option_string_actions["-t"].type = self._target
        arg_parser.add_argument(
            "--pipeline", metavar="NAME[{options}]",
            help="named pass pipeline, run before the -p passes: "
                 f"{', '.join(pipeline_names())} (e.g. riscv-ulp{{capacity=128}})")
        arg_parser.add_argument("--debug", action="store_true",
                                help="show Python tracebacks instead of one-line errors")
        arg_parser.add_argument("--no-verify-plan", action="store_true",
                                help="do not check the memory plan of placed modules before "
                                     "and after every pass")
        arg_parser.add_argument("--allow-nonfinite", action="store_true",
                                help="accept NaN/Inf (and overflowing) weight values")
        arg_parser.add_argument("--force", action="store_true",
                                help="(-t c-project) write into a non-empty directory that "
                                     "irtool did not create (other files there are kept)")
        exit_1_on_usage_errors(arg_parser)
        check_numerics.add_arguments(arg_parser)

    def setup_pipeline(self) -> None:
        if self.args.pipeline:
            self.args.passes = ",".join(
                p for p in (expand_pipeline(self.args.pipeline), self.args.passes) if p)
        try:
            super().setup_pipeline()
        except (ValueError, ArgSpecParseError) as e:  # ArgSpecParseError is a BaseException
            raise IrtoolError(f"bad pass pipeline '{self.args.passes}': {e}") from None
        if not self.args.no_verify_plan:
            verify_after = self.pipeline.callback

            def callback(previous, module, next_pass):
                if verify_after is not None:
                    verify_after(previous, module, next_pass)
                if previous is not None:
                    verify_plan(module, f"after the pass {previous.name}")

            self.pipeline = dataclasses.replace(self.pipeline, callback=callback)

        self._add_numerics_check()
        self._check_target_options()

    def run(self) -> None:
        if self.args.output_file is not None and not self.args.output_file.strip():
            raise IrtoolError("-o '': the output path is empty; give a file name, or leave -o "
                              "out to print to stdout")
        inputs = [self.args.input_file] if self.args.input_file else []
        with writing(inputs, force=self.args.force, primary=self.args.output_file), \
                nonfinite_allowed(self.args.allow_nonfinite):
            try:
                super().run()
            except SystemExit as e:  # xDSL's --shrink ends with exit(1) and no reason given
                if self.args.shrink and e.code == 1:
                    raise IrtoolError(SHRINK_FAILURE) from None
                raise

    def apply_passes(self, prog: ModuleOp) -> None:
        if not self.args.no_verify_plan:
            verify_plan(prog, "in the input")
        super().apply_passes(prog)

    def prepare_input(self):
        try:
            return super().prepare_input()
        except OSError as e:
            raise IrtoolError(f"cannot read '{self.args.input_file}': {e.strerror or e}") from None
        except ValueError as e:  # an extension no frontend reads
            raise IrtoolError(f"cannot read '{self.args.input_file}': {e} (irtool-opt reads "
                              ".mlir text; pass -f mlir for another extension)") from None

    def _add_numerics_check(self) -> None:
        """--check-numerics: the interpreter runs after xDSL's verification between passes."""
        if self.args.check_numerics is None:
            if self.args.tokens is not None:
                raise IrtoolError("--tokens is the probe of --check-numerics: give both")
            return
        tokens = None if self.args.tokens is None else parse_token_list(self.args.tokens)
        check = check_numerics.NumericsCheck(self.args.check_numerics, tokens)
        verify = self.pipeline.callback

        def callback(previous, module, following) -> None:
            if verify is not None:
                verify(previous, module, following)
            check(previous, module, following)

        self.pipeline = dataclasses.replace(self.pipeline, callback=callback)

    def parse_chunk(self, chunk: IO[bytes], file_extension: str,
                    start_offset: int = 0) -> ModuleOp | None:
        module = super().parse_chunk(chunk, file_extension, start_offset)
        if module is not None and self.args.input_file:
            absolutize_store_reference(module, os.path.dirname(self.args.input_file))
        if module is not None:
            check_defined_before_use(module, self.args.input_file or "the input")
        ref = store_reference(module) if module is not None else None
        if ref is not None:  # an input too: never an output of this run
            note_input(ref, "weight store")
        return module

    def prepare_output(self) -> IO[str]:
        if self.args.output_file:  # renamed into place when the whole run succeeded
            outputs = current()
            assert outputs is not None
            target = parse_spec(self.args.target).name
            what, kind = ("module", IR_TEXT) if target == "mlir" else (f"-t {target} output",
                                                                       None)
            return open(outputs.file(self.args.output_file, what, kind=kind), "w")
        return super().prepare_output()

    def output_resulting_program(self, prog: ModuleOp) -> str:
        if self.args.output_file:
            ref = store_reference(prog)
            if ref is not None and Path(ref).name != store_path_for(self.args.output_file).name:
                name_new_store_by_content(prog)  # a later module of --split-input-file
            relativize_store_reference(prog, os.path.dirname(self.args.output_file) or ".")
        else:
            name_new_store_by_content(prog)
        return super().output_resulting_program(prog)


def name_new_store_by_content(module: ModuleOp) -> None:
    """A store this run wrote (quantize's) for a module printed to stdout is named by its
    content, `s.w8a8.<sha256 prefix>.weights.npz`. Named after the input alone, the next such
    run with other data (calibration, options) would replace the store an earlier printed
    module reads and silently change what it computes; named by content, the same weights
    share one file and different weights never meet. (`-o OUT.mlir` names it OUT.weights.npz,
    replaced together with OUT.mlir.)"""
    outputs = current()
    ref = store_reference(module)
    temp = None if outputs is None or ref is None else outputs.pending(ref)
    if temp is None:
        return
    digest = store_digest(temp)
    new = content_named(ref, digest)
    if outputs.pending(new) is not None or _same_store(new, digest):
        outputs.discard(ref)  # the same weights are (or are being) written there
    elif os.path.lexists(new):
        raise IrtoolError(f"refusing to replace '{new}': it is not the weight store this run "
                          "names by its content (its weights differ); move it away, or give "
                          "-o OUT.mlir to write the store as OUT.weights.npz")
    else:
        outputs.rename(ref, new, WEIGHT_STORE)
    set_store_reference(module, os.path.abspath(new))


def _same_store(path: Path, digest: str) -> bool:
    if not path.is_file():
        return False
    try:
        return store_digest(path) == digest
    except IrtoolError:  # not a store at all
        return False




def main(argv: Sequence[str] | None = None) -> None:
    args = check_numerics.with_default_tolerance(sys.argv[1:] if argv is None else argv)
    no_collection_at_exit()
    run_reporting_errors(lambda: IrToolOptMain(description=__doc__, args=args).run(),
                         wants_debug(args))


if __name__ == "__main__":
    main()
