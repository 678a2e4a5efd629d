"""Lowering rules: which kernel runs an op, with which operands and parameters.

A rule is a small function for one op type: given the op, a map from the op's operands to the
values that stand for them (buffers outside a `memory.kernel`, or the op's own operands when
bufferize asks) and the values its results go to, it returns a `KernelCall`, or None when it
does not apply (a shape or form it does not handle), so the next rule for that op is tried.
A rule raises `IrtoolError` when no kernel can run the op at all and it knows why.

Targets own their rule sets and compose them: a target takes the portable C rules and puts
its own in front (`LoweringRules.extended`), the way xDSL pattern lists are combined. The
`lower-to-hw` pass applies the rules of the target it is given; `bufferize` reads from the
chosen kernel's signature which output may reuse which input's buffer.

Rules over a pattern of ops rather than one are fusions: functions that `lower-to-hw` runs on
the module once every op has its call, each replacing calls that one kernel runs (they see
the buffers that pass between the calls, and so when a pair can be one call).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from xdsl.ir import Operation, SSAValue

from irtool.errors import IrtoolError

ArgMap = Callable[[SSAValue], SSAValue]


@dataclass(frozen=True)
class KernelCall:
    """One kernel call: `args` in the order of the kernel signature's operands (None where
    the op has no value for an operand yet: such a call can be asked about, not emitted)."""

    kernel: str
    args: tuple[SSAValue, ...]
    params: dict = field(default_factory=dict)
    engine: str | None = None
    """None: the target's core runs it (`hw.call`); else `hw.accel` on that engine."""
    updates: tuple[tuple[SSAValue, int], ...] = ()
    """(operand of the op, result index): the kernel updates that operand's buffer in place
    and the result is that buffer (a KV-cache write touches only the new rows)."""


Rule = Callable[[Operation, ArgMap, Sequence[SSAValue]], KernelCall | None]
Fusion = Callable[[Operation], None]
"""Rewrites the hw.calls of a module (given the module) in place."""


class LoweringRules:
    """An ordered set of rules per op type; the first rule that returns a call wins."""

    def __init__(self, rules: Iterable[tuple[type[Operation], Rule]] = (),
                 fusions: Iterable[Fusion] = ()):
        self._rules: tuple[tuple[type[Operation], Rule], ...] = tuple(rules)
        self.fusions: tuple[Fusion, ...] = tuple(fusions)

    def extended(self, rules: Iterable[tuple[type[Operation], Rule]],
                 fusions: Iterable[Fusion] = ()) -> LoweringRules:
        """These rules first, then the current ones (a target's overrides); these fusions
        first, then the current ones."""
        return LoweringRules((*rules, *self._rules), (*fusions, *self.fusions))

    def rules_for(self, op: Operation) -> list[Rule]:
        return [rule for kind, rule in self._rules if isinstance(op, kind)]

    def choose(self, op: Operation, arg: ArgMap, outs: Sequence[SSAValue]) -> KernelCall:
        for rule in self.rules_for(op):
            call = rule(op, arg, outs)
            if call is not None:
                return call
        raise IrtoolError(f"lower-to-hw: no kernel of this target runs {op.name} in the form "
                          f"{_form(op)}; the target has rules for: {self.op_names()}")

    def op_names(self) -> str:
        names = sorted({kind.name for kind, _ in self._rules if hasattr(kind, "name")})
        return ", ".join(names) or "no op"


def _form(op: Operation) -> str:
    types = ", ".join(str(t) for t in op.operand_types)
    return f"({types}) -> ({', '.join(str(t) for t in op.result_types)})"
