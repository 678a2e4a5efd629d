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
itself. Each op's implementation is bound to the op once, while the registry keeps the same
entry for its type: through its functions' `bind(op)` where they have one (a function of the
operand values with the op's attributes already read: reading them through xDSL's properties
on every call cost a few microseconds an op, a tenth of a small model's token), else as the
`@impl` itself. The numbers are those of `call_op`, bit for bit. Only a function whose body is one
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
from xdsl.utils.exceptions import InterpretationError

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
        self._plan: list[tuple] = []
        self._runs: list[tuple | None] = []
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
        self._plan = [(op, _reader(ins), outs, dead) for op, ins, outs, dead in self.steps]
        self._runs = [None] * len(self.steps)
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
        if table is None:
            for op, ins, outs, dead in self.steps:
                _store(op, interpreter.run_op(op, tuple([vals[i] for i in ins])), outs, vals)
                for i in dead:
                    vals[i] = None
        else:
            registry, runs = table._impl_dict, self._runs
            for k, (op, read, outs, dead) in enumerate(self._plan):
                entry = registry.get(type(op))  # a new tuple at every registration
                run = runs[k]
                if run is None or run[0] is not entry:
                    run = runs[k] = (entry, _bound(interpreter, op, entry))
                try:
                    results = run[1](read(vals))
                except Exception as e:
                    op.emit_error("Error while interpreting op", e)
                if len(outs) == 1 and len(results) == 1:
                    vals[outs[0]] = results[0]
                else:
                    _store(op, results, outs, vals)
                for i in dead:
                    vals[i] = None
        return tuple(vals[i] for i in self.returns)


def _store(op: Operation, results: Sequence[Any], outs: tuple[int, ...], vals: list) -> None:
    if len(results) != len(outs):
        raise ValueError(f"{op.name}: {len(results)} results for {len(outs)} values")
    for i, value in zip(outs, results, strict=True):
        vals[i] = value


def _reader(ins: tuple[int, ...]) -> Callable[[list], tuple]:
    """The operand values of a step from the slots, as a tuple (an itemgetter: a list
    comprehension per op cost more than the lookups)."""
    if len(ins) >= 2:
        return operator.itemgetter(*ins)
    if len(ins) == 1:
        only = ins[0]
        return lambda vals: (vals[only],)
    return lambda vals: ()


def _bound(interpreter: Interpreter, op: Operation, entry) -> Callable[[tuple], Sequence[Any]]:
    """The op's implementation as a function of its operand values alone: the one its
    functions bind for it (`bind(op)`, attributes read once), else the registered `@impl`."""
    if entry is None:
        raise InterpretationError(f"Could not find interpretation function for op {op.name}")
    functions, implementation = entry
    bind = getattr(functions, "bind", None)
    fast = bind(op) if bind is not None else None
    if fast is not None:
        return fast
    return lambda inputs: implementation(functions, interpreter, op, inputs).values
