"""The tile plan inside the allocation model: windows, streamed linears and tile sizes.

`allocate{tile=true}` decides in one CP-SAT model where every buffer lives *and* which linears
stream their weight through two windows, how many rows each tile has and how large the windows
are (issue 10: "the tile size and the windows' placement are decided together with the
allocation"). Target-agnostic: the candidates are the linears of `@decode` whose weight may be
placed in a memory M from which the description has a DMA link to a writable memory S the core
reads at a lower `read_cost`; S holds the two windows.

Added to the allocation model (passes/allocate.py), with `W` the window size (a multiple of
S's alignment) and, per candidate k (`N_k` rows of `b_k` bytes, compute `C_k` cycles):

* the two windows are persistent: they add `2 W` to S's stack, so they and every other buffer
  of S share its capacity (transient buffers go above them);
* `s_k` (streamed) implies that the weight is placed in M and one tiling of it is chosen:
  row tiles of `r_k` rows, or pieces of one row cut along the reduction dimension when its
  kernel can accumulate them (`Chunking`, passes/tile_plan.py); the window holds the
  chosen tile (`W >= r_k * b_k`, or the bytes of a piece), the tiles cover the weight
  (`n_k`) and `sum n_k <= max_tiles`;
* the access cost of the weight in M is replaced by its modelled time beyond its compute:
  read in place, `N_k b_k * read_cost(M)` (the link's cost per byte, as today's cost model);
  streamed, `max(0, n_k (setup + tile_cycles) + N_k b_k cycles_per_byte(link) - C_k)` for
  the transfer not hidden behind compute, plus `N_k b_k * read_cost(S)` for reading the
  window. With the compute of every candidate added back, the first objective of allocate is
  then the modelled time per token: memory accesses at their read/write costs, and for the
  linears `sum over tiles max(compute, transfer) + set-up`.

The solver's status, the objective and its lower bound (the same constant added) are kept
with the plan in the module attribute `irtool.tile_plan`, which the `tile` pass applies.
Costs are in the description's units (a byte of the cheapest memory = 1), the same as the
link's cycles; `mac_cycles` per multiply-accumulate is a stated estimate, not a measurement,
and `tile_cycles` a fixed cost per tile besides the DMA set-up (e.g. a cluster fork/join).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from xdsl.dialects import func
from xdsl.dialects.builtin import (
    ArrayAttr,
    DictionaryAttr,
    FloatAttr,
    IntegerAttr,
    MemRefType,
    ModuleOp,
    StringAttr,
    f64,
    i64,
)
from xdsl.ir import Operation, SSAValue

from irtool.dialects import memory, quant
from irtool.dialects import transformer as tf
from irtool.errors import IrtoolError
from irtool.ir_names import DECODE, TILE_PLAN_ATTR
from irtool.passes.tile_plan import Chunking, Tiling, tilings
from irtool.targets.description import LinkSpec, MemorySpec, TargetDescription

if TYPE_CHECKING:
    from ortools.sat.python import cp_model

LINEARS = (tf.LinearOp, quant.WLinearOp, quant.QLinearOp)
"""Float, weight-quantized and W8A8 linears: `[N, row]` weights whose rows are output
channels."""


def check_stream_options(pass_name: str, window: int, max_tiles: int, mac_cycles: float,
                         tile_cycles: float = 0.0) -> None:
    """The streaming options of `tile` and `allocate{tile=true}`: out of range, the plan used
    to find no tile at all and leave every weight in place, silently."""
    if window < 0:
        raise IrtoolError(f"{pass_name}: window must be a number of bytes >= 0 (0: no cap), "
                          f"got {window}")
    if max_tiles < 1:
        raise IrtoolError(f"{pass_name}: max_tiles must be at least 1, got {max_tiles}")
    if not (math.isfinite(mac_cycles) and mac_cycles > 0):
        raise IrtoolError(f"{pass_name}: mac_cycles must be a positive number of cycles, got "
                          f"{mac_cycles}")
    if not (math.isfinite(tile_cycles) and tile_cycles >= 0):
        raise IrtoolError(f"{pass_name}: tile_cycles must be a number of cycles >= 0, got "
                          f"{tile_cycles}")


def memref_bytes(t: MemRefType) -> int:
    n = t.element_type.bitwidth // 8
    for d in t.get_shape():
        n *= d
    return n


@dataclass(frozen=True)
class LinearKernel:
    """A `memory.kernel` computing one linear whose weight is a global (streamable)."""

    kernel: memory.KernelOp
    linear: Operation
    weight: SSAValue
    input: SSAValue

    @property
    def global_name(self) -> str:
        assert isinstance(self.weight.owner, memory.GetGlobalOp)
        return self.weight.owner.global_name.string_value()

    @property
    def rows(self) -> int:
        return self.weight.type.get_shape()[0]

    @property
    def row_bytes(self) -> int:
        return memref_bytes(self.weight.type) // self.rows


def row_chunking(k: LinearKernel) -> Chunking | None:
    """How the rows of `k`'s weight may be cut along K into pieces whose products add up
    (the linear's `acc` operand), or None. One activation row only (`[1, K]`: a piece of it
    is contiguous). Cuts keep the quantization whole: per-group scales (4-bit) and 4-bit
    activation groups start a piece, and a packed byte is never split. W8A8 (quant.qlinear)
    is not cut: its requantization (`float32(acc) * m + b`, bit-exact against the integer
    reference) is once per row, and the Cortex-M DSP kernel that runs it has no
    accumulating form."""
    x = k.input.type.get_shape()
    if len(x) != 2 or x[0] != 1 or isinstance(k.linear, quant.QLinearOp):
        return None
    K = x[1]
    if isinstance(k.linear, tf.LinearOp):
        bits = k.weight.type.element_type.bitwidth
        return Chunking(K, 1, bits) if bits % 8 == 0 else None
    q = k.linear
    bits = q.weight_bits
    if q.activation_bits is not None:
        return Chunking(K, q.activation_group, bits)
    if q.group_size is not None:
        return Chunking(K, q.group_size, bits)
    return Chunking(K, 8 // bits if bits < 8 else 1, bits)


def linear_kernels(fn: func.FuncOp) -> list[LinearKernel]:
    """The kernels of `fn` that compute one linear from a 2-D weight global, in order."""
    out = []
    for op in fn.body.block.ops:
        if not isinstance(op, memory.KernelOp):
            continue
        body = op.computation
        if len(body) != 1 or not isinstance(body[0], LINEARS):
            continue
        linear = body[0]
        arg_of = dict(zip(op.body.block.args, op.ins, strict=True))
        weight = arg_of.get(linear.weight)
        x = arg_of.get(linear.input)
        if weight is None or x is None or not isinstance(weight.type, MemRefType):
            continue
        if len(weight.type.get_shape()) != 2 or len(op.outs) != 1:
            continue
        if not isinstance(weight.owner, memory.GetGlobalOp):
            continue
        out.append(LinearKernel(op, linear, weight, x))
    return out


def window_link(target: TargetDescription, source: MemorySpec) -> LinkSpec | None:
    """The DMA link from `source` to a writable memory the core reads more cheaply."""
    core = set(target.core.reads)
    for link in target.links:
        dst = target.memory(link.dest)
        if (link.source == source.name and not dst.read_only and dst.name in core
                and dst.read_cost < source.read_cost):
            return link
    return None


@dataclass(frozen=True)
class Candidate:
    buffer: str
    """The weight's buffer name (`@global`)."""
    rows: int
    row_bytes: int
    compute: float
    """Modelled compute cycles of the whole linear (all rows)."""
    chunking: Chunking | None = None
    """How its rows may be cut along K (None: whole rows only)."""


@dataclass(frozen=True)
class StreamSpec:
    """What the allocation model needs to plan the windows: the candidates and the link."""

    source: str
    window_space: str
    link: LinkSpec
    candidates: tuple[Candidate, ...]
    max_tiles: int = 256
    cap: int = 0
    """Most bytes per window (0: no cap)."""
    tile_cycles: float = 0.0

    @property
    def compute(self) -> float:
        return sum(c.compute for c in self.candidates)


def stream_spec(module: ModuleOp, target: TargetDescription, mac_cycles: float,
                max_tiles: int, cap: int, tile_cycles: float = 0.0) -> StreamSpec | None:
    """The candidates of `@decode`, or None when the target has no window link."""
    fns = [op for op in module.body.block.ops
           if isinstance(op, func.FuncOp) and op.sym_name.data == DECODE]
    if not fns:
        return None
    kernels = linear_kernels(fns[0])
    for source in target.memories:
        link = window_link(target, source)
        if link is None:
            continue
        seen: dict[str, Candidate] = {}
        for k in kernels:
            name = f"@{k.global_name}"
            if name in seen:  # a weight read twice (tied embedding) streams only once
                continue
            per_row = mac_cycles * k.input.type.get_shape()[-1]
            seen[name] = Candidate(name, k.rows, k.row_bytes, per_row * k.rows,
                                   row_chunking(k))
        if seen:
            return StreamSpec(source.name, link.dest, link, tuple(seen.values()), max_tiles,
                              cap, tile_cycles)
    return None


@dataclass
class StreamVars:
    """The CP-SAT variables of the stream part of the model."""

    window_units: cp_model.IntVar
    align: int
    streamed: dict[str, cp_model.IntVar]
    """Buffer -> "it streams" (the sum of its tile choices)."""
    choices: dict[str, list[tuple[Tiling, cp_model.IntVar]]]
    """Buffer -> (tiling, literal) for every tiling it may use."""


def add_stream(model: cp_model.CpModel, spec: StreamSpec, in_source: Mapping[str, object],
               window_space: MemorySpec, source: MemorySpec, scale: int,
               in_place_cost: Mapping[str, int]) -> tuple[StreamVars, object, object]:
    """Add the windows and the per-candidate tile choices; returns the variables, the
    windows' bytes (for S's stack) and the candidates' cost (replacing their access cost in
    M). `in_source[b]` is the literal "buffer b is placed in M" (absent: it cannot be);
    `in_place_cost[b]` its access cost there, of which one full read (the linear's, once per
    decode step) is what streaming replaces: other reads (a tied embedding's lookup) stay.

    Each candidate picks at most one tiling (a literal per tiling, `tilings`: row tiles, or
    pieces of a row cut along K), so the time of a tiling is a constant and the model stays
    linear: `W >=` the bytes of the tile picked, tiles summed against `max_tiles`, and the
    cost
    `sum picked * (exposed transfer + window reads + other reads) + (in M, not streamed) *
    in-place cost`."""
    align = max(window_space.alignment, 4)
    max_window = window_space.capacity // 2 // align * align
    if spec.cap:
        max_window = min(max_window, spec.cap // align * align)
    w_units = model.new_int_var(0, max_window // align, "window_units")
    window = w_units * align
    cost_terms, tiles = [], []
    streamed, choices = {}, {}
    per_tile = (spec.link.setup_cycles + spec.tile_cycles) * scale
    cpb = 1.0 / spec.link.bytes_per_cycle
    for c in spec.candidates:
        present = in_source.get(c.buffer)
        sizes = tilings(c.rows, c.row_bytes, max_window, c.chunking, spec.max_tiles)
        if present is None or not sizes:
            continue
        nbytes = c.rows * c.row_bytes
        transfer = nbytes * cpb * scale
        compute = c.compute * scale
        window_reads = round(nbytes * window_space.read_cost * scale)
        others = max(0, in_place_cost[c.buffer] - round(nbytes * source.read_cost * scale))
        picked = [(t, model.new_bool_var(f"tile[{c.buffer},{t.rows}x{t.cols}]"))
                  for t in sizes]
        s = model.new_bool_var(f"stream[{c.buffer}]")
        model.add(sum(x for _, x in picked) == s)
        model.add_implication(s, present)
        model.add(window >= sum(t.bytes * x for t, x in picked))
        tiles += [t.tiles * x for t, x in picked]
        cost_terms += [round(max(0.0, t.tiles * per_tile + transfer - compute)) * x
                       for t, x in picked]
        cost_terms.append((window_reads + others) * s)
        cost_terms.append(in_place_cost[c.buffer] * (present - s))
        streamed[c.buffer] = s
        choices[c.buffer] = picked
    model.add(sum(tiles) <= spec.max_tiles)
    return StreamVars(w_units, align, streamed, choices), 2 * window, sum(cost_terms)


@dataclass(frozen=True)
class WindowPlan:
    """The solved stream part: the windows in S and the rows per tile of each weight."""

    space: str
    window: int
    offsets: tuple[int, int]
    rows_per_tile: dict[str, int]
    """Global name (without `@`) -> rows per tile, for the weights that stream."""
    status: str
    cycles: float
    """Modelled time per token (the allocation's first objective plus the linears' compute)."""
    bound: float
    cols_per_tile: dict[str, int] = field(default_factory=dict)
    """Global name -> inputs per piece, for the weights streamed in pieces of a row cut
    along K (their rows per tile are 1)."""

    @property
    def gap(self) -> float:
        return 0.0 if self.cycles <= 0 else max(0.0, (self.cycles - self.bound) / self.cycles)

    def as_attribute(self) -> DictionaryAttr:
        rows = [DictionaryAttr({"weight": StringAttr(n), "rows": IntegerAttr(r, i64)}
                               | ({"cols": IntegerAttr(self.cols_per_tile[n], i64)}
                                  if n in self.cols_per_tile else {}))
                for n, r in sorted(self.rows_per_tile.items())]
        return DictionaryAttr({
            "space": StringAttr(self.space), "window": IntegerAttr(self.window, i64),
            "offsets": ArrayAttr([IntegerAttr(o, i64) for o in self.offsets]),
            "rows_per_tile": ArrayAttr(rows), "solver": StringAttr(self.status),
            "cycles": FloatAttr(self.cycles, f64), "bound": FloatAttr(self.bound, f64)})


def read_window_plan(module: ModuleOp) -> WindowPlan | None:
    """The plan `allocate{tile=true}` wrote into the module, if any."""
    attr = module.attributes.get(TILE_PLAN_ATTR)
    if not isinstance(attr, DictionaryAttr):
        return None
    d = attr.data
    rows = {e.data["weight"].data: e.data["rows"].value.data for e in d["rows_per_tile"].data}
    cols = {e.data["weight"].data: e.data["cols"].value.data for e in d["rows_per_tile"].data
            if "cols" in e.data}
    offsets = tuple(o.value.data for o in d["offsets"].data)
    return WindowPlan(d["space"].data, d["window"].value.data, (offsets[0], offsets[1]), rows,
                      d["solver"].data, d["cycles"].value.data, d["bound"].value.data, cols)


def solved_windows(spec: StreamSpec, variables: StreamVars, value, boolean
                   ) -> tuple[int, dict[str, int], dict[str, int]]:
    """The window size (what the chosen tiles need, aligned), rows per streamed weight and
    inputs per piece of the weights cut along K, read from a solution (`value`, `boolean`:
    the solver's accessors)."""
    chosen = {name[1:]: t for name, picked in variables.choices.items()
              for t, x in picked if boolean(x)}
    need = max((t.bytes for t in chosen.values()), default=0)
    return (math.ceil(need / variables.align) * variables.align,
            {n: t.rows for n, t in chosen.items()},
            {n: t.cols for n, t in chosen.items() if t.cols})
