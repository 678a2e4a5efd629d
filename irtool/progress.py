"""Progress on the terminal for the steps that take seconds: importing a large model, the
compile pipeline (CP-SAT on a big plan), writing a project, generating.

Why: a command that prints nothing for many seconds looks hung. A line names the running step
on stderr and disappears when it ends (a spinner, rich, once the step has run half a second);
a step that took a second or more leaves one line with its time. Nothing at all is written
when stderr is not a terminal (pipes, CI logs, tests that read the output) or with `--quiet`.
"""

from __future__ import annotations

import sys
import threading
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


SPIN_AFTER = 0.5  # seconds: a step still running then gets rich's spinner


@contextmanager
def step(text: str) -> Iterator[None]:
    """`text ...` on the terminal while the block runs; a spinner (rich) replaces it if the
    step lasts: rich takes 60 ms to import, more than most steps of a small model take."""
    if not enabled():
        yield
        return
    start = time.perf_counter()
    status = _StepStatus(text)
    try:
        yield
    finally:
        status.close()
    elapsed = time.perf_counter() - start
    if elapsed >= LONG:
        _console().print(f"[dim]{text}: {elapsed:.1f} s[/dim]")


class _StepStatus:
    """The running step's line: plain text at once, rich's spinner after SPIN_AFTER seconds
    (from a timer thread), erased when the step ends."""

    def __init__(self, text: str):
        self.text = text
        self.lock = threading.Lock()
        self.spinner = None
        self.closed = False
        sys.stderr.write(f"{text} ...\r")
        sys.stderr.flush()
        self.timer = threading.Timer(SPIN_AFTER, self._spin)
        self.timer.daemon = True
        self.timer.start()

    def _spin(self) -> None:
        with self.lock:
            if not self.closed:
                self.spinner = _console().status(f"{self.text} ...")
                self.spinner.start()

    def close(self) -> None:
        self.timer.cancel()
        with self.lock:
            self.closed = True
            if self.spinner is not None:
                self.spinner.stop()
        sys.stderr.write("\r\x1b[K")  # the line is erased, as the spinner's would be
        sys.stderr.flush()


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
