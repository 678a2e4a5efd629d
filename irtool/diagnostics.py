"""How every irtool driver reports failure: one line `error: ...`, exit code 1.

A traceback is for irtool's developers, not its users; `--debug` brings it back.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from typing import NoReturn

from xdsl.utils.exceptions import (
    ArgSpecParseError,
    DiagnosticException,
    InterpretationError,
    ParseError,
)

from irtool.errors import IrtoolError, verifier_message


def fail(message: str) -> NoReturn:
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(1)


def run_reporting_errors(body: Callable[[], None], debug: bool) -> None:
    """Run `body`; turn any failure into `error: ...` and exit code 1 unless `debug`."""
    if debug:
        body()
        return
    try:
        body()
    except IrtoolError as e:
        fail(str(e))
    except ParseError as e:
        fail(f"cannot parse the input:\n{e}")
    except ArgSpecParseError as e:
        fail(f"bad pass or target options (values with '/' or spaces need quotes: "
             f"dir=\"out/x\"):\n{e}")
    except InterpretationError as e:
        fail(f"the interpreter failed: {e}")
    except DiagnosticException as e:
        fail(f"the IR does not verify: {verifier_message(e)}")
    except RecursionError:
        fail("the input nests too deeply for irtool (Python's recursion limit was reached "
             "while reading or walking it); flatten it")
    except KeyboardInterrupt:
        fail("interrupted")
    except BrokenPipeError:
        # The reader went away (`| head`): nothing more to say, and nobody to say it to.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        raise SystemExit(0) from None
    except SystemExit:
        raise
    except BaseException as e:  # noqa: BLE001 - the last line of defence for users
        fail(f"{type(e).__name__}: {e} (this is a bug in irtool; rerun with --debug for the "
             "traceback and report it)")


class ArgumentParser(argparse.ArgumentParser):
    """argparse, but a bad command line is a bad input like any other: `error: ...`, exit 1
    (argparse's own convention is exit code 2)."""

    def error(self, message: str) -> NoReturn:
        fail(f"{self.prog}: {message} (see '{self.prog} --help')")


def exit_1_on_usage_errors(parser: argparse.ArgumentParser) -> None:
    """Make an existing parser (xDSL's) report usage errors as `ArgumentParser` does."""
    parser.error = ArgumentParser.error.__get__(parser)  # type: ignore[method-assign]


def wants_debug(argv: list[str]) -> bool:
    return "--debug" in argv
