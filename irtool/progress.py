"""Progress on the terminal for the steps that take seconds: importing a large model, the
compile pipeline (CP-SAT on a big plan), writing a project, generating.

Why: a command that prints nothing for many seconds looks hung. A spinner (rich) names the
running step on stderr and disappears when it ends; a step that took a second or more leaves
one line with its time. Nothing at all is written when stderr is not a terminal (pipes, CI
logs, tests that read the output) or with `--quiet`.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

LONG = 1.0  # seconds: a step that took this long leaves its line with the time
_quiet = False


def set_quiet(quiet: bool) -> None:
    global _quiet
    _quiet = quiet


def enabled() -> bool:
    return not _quiet and sys.stderr.isatty()


def _console():
    from rich.console import Console

    return Console(file=sys.stderr, highlight=False)


@contextmanager
def step(text: str) -> Iterator[None]:
    """A spinner named `text` while the block runs (on a terminal)."""
    if not enabled():
        yield
        return
    console = _console()
    start = time.perf_counter()
    with console.status(f"{text} ..."):
        yield
    elapsed = time.perf_counter() - start
    if elapsed >= LONG:
        console.print(f"[dim]{text}: {elapsed:.1f} s[/dim]")


class TokenBar:
    """A bar of generated tokens out of `total` (on a terminal); call it with each token."""

    def __init__(self, total: int, text: str = "generating"):
        self.progress = None
        if enabled() and total > 0:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
            )

            self.progress = Progress(TextColumn(text), BarColumn(), MofNCompleteColumn(),
                                     TimeElapsedColumn(), console=_console(), transient=True)
            self.task = self.progress.add_task(text, total=total)

    def __enter__(self) -> TokenBar:
        if self.progress is not None:
            self.progress.start()
        return self

    def __call__(self, token: int) -> None:
        if self.progress is not None:
            self.progress.advance(self.task)

    def __exit__(self, *exc) -> None:
        if self.progress is not None:
            self.progress.stop()
