"""allocate: static memory planning with CP-SAT (a memory space and an offset per buffer).

Every buffer of a memory-level module (weights, KV-cache state, activations; see
`irtool.liveness`) gets a memory of the target and a byte offset in it, so that the emitted code
needs no heap and the plan can be checked before anything runs.

The model (OR-Tools CP-SAT), for every buffer b and every memory s it may live in (large enough,
and not read-only when b is written), with `a = max(alignment of b, alignment of s)`:

* a literal `in[b,s]`, exactly one true per buffer;
* persistent buffers (live over the whole program: globals) are stacked at the bottom of their
  space (see `stack_persistent` for why this loses nothing), so they only add
  `sum in[b,s] * round_up(size(b), a)` to the stack height `stack[s] <= capacity(s)`;
* every other buffer gets an offset `a * k[b,s]` with
  `stack[s] <= a * k + size(b) <= capacity(s)` when `in[b,s]`, and per space one
  `AddNoOverlap2D` over optional rectangles (x: bytes `[offset, offset + size)`, y: the live
  range of b) present iff `in[b,s]`: buffers live at the same time in one space never share a
  byte, and buffers whose lives do not meet may;
* objective, lexicographic (two solves): first the access cost
  `sum in[b,s] * bytes accessed(b) * cost(s)` (hot buffers go to the fast memories), then with
  that cost kept, the sum over spaces of the peak (highest byte used), helped by a redundant
  `AddCumulative` (the room above the stack holds the bytes live at any time).

A greedy plan (first fit by offset, cheapest memory first) is given as a hint, so the solver
starts from a valid plan and the pass always returns one within the time limit; it is also the
fallback if the solver finds nothing. When the greedy plan already meets the lower bounds
(peaks equal to the bytes live at once; the cheapest memory for every buffer, or, when the fast
memories cannot hold all of them, the capacity-aware bound of passes/allocate_bound.py) it is
optimal and the solver is not run at all (the report says `greedy = lower bound`); OR-Tools is
then not even imported (loading it and the two solves: 0.08 s of `irtool compile` of
stories260K). A model that cannot fit raises an
`IrtoolError` that names the largest buffers, the bytes over, and what would fit.

The placement is written into the IR: the memory space in the memref type of every global,
alloc and their uses (`memory.get_global`, views, function signatures), `offset` and `alignment`
properties, and the report as the module attribute `irtool.memory_plan`.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from xdsl.context import Context
from xdsl.dialects import func
from xdsl.dialects.builtin import (
    DictionaryAttr,
    FloatAttr,
    FunctionType,
    IntegerAttr,
    MemRefType,
    ModuleOp,
    StringAttr,
    f64,
    i64,
)
from xdsl.ir import Attribute, SSAValue
from xdsl.passes import ModulePass
from xdsl.rewriter import Rewriter

from irtool.dialects import memory
from irtool.errors import IrtoolError
from irtool.ir_names import KV_CAPACITY_ATTR, KV_WINDOW_ATTR, MEMORY_PLAN_ATTR, TILE_PLAN_ATTR
from irtool.liveness import Buffer, Liveness, analyze, peak_live_bytes
from irtool.passes.allocate_bound import capacity_cost_bound
from irtool.passes.lower_to_hw import refuse_other_lowering
from irtool.targets.description import MemorySpec, TargetDescription
from irtool.targets.registry import load_target

if TYPE_CHECKING:  # imported when a solve needs it (ortools pulls in pandas: slow to import)
    from ortools.sat.python import cp_model

    # and the joint tile plan when allocate{tile=true} asks for it
    from irtool.passes.stream_plan import StreamSpec, StreamVars, WindowPlan


PORTFOLIO_WORKERS = 8
"""CP-SAT's subsolvers for the memory plan, interleaved one task at a time (`_solver`): one
core's work on any machine, the same plan on any machine."""

GREEDY_IS_OPTIMAL = "greedy = lower bound"
"""The `solver` of a plan whose greedy warm start met the lower bounds (CP-SAT not run)."""


@dataclass(frozen=True)
class AllocatePass(ModulePass):
    """`allocate{target=riscv-ulp time-limit=10 report=true}`."""

    name = "allocate"

    target: str = "host"
    """A registered target name, or the path of a target folder or description (.json)."""
    time_limit: float | int = 10.0
    """Seconds for CP-SAT; the best plan found by then is used (`int` too, so that
    `time-limit=5` parses as well as `time-limit=5.0`)."""
    report: bool = False
    """Print the plan summary (peak vs lower bound per space, status, time) to stderr."""
    copy_weights: bool = True
    """May weights be copied into writable memories (faster reads, more RAM)? With false they
    stay in the target's read-only memories and are read in place (execute-in-place Flash)."""
    weights_in: str = ""
    """Memories (comma-separated) weights may be placed in; empty: any the core reads. A
    target whose weights stream into a fast memory through the `tile` pass keeps them out of
    it, so the fast memory stays free for the windows."""
    tile: bool = False
    """Plan the `tile` pass's windows and tiles in the same model (passes/stream_plan.py): the
    first objective becomes the modelled time per token, and the plan goes into the module
    attribute irtool.tile_plan for `tile` to apply."""
    mac_cycles: float | int = 5.0
    """With tile: modelled compute cycles per multiply-accumulate of a linear (an estimate;
    `int` too, as time_limit)."""
    max_tiles: int = 256
    """With tile: most tiles per decode step (each is straight-line code)."""
    window: int = 0
    """With tile: most bytes per window (0: no cap)."""
    tile_cycles: float | int = 0.0
    """With tile: a fixed cost per tile besides the DMA set-up, added to the core's
    `fork_join_cycles` from the description."""

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        from irtool.run_limits import check_time_limit

        check_time_limit(self.time_limit, "allocate: time_limit")
        if not any(isinstance(o, (memory.GlobalOp, memory.AllocOp)) for o in op.walk()):
            raise IrtoolError("allocate: the module has no memory.global or memory.alloc to "
                              "place: it is not at the memory level; run bufferize first "
                              "(e.g. -p 'extract-kv-cache{...},bufferize,allocate')")
        loaded = load_target(self.target)
        refuse_other_lowering(op, loaded, "allocate", "allocate for the target it was lowered "
                              "for, or run allocate before lower-to-hw")
        target = loaded.description
        live = analyze(op)
        kv_option = "window" if KV_WINDOW_ATTR in op.attributes else "capacity"
        stream = None
        if self.tile:  # the joint tile plan (its module loads only then)
            from irtool.passes.stream_plan import check_stream_options, stream_spec

            check_stream_options("allocate", self.window, self.max_tiles, self.mac_cycles,
                                 self.tile_cycles)

            stream = stream_spec(op, target, self.mac_cycles, self.max_tiles, self.window,
                                 self.tile_cycles + target.core.fork_join_cycles)
        plan = plan_memory(live, target, self.time_limit, kv_capacity=_kv_capacity(op),
                           kv_option=kv_option, copy_weights=self.copy_weights,
                           weights_in=_names(self.weights_in, target),
                           engine_reads=accelerator_reads(op, loaded), stream=stream)
        write_plan(op, live, plan)
        op.attributes[MEMORY_PLAN_ATTR] = plan.as_attribute()
        op.attributes.pop(TILE_PLAN_ATTR, None)
        if plan.windows is not None:
            op.attributes[TILE_PLAN_ATTR] = plan.windows.as_attribute()
        if self.report:
            print(plan.summary(), file=sys.stderr)


def accelerator_reads(module: ModuleOp, target) -> dict[str, tuple[str, ...]]:
    """Weight buffer -> the memories of the accelerator that runs every kernel reading it.

    The target's lowering rules are asked which engine each `memory.kernel` reading a weight
    global will run on (as bufferize asks them about aliasing); a weight read only by kernels
    of one accelerator may also live in the memories that engine reads (an NPU's weight
    memory), which the core need not reach. A weight any core kernel reads gets nothing."""
    engines = {e.name: e for e in target.description.engines if e.kind == "accelerator"}
    if not engines:
        return {}
    users: dict[str, set[str | None]] = {}
    for kernel in module.walk():
        if not isinstance(kernel, memory.KernelOp):
            continue
        body = kernel.computation
        engine = None
        if len(body) == 1:
            try:
                engine = target.rules.choose(body[0], lambda v: v, list(body[0].results)).engine
            except IrtoolError:
                engine = None
        for v in kernel.ins:
            if isinstance(v.owner, memory.GetGlobalOp):
                users.setdefault(f"@{v.owner.global_name.string_value()}", set()).add(engine)
    return {name: engines[next(iter(used))].reads for name, used in users.items()
            if len(used) == 1 and next(iter(used)) in engines}


def _names(text: str, target: TargetDescription) -> tuple[str, ...]:
    """The memories of a comma-separated option value, each checked against the target."""
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    for n in names:
        target.memory(n)  # IrtoolError naming the target's memories
    return names


# --- the plan ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Placement:
    space: str
    offset: int
    alignment: int


@dataclass
class MemoryPlan:
    """Where every buffer lives, and how good that is."""

    target: TargetDescription
    placements: dict[str, Placement]
    status: str
    """'OPTIMAL' (proved), 'FEASIBLE' (time limit hit, see gaps) or 'GREEDY' (solver fallback)."""
    solve_time_ms: int
    access_cost: float
    peaks: dict[str, int]
    lower_bounds: dict[str, int]
    no_reuse: dict[str, int]
    cost_gap: float = 0.0
    peak_gap: float = 0.0
    buffers: int = 0
    solver: str = "CP-SAT"
    """Who proved the status: 'CP-SAT', or GREEDY_IS_OPTIMAL when the solver was not needed."""
    windows: WindowPlan | None = None
    """The tile plan solved with the allocation (allocate{tile=true}), if anything streams."""

    def as_attribute(self) -> DictionaryAttr:
        entries: dict[str, Attribute] = {
            "target": StringAttr(self.target.name),
            "status": StringAttr(self.status),
            "solver": StringAttr(self.solver),
            "solve_time_ms": IntegerAttr(self.solve_time_ms, i64),
            "access_cost": FloatAttr(self.access_cost, f64),
            "cost_gap": FloatAttr(self.cost_gap, f64),
            "peak_gap": FloatAttr(self.peak_gap, f64),
        }
        for m in self.target.memories:
            entries[m.name] = DictionaryAttr({
                "peak": IntegerAttr(self.peaks.get(m.name, 0), i64),
                "lower_bound": IntegerAttr(self.lower_bounds.get(m.name, 0), i64),
                "no_reuse": IntegerAttr(self.no_reuse.get(m.name, 0), i64),
                "capacity": IntegerAttr(m.capacity, i64)})
        return DictionaryAttr(entries)

    def summary(self) -> str:
        status = self.status
        if status == "FEASIBLE":
            status += f" (gap: access cost {self.cost_gap:.1%}, peak {self.peak_gap:.1%})"
        if self.solver == GREEDY_IS_OPTIMAL:
            status += f" ({GREEDY_IS_OPTIMAL}: CP-SAT not run)"
        lines = [f"allocate: target '{self.target.name}', {self.buffers} buffers, {status}, "
                 f"{self.solve_time_ms} ms, access cost {self.access_cost:g}",
                 f"  {'space':<8} {'peak':>12} {'lower bound':>12} {'no reuse':>12} "
                 f"{'capacity':>14}"]
        for m in self.target.memories:
            lines.append(f"  {m.name:<8} {self.peaks.get(m.name, 0):>12} "
                         f"{self.lower_bounds.get(m.name, 0):>12} "
                         f"{self.no_reuse.get(m.name, 0):>12} {m.capacity:>14}")
        w = self.windows
        if w is not None:
            lines.append(f"  tile plan: {len(w.rows_per_tile)} weights streamed through two "
                         f"windows of {w.window} bytes in {w.space} at {w.offsets[0]}, "
                         f"{w.offsets[1]}; {w.status}, modelled time per token "
                         f"{w.cycles:g}, lower bound {w.bound:g} (gap {w.gap:.1%})")
        return "\n".join(lines)


def plan_memory(live: Liveness, target: TargetDescription, time_limit: float = 10.0,
                kv_capacity: int | None = None, kv_option: str = "capacity",
                copy_weights: bool = True, weights_in: tuple[str, ...] = (),
                engine_reads: Mapping[str, tuple[str, ...]] | None = None,
                stream: StreamSpec | None = None) -> MemoryPlan:
    """The best plan found within `time_limit` seconds; IrtoolError if the model cannot fit.
    `kv_capacity` (positions of the KV caches) and `kv_option` (the extract-kv-cache option
    that sets it) only serve the advice of that error; `weights_in`, if given, the memories
    weights may go to; `engine_reads`, per weight, the memories of the accelerator that alone
    reads it (`accelerator_reads`); `stream`, the linears whose tile plan is solved with the
    allocation (the greedy bounds then no longer bound the cost: CP-SAT always runs)."""
    problem = Problem(live, target, kv_capacity, kv_option, copy_weights, weights_in,
                      engine_reads, stream)
    _check_fits(problem)
    t0 = time.perf_counter()
    hint = best_greedy_plan(problem)
    if (hint is not None and problem.stream is None
            and greedy_meets_lower_bounds(problem, hint)):
        ms = round((time.perf_counter() - t0) * 1000)
        return _finish(problem, SolveResult(hint, "OPTIMAL"), ms, solver=GREEDY_IS_OPTIMAL)
    result = solve_cpsat(problem, hint, time_limit)
    ms = round((time.perf_counter() - t0) * 1000)
    if result is None:
        if hint is None:
            raise does_not_fit(problem, "no placement was found within the time "
                               f"limit of {time_limit:g} s (the totals fit, but the buffers do "
                               "not pack); try a longer time-limit")
        result = SolveResult(hint, "GREEDY")
    return _finish(problem, result, ms)


def greedy_meets_lower_bounds(problem: Problem, plan: Mapping[str, Placement]) -> bool:
    """Is `plan` optimal for both objectives of the solver, by bounds alone?

    Access cost: every buffer is in one of its cheapest memories, or the plan's cost meets
    the capacity-aware bound of passes/allocate_bound.py (when the fast memories cannot hold
    every buffer that would like them). Peaks: when each buffer has
    exactly one cheapest memory, every cost-optimal plan has this plan's spaces, so each
    space's peak must reach the bytes live at once in it (`Liveness.lower_bounds`); with
    ties the spaces could change, and the bound is the bytes of all buffers live at once
    (each space's peak is at least its share of any instant)."""
    forced = True
    cheapest = True
    for b in problem.buffers:
        costs = [problem.cost(b, m) for m in problem.options[b.name]]
        best = min(costs)
        cheapest = cheapest and problem.cost(b, problem.target.memory(plan[b.name].space)) == best
        forced = forced and costs.count(best) == 1
    if not cheapest:  # capacity forced some buffer out: does the capacity-aware bound hold it?
        bound = capacity_cost_bound(problem)
        cost = sum(problem.cost(b, problem.target.memory(plan[b.name].space))
                   for b in problem.buffers)
        if bound is None or cost > bound:
            return False
        forced = False  # other plans of that cost may use other spaces
    stacks = problem.stack_heights(plan)
    peaks = problem.peaks(plan)
    peaks = {m.name: max(peaks.get(m.name, 0), stacks[m.name]) for m in problem.target.memories}
    if forced:
        bounds = problem.live.lower_bounds({name: p.space for name, p in plan.items()})
        return all(peak <= bounds.get(space, 0) for space, peak in peaks.items())
    return sum(peaks.values()) <= peak_live_bytes(problem.buffers)


def _finish(problem: Problem, result: SolveResult, ms: int,
            solver: str = "CP-SAT") -> MemoryPlan:
    placements = result.placements
    space_of = {name: p.space for name, p in placements.items()}
    peaks: dict[str, int] = {}
    no_reuse: dict[str, int] = {}
    for b in problem.buffers:
        p = placements[b.name]
        peaks[p.space] = max(peaks.get(p.space, 0), p.offset + b.size)
        no_reuse[p.space] = no_reuse.get(p.space, 0) + b.size
    windows = result.windows
    if windows is not None:  # the windows count in their space's peak
        peaks[windows.space] = max(peaks.get(windows.space, 0),
                                   windows.offsets[1] + windows.window)
    return MemoryPlan(target=problem.target, placements=placements, status=result.status,
                      solve_time_ms=ms, access_cost=problem.access_cost(space_of),
                      peaks=peaks, lower_bounds=problem.live.lower_bounds(space_of),
                      no_reuse=no_reuse, cost_gap=result.cost_gap, peak_gap=result.peak_gap,
                      buffers=len(problem.buffers), solver=solver, windows=windows)


# --- the problem: which memories each buffer may use, at what cost ----------------------------

class Problem:
    """Buffers with their admissible memories (cheapest first) and integer access costs."""

    def __init__(self, live: Liveness, target: TargetDescription,
                 kv_capacity: int | None = None, kv_option: str = "capacity",
                 copy_weights: bool = True, weights_in: tuple[str, ...] = (),
                 engine_reads: Mapping[str, tuple[str, ...]] | None = None,
                 stream: StreamSpec | None = None):
        self.live = live
        self.stream = stream
        """Linears whose tile plan is solved with the allocation (passes/stream_plan.py)."""
        self.target = target
        self.kv_capacity = kv_capacity
        """Positions of the KV caches (module attribute irtool.kv_capacity), for advice."""
        self.kv_option = kv_option
        self.buffers = live.buffers
        self.scale = _cost_scale(target)
        self.options: dict[str, list[MemorySpec]] = {}
        self.reachable: dict[str, list[MemorySpec]] = {}
        """The memories a buffer may live in, whatever their size (for the error's advice)."""
        self.restrictions = {"copy_weights": copy_weights, "weights_in": weights_in,
                             "engine_reads": engine_reads}
        """What limits each buffer's memories besides the target (for trial problems)."""
        in_place = not copy_weights and any(m.read_only for m in target.memories)
        # the program's core reads and writes its buffers directly: only its memories (and,
        # for a weight only an accelerator reads, that accelerator's)
        engine_reads = engine_reads or {}
        for b in self.buffers:
            direct = set(target.core.reads) | set(engine_reads.get(b.name, ()))
            reachable = [m for m in target.memories
                         if m.name in direct and (not b.writable or not m.read_only)
                         and not (in_place and b.kind == "weight" and not m.read_only)
                         and not (weights_in and b.kind == "weight"
                                  and m.name not in weights_in)]
            self.reachable[b.name] = reachable
            allowed = [m for m in reachable if m.capacity >= b.size]
            allowed.sort(key=lambda m: (self.cost(b, m), m.capacity))
            self.options[b.name] = allowed
        self.persistent = [b for b in self.buffers if b.start == 0 and b.end >= live.horizon]
        self.persistent_names = {b.name for b in self.persistent}
        self._space_bound = {m.name: self._no_reuse_bound(m) for m in target.memories}

    def cost(self, b: Buffer, m: MemorySpec) -> int:
        """Integer access cost of b in m per call (costs scaled to integers)."""
        return round(m.access_cost(b.reads, b.writes, b.size) * self.scale)

    def alignment(self, b: Buffer, m: MemorySpec) -> int:
        return max(b.alignment, m.alignment, 1)

    def access_cost(self, space_of: Mapping[str, str]) -> float:
        return sum(self.target.memory(space_of[b.name]).access_cost(b.reads, b.writes, b.size)
                   for b in self.buffers)

    def peaks(self, plan: Mapping[str, Placement]) -> dict[str, int]:
        """Highest byte used per space by a plan."""
        out: dict[str, int] = {}
        for b in self.buffers:
            p = plan[b.name]
            out[p.space] = max(out.get(p.space, 0), p.offset + b.size)
        return out

    def stack_heights(self, plan: Mapping[str, Placement]) -> dict[str, int]:
        """Bytes of the persistent stack per space, as the model counts them."""
        out = {m.name: 0 for m in self.target.memories}
        for b in self.persistent:
            p = plan[b.name]
            out[p.space] += footprint(b, p.alignment)
        return out

    def space_bound(self, m: MemorySpec) -> int:
        """Highest byte a plan may need in m."""
        return self._space_bound[m.name]

    def _no_reuse_bound(self, m: MemorySpec) -> int:
        """Bytes beyond the no-reuse total of the buffers that may go to m (with padding) are
        never needed, which keeps the domains small on a 1 TiB host."""
        total = sum(b.size + self.alignment(b, m) for b in self.buffers
                    if any(o.name == m.name for o in self.options[b.name]))
        return min(m.capacity, total)


def _cost_scale(target: TargetDescription) -> int:
    """The smallest power of ten that makes every cost of the target an integer."""
    costs = [c for m in target.memories for c in (m.read_cost, m.write_cost)]
    scale = 1
    while scale < 10**6 and any(abs(c * scale - round(c * scale)) > 1e-9 for c in costs):
        scale *= 10
    return scale


def _align_up(x: int, a: int) -> int:
    return -(-x // a) * a


# --- persistent buffers: a stack at the bottom of each space ------------------------------------

def footprint(b: Buffer, align: int) -> int:
    """Bytes a persistent buffer takes in the stack: its size rounded up to its alignment."""
    return _align_up(b.size, align)


def stack_persistent(problem: Problem, space_of: Mapping[str, str]
                     ) -> tuple[dict[str, Placement], dict[str, int]]:
    """Offsets of the persistent buffers in their spaces, and the stack height per space.

    A buffer live over the whole program (a global) meets every other buffer, so in any packing
    the others sit in the gaps between persistent ones; moving all persistent buffers to the
    bottom of the space, and the gaps above them, keeps the plan valid and its peak the same
    (up to alignment padding). So persistent buffers need no offset variables: they are
    stacked, largest alignment first (every offset then stays aligned with no padding but the
    rounding of sizes), then by name, and the other buffers go above the stack. This leaves
    the 2-D packing to the activations, where the reuse is.
    """
    placements: dict[str, Placement] = {}
    height = {m.name: 0 for m in problem.target.memories}
    items = [(b, problem.target.memory(space_of[b.name])) for b in problem.persistent]
    for b, m in sorted(items, key=lambda bm: (-problem.alignment(*bm), bm[0].name)):
        a = problem.alignment(b, m)
        placements[b.name] = Placement(m.name, height[m.name], a)
        height[m.name] += footprint(b, a)
    return placements, height


# --- greedy plans: the warm start and fallback ------------------------------------------------

def first_fit(size: int, align: int, capacity: int,
              busy: Iterable[tuple[int, int]]) -> int | None:
    """Lowest aligned offset where `size` bytes avoid every busy byte range `[lo, hi)`."""
    off = 0
    for lo, hi in sorted(busy):
        if off + size <= lo:
            break
        off = max(off, _align_up(hi, align))
    return off if off + size <= capacity else None


def first_fit_offsets(buffers: Sequence[Buffer], align: Callable[[Buffer], int],
                      capacity: int | None = None) -> dict[str, int] | None:
    """Offsets for buffers of one space, placed in the given order, each at its first fit
    against the already placed buffers whose lives meet its own (TFLite Micro's greedy
    planner when sorted by size)."""
    placed: list[tuple[Buffer, int]] = []
    out: dict[str, int] = {}
    for b in buffers:
        busy = [(o, o + p.size) for p, o in placed if p.overlaps(b)]
        off = first_fit(b.size, align(b), capacity if capacity is not None else 1 << 62, busy)
        if off is None:
            return None
        placed.append((b, off))
        out[b.name] = off
    return out


class _GreedyState:
    """Spaces being filled: the persistent stack height and the transient buffers placed
    above it (offsets relative to the top of the stack, aligned to `top_align`)."""

    def __init__(self, problem: Problem):
        self.problem = problem
        self.stack = {m.name: 0 for m in problem.target.memories}
        self.top_align = {m.name: 1 for m in problem.target.memories}
        self.transient: dict[str, list[tuple[Buffer, int]]] = {m.name: [] for m in
                                                               problem.target.memories}
        self.space_of: dict[str, str] = {}

    def _above(self, m: MemorySpec) -> int:
        """Highest relative byte used by the transient buffers of m."""
        return max((o + b.size for b, o in self.transient[m.name]), default=0)

    def try_place(self, b: Buffer, m: MemorySpec) -> bool:
        a = self.problem.alignment(b, m)
        if b.name in self.problem.persistent_names:
            stack = self.stack[m.name] + footprint(b, a)
            if _align_up(stack, self.top_align[m.name]) + self._above(m) > m.capacity:
                return False
            self.stack[m.name] = stack
        else:
            top_align = max(self.top_align[m.name], a)
            base = _align_up(self.stack[m.name], top_align)
            busy = [(o, o + p.size) for p, o in self.transient[m.name] if p.overlaps(b)]
            off = first_fit(b.size, a, m.capacity - base, busy)
            if off is None or base + max(self._above(m), off + b.size) > m.capacity:
                return False
            self.top_align[m.name] = top_align
            self.transient[m.name].append((b, off))
        self.space_of[b.name] = m.name
        return True

    def plan(self) -> dict[str, Placement]:
        out, heights = stack_persistent(self.problem, self.space_of)
        for name, placed in self.transient.items():
            base = _align_up(heights[name], self.top_align[name])
            mem = self.problem.target.memory(name)
            for b, off in placed:
                out[b.name] = Placement(name, base + off, self.problem.alignment(b, mem))
        return out


def greedy_plan(problem: Problem, order: Sequence[Buffer]) -> dict[str, Placement] | None:
    """Each buffer in turn to the cheapest memory where it fits first (None if one fits
    nowhere)."""
    state = _GreedyState(problem)
    for b in order:
        if not any(state.try_place(b, m) for m in problem.options[b.name]):
            return None
    return state.plan()


def best_greedy_plan(problem: Problem) -> dict[str, Placement] | None:
    """The cheaper of two greedy orders: hottest bytes first, and largest first. Writable
    buffers go first in both, as they have fewer memories to choose from."""
    hot = sorted(problem.buffers,
                 key=lambda b: (not b.writable, -(b.reads + b.writes), -b.size, b.name))
    big = sorted(problem.buffers, key=lambda b: (not b.writable, -b.size, b.name))
    plans = [p for p in (greedy_plan(problem, hot), greedy_plan(problem, big)) if p]
    if not plans:
        return None

    def score(plan: dict[str, Placement]) -> tuple[float, int]:
        cost = problem.access_cost({n: p.space for n, p in plan.items()})
        return cost, sum(problem.peaks(plan).values())

    return min(plans, key=score)


# --- CP-SAT ------------------------------------------------------------------------------------

@dataclass
class SolveResult:
    placements: dict[str, Placement]
    status: str
    cost_gap: float = 0.0
    peak_gap: float = 0.0
    windows: WindowPlan | None = None


@dataclass
class _Choice:
    """Buffer b in memory m: the presence literal and, for a transient buffer, the offset in
    units of `align` and the live range as an optional interval."""

    buffer: Buffer
    memory: MemorySpec
    present: cp_model.IntVar
    align: int
    cost: int
    slot: cp_model.IntVar | None = None
    life: cp_model.IntervalVar | None = None

    @property
    def offset(self) -> cp_model.LinearExpr:
        return self.slot * self.align


@dataclass
class _Model:
    model: cp_model.CpModel
    choices: list[_Choice]
    cost: cp_model.LinearExpr
    stack: dict[str, cp_model.LinearExpr]
    """Per space, the bytes of the persistent stack (a linear expression)."""
    peaks: dict[str, cp_model.IntVar] = field(default_factory=dict)
    rooms: dict[str, cp_model.IntVar] = field(default_factory=dict)
    stream: StreamVars | None = None
    windows: tuple[int, dict[str, int], tuple[int, int], dict[str, int]] | None = None
    """The last solution's window size, rows per streamed weight, window offsets and inputs
    per piece of the weights cut along K."""
    cost_value: float = 0.0
    """The last solution's first objective (its value, whichever stage found it)."""


def _cp_model():
    """OR-Tools' CP-SAT module, imported on first use (without pandas: irtool.cpsat)."""
    from irtool.cpsat import cp_model

    return cp_model()


def build_model(problem: Problem) -> _Model:
    """The CP-SAT model described in the module docstring (without an objective)."""
    model = _cp_model().CpModel()
    choices: list[_Choice] = []
    for b in problem.buffers:
        mine = [_choice(model, problem, b, m) for m in problem.options[b.name]]
        mine = [c for c in mine if c is not None]
        model.add_exactly_one(c.present for c in mine)
        choices.extend(mine)
    stream, windows, stream_cost, replaced = _add_stream(model, problem, choices)
    stack: dict[str, cp_model.LinearExpr] = {}
    for m in problem.target.memories:
        here = [c for c in choices if c.memory is m]
        stack[m.name] = sum(footprint(c.buffer, c.align) * c.present
                            for c in here if c.slot is None)
        if stream is not None and m.name == problem.stream.window_space:
            stack[m.name] += windows
        model.add(stack[m.name] <= m.capacity)
        transient = [c for c in here if c.slot is not None]
        for c in transient:
            model.add(c.offset >= stack[m.name]).only_enforce_if(c.present)
        if len(transient) > 1:
            model.add_no_overlap_2d(
                [model.new_optional_fixed_size_interval_var(
                    c.offset, max(c.buffer.size, 1), c.present, f"bytes[{c.buffer.name}]")
                 for c in transient],
                [c.life for c in transient])
    cost = sum(c.cost * c.present for c in choices if id(c) not in replaced) + stream_cost
    return _Model(model, choices, cost, stack, stream=stream)


def _add_stream(model: cp_model.CpModel, problem: Problem, choices: list[_Choice]):
    """The tile plan's part of the model (passes/stream_plan.py): its variables, the windows'
    bytes in their space (with one alignment of padding when anything streams), the
    candidates' cost, and the choices whose access cost that cost replaces."""
    spec = problem.stream
    if spec is None:
        return None, 0, 0, set()
    target = problem.target
    in_source = {c.buffer.name: c for c in choices if c.memory.name == spec.source
                 and any(k.buffer == c.buffer.name for k in spec.candidates)}
    from irtool.passes.stream_plan import add_stream

    stream, windows, cost = add_stream(
        model, spec, {n: c.present for n, c in in_source.items()},
        target.memory(spec.window_space), target.memory(spec.source), problem.scale,
        {n: c.cost for n, c in in_source.items()})
    used = model.new_bool_var("windows_used")
    if stream.streamed:
        model.add_max_equality(used, list(stream.streamed.values()))
    else:
        model.add(used == 0)
    return stream, windows + stream.align * used, cost, {id(c) for c in in_source.values()}


def _choice(model: cp_model.CpModel, problem: Problem, b: Buffer,
            m: MemorySpec) -> _Choice | None:
    a = problem.alignment(b, m)
    lit = model.new_bool_var(f"in[{b.name},{m.name}]")
    c = _Choice(b, m, lit, a, problem.cost(b, m))
    if b.name in problem.persistent_names:
        return c
    top = (problem.space_bound(m) - b.size) // a
    if top < 0:
        return None
    c.slot = model.new_int_var(0, top, f"slot[{b.name},{m.name}]")
    c.life = model.new_optional_fixed_size_interval_var(
        b.start, b.end - b.start, lit, f"life[{b.name},{m.name}]")
    return c


def _add_peaks(m: _Model, problem: Problem) -> cp_model.LinearExpr:
    """Per space the highest byte used; returns their sum. The redundant cumulative says the
    room above the stack holds at least the transient bytes live at any time, which gives the
    solver the lower bound."""
    for mem in problem.target.memories:
        bound = problem.space_bound(mem)
        peak = m.model.new_int_var(0, bound, f"peak[{mem.name}]")
        room = m.model.new_int_var(0, bound, f"room[{mem.name}]")
        m.model.add(peak == m.stack[mem.name] + room)
        m.peaks[mem.name], m.rooms[mem.name] = peak, room
        mine = [c for c in m.choices if c.memory is mem and c.life is not None]
        if mine:
            m.model.add_cumulative([c.life for c in mine], [c.buffer.size for c in mine], room)
        for c in mine:
            m.model.add(peak >= c.offset + c.buffer.size).only_enforce_if(c.present)
    return sum(m.peaks.values())


def _hint(m: _Model, problem: Problem, plan: Mapping[str, Placement]) -> None:
    m.model.clear_hints()
    for c in m.choices:
        p = plan[c.buffer.name]
        here = p.space == c.memory.name
        m.model.add_hint(c.present, here)
        if c.slot is not None:
            m.model.add_hint(c.slot, p.offset // c.align if here else 0)
    if m.peaks:
        peaks = problem.peaks(plan)
        stacks = problem.stack_heights(plan)
        for name, var in m.peaks.items():
            peak = max(peaks.get(name, 0), stacks[name])
            m.model.add_hint(var, peak)
            m.model.add_hint(m.rooms[name], peak - stacks[name])


def _solver(seconds: float) -> cp_model.CpSolver:
    solver = _cp_model().CpSolver()
    # Reproducible plans: CP-SAT's workers racing each other on the cores returned a different
    # one of several equally good plans from run to run (3 different projects in 4 compiles
    # of stories260K for cortex-m7-256k). Interleaved (`interleave_search`), its portfolio of
    # subsolvers runs as a deterministic sequence of tasks; one task per batch makes that
    # sequence independent of the number of cores, and the portfolio is fixed, not taken from
    # the machine. Measured on 2 cores (wall s, racing -> interleaved, both OPTIMAL): that
    # cortex-m7 compile 2.4 -> 0.85, the same with two LoRA adapters 2.1 -> 1.1. A
    # deterministic time limit as well; the wall-clock limit stays the user's bound (a plan
    # cut by it, FEASIBLE, may vary with the machine's load).
    solver.parameters.interleave_search = True
    solver.parameters.interleave_batch_size = 1
    solver.parameters.num_workers = PORTFOLIO_WORKERS
    solver.parameters.max_deterministic_time = max(0.05, seconds)
    solver.parameters.max_time_in_seconds = max(0.05, seconds)
    # Probing the no-overlap model costs seconds on a few hundred buffers and rarely helps.
    solver.parameters.cp_model_probing_level = 0
    return solver


def _extract(m: _Model, problem: Problem, solver: cp_model.CpSolver) -> dict[str, Placement]:
    chosen = [c for c in m.choices if solver.boolean_value(c.present)]
    out, heights = stack_persistent(problem, {c.buffer.name: c.memory.name for c in chosen})
    if m.stream is not None:  # the windows go right above the persistent stack
        from irtool.passes.stream_plan import solved_windows

        window, rows, cols = solved_windows(problem.stream, m.stream, solver.value,
                                            solver.boolean_value)
        base = _align_up(heights[problem.stream.window_space], m.stream.align)
        m.windows = (window, rows, (base, base + window), cols) if rows else None
        m.cost_value = solver.value(m.cost)
    for c in chosen:
        if c.slot is not None:
            out[c.buffer.name] = Placement(c.memory.name, solver.value(c.slot) * c.align,
                                           c.align)
    return out


def _gap(solver: cp_model.CpSolver) -> float:
    obj, bound = solver.objective_value, solver.best_objective_bound
    return 0.0 if obj <= 0 else max(0.0, (obj - bound) / obj)


def solve_cpsat(problem: Problem, hint: Mapping[str, Placement] | None,
                time_limit: float) -> SolveResult | None:
    """Lexicographic solve: the access cost first, then the sum of the peaks with the cost
    kept at its best. None when no plan was found in time; a proof that none exists raises
    the does-not-fit error."""
    cp_model = _cp_model()
    deadline = time.perf_counter() + time_limit
    m = build_model(problem)
    placements = dict(hint) if hint is not None else None
    cost = _Stage(cp_model.OPTIMAL, 0.0)  # nothing to choose: every option costs the same
    if _cost_varies(problem):
        cost = _run_stage(m, problem, m.cost, time_limit / 2, placements)
        if cost.status == cp_model.INFEASIBLE:
            raise _infeasible(problem)
        if cost.placements is None:
            return None if placements is None else SolveResult(placements, "GREEDY")
        placements = cost.placements
    peak = _run_stage(m, problem, _add_peaks(m, problem), deadline - time.perf_counter(),
                      placements)
    if peak.status == cp_model.INFEASIBLE and placements is None:
        raise _infeasible(problem)
    if peak.placements is None and placements is None:
        return None
    optimal = cost.optimal and peak.optimal
    return SolveResult(peak.placements or placements, "OPTIMAL" if optimal else "FEASIBLE",
                       cost.gap, peak.gap, _window_plan(m, problem, cost))


def _window_plan(m: _Model, problem: Problem, cost: _Stage) -> WindowPlan | None:
    """The solved windows, with the first stage's status and bound and the final solution's
    first objective turned into modelled time per token (the candidates' compute added
    back)."""
    if m.windows is None or problem.stream is None:
        return None
    window, rows, offsets, cols = m.windows
    compute = problem.stream.compute
    from irtool.passes.stream_plan import WindowPlan

    return WindowPlan(problem.stream.window_space, window, offsets, rows,
                      _cp_model().CpSolver().status_name(cost.status),
                      m.cost_value / problem.scale + compute,
                      cost.bound / problem.scale + compute, cols)


@dataclass
class _Stage:
    """Outcome of one lexicographic stage."""

    status: int
    gap: float
    placements: dict[str, Placement] | None = None
    objective: float = 0.0
    bound: float = 0.0

    @property
    def optimal(self) -> bool:
        return self.status == _cp_model().OPTIMAL


def _run_stage(m: _Model, problem: Problem, objective: cp_model.LinearExpr, seconds: float,
               start: Mapping[str, Placement] | None) -> _Stage:
    """Minimise `objective` from the plan `start`; on success, keep its value as a bound for
    the stages after."""
    cp_model = _cp_model()
    m.model.minimize(objective)
    if start is not None:
        _hint(m, problem, start)
    solver = _solver(seconds)
    status = solver.solve(m.model)
    if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        return _Stage(status, 1.0)
    m.model.add(objective <= round(solver.objective_value))
    return _Stage(status, _gap(solver), _extract(m, problem, solver),
                  solver.objective_value, solver.best_objective_bound)


def _cost_varies(problem: Problem) -> bool:
    if problem.stream is not None:  # streaming trades access cost for window room
        return True
    return any(len({problem.cost(b, m) for m in problem.options[b.name]}) > 1
               for b in problem.buffers)


def _infeasible(problem: Problem) -> IrtoolError:
    return does_not_fit(problem, "CP-SAT proved that no placement exists: the totals fit, but "
                        "the buffers cannot be packed into the memories without splitting them")

# --- does it fit? -----------------------------------------------------------------------------

def _check_fits(problem: Problem) -> None:
    """Fail early, with the numbers, when no plan can exist whatever the offsets."""
    d = Demand.of(problem)
    homeless = [b for b in problem.buffers if not problem.options[b.name]]
    if homeless or d.writable_over > 0 or d.total_over > 0 or d.read_only_over > 0:
        raise does_not_fit(problem)


@dataclass
class Demand:
    """Aggregate needs of a module against a target: writable bytes live at once vs the
    writable memories, and everything live at once vs all memories."""

    writable_need: int
    writable_capacity: int
    weights: int
    total_need: int
    total_capacity: int
    read_only_need: int = 0
    """Bytes of the buffers only read-only memories may hold (weights read in place, or too
    big for any writable memory)."""
    read_only: tuple[MemorySpec, ...] = ()
    """Those memories."""

    @classmethod
    def of(cls, problem: Problem) -> Demand:
        bufs, target = problem.buffers, problem.target
        writable_need = peak_live_bytes(b for b in bufs if b.writable)
        weights = sum(b.size for b in bufs if not b.writable)
        in_place = [b for b in bufs if problem.options[b.name]
                    and all(m.read_only for m in problem.options[b.name])]
        spaces = {m.name for b in in_place for m in problem.options[b.name]}
        return cls(writable_need, sum(m.capacity for m in target.writable), weights,
                   peak_live_bytes(bufs), sum(m.capacity for m in target.memories),
                   sum(b.size for b in in_place),
                   tuple(m for m in target.memories if m.name in spaces))

    @property
    def read_only_capacity(self) -> int:
        return sum(m.capacity for m in self.read_only)

    @property
    def read_only_over(self) -> int:
        return self.read_only_need - self.read_only_capacity

    @property
    def writable_over(self) -> int:
        return self.writable_need - self.writable_capacity

    @property
    def total_over(self) -> int:
        return self.total_need - self.total_capacity


def does_not_fit(problem: Problem, why: str = "") -> IrtoolError:
    """The error for a model that does not fit: culprits, bytes over, and what would fit."""
    target, d = problem.target, Demand.of(problem)
    mems = ", ".join(f"{m.name} {m.capacity} bytes{' read-only' if m.read_only else ''}"
                     for m in target.memories)
    lines = [f"the model does not fit target '{target.name}' ({mems})"]
    if why:
        lines.append(f"  {why}")
    lines += _homeless_lines(problem)
    writable = ", ".join(m.name for m in target.writable) or "none"
    lines.append(f"  writable buffers (state + activations) need {d.writable_need} bytes live at "
                 f"once; the writable memories ({writable}) hold {d.writable_capacity} bytes: "
                 + _over(d.writable_over))
    if d.read_only:
        rooms = ", ".join(_room(m) for m in d.read_only)
        lines.append(f"  weights that must stay in read-only memory ({d.read_only_need} bytes): "
                     f"{rooms}: " + _over(d.read_only_over))
    lines.append(f"  weights ({d.weights} bytes) + writable buffers need {d.total_need} bytes "
                 f"at once; all memories hold {d.total_capacity} bytes: " + _over(d.total_over))
    # when only the writable memories are over, the weights (read-only) are not the culprits
    writable_only = d.writable_over > 0 and d.total_over <= 0
    lines.append("  largest writable buffers:" if writable_only else "  largest buffers:")
    shown = [b for b in problem.buffers if b.writable or not writable_only]
    for b in sorted(shown, key=lambda b: (-b.size, b.name))[:5]:
        lines.append(f"    {b.name} ({b.kind}, {b.size} bytes)")
    lines.append("  what would fit:")
    lines += [f"    - {s}" for s in _suggestions(problem, d)]
    return IrtoolError("\n".join(lines))


def _over(n: int) -> str:
    return f"{n} bytes over" if n > 0 else "fits"


def _room(m: MemorySpec) -> str:
    """A memory's plannable bytes, and the reserve they leave out of its size."""
    if not m.reserved:
        return f"{m.name} holds {m.capacity} bytes"
    what = ("the program: code, C library, constants" if m.read_only
            else "the stack and C library data")
    return f"{m.name} holds {m.capacity} bytes ({m.size} less {m.reserved} reserved for {what})"


def _homeless_lines(problem: Problem) -> list[str]:
    lines = []
    for b in problem.buffers:
        if problem.options[b.name]:
            continue
        # the memories the program's core (or the engine reading it) reaches, not every one
        biggest = max(problem.reachable.get(b.name, ()), key=lambda m: m.capacity,
                      default=None)
        where = (f"the largest memory it may use is {biggest.name} ({biggest.capacity} bytes)"
                 if biggest else "no memory its readers reach may hold it")
        lines.append(f"  {b.name} ({b.kind}, {b.size} bytes) is larger than any memory it may "
                     f"live in: {where}")
    return lines


def _kv_caches(problem: Problem) -> list[Buffer]:
    state = [b for b in problem.buffers if b.kind == "state"]
    named = [b for b in state if "cache" in b.name.lower()]
    return named or state


def _prefill_suggestion(problem: Problem) -> str | None:
    """A batched prefill whose activations outweigh the decode step's: fewer tokens per
    call (or none) would leave it the decode step's needs."""
    peak = {f: peak_live_bytes([b for b in problem.buffers
                                if b.function == f and b.kind == "activation"])
            for f in ("prefill", "decode")}
    if peak["prefill"] <= peak["decode"]:
        return None
    return (f"a smaller batched prefill (fewer --prefill-tokens, or --prefill token): its "
            f"activations need {peak['prefill']} bytes at once, the decode step's "
            f"{peak['decode']}")


def _suggestions(problem: Problem, d: Demand) -> list[str]:
    out = [s for s in (_prefill_suggestion(problem), _kv_suggestion(problem, d),
                       _quantize_suggestion(problem, d)) if s]
    biggest = max((b.size for b in problem.buffers if b.writable), default=0)
    read_only = (f", {d.read_only_need} bytes of read-only memory for the weights that must "
                 f"stay there (has {d.read_only_capacity})" if d.read_only_over > 0 else "")
    out.append(f"a target with at least {d.writable_need} bytes of writable memory (has "
               f"{d.writable_capacity}), one writable memory of at least {biggest} bytes"
               f"{read_only}, and {d.total_need} bytes in all (has {d.total_capacity})")
    return out


def fits_with(problem: Problem, sizes: Mapping[str, int]) -> bool:
    """Whether the module would fit with some buffers resized: checked with a real (greedy)
    plan, because buffers cannot be split across memories and the totals alone mislead."""
    bufs = [replace(b, size=sizes.get(b.name, b.size)) for b in problem.buffers]
    trial = Problem(Liveness(bufs, problem.live.horizon, problem.live.functions),
                    problem.target, **problem.restrictions)
    d = Demand.of(trial)
    if d.writable_over > 0 or d.total_over > 0 or d.read_only_over > 0:
        return False
    if any(not trial.options[b.name] for b in bufs):
        return False
    return best_greedy_plan(trial) is not None


def _kv_suggestion(problem: Problem, d: Demand) -> str | None:
    """The largest KV capacity (positions) that fits, from the bytes one position takes."""
    caches = _kv_caches(problem)
    cache_bytes = sum(b.size for b in caches)
    if not caches or cache_bytes == 0:
        return None
    if d.read_only_over > 0:
        return None  # the weights are over their read-only memory: no KV capacity helps
    names = ", ".join(b.name for b in caches)
    capacity = problem.kv_capacity
    if capacity is None or capacity <= 0:
        if d.writable_over <= 0 and all(problem.options[b.name] for b in caches):
            return None  # the caches are not what is over
        return (f"the KV caches ({names}) take {cache_bytes} bytes: a smaller capacity or "
                "window in extract-kv-cache (the module does not say its capacity, "
                f"{KV_CAPACITY_ATTR})")
    per_position = {b.name: b.size / capacity for b in caches}

    def fits(positions: int) -> bool:
        return fits_with(problem, {n: int(round(p * positions)) for n, p in per_position.items()})

    best = _largest(fits, 1, capacity - 1)
    per = sum(per_position.values())
    int8 = _int8_cache_note(problem, caches)
    if best is None:
        return (f"the KV caches ({names}) take {per:g} bytes per position; not even one "
                f"position fits beside the other buffers{int8}")
    flag = "--window" if problem.kv_option == "window" else "--capacity"
    return (f"a KV cache of at most {best} positions instead of {capacity} ({per:g} bytes per "
            f"position in {names}): irtool compile {flag} {best} (irtool-opt: "
            f"extract-kv-cache{{{problem.kv_option}={best}}}){int8}")


def _int8_cache_note(problem: Problem, caches: list[Buffer]) -> str:
    """`; or ... --kv int8` when float caches in int8 (a quarter of the bytes, plus a float
    scale per row: counted as a third) would fit at the capacity asked for."""
    floats = [b for b in caches if b.memref is not None
              and getattr(b.memref.element_type, "bitwidth", 0) == 32]
    if not floats or not fits_with(problem, {b.name: -(-b.size // 3) for b in floats}):
        return ""
    return "; or keep the capacity with an int8 KV cache: irtool compile --kv int8"


def _largest(ok: Callable[[int], bool], lo: int, hi: int) -> int | None:
    """The largest n in [lo, hi] with ok(n), for an ok that holds up to some n (bisection)."""
    if hi < lo or not ok(lo):
        return None
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if ok(mid):
            lo = mid
        else:
            hi = mid - 1
    return lo


def _quantize_suggestion(problem: Problem, d: Demand) -> str | None:
    """int8 weights take a quarter of f32 weights; say so if that makes the model fit."""
    f32 = [b for b in problem.buffers if not b.writable and b.memref is not None
           and getattr(b.memref.element_type, "bitwidth", 0) == 32]
    if not f32:
        return None
    total = sum(b.size for b in f32)
    # weights already quantized: the float ones left are what the scheme keeps in float,
    # the classifier and a token table tied to it
    how = ("the classifier (and a token table tied to it) quantized too: irtool compile "
           "--quantize-lm-head (quantize{quantize-lm-head=true tied-embedding=true})"
           if _has_quantized_weights(problem) else
           "int8 weights (irtool compile --quant w8; quantize{scheme=w8})")
    if fits_with(problem, {b.name: b.size // 4 for b in f32}):
        return (f"{how}: the f32 weights would take about {total // 4} bytes instead of "
                f"{total}, and the model would fit")
    if d.total_over > 0:
        return (f"{how} alone would not be enough (about {total - total // 4} bytes saved)")
    return None


def _has_quantized_weights(problem: Problem) -> bool:
    return any(not b.writable and b.memref is not None
               and 0 < getattr(b.memref.element_type, "bitwidth", 0) < 32
               for b in problem.buffers)


def _kv_capacity(module: ModuleOp) -> int | None:
    attr = module.attributes.get(KV_CAPACITY_ATTR)
    return attr.value.data if isinstance(attr, IntegerAttr) else None


# --- writing the plan into the IR -------------------------------------------------------------

def with_space(t: MemRefType, space: str) -> MemRefType:
    return MemRefType(t.element_type, t.get_shape(), t.layout, memory.SpaceAttr(space))


def write_plan(module: ModuleOp, live: Liveness, plan: MemoryPlan) -> None:
    """Spaces into memref types (definitions and every use), offsets and alignments into
    properties, then function signatures brought in line with what they carry."""
    placed_globals: dict[str, MemRefType] = {}
    for b in live.buffers:
        p = plan.placements[b.name]
        b.op.properties["offset"] = IntegerAttr(p.offset, i64)
        b.op.properties["alignment"] = IntegerAttr(p.alignment, i64)
        if isinstance(b.op, memory.GlobalOp):
            b.op.properties["type"] = with_space(b.op.type, p.space)
            placed_globals[b.op.sym_name.data] = b.op.properties["type"]
        else:
            _retype(b.op.results[0], with_space(b.op.results[0].type, p.space))
    for op in module.walk():
        if isinstance(op, memory.GetGlobalOp):
            t = placed_globals.get(op.global_name.string_value())
            if t is not None and op.result.type != t:
                _retype(op.result, t)
    _sync_signatures(module)


def _retype(value: SSAValue, t: Attribute) -> None:
    """Give a buffer value its placed type and carry the space into views of it."""
    new = Rewriter.replace_value_with_new_type(value, t)
    for use in list(new.uses):
        user = use.operation
        if isinstance(user, memory.SubviewOp) and use.index == 0:
            r = user.result.type
            _retype(user.result, with_space(r, memory.space_of(t)))


def _sync_signatures(module: ModuleOp) -> None:
    """Bring function types in line with the placed buffers they carry: results follow the
    returns, call results follow their callees, and arguments follow what the calls pass
    (repeated until nothing changes, as each step can feed the next)."""
    funcs = {f.sym_name.data: f for f in module.ops if isinstance(f, func.FuncOp)}
    calls = [op for op in module.walk() if isinstance(op, func.CallOp)]
    for _ in range(len(funcs) + 2):
        changed = _sync_arguments(funcs, calls)
        changed |= _sync_results(funcs)
        changed |= _sync_call_results(funcs, calls)
        if not changed:
            return


def _set_function_type(f: func.FuncOp, inputs: Sequence[Attribute] | None = None,
                       outputs: Sequence[Attribute] | None = None) -> None:
    ft = f.function_type
    f.properties["function_type"] = FunctionType.from_lists(
        list(ft.inputs.data if inputs is None else inputs),
        list(ft.outputs.data if outputs is None else outputs))


def _sync_results(funcs: Mapping[str, func.FuncOp]) -> bool:
    changed = False
    for f in funcs.values():
        ret = f.body.blocks[-1].last_op if f.body.blocks else None
        if isinstance(ret, func.ReturnOp):
            outs = [v.type for v in ret.arguments]
            if tuple(outs) != tuple(f.function_type.outputs.data):
                _set_function_type(f, outputs=outs)
                changed = True
    return changed


def _sync_call_results(funcs: Mapping[str, func.FuncOp], calls: list[func.CallOp]) -> bool:
    changed = False
    for call in calls:
        callee = funcs.get(call.callee.string_value())
        if callee is None:
            continue
        for r, t in zip(call.results, callee.function_type.outputs.data, strict=False):
            if r.type != t:
                _retype(r, t)
                changed = True
    return changed


def _sync_arguments(funcs: Mapping[str, func.FuncOp], calls: list[func.CallOp]) -> bool:
    """A function's argument takes the placed type its calls pass; calls that pass buffers of
    different spaces for one argument cannot be typed, which is an error."""
    passed: dict[tuple[str, int], set[Attribute]] = {}
    for call in calls:
        for i, v in enumerate(call.arguments):
            passed.setdefault((call.callee.string_value(), i), set()).add(v.type)
    changed = False
    for (name, i), types in sorted(passed.items(), key=lambda kv: kv[0]):
        f = funcs.get(name)
        if f is None or i >= len(f.function_type.inputs.data):
            continue
        if len(types) > 1:
            raise IrtoolError(f"function @{name} is called with buffers in different memory "
                              f"spaces for argument {i} ({', '.join(sorted(map(str, types)))}); "
                              "one argument type cannot hold them all")
        (t,) = types
        if t == f.function_type.inputs.data[i]:
            continue
        inputs = list(f.function_type.inputs.data)
        inputs[i] = t
        _set_function_type(f, inputs=inputs)
        if f.body.blocks:
            _retype(f.body.blocks[0].args[i], t)
        changed = True
    return changed
