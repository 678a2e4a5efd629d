"""The run-time condition "a task adapter is selected" on the ops only an adapter needs.

A task adapter (`irtool compile --lora`) is chosen at run time (C `irt_select_adapter(i)`,
-1: the base model alone). Where its matrices stream through the weight windows
(passes/lora_stream.py), the transfers of the selected slab and the kernels of its delta are
work the base model alone must not do: no adapter bytes moved, no adapter kernel run. Those
ops carry the discardable attribute `adapter_only`, whose value is the adapter compiled as
the default (the choice until `irt_select_adapter` is first called); the op runs only while
an adapter (not -1) is selected:

* `memory.dma_start`, `memory.dma_wait`: both ends of an adapter tile's transfer (a start and
  its wait carry the same guard, so the double-buffered queue of the other tiles is the same
  either way: a skipped tile leaves its window unused until the tile two later fills it);
* `memory.kernel`, then the `hw.call` lower-to-hw makes of it: the kernels of the delta.

The C emitter prints such an op under `if (irt_adapter_on(compiled, IRT_ADAPTERS))`; the
interpreter, which runs the compiled choice, runs it when that choice is an adapter (>= 0).

A neutral module beside `irtool.ir_names` (it names an attribute and imports only xDSL), as
passes, targets and the interpreter all read it.
"""

from __future__ import annotations

from xdsl.dialects.builtin import IntegerAttr, i64
from xdsl.ir import Operation

ADAPTER_ONLY = "adapter_only"


def adapter_guard(op: Operation) -> int | None:
    """The compiled adapter of an op that runs only while an adapter is selected, or None
    for an op that always runs."""
    attr = op.attributes.get(ADAPTER_ONLY)
    return attr.value.data if isinstance(attr, IntegerAttr) else None


def guard_by_adapter(op: Operation, compiled: int) -> Operation:
    """Make `op` run only while a task adapter is selected (`compiled`: the default one)."""
    op.attributes[ADAPTER_ONLY] = IntegerAttr(compiled, i64)
    return op


def copy_guard(source: Operation, dest: Operation) -> Operation:
    """Give `dest` (an op that replaces or refines `source`) the guard of `source`."""
    compiled = adapter_guard(source)
    if compiled is not None:
        guard_by_adapter(dest, compiled)
    return dest


def runs_compiled(op: Operation) -> bool:
    """Whether `op` runs with the compiled choice of adapter (the interpreter's semantics)."""
    compiled = adapter_guard(op)
    return compiled is None or compiled >= 0
