"""The tile plan as a CP-SAT problem: the window size, which linears stream and their tiles.

For each candidate linear k (program order; `N_k` output rows of `b_k` bytes, `c_k` modelled
compute cycles per row) the model chooses whether it streams and in which tiling: row tiles
of `r` whole rows (`ceil(N_k / r)` tiles of `r * b_k` bytes), or, when the linear's rows may
be cut along the reduction dimension (`Chunking`), pieces of one row of `c` inputs
(`N_k * ceil(K / c)` tiles of the bytes of `c` inputs; `c` a multiple of the chunking's
unit, so quantization groups stay whole). One window size `W` at least the bytes of every
chosen tile serves all, two windows fit the free fast memory, and at most `max_tiles` tiles
are made (each is straight-line code). Each tiling is a literal with a constant time, so the
model is linear (as the joint model of passes/stream_plan.py).

Modelled time per token, minimised (cycles; among plans of the same time the one with the
fewest tiles), with `n_k` the tiles of the chosen tiling:

* a streamed linear overlaps its transfer with compute (double buffering):
  `max(c_k * N_k + n_k * tile_cycles, n_k * setup + N_k * b_k * cycles_per_byte)`;
* a linear read in place pays both: `c_k * N_k + tile_cycles + N_k * b_k *
  cycles_per_byte` (the memory-mapped reads go at the link's speed).

`tile_cycles` is what each tile costs the engine beyond its work: on a cluster, the fork and
barrier of the parallel phase every tile is (the description's `fork_join_cycles`; 0 on a
single core).

The solver's status, objective and lower bound are kept with the plan, so a plan says whether
it is proven optimal and how far from the bound it may be. Compute cycles per weight byte are
an input (an estimate the caller states), not a measurement.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

SCALE = 1000
"""Cycles are scaled to integers with this factor (the link's cycles per byte are not)."""


MAX_PIECES = 32
"""Most pieces a row is cut into along K (each piece is a tile: more would not fit the tile
budget of a useful plan, and every option is a literal of the model)."""


@dataclass(frozen=True)
class Chunking:
    """How a linear's rows may be cut along the reduction dimension: `elements` inputs per
    row, stored in `bits` each, cut only at multiples of `unit` inputs (a quantization or
    activation group, a byte of packed weights)."""

    elements: int
    unit: int
    bits: int

    def piece_bytes(self, inputs: int) -> int:
        return inputs * self.bits // 8


@dataclass(frozen=True)
class Tiling:
    """Tiles of `rows` whole rows (`cols == 0`) or pieces of one row of `cols` inputs."""

    rows: int
    cols: int
    tiles: int
    bytes: int
    """Window bytes the largest tile needs."""


def tilings(rows: int, row_bytes: int, max_window: int, chunking: Chunking | None = None,
            max_tiles: int = 0) -> list[Tiling]:
    """The tilings worth considering, fewest tiles first: for each tile count the smallest
    tiles that make it (fewer tiles always cost less set-up, so a larger tile with the same
    count is never better), those that fit a window (and `max_tiles`, when given); then the
    same for pieces of a row, when `chunking` allows them."""
    out: dict[int, int] = {}
    for n in range(1, rows + 1):
        r = -(-rows // n)
        if r * row_bytes <= max_window and -(-rows // r) == n:
            out.setdefault(n, r)
    found = [Tiling(r, 0, n, r * row_bytes) for n, r in sorted(out.items())]
    if chunking is not None and chunking.unit:
        units = -(-chunking.elements // chunking.unit)
        seen = set()
        for m in range(2, min(units, MAX_PIECES) + 1):
            c = -(-units // m) * chunking.unit
            pieces = -(-chunking.elements // c)
            if pieces in seen or chunking.piece_bytes(c) > max_window:
                continue
            seen.add(pieces)
            found.append(Tiling(1, c, rows * pieces, chunking.piece_bytes(c)))
    return [t for t in found if not max_tiles or t.tiles <= max_tiles]


@dataclass(frozen=True)
class Candidate:
    rows: int
    row_bytes: int
    compute_per_row: float
    """Modelled compute cycles for one output row."""
    chunking: Chunking | None = None
    """How its rows may be cut along K (None: whole rows only)."""


@dataclass(frozen=True)
class TilePlan:
    window: int
    rows_per_tile: tuple[int, ...]
    """0 for a linear read in place."""
    status: str
    cycles: float
    bound: float
    cols_per_tile: tuple[int, ...] = ()
    """Inputs per piece of a row cut along K; 0 (or absent) for whole rows."""

    @property
    def gap(self) -> float:
        return 0.0 if self.cycles <= 0 else max(0.0, (self.cycles - self.bound) / self.cycles)


def solve_tile_plan(candidates: Sequence[Candidate], free: int, alignment: int,
                    setup_cycles: float, cycles_per_byte: float, max_tiles: int,
                    cap: int = 0, time_limit: float = 5.0,
                    tile_cycles: float = 0.0) -> TilePlan | None:
    """The best plan, or None when no tile of any linear fits two windows."""
    from ortools.sat.python import cp_model  # the solver loads only when a plan is solved

    max_window = free // 2 // alignment * alignment
    if cap:
        max_window = min(max_window, cap // alignment * alignment)
    options = [tilings(c.rows, c.row_bytes, max_window, c.chunking, max_tiles)
               for c in candidates]
    if not any(options):
        return None
    m = cp_model.CpModel()
    w_units = m.NewIntVar(0, max_window // alignment, "window_units")
    window = w_units * alignment
    total_tiles, times, picks = [], [], []
    setup = setup_cycles * SCALE
    per_tile = tile_cycles * SCALE
    for k, (c, opts) in enumerate(zip(candidates, options, strict=True)):
        compute = c.compute_per_row * c.rows * SCALE
        transfer = c.rows * c.row_bytes * cycles_per_byte * SCALE
        picked = [(t, m.NewBoolVar(f"tiling_{k}_{j}")) for j, t in enumerate(opts)]
        s = m.NewBoolVar(f"stream_{k}")
        m.Add(sum(x for _, x in picked) == s)
        m.Add(window >= sum(t.bytes * x for t, x in picked))
        total_tiles += [t.tiles * x for t, x in picked]
        times += [round(max(compute + t.tiles * per_tile, t.tiles * setup + transfer)) * x
                  for t, x in picked]
        times.append(round(compute + per_tile + transfer) * s.Not())
        picks.append(picked)
    m.Add(sum(total_tiles) <= max_tiles)
    # fewer tiles among plans of the same time (less code, and whole rows before pieces)
    per_time = max_tiles + 1
    m.Minimize(sum(times) * per_time + sum(total_tiles))
    solver = cp_model.CpSolver()
    solver.parameters.max_time_in_seconds = time_limit
    solver.parameters.num_workers = 1  # deterministic, and the machine is shared
    result = solver.Solve(m)
    if result not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        return None
    chosen = [next((t for t, x in picked if solver.Value(x)), None) for picked in picks]
    # the window the chosen tiles need (the solver may leave slack above it)
    need = max((t.bytes for t in chosen if t is not None), default=0)
    return TilePlan(window=math.ceil(need / alignment) * alignment if need else 0,
                    rows_per_tile=tuple(t.rows if t else 0 for t in chosen),
                    status=solver.StatusName(result),
                    cycles=round(solver.ObjectiveValue()) // per_time / SCALE,
                    bound=math.floor(solver.BestObjectiveBound()) // per_time / SCALE,
                    cols_per_tile=tuple(t.cols if t else 0 for t in chosen))
