"""Buffers of a memory-level module, their sizes, live ranges and access counts.

The allocator needs, for every buffer that takes bytes: how big it is, when it is live, and how
often it is read and written per call (to weigh fast against slow memories). This module
computes exactly that, independently of any target:

* `memory.global` (weights and state such as KV caches) outlives every call: live over the
  whole program.
* `memory.alloc` is function-local. Its bytes matter from its first access to its last access
  (uses through `memory.subview` views and `memory.dma_start` tokens count, a returned buffer
  stays live to the end of its function): before the first write the contents are undefined
  anyway, so an alloc hoisted to the top of a function costs nothing before it is used.
* Functions never run at the same time, so they are laid end to end on one program timeline:
  allocs of different functions never overlap in time and may share bytes, while globals span
  the whole timeline (and so do the allocs of a function called by another, see
  `called_functions`).

Times are indices of the top-level ops of a function (an op nested in a loop counts at the
index of its top-level ancestor), shifted by the start of the function on the timeline. A live
range is the half-open interval `[start, end)`.

The function's dataflow is a small directed graph (`Dataflow`: buffer -> op for a read, op ->
buffer for a write, view -> buffer for aliases); the live range of a buffer is the span of the
op indices adjacent to it and to its views, and the read/write counts are its in/out degrees.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from math import prod

from xdsl.dialects import func
from xdsl.dialects.builtin import IndexType, IntegerAttr, MemRefType, ModuleOp
from xdsl.ir import Attribute, Operation, SSAValue

from irtool.dialects import memory
from irtool.errors import IrtoolError

INDEX_BYTES = 8
"""Bytes of an `index` element (64-bit host; a 32-bit target stores less, never more)."""

ACTIVATION = "activation"


def element_bytes(t: Attribute) -> int:
    """Bytes one element takes in memory: whole bytes, so `i1` and `i4` take 1 byte each."""
    if isinstance(t, IndexType):
        return INDEX_BYTES
    bits = getattr(t, "bitwidth", None)
    if isinstance(bits, int) and bits > 0:
        return (bits + 7) // 8
    raise IrtoolError(f"cannot size buffers of element type {t}")


def memref_bytes(t: MemRefType) -> int:
    """Size of a statically shaped buffer in bytes."""
    shape = t.get_shape()
    if any(d < 0 for d in shape):
        raise IrtoolError(f"buffer of type {t} has a dynamic shape; the allocator needs static "
                          "shapes")
    return prod(shape) * element_bytes(t.element_type)


@dataclass
class Buffer:
    """A piece of storage to place: a `memory.global` or a `memory.alloc`."""

    name: str
    kind: str
    """'weight' (read-only), 'state' (persistent, e.g. KV caches) or 'activation' (local)."""
    size: int
    alignment: int
    """Alignment the buffer itself needs (its element size, or an `alignment` it already has)."""
    start: int
    end: int
    op: Operation
    function: str | None = None
    reads: int = 0
    writes: int = 0
    memref: MemRefType | None = field(default=None, repr=False)

    @property
    def writable(self) -> bool:
        return self.kind != "weight"

    @property
    def is_global(self) -> bool:
        return isinstance(self.op, memory.GlobalOp)

    def overlaps(self, other: Buffer) -> bool:
        """Whether the two live ranges meet (then they need disjoint bytes in one space)."""
        return self.start < other.end and other.start < self.end


@dataclass
class Liveness:
    """All buffers of a module on one program timeline `[0, horizon)`."""

    buffers: list[Buffer]
    horizon: int
    functions: dict[str, tuple[int, int]]
    graphs: dict[str, Dataflow] = field(default_factory=dict, repr=False)

    def by_name(self) -> dict[str, Buffer]:
        return {b.name: b for b in self.buffers}

    def lower_bounds(self, space_of: Mapping[str, str]) -> dict[str, int]:
        """Per space, the most bytes live at once given a space per buffer name: no plan of
        that assignment can use less."""
        groups: dict[str, list[Buffer]] = {}
        for b in self.buffers:
            groups.setdefault(space_of[b.name], []).append(b)
        return {s: peak_live_bytes(bs) for s, bs in groups.items()}


def peak_live_bytes(buffers: Iterable[Buffer]) -> int:
    """Maximum over time of the total size of the buffers live at that time (a sweep)."""
    events: list[tuple[int, int]] = []
    for b in buffers:
        if b.end > b.start:
            events.append((b.start, b.size))
            events.append((b.end, -b.size))
    events.sort(key=lambda e: (e[0], e[1]))  # ends (negative) before starts at one time
    live = peak = 0
    for _, delta in events:
        live += delta
        peak = max(peak, live)
    return peak


class Dataflow:
    """A directed graph with attributes on nodes and edges: the subset of networkx's DiGraph
    interface this module uses (networkx itself takes longer to import than `irtool compile`
    of a small model takes to run)."""

    def __init__(self):
        self.nodes: dict = {}
        self._succ: dict = {}
        self._pred: dict = {}
        self.edges: dict = {}

    def add_node(self, node, **attrs) -> None:
        self.nodes.setdefault(node, {}).update(attrs)
        self._succ.setdefault(node, {})
        self._pred.setdefault(node, {})

    def add_edge(self, a, b, **attrs) -> None:
        self.add_node(a)
        self.add_node(b)
        data = self._succ[a].setdefault(b, {})
        data.update(attrs)
        self._pred[b][a] = data
        self.edges[a, b] = data

    def has_edge(self, a, b) -> bool:
        return (a, b) in self.edges

    def in_edges(self, node, data: bool = False) -> list:
        return [(p, node, d) if data else (p, node) for p, d in self._pred.get(node, {}).items()]

    def out_edges(self, node, data: bool = False) -> list:
        return [(node, s, d) if data else (node, s) for s, d in self._succ.get(node, {}).items()]

    def number_of_nodes(self) -> int:
        return len(self.nodes)

    def is_directed(self) -> bool:
        return True


def analyze(module: ModuleOp) -> Liveness:
    """Buffers, live ranges and access counts of a memory-level module."""
    globals_ = [op for op in module.ops if isinstance(op, memory.GlobalOp)]
    funcs = [op for op in module.ops if isinstance(op, func.FuncOp) and op.body.blocks]
    buffers: list[Buffer] = []
    graphs: dict[str, Dataflow] = {}
    spans: dict[str, tuple[int, int]] = {}
    global_buffers = {f"@{g.sym_name.data}": _global_buffer(g) for g in globals_}
    t = 0
    for f in funcs:
        name = f.sym_name.data
        graph, order = function_dataflow(f)
        graphs[name] = graph
        length = max(1, len(order))
        spans[name] = (t, t + length)
        buffers.extend(_alloc_buffers(f, graph, t, length))
        _count_global_accesses(graph, global_buffers)
        t += length
    horizon = max(1, t)
    for b in global_buffers.values():
        b.start, b.end = 0, horizon
    called = called_functions(module)
    for b in buffers:
        if b.function in called:  # see called_functions
            b.start, b.end = 0, horizon
    return Liveness(list(global_buffers.values()) + buffers, horizon, spans, graphs)


def called_functions(module: ModuleOp) -> set[str]:
    """Functions that other functions call with `func.call`.

    Entry points are called by the runtime one at a time, which is what lets their buffers
    share bytes; a function called from another runs while its caller's buffers are live, so
    (conservatively, and simply) its buffers are kept for the whole program. Memory-level
    modules rarely have such calls: the runtime drives `@decode` itself.
    """
    return {op.callee.string_value() for op in module.walk() if isinstance(op, func.CallOp)}


def placed_end(module: ModuleOp, space: str, function: str | None = None) -> int:
    """The end of the highest buffer placed in `space`. With `function` (an entry point),
    only of the buffers that can be live while it runs: the globals, its allocs and those of
    the functions others call. Another entry point's allocs never are (they run at other
    times), so what `function` adds after the plan (the tile pass's DMA windows in `@decode`)
    may take their bytes, e.g. those of a batched prefill's activations."""
    called = called_functions(module)
    end = 0
    for op in module.walk():
        if not isinstance(op, (memory.GlobalOp, memory.AllocOp)):
            continue
        if isinstance(op, memory.AllocOp) and function is not None:
            owner = op.parent_op()
            while owner is not None and not isinstance(owner, func.FuncOp):
                owner = owner.parent_op()
            if owner is not None and owner.sym_name.data not in (function, *called):
                continue
        where, offset = op.placement
        if where == space and offset is not None:
            t = op.type if isinstance(op, memory.GlobalOp) else op.results[0].type
            end = max(end, offset + memref_bytes(t))
    return end


def _global_buffer(g: memory.GlobalOp) -> Buffer:
    t = g.type
    return Buffer(name=f"@{g.sym_name.data}", kind=g.kind.data, size=memref_bytes(t),
                  alignment=_own_alignment(g.alignment, t), start=0, end=1, op=g, memref=t)


def _own_alignment(prop: IntegerAttr | None, t: MemRefType) -> int:
    if prop is not None:
        return prop.value.data
    return element_bytes(t.element_type)


# --- the dataflow graph of one function -----------------------------------------------------

def top_level_order(f: func.FuncOp) -> dict[Operation, int]:
    """Index of every top-level op of the function, blocks taken in order."""
    order: dict[Operation, int] = {}
    for block in f.body.blocks:
        for op in block.ops:
            order[op] = len(order)
    return order


def _top_index(op: Operation, f: func.FuncOp, order: Mapping[Operation, int]) -> int:
    cur: Operation | None = op
    while cur is not None and cur not in order:
        cur = cur.parent_op()
    if cur is None:
        raise IrtoolError(f"op {op.name} is not inside function @{f.sym_name.data}")
    return order[cur]


def function_dataflow(f: func.FuncOp) -> tuple[Dataflow, dict[Operation, int]]:
    """The DiGraph of a function: op nodes `("op", i)` (attribute `index`), buffer nodes
    (the defining `memory.alloc` / `memory.get_global` op, attribute `root`), with edges
    buffer -> op (reads), op -> buffer (writes) and op -> buffer with `touch=True` (a use that
    keeps the buffer alive without moving data: dealloc, dma_wait, return, a view's user)."""
    order = top_level_order(f)
    graph = Dataflow()
    for op, i in order.items():
        graph.add_node(("op", i), index=i, name=op.name)
    root_of: dict[SSAValue, Operation] = {}
    tokens: dict[SSAValue, list[Operation]] = {}
    for op in f.walk():
        if op is f:
            continue
        _add_op(graph, op, root_of, tokens, _top_index(op, f, order), len(order))
    return graph, order


def _add_op(graph: Dataflow, op: Operation, root_of: dict[SSAValue, Operation],
            tokens: dict[SSAValue, list[Operation]], i: int, length: int) -> None:
    node = ("op", i)
    if isinstance(op, (memory.AllocOp, memory.GetGlobalOp)):
        root_of[op.results[0]] = op
        graph.add_node(op, root=op)
        return
    if (source := memory.view_source(op)) is not None:  # a view aliases its source
        if source in root_of:
            root_of[op.results[0]] = root_of[source]
        return
    roots = [(k, root_of[v]) for k, v in enumerate(op.operands) if v in root_of]
    if isinstance(op, memory.DmaStartOp):
        tokens[op.token] = [r for _, r in roots]
    if isinstance(op, memory.DmaWaitOp):  # the transfer lasts until its wait
        for r in tokens.get(op.token, []):
            _touch(graph, r, node)
        return
    if isinstance(op, func.ReturnOp):  # returned buffers live to the end of the function
        for _, r in roots:
            _touch(graph, r, ("op", length - 1))
        return
    reads, writes = _access_of(op)
    for k, r in roots:
        if k in writes:
            _edge(graph, node, r)
        if k in reads:
            _edge(graph, r, node)
        if k not in reads and k not in writes:
            _touch(graph, r, node)


def _access_of(op: Operation) -> tuple[set[int], set[int]]:
    """Operand positions an op reads and writes (an unknown op does both, to be safe)."""
    n = len(op.operands)
    if isinstance(op, memory.KernelOp):
        nin = len(op.ins)
        return set(range(nin)), set(range(nin, n))
    if isinstance(op, (memory.CopyOp, memory.DmaStartOp)):
        return {0}, {1}
    if isinstance(op, memory.DeallocOp):
        return set(), set()
    if op.name == "memref.load":
        return {0}, set()
    if op.name == "memref.store":
        return set(), {1}
    return set(range(n)), set(range(n))


def _edge(graph: Dataflow, a, b) -> None:
    if graph.has_edge(a, b):
        graph.edges[a, b]["count"] += 1
    else:
        graph.add_edge(a, b, count=1, touch=False)


def _touch(graph: Dataflow, root: Operation, node) -> None:
    if not graph.has_edge(root, node) and not graph.has_edge(node, root):
        graph.add_edge(node, root, count=0, touch=True)


def _accesses(graph: Dataflow, root: Operation) -> tuple[list[int], int, int]:
    """Op indices adjacent to a buffer node, and its read and write counts."""
    indices: list[int] = []
    reads = writes = 0
    for op_node, _, d in graph.in_edges(root, data=True):
        indices.append(graph.nodes[op_node]["index"])
        writes += d["count"]
    for _, op_node, d in graph.out_edges(root, data=True):
        indices.append(graph.nodes[op_node]["index"])
        reads += d["count"]
    return indices, reads, writes


def _alloc_buffers(f: func.FuncOp, graph: Dataflow, base: int, length: int) -> list[Buffer]:
    out: list[Buffer] = []
    fname = f.sym_name.data
    order = top_level_order(f)
    taken: set[str] = set()
    for op in (n for n in graph.nodes if isinstance(n, memory.AllocOp)):
        indices, reads, writes = _accesses(graph, op)
        first = min(indices) if indices else _top_index(op, f, order)
        last = max(indices) if indices else first
        t = op.result.type
        name = _unique(f"{fname}/%{op.result.name_hint or 'alloc'}", taken)
        out.append(Buffer(name=name, kind=ACTIVATION, size=memref_bytes(t),
                          alignment=_own_alignment(op.alignment, t), start=base + first,
                          end=base + min(last + 1, length), op=op, function=fname,
                          reads=reads, writes=writes, memref=t))
    return out


def _unique(name: str, taken: set[str]) -> str:
    """`name`, or `name_2`, `name_3`, ... if taken (SSA name hints are not unique)."""
    k, cand = 1, name
    while cand in taken:
        k += 1
        cand = f"{name}_{k}"
    taken.add(cand)
    return cand


def _count_global_accesses(graph: Dataflow, globals_: Mapping[str, Buffer]) -> None:
    for node in graph.nodes:
        if isinstance(node, memory.GetGlobalOp):
            b = globals_.get(f"@{node.global_name.string_value()}")
            if b is None:
                raise IrtoolError(f"memory.get_global refers to unknown global "
                                  f"@{node.global_name.string_value()}")
            _, reads, writes = _accesses(graph, node)
            b.reads += reads
            b.writes += writes

