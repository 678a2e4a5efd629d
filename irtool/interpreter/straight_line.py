"""Calling a function of the module without re-walking its IR: a straight-line program.

Why: xDSL's `Interpreter.call_op` walks the function's ops on every call and keeps values in a
scoped dictionary keyed by SSA value (a hash per operand and result). For the small models the
interpreter runs, that bookkeeping cost as much as the numpy arithmetic itself: a full
recomputation of nanogpt-tiny runs ~120 ops of a few microseconds each per token.

`StraightLine.of(fn, interpreter)` reads a function once: its ops in order, each with the
slots of its operands and results in a flat list, and the slots it reads last (dropped after
it, so numpy reuses that memory while it is still in the cache). Ops the caller declares
constant (`constant(op)`: no operands, the same value at every call, e.g. a weight read from
the store) run once, there. A call fills the argument slots and runs every other op through
the interpreter's registered implementations, looked up per call as `call_op` does (so
overrides registered later count, and errors carry the op as xDSL reports them), without
`run_op`'s per-op rebuilding of operand tuples; with listeners attached, through `run_op`
itself. The numbers are those of `call_op`, bit for bit. Only a function whose body is one
block of ops without regions or successors, ended by `func.return`, runs so (`runs_here`);
anything else (a `memory.kernel` body, branches, an external function) keeps going through
`call_op`.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Sequence
from typing import Any

from xdsl.dialects import func
from xdsl.interpreter import Interpreter
from xdsl.ir import Operation, SSAValue

_NEXT_OP = operator.attrgetter("next_op")

Step = tuple[Operation, tuple[int, ...], tuple[int, ...], tuple[int, ...]]
"""An op, the slots of its operands, of its results, and the slots it is the last to read."""


class StraightLine:
    """One function as ops over numbered value slots."""

    def __init__(self, fn: func.FuncOp):
        self.fn = fn
        self.constants: list[tuple[int, Any]] = []
        block = fn.body.blocks.first
        self.ops: tuple[Operation, ...] = tuple(block.ops) if block is not None else ()
        self.steps: list[Step] = []
        self.n_args = 0
        self.n_slots = 0
        self.returns: tuple[int, ...] = ()
        self.runs_here = False

    @staticmethod
    def of(fn: func.FuncOp, interpreter: Interpreter,
           constant: Callable[[Operation], bool] = lambda op: False) -> StraightLine:
        program = StraightLine(fn)
        program._read(interpreter, constant)
        return program

    def _read(self, interpreter: Interpreter, constant: Callable[[Operation], bool]) -> None:
        blocks = list(self.fn.body.blocks)
        ops = self.ops
        if len(blocks) != 1 or not ops or not isinstance(ops[-1], func.ReturnOp):
            return
        args = blocks[0].args
        slot: dict[SSAValue, int] = {arg: i for i, arg in enumerate(args)}
        steps: list[tuple[Operation, tuple[int, ...], tuple[int, ...]]] = []
        constants: list[tuple[int, Any]] = []
        for op in ops[:-1]:
            if op.regions or op.successors or any(v not in slot for v in op.operands):
                return
            ins = tuple(slot[v] for v in op.operands)
            for r in op.results:
                slot[r] = len(slot)
            if not op.operands and constant(op):
                values = interpreter.run_op(op, ())
                constants += zip((slot[r] for r in op.results), values, strict=True)
                continue
            steps.append((op, ins, tuple(slot[r] for r in op.results)))
        if any(v not in slot for v in ops[-1].operands):
            return
        returns = tuple(slot[v] for v in ops[-1].operands)
        last: dict[int, int] = {}  # slot -> the step that reads (or makes) it last
        for k, (_, ins, outs) in enumerate(steps):
            for i in (*ins, *outs):
                last[i] = k
        for i in (*range(len(args)), *returns, *(i for i, _ in constants)):
            last.pop(i, None)  # the caller's arguments, the results, the constants stay
        dead: list[list[int]] = [[] for _ in steps]
        for i, k in last.items():
            dead[k].append(i)
        self.steps = [(op, ins, outs, tuple(dead[k])) for k, (op, ins, outs) in enumerate(steps)]
        self.n_args, self.n_slots, self.returns = len(args), len(slot), returns
        self.constants = constants
        self.runs_here = True

    def is_current(self) -> bool:
        """The function still holds the same ops (a pass that added, erased or replaced ops
        since it was read makes the program stale)."""
        block = self.fn.body.blocks.first
        ops = self.ops
        if block is None or not ops:
            return block is None or block.first_op is None
        # The block's list, from its first op along the next links, is exactly `ops`: checked
        # on the links themselves (C-level map over the tuple), as walking xDSL's op iterator
        # in Python cost ~60 us a call, 5% of a nanogpt-tiny token.
        return (block.first_op is ops[0] and ops[-1].next_op is None
                and all(map(operator.is_, map(_NEXT_OP, ops[:-1]), ops[1:])))

    def __call__(self, interpreter: Interpreter, args: Sequence[Any]) -> tuple[Any, ...]:
        if len(args) != self.n_args:
            raise ValueError(f"@{self.fn.sym_name.data} takes {self.n_args} arguments, "
                             f"{len(args)} given")
        vals: list[Any] = [None] * self.n_slots
        vals[:self.n_args] = args
        for i, value in self.constants:
            vals[i] = value
        # xDSL's registry of implementations (what run_op dispatches through), unless
        # listeners want to see every op
        table = None if interpreter.listeners else getattr(interpreter, "_impls", None)
        for op, ins, outs, dead in self.steps:
            inputs = tuple([vals[i] for i in ins])
            if table is not None:
                results = table.run(interpreter, op, inputs).values
            else:
                results = interpreter.run_op(op, inputs)
            if len(results) != len(outs):
                raise ValueError(f"{op.name}: {len(results)} results for {len(outs)} values")
            for i, value in zip(outs, results, strict=True):
                vals[i] = value
            for i in dead:
                vals[i] = None
        return tuple(vals[i] for i in self.returns)
