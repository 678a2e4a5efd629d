"""`irtool-opt`: xDSL's opt driver with irtool's dialects, passes and named pipelines.

Everything xdsl-opt offers keeps working (`-p`, `-o`, `--split-input-file`,
`--verify-diagnostics`, `--print-op-generic`, ...). irtool adds `--pipeline=NAME` (run a
named sequence before any `-p` passes), `--check-numerics[=TOL] [--tokens IDS]` (run the
interpreter after every pass and stop at the first that changes the logits: see
irtool.check_numerics), keeps the weight store reachable when the module is written elsewhere
(its path is rewritten relative to `-o`), and reports errors on one line.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from collections.abc import Sequence
from typing import IO

from xdsl.dialects.builtin import ModuleOp
from xdsl.utils.exceptions import ArgSpecParseError
from xdsl.xdsl_opt_main import xDSLOptMain

from irtool import check_numerics
from irtool.context import register_dialects
from irtool.diagnostics import run_reporting_errors, wants_debug
from irtool.errors import IrtoolError
from irtool.passes import get_all_passes as irtool_passes
from irtool.pipelines import expand_pipeline, pipeline_names
from irtool.run import parse_token_list
from irtool.weights import absolutize_store_reference, relativize_store_reference


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
        self.available_targets.update(all_emitters())

    def register_all_arguments(self, arg_parser: argparse.ArgumentParser) -> None:
        super().register_all_arguments(arg_parser)
        arg_parser.add_argument(
            "--pipeline", metavar="NAME[{options}]",
            help="named pass pipeline, run before the -p passes: "
                 f"{', '.join(pipeline_names())} (e.g. riscv-ulp{{capacity=128}})")
        arg_parser.add_argument("--debug", action="store_true",
                                help="show Python tracebacks instead of one-line errors")
        check_numerics.add_arguments(arg_parser)

    def setup_pipeline(self) -> None:
        if self.args.pipeline:
            self.args.passes = ",".join(
                p for p in (expand_pipeline(self.args.pipeline), self.args.passes) if p)
        try:
            super().setup_pipeline()
        except (ValueError, ArgSpecParseError) as e:  # ArgSpecParseError is a BaseException
            raise IrtoolError(f"bad pass pipeline '{self.args.passes}': {e}") from None
        self._add_numerics_check()

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
        return module

    def prepare_output(self) -> IO[str]:
        if self.args.output_file:
            out_dir = os.path.dirname(self.args.output_file)
            try:
                if out_dir:
                    os.makedirs(out_dir, exist_ok=True)
                return open(self.args.output_file, "w")
            except OSError as e:
                raise IrtoolError(f"cannot write '{self.args.output_file}': {e.strerror}") from None
        return super().prepare_output()

    def output_resulting_program(self, prog: ModuleOp) -> str:
        if self.args.output_file:
            relativize_store_reference(prog, os.path.dirname(self.args.output_file) or ".")
        return super().output_resulting_program(prog)


def main(argv: Sequence[str] | None = None) -> None:
    args = check_numerics.with_default_tolerance(sys.argv[1:] if argv is None else argv)
    run_reporting_errors(lambda: IrToolOptMain(description=__doc__, args=args).run(),
                         wants_debug(args))


if __name__ == "__main__":
    main()
