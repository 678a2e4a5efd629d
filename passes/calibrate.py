"""calibrate: record the activation range of every linear layer's input on calibration data.

    irtool-opt m.mlir -p 'calibrate{calibration="eval_tokens.json" percentile=100.0
                                    max-sequences=50}'

The interpreter runs the module (with its weight store, named by `irtool.weights`) over the
calibration sequences, and each `transformer.linear` gets the range `[lo, hi]` of the values
its input took, as `irtool.act_range = [lo : f32, hi : f32]`. With `percentile=p < 100` the
range is the `100 - p` and `p` percentiles of all those values instead of min and max. The
`quantize` pass turns the ranges into per-tensor int8 parameters (scheme w8a8).

Calibration data (`calibration=PATH`, see `irtool.quality.load_sequences`): an
`eval_tokens.json` (its `calib` stories), a JSON list of id lists, a token-id file (one sequence
per line, ids separated by commas or spaces), or a text file with `tokenizer=PATH`.

A module after extract-kv-cache works too: the sequences go through `@prefill` (or `@decode`
token by token), and the ranges are copied to the matching linears (same order) of the other
step function, so prefill and decode quantize their activations alike.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from xdsl.context import Context
from xdsl.dialects import func
from xdsl.dialects.builtin import ArrayAttr, Float32Type, FloatAttr, IntegerAttr, ModuleOp, i64
from xdsl.interpreter import Interpreter, InterpreterFunctions, impl, register_impls
from xdsl.ir import SSAValue
from xdsl.passes import ModulePass

from irtool.dialects import transformer as tf
from irtool.errors import IrtoolError
from irtool.ir_names import ACT_RANGE_ATTR, CALIBRATED_ATTR
from irtool.numerics.transformer import linear


def act_range(op: tf.LinearOp) -> tuple[np.float32, np.float32] | None:
    """The recorded `[lo, hi]` of a linear's input, or None."""
    attr = op.attributes.get(ACT_RANGE_ATTR)
    if not isinstance(attr, ArrayAttr) or len(attr.data) != 2:
        return None
    lo, hi = (a.value.data for a in attr.data)
    return np.float32(lo), np.float32(hi)


def set_act_range(op: tf.LinearOp, lo: float, hi: float) -> None:
    op.attributes[ACT_RANGE_ATTR] = ArrayAttr([FloatAttr(float(np.float32(lo)), Float32Type()),
                                               FloatAttr(float(np.float32(hi)), Float32Type())])


class _Ranges:
    """Per input value: running min/max, or every value (for percentiles)."""

    def __init__(self, percentile: float):
        self.percentile = percentile
        self.lo: dict[SSAValue, float] = {}
        self.hi: dict[SSAValue, float] = {}
        self.values: dict[SSAValue, list[np.ndarray]] = {}
        self.ops: dict[SSAValue, list[tf.LinearOp]] = {}
        self._last: dict[SSAValue, np.ndarray] = {}

    def record(self, op: tf.LinearOp, x: np.ndarray) -> None:
        key = op.input
        users = self.ops.setdefault(key, [])
        if op not in users:
            users.append(op)
        if self._last.get(key) is x:  # the same array, already seen by a sibling linear
            return
        self._last[key] = x
        if self.percentile >= 100.0:
            lo, hi = float(np.min(x)), float(np.max(x))
            self.lo[key] = min(lo, self.lo.get(key, lo))
            self.hi[key] = max(hi, self.hi.get(key, hi))
        else:
            self.values.setdefault(key, []).append(np.asarray(x, np.float32).ravel())

    def result(self) -> dict[tf.LinearOp, tuple[float, float]]:
        out: dict[tf.LinearOp, tuple[float, float]] = {}
        for key, ops in self.ops.items():
            if self.percentile >= 100.0:
                rng = (self.lo[key], self.hi[key])
            else:
                allv = np.concatenate(self.values[key])
                rng = (float(np.percentile(allv, 100.0 - self.percentile)),
                       float(np.percentile(allv, self.percentile)))
            for op in ops:
                out[op] = rng
        return out


def _recorder(ranges: _Ranges) -> InterpreterFunctions:
    @register_impls
    class RecordingLinear(InterpreterFunctions):
        @impl(tf.LinearOp)
        def run_linear(self, interpreter: Interpreter, op: tf.LinearOp, args):
            ranges.record(op, args[0])
            return (linear(args[0], args[1], args[2] if len(args) > 2 else None),)

    return RecordingLinear()


def _linears(fn: func.FuncOp) -> list[tf.LinearOp]:
    return [op for op in fn.walk() if isinstance(op, tf.LinearOp)]


def _weight_names(ops: Sequence[tf.LinearOp]) -> list[str | None]:
    return [op.weight.owner.weight_name.data if isinstance(op.weight.owner, tf.WeightOp)
            else None for op in ops]


def calibrate_module(module: ModuleOp, store, sequences: Sequence[Sequence[int]],
                     percentile: float = 100.0, max_sequences: int | None = None,
                     where: str = "calibration data") -> dict[tf.LinearOp, tuple[float, float]]:
    """Run `sequences` through `module` and set `irtool.act_range` on every linear reached.

    Returns the ranges by op. Sequences longer than the model's maximum are cut.
    """
    from irtool.interpreter.runner import ModelRunner
    from irtool.quality import check_sequences

    if not 0.0 < percentile <= 100.0:
        raise IrtoolError(f"calibrate: percentile must be in (0, 100], got {percentile}")
    if max_sequences is not None and max_sequences <= 0:
        raise IrtoolError(f"calibrate: max-sequences must be positive, got {max_sequences}")
    runner = ModelRunner(module, store)
    seqs = list(sequences)[:max_sequences] if max_sequences else list(sequences)
    seqs = check_sequences(seqs, runner.vocab_size, runner.max_seq_len, where)
    ranges = _Ranges(percentile)
    runner.interpreter.register_implementations(_recorder(ranges), override=True)
    for s in seqs:
        runner.forward(s)
    found = ranges.result()
    if not found:
        raise IrtoolError("calibrate: no transformer.linear was executed (the module has no "
                          "float linear layers to calibrate)")
    for op, (lo, hi) in found.items():
        set_act_range(op, lo, hi)
    _propagate(module, found)
    module.attributes[CALIBRATED_ATTR] = IntegerAttr(len(seqs), i64)
    return found


def _propagate(module: ModuleOp, found: dict) -> None:
    """Copy ranges between step functions whose linears match one to one (same weights in
    the same order), e.g. from the @prefill that ran to the @decode that did not."""
    fns = [op for op in module.body.block.ops if isinstance(op, func.FuncOp)]
    done = [fn for fn in fns if all(op in found for op in _linears(fn)) and _linears(fn)]
    for fn in fns:
        if fn in done:
            continue
        ops = _linears(fn)
        for src in done:
            src_ops = _linears(src)
            if _weight_names(src_ops) == _weight_names(ops):
                for a, b in zip(src_ops, ops, strict=True):
                    b.attributes[ACT_RANGE_ATTR] = a.attributes[ACT_RANGE_ATTR]
                break


@dataclass(frozen=True)
class CalibratePass(ModulePass):
    """Record activation ranges of linear inputs (see the module docstring)."""

    name = "calibrate"

    calibration: str = ""
    percentile: float | int = 100.0
    """`int` too, so that `percentile=99` parses as well as `percentile=99.0`."""
    max_sequences: int | None = None
    tokenizer: str | None = None

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        from irtool.module_io import load_store
        from irtool.quality import load_sequences
        from irtool.weights import store_reference

        if not self.calibration:
            raise IrtoolError("calibrate: give the calibration data, e.g. "
                              "calibrate{calibration=\"eval_tokens.json\"}")
        if store_reference(op) is None:
            raise IrtoolError("calibrate: the module has no irtool.weights store to run with "
                              "(calibrate a module written by 'irtool import')")
        store = load_store(op, "the module")
        path = os.path.expanduser(self.calibration)
        seqs = load_sequences(path, key="calib", tokenizer=self.tokenizer, what="calibration")
        calibrate_module(op, store, seqs, self.percentile, self.max_sequences,
                         where=f"calibration file '{self.calibration}'")
