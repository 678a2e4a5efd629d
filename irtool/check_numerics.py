"""`irtool-opt --check-numerics[=TOL] [--tokens IDS]`: the numbers, verified after every pass.

MLIR verifies the structure of the IR after each pass; this verifies what it computes. The
interpreter runs a probe (a few token ids) through the input module and again after every
pass of the pipeline, and the first pass whose logits move by more than the tolerance stops
the run:

    error: pass 'NAME' changed the logits by X (tolerance T) at position P

The change X is relative: the largest |logit after the pass - logit of the input module| over
every probe position and vocabulary entry, divided by the largest |logit| of the input
module. P is the probe position (0-based) where that largest difference is. A module with
`@decode` (after extract-kv-cache) runs the probe token by token through it, as irtool-run
does, so every level compares the logits of every position.

A pass whose output the interpreter cannot run (an op it has no implementation for, no entry
point it knows) is skipped with a note on stderr; the passes after it are still compared
with the input module. A pass that writes a new weight store (quantize) is checked with that
store, read from where the command keeps it until the command succeeds.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
from xdsl.dialects.builtin import ModuleOp
from xdsl.passes import ModulePass
from xdsl.utils.exceptions import InterpretationError

from irtool.errors import IrtoolError
from irtool.ir_names import KV_CAPACITY_ATTR, KV_WINDOW_ATTR
from irtool.module_io import load_store
from irtool.weights import WeightStore, store_reference

if TYPE_CHECKING:  # the interpreter is imported when a check runs: irtool-opt starts faster
    from irtool.interpreter.runner import ModelRunner

FLAG = "--check-numerics"
DEFAULT_TOLERANCE = 1e-4
PROBE_LENGTH = 4


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        FLAG, metavar="TOL", type=_tolerance, nargs="?", const=DEFAULT_TOLERANCE,
        help="run the interpreter on a probe before the pipeline and after every pass; stop "
             "at the first pass whose logits change by more than TOL relative to the largest "
             f"|logit| of the input (default {DEFAULT_TOLERANCE:g})")
    parser.add_argument(
        "--tokens", metavar="IDS",
        help=f"(with {FLAG}) the probe: comma-separated token ids (default: "
             f"{PROBE_LENGTH} ids spread over the vocabulary)")


def with_default_tolerance(argv: Sequence[str]) -> list[str]:
    """A bare `--check-numerics` would take the next argument (the input file) as its TOL:
    spell the default out instead."""
    return [f"{FLAG}={DEFAULT_TOLERANCE!r}" if a == FLAG else a for a in argv]


def _tolerance(text: str) -> float:
    try:
        tol = float(text)
    except ValueError:
        tol = float("nan")
    if not tol > 0 or not np.isfinite(tol):
        raise argparse.ArgumentTypeError(f"the tolerance must be a positive number, got "
                                         f"'{text}'")
    return tol


def probe_tokens(runner: ModelRunner, n: int = PROBE_LENGTH) -> list[int]:
    """`n` distinct ids spread over the vocabulary (skipping 0, often padding), no longer
    than the module's maximum length or KV cache."""
    limit = min(x for x in (n, runner.max_seq_len, _capacity(runner.module)) if x is not None)
    vocab = runner.vocab_size or limit + 1
    return sorted({int(t) for t in np.linspace(1, vocab - 1, max(1, limit))})


def _capacity(module: ModuleOp) -> int | None:
    attr = module.attributes.get(KV_CAPACITY_ATTR)
    if attr is None or KV_WINDOW_ATTR in module.attributes:  # a ring takes any length
        return None
    return attr.value.data


class NumericsCheck:
    """A PassPipeline callback: the probe's logits before the first pass are the reference,
    and every pass's output is compared with them."""

    def __init__(self, tolerance: float = DEFAULT_TOLERANCE,
                 tokens: Sequence[int] | None = None, log=None):
        self.tolerance = tolerance
        self.tokens = None if tokens is None else list(tokens)
        self.log = log if log is not None else sys.stderr
        self._stores: dict[str | None, WeightStore] = {}
        self._reference: np.ndarray | None = None
        self._probe: list[int] = []
        self._checked: list[tuple[str, float]] = []

    def __call__(self, previous: ModulePass | None, module: ModuleOp,
                 following: ModulePass | None) -> None:
        if previous is None:
            self._start(module)
        else:
            self._check(previous.name, module)
        if following is None and previous is not None:
            self._summary()

    def _store(self, module: ModuleOp) -> WeightStore:
        ref = store_reference(module)
        if ref not in self._stores:  # passes that write a new store (quantize) name a new file
            self._stores[ref] = load_store(module, "the module")
        return self._stores[ref]

    def _logits(self, module: ModuleOp, tokens: Sequence[int] | None) -> np.ndarray:
        from irtool.interpreter.runner import ModelRunner

        runner = ModelRunner(module, self._store(module))
        if tokens is None:
            tokens = probe_tokens(runner)
        self._probe = list(tokens)
        return runner.forward(tokens)

    def _start(self, module: ModuleOp) -> None:
        self._checked = []
        try:
            self._reference = self._logits(module, self.tokens)
        except (IrtoolError, InterpretationError) as e:
            raise IrtoolError(f"{FLAG}: the interpreter cannot run the input module, so there "
                              f"is nothing to compare the passes with: {e}") from None

    def _check(self, name: str, module: ModuleOp) -> None:
        assert self._reference is not None
        try:
            logits = self._logits(module, self._probe)
        except (IrtoolError, InterpretationError) as e:
            print(f"note: {FLAG}: skipped pass '{name}': the interpreter cannot run its "
                  f"output ({e})", file=self.log)
            return
        ref = self._reference
        if logits.shape != ref.shape:
            raise IrtoolError(f"pass '{name}' changed the logits' shape from {list(ref.shape)} "
                              f"to {list(logits.shape)}")
        change, position = relative_change(logits, ref)
        if not change <= self.tolerance:
            raise IrtoolError(f"pass '{name}' changed the logits by {change:.3g} (tolerance "
                              f"{self.tolerance:g}) at position {position}")
        self._checked.append((name, change))

    def _summary(self) -> None:
        probe = ",".join(map(str, self._probe))
        if not self._checked:
            print(f"note: {FLAG}: no pass could be checked (probe {probe})", file=self.log)
            return
        name, change = max(self._checked, key=lambda c: c[1])
        print(f"note: {FLAG}: {len(self._checked)} pass(es) kept the logits of the probe "
              f"{probe} within {self.tolerance:g} (largest change {change:.3g}, after "
              f"'{name}')", file=self.log)


def relative_change(logits: np.ndarray, reference: np.ndarray) -> tuple[float, int]:
    """(max |logits - reference| / max |reference|, the position of that maximum); a
    non-finite logit where the reference is finite counts as an infinite change."""
    diff = np.abs(logits.astype(np.float64) - reference.astype(np.float64))
    diff[~np.isfinite(diff)] = np.inf
    scale = float(np.max(np.abs(reference))) or 1.0
    per_position = diff.max(axis=-1)
    position = int(np.argmax(per_position))
    return float(per_position[position]) / scale, position
