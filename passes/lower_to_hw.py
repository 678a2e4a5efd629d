"""lower-to-hw: each `memory.kernel` becomes one `hw.call` (or `hw.accel`) of a kernel.

A kernel body holds one transformer or quant op (bufferize makes it so); its operands are the
kernel's `ins`, its results go to the `outs` buffers (one per result: `quant.kv_write` writes
the int8 cache and its scales). Which kernel runs the op, with its operands in signature order
and its static shapes and attributes as parameters, is decided by the lowering rules of the
target (`target=NAME|PATH`, found through the registry; by default the target allocate placed
the buffers for, else the host). The buffers keep their placement, so the emitter can print
every call as it stands.

Then the target's fusions run (`LoweringRules.fusions`): rules over a pattern of calls that one
kernel runs, e.g. SiLU and the product after it.

Kernels that update a buffer in place (`kv_write`: only the new rows are written) get the
buffer they update as their out buffer; when bufferize gave the result a buffer of its own,
a `memory.copy` of the old contents precedes the call.
"""

from __future__ import annotations

from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects import func
from xdsl.dialects.builtin import ModuleOp, StringAttr
from xdsl.ir import Operation
from xdsl.passes import ModulePass
from xdsl.pattern_rewriter import (
    PatternRewriter,
    PatternRewriteWalker,
    RewritePattern,
    op_type_rewrite_pattern,
)
from xdsl.traits import SymbolTable

from irtool.adapter_guard import copy_guard
from irtool.dialects import hw, memory
from irtool.errors import IrtoolError
from irtool.kernels import kernel_signature
from irtool.lowering import KernelCall, LoweringRules
from irtool.targets.panel_layout import LAYOUT_ATTR
from irtool.targets.plan_verifier import module_target_name, spaces_of
from irtool.targets.registry import DEFAULT_TARGET, load_target
from irtool.targets.target import Target


@dataclass
class KernelToCall(RewritePattern):
    rules: LoweringRules
    by_name: dict[str, memory.GlobalOp]
    """The module's memory.global ops by name (looked up once, not per call)."""

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: memory.KernelOp, rewriter: PatternRewriter) -> None:
        body = op.computation
        if len(body) != 1 or len(op.outs) != len(body[0].results) or not op.outs:
            raise IrtoolError(f"lower-to-hw: a memory.kernel must hold exactly one op and one "
                              f"out buffer per result of that op (found {len(body)} ops, "
                              f"{len(op.outs)} outs); run bufferize to produce such kernels")
        inner = body[0]
        if tuple(op.yield_op.values) != tuple(inner.results):
            raise IrtoolError("lower-to-hw: the kernel must yield its op's results, in order")
        outside = dict(zip(op.body.block.args, op.ins, strict=False))
        call = self.rules.choose(inner, lambda v: outside[v], list(op.outs))
        if any(a is None for a in call.args):
            raise IrtoolError(f"lower-to-hw: {inner.name} without a start position has no "
                              f"kernel (@{call.kernel} takes the position at run time); run "
                              "extract-kv-cache first")
        # the old contents of a buffer updated in place, when it is not the out buffer itself
        copies = [memory.CopyOp(outside[operand], op.outs[k])
                  for operand, k in call.updates if outside[operand] is not op.outs[k]]
        new = (hw.CallOp(call.kernel, call.args, call.params) if call.engine is None
               else hw.AccelOp(call.engine, call.kernel, call.args, call.params))
        mark_layouts(call, self.by_name)
        # a kernel run only while a task adapter is selected: its call (and copies) too
        rewriter.replace(op, [copy_guard(op, lowered) for lowered in (*copies, new)])


def module_globals(module: ModuleOp) -> dict[str, memory.GlobalOp]:
    """memory.global ops by symbol name: a symbol-table walk per weight read is a tenth of
    this pass on a small model."""
    return {op.sym_name.data: op for op in module.body.block.ops
            if isinstance(op, memory.GlobalOp)}


def _global_of(get: memory.GetGlobalOp, by_name: dict[str, memory.GlobalOp]) -> Operation:
    name = get.global_name.root_reference.data
    found = by_name.get(name)
    return found if found is not None else SymbolTable.lookup_symbol(get, name)


def mark_layouts(call: KernelCall, by_name: dict[str, memory.GlobalOp]) -> None:
    """Record on each weight global the storage layout its kernel reads it in (the emitter
    stores the weight so); two kernels wanting one weight in different layouts is an error
    of the rules that chose them."""
    sig = kernel_signature(call.kernel)
    for operand, layout in sig.layouts:
        buffer = call.args[sig.operands.index(operand)]
        get = buffer.owner
        if not isinstance(get, memory.GetGlobalOp):
            raise IrtoolError(f"lower-to-hw: @{call.kernel} reads '{operand}' in layout "
                              f"{layout}, which needs a constant memory.global")
        name = get.global_name.root_reference.data
        glob = _global_of(get, by_name)
        have = glob.attributes.get(LAYOUT_ATTR)
        if have is not None and have.data != layout:
            raise IrtoolError(f"lower-to-hw: weight @{name} is read in layout {have.data} and "
                              f"in layout {layout} by @{call.kernel}; the rules must agree")
        glob.attributes[LAYOUT_ATTR] = StringAttr(layout)


@dataclass(frozen=True)
class LowerToHwPass(ModulePass):
    """Replace every memory.kernel by a hw.call; record the target as `hw.target`."""

    name = "lower-to-hw"
    target: str | None = None

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        check_bufferized(op)
        target = target_for(self.target, op)
        check_same_target(op, target, self.target)
        PatternRewriteWalker(KernelToCall(target.rules, module_globals(op)),
                             apply_recursively=False).rewrite_module(op)
        for fuse in target.rules.fusions:
            fuse(op)
        check_layouts(op)
        op.attributes[hw.TARGET_ATTR] = hw.TargetAttr(target.reference)


def check_bufferized(module: ModuleOp) -> None:
    """A transformer or quant op outside any memory.kernel means bufferize has not run: left
    alone, the pass would only stamp `hw.target` on tensor IR, which no emitter can print."""
    for inner in module.walk():
        dialect = inner.name.split(".", 1)[0]
        if dialect in ("transformer", "quant") and not isinstance(inner.parent_op(),
                                                                  memory.KernelOp):
            fn = inner.parent_op()
            while fn is not None and not isinstance(fn, func.FuncOp):
                fn = fn.parent_op()
            where = f"@{fn.sym_name.data}" if fn is not None else "the module"
            raise IrtoolError(f"lower-to-hw: {where} holds {inner.name} outside any "
                              f"memory.kernel: the module is at the {dialect} level; run "
                              "bufferize and allocate first (e.g. -p 'extract-kv-cache{capacity=N "
                              "prefill=token-by-token},bufferize,allocate,lower-to-hw')")


def planned_target(module: ModuleOp) -> str | None:
    """The target the buffers were placed for (allocate's plan), or that the module was lowered
    for: without `target=`, the kernels are chosen for it (the host's kernels on riscv-ulp's
    memories would be a module no emitter accepts)."""
    return module_target_name(module)


def target_for(asked: str | None, module: ModuleOp) -> Target:
    """The target a pass given `target=asked` (or none) works for: the one asked, else the one
    the module was planned or lowered for, else the registry's default."""
    planned = planned_target(module)
    if asked is not None or planned is None:
        return load_target(DEFAULT_TARGET if asked is None else asked)
    try:
        return load_target(planned)
    except IrtoolError:  # a target given by path records its name only: check_same_target
        return load_target(DEFAULT_TARGET)


def refuse_other_lowering(module: ModuleOp, target: Target, pass_name: str,
                          what_to_do: str) -> None:
    """A module lowered for one target (`hw.target`) holds that target's kernels: another
    target's rules or memories would give a module that no emitter accepts."""
    done = module.attributes.get(hw.TARGET_ATTR)
    if isinstance(done, hw.TargetAttr) and done.target.data != target.reference:
        raise IrtoolError(f"{pass_name}: the module is already lowered for "
                          f"target '{done.target.data}' (its hw.target); {what_to_do}")


def check_same_target(module: ModuleOp, target: Target, asked: str | None) -> None:
    """The kernels, the placement and `hw.target` must name one target: refuse a target whose
    memories do not hold the placed buffers, and relowering a module lowered for another."""
    refuse_other_lowering(module, target, "lower-to-hw", f"lower-to-hw{{target={asked}}} cannot "
                          "relower its hw.calls: start again from the memory level")
    have = {m.name for m in target.description.memories}
    missing = sorted(spaces_of(module) - have)
    if missing:
        planned = planned_target(module) or "the target they were placed for"
        raise IrtoolError(f"lower-to-hw: buffers are placed in {', '.join(missing)}, which "
                          f"target '{target.description.name}' does not have (it has "
                          f"{', '.join(sorted(have))}); give lower-to-hw{{target={planned}}}, "
                          f"or allocate for '{target.description.name}'")


def check_layouts(module: ModuleOp) -> None:
    """Every reader of a weight stored in a layout reads it in that layout (else the emitter
    would pack a weight that some kernel reads row by row: a silent wrong answer)."""
    by_name = module_globals(module)
    for call in module.walk():
        if not isinstance(call, (hw.CallOp, hw.AccelOp)):
            continue
        sig = kernel_signature(call.kernel)
        wants = dict(sig.layouts)
        for operand, value in zip(sig.operands, call.args, strict=False):
            get = value.owner
            if not isinstance(get, memory.GetGlobalOp):
                continue
            name = get.global_name.root_reference.data
            have = _global_of(get, by_name).attributes.get(LAYOUT_ATTR)
            if (have.data if have is not None else None) != wants.get(operand):
                raise IrtoolError(f"lower-to-hw: weight @{name} is stored in layout "
                                  f"{have.data if have else 'row-major'} but @{call.kernel} "
                                  f"reads its '{operand}' as {wants.get(operand, 'row-major')}; "
                                  "the target's rules must choose kernels that agree")
