"""The tile plan as a CP-SAT problem: the window size, which linears stream and their tiles.

For each candidate linear k (program order; `N_k` output rows of `b_k` bytes, `c_k` modelled
compute cycles per row) the model chooses whether it streams (`s_k`), its rows per tile `r_k`
and tiles `n_k >= N_k / r_k`; one window size `W >= r_k * b_k` serves all, two windows fit the
free fast memory, and at most `max_tiles` tiles are made (each is straight-line code).

Modelled time per token, minimised (cycles):

* a streamed linear overlaps its transfer with compute (double buffering):
  `T_k >= c_k * N_k + n_k * tile_cycles` and `T_k >= n_k * setup + N_k * b_k * cycles_per_byte`;
* a linear read in place pays both: `T_k = c_k * N_k + tile_cycles + N_k * b_k *
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

from ortools.sat.python import cp_model

SCALE = 1000
"""Cycles are scaled to integers with this factor (the link's cycles per byte are not)."""


@dataclass(frozen=True)
class Candidate:
    rows: int
    row_bytes: int
    compute_per_row: float
    """Modelled compute cycles for one output row."""


@dataclass(frozen=True)
class TilePlan:
    window: int
    rows_per_tile: tuple[int, ...]
    """0 for a linear read in place."""
    status: str
    cycles: float
    bound: float

    @property
    def gap(self) -> float:
        return 0.0 if self.cycles <= 0 else max(0.0, (self.cycles - self.bound) / self.cycles)


def solve_tile_plan(candidates: Sequence[Candidate], free: int, alignment: int,
                    setup_cycles: float, cycles_per_byte: float, max_tiles: int,
                    cap: int = 0, time_limit: float = 5.0,
                    tile_cycles: float = 0.0) -> TilePlan | None:
    """The best plan, or None when not even one row of any linear fits two windows."""
    max_window = free // 2 // alignment * alignment
    if cap:
        max_window = min(max_window, cap // alignment * alignment)
    if not candidates or max_window < min(c.row_bytes for c in candidates):
        return None
    m = cp_model.CpModel()
    w_units = m.NewIntVar(0, max_window // alignment, "window_units")
    window = w_units * alignment
    total_tiles, times = [], []
    stream, rows = [], []
    for k, c in enumerate(candidates):
        s = m.NewBoolVar(f"stream_{k}")
        r = m.NewIntVar(1, c.rows, f"rows_{k}")
        n = m.NewIntVar(1, c.rows, f"tiles_{k}")
        covered = m.NewIntVar(1, c.rows * c.rows, f"covered_{k}")
        m.AddMultiplicationEquality(covered, [n, r])
        m.Add(covered >= c.rows)
        m.Add(r * c.row_bytes <= window).OnlyEnforceIf(s)
        m.Add(n == 1).OnlyEnforceIf(s.Not())
        counted = m.NewIntVar(0, c.rows, f"counted_tiles_{k}")
        m.Add(counted == n).OnlyEnforceIf(s)
        m.Add(counted == 0).OnlyEnforceIf(s.Not())
        total_tiles.append(counted)
        compute = round(c.compute_per_row * c.rows * SCALE)
        transfer = round(c.rows * c.row_bytes * cycles_per_byte * SCALE)
        setup = round(setup_cycles * SCALE)
        per_tile = round(tile_cycles * SCALE)  # n == 1 when read in place
        t = m.NewIntVar(0, compute + transfer + (setup + per_tile) * c.rows, f"time_{k}")
        m.Add(t >= compute + n * per_tile)
        m.Add(t >= n * setup + transfer).OnlyEnforceIf(s)
        m.Add(t == compute + per_tile + transfer).OnlyEnforceIf(s.Not())
        times.append(t)
        stream.append(s)
        rows.append(r)
    m.Add(sum(total_tiles) <= max_tiles)
    m.Minimize(sum(times))
    solver = cp_model.CpSolver()
    solver.parameters.max_time_in_seconds = time_limit
    solver.parameters.num_workers = 1  # deterministic, and the machine is shared
    result = solver.Solve(m)
    if result not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        return None
    chosen = tuple(solver.Value(r) if solver.Value(s) else 0
                   for s, r in zip(stream, rows, strict=True))
    # the window the chosen tiles need (the solver may leave slack above it)
    need = max((r * c.row_bytes for r, c in zip(chosen, candidates, strict=True)), default=0)
    return TilePlan(window=math.ceil(need / alignment) * alignment if need else 0,
                    rows_per_tile=chosen, status=solver.StatusName(result),
                    cycles=solver.ObjectiveValue() / SCALE,
                    bound=solver.BestObjectiveBound() / SCALE)
