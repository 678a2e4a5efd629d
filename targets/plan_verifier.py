"""The verifier of placed modules: a memory plan that does not hold is refused, not run.

A module at the `memory` or `hw` level carries its plan in the IR (a memory space in every
buffer type, an `offset` on every `memory.global` / `memory.alloc`), and anybody can edit it. The
C program trusts the plan blindly (every buffer is `arena + offset`), so a plan whose live
buffers share bytes computes silently wrong tokens. This verifier checks, for every placed
buffer:

* its space is a memory of the target (the module's `hw.target`, else the target its
  `irtool.memory_plan` names);
* `offset + size` fits the memory's capacity (its size minus the bytes reserved for the stack);
* `offset` is a multiple of the memory's alignment and of the buffer's own;
* a read-only memory holds only weights, and no op writes into it;
* two buffers live at the same time in the same memory do not share a byte.

Live ranges are those of `irtool.liveness` (the allocator's own reading of the IR): half-open
intervals `[start, end)` of op indices, so a buffer whose last access is op `i` and one whose
first access is op `i + 1` may share bytes, while an op's input and output never do.

irtool-opt runs it before the first pass and after every pass (`--no-verify-plan` turns it
off), irtool-run before running (both through `irtool.run.verify_plan`, which loads the
module's target), and the C emitter before emitting (targets/emission_checks.py). It imports no
target code (the emitters call it): the target description comes from the caller.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

from xdsl.dialects.builtin import DictionaryAttr, ModuleOp, StringAttr
from xdsl.ir import Operation, SSAValue
from xdsl.printer import Printer

from irtool.dialects import hw, memory
from irtool.errors import IrtoolError
from irtool.liveness import Buffer, analyze

PLAN_ATTR = "irtool.memory_plan"

TargetDescription = Any
"""An `irtool.targets.description.TargetDescription` (its `name` and `memories`), not imported:
the emitters, in irtool.targets, call this module."""


class _Names:
    """The names a buffer has in the printed IR (`%6` in @decode, `@layers.0.wq`): the
    printer's own numbering, computed only when there is something to report."""

    def __init__(self, module: ModuleOp):
        self.module = module
        self._values: dict[SSAValue, str] | None = None

    def of(self, b: Buffer) -> str:
        if isinstance(b.op, memory.GlobalOp):
            return f"memory.global @{b.op.sym_name.data}"
        if self._values is None:
            printer = Printer(stream=io.StringIO())
            printer.print_op(self.module)
            self._values = printer._ssa_values
        name = self._values.get(b.op.results[0], "?")
        return f"memory.alloc %{name} in @{b.function}"


@dataclass
class _Placed:
    buffer: Buffer
    space: str
    offset: int
    names: _Names

    @property
    def end(self) -> int:
        return self.offset + self.buffer.size

    def describe(self) -> str:
        return (f"{self.names.of(self.buffer)} (bytes [{self.offset}, {self.end}) of "
                f"{self.space}, live over ops [{self.buffer.start}, {self.buffer.end}))")


def is_placed(module: ModuleOp) -> bool:
    """Whether any buffer of the module has an offset (allocate has run)."""
    return any(isinstance(op, (memory.GlobalOp, memory.AllocOp)) and op.offset is not None
               for op in module.walk())


def spaces_of(module: ModuleOp) -> set[str]:
    """The memory spaces the placed buffers of the module live in."""
    out = set()
    for op in module.walk():
        if isinstance(op, (memory.GlobalOp, memory.AllocOp)) and op.offset is not None:
            space, _ = op.placement
            if space is not None:
                out.add(space)
    return out


def module_target_name(module: ModuleOp) -> str | None:
    """The target a placed module was planned for: its `hw.target`, else the target its
    `irtool.memory_plan` names (drivers load it; this module imports no target code, so the
    emitters may call it)."""
    attr = module.attributes.get(hw.TARGET_ATTR)
    if isinstance(attr, hw.TargetAttr):
        return attr.target.data
    plan = module.attributes.get(PLAN_ATTR)
    if isinstance(plan, DictionaryAttr):
        name = plan.data.get("target")
        if isinstance(name, StringAttr):
            return name.data
    return None


def plan_errors(module: ModuleOp, target: TargetDescription | None) -> list[str]:
    """Every violation of the module's memory plan (empty when it holds or is not placed).
    Without a target (`targets.description.TargetDescription`) only overlaps are checked."""
    if not is_placed(module):
        return []
    placed: list[_Placed] = []
    names = _Names(module)
    for b in analyze(module).buffers:
        space, offset = b.op.placement
        if space is not None and offset is not None:
            placed.append(_Placed(b, space, offset, names))
    errors: list[str] = []
    if target is not None:
        for p in placed:
            errors += _memory_errors(p, target)
        errors += _write_errors(module, target)
    errors += _overlap_errors(placed)
    return errors


def _memory_errors(p: _Placed, target: TargetDescription) -> list[str]:
    spec = next((m for m in target.memories if m.name == p.space), None)
    if spec is None:
        return [(f"{p.describe()} is in '{p.space}', which target '{target.name}' does not "
                 f"have (it has {', '.join(m.name for m in target.memories)})")]
    errors = []
    if p.end > spec.capacity:
        errors.append(f"{p.describe()} ends beyond the {spec.capacity} bytes of {p.space} the "
                      "plan may use")
    if p.offset % spec.alignment or p.offset % p.buffer.alignment:
        errors.append(f"{p.describe()}: offset {p.offset} is not a multiple of the alignment "
                      f"of {p.space} ({spec.alignment}) and of the buffer ({p.buffer.alignment})")
    if spec.read_only and p.buffer.writable:
        errors.append(f"{p.describe()} is a {p.buffer.kind} buffer in the read-only memory "
                      f"{p.space}")
    return errors


def _overlap_errors(placed: list[_Placed]) -> list[str]:
    """Pairs live at once sharing bytes; a sweep by offset per space keeps this near-linear."""
    errors = []
    by_space: dict[str, list[_Placed]] = {}
    for p in placed:
        if p.buffer.size > 0:
            by_space.setdefault(p.space, []).append(p)
    for group in by_space.values():
        group.sort(key=lambda p: p.offset)
        for i, a in enumerate(group):
            for b in group[i + 1:]:
                if b.offset >= a.end:
                    break
                if a.buffer.overlaps(b.buffer):
                    errors.append(f"{a.describe()} and {b.describe()} share bytes while both "
                                  "are live")
    return errors


def _root(v: SSAValue) -> Operation | None:
    """The op that created the storage of `v`, through views."""
    while (source := memory.view_source(v.owner)) is not None:
        v = source
    owner = v.owner
    if isinstance(owner, memory.GetGlobalOp):
        module = owner.get_toplevel_object()
        for op in module.walk():
            if isinstance(op, memory.GlobalOp) and op.sym_name.data == \
                    owner.global_name.root_reference.data:
                return op
    return owner if isinstance(owner, memory.AllocOp) else None


def _written(op: Operation) -> list[SSAValue]:
    if isinstance(op, memory.KernelOp):
        return list(op.outs)
    if isinstance(op, (memory.CopyOp, memory.DmaStartOp)):
        return [op.operands[1]]
    if isinstance(op, (hw.CallOp, hw.AccelOp)):
        from irtool.kernels import kernel_signature

        sig = kernel_signature(op.kernel)
        return [v for name, v in zip(sig.operands, op.args, strict=False) if name in sig.writes]
    if op.name == "memref.store":
        return [op.operands[1]]
    return []


def _write_errors(module: ModuleOp, target: TargetDescription) -> list[str]:
    read_only = {m.name for m in target.memories if m.read_only}
    errors = []
    for op in module.walk():
        for v in _written(op):
            root = _root(v)
            if root is None:
                continue
            space, _ = root.placement
            if space in read_only:
                what = (f"@{root.sym_name.data}" if isinstance(root, memory.GlobalOp)
                        else f"%{root.results[0].name_hint or 'alloc'}")
                errors.append(f"{op.name} writes {what}, placed in the read-only memory {space}")
    return errors


def verify_module_plan(module: ModuleOp, target: TargetDescription | None,
                       when: str = "") -> None:
    """Raise an IrtoolError listing what is wrong with the module's memory plan."""
    errors = plan_errors(module, target)
    if errors:
        at = f" {when}" if when else ""
        more = f"\n  ... and {len(errors) - 20} more" if len(errors) > 20 else ""
        raise IrtoolError(f"the memory plan{at} does not hold ({len(errors)} problem(s)): "
                          + errors[0] + "".join("\n  " + e for e in errors[1:20]) + more)
