"""A lower bound on `allocate`'s access cost that sees the capacities of the memories.

Why: the greedy warm start of `allocate` is often already optimal, and when a bound proves it,
CP-SAT need not run (loading OR-Tools and the two solves are 0.08 s of the 0.5 s that
`irtool compile` of stories260K may take). The plain bound, every buffer in its cheapest
memory, cannot prove it as soon as the fast memory is too small for all the hot buffers: on
riscv-ulp, the 64 KiB DTIM holds three of stories260K's ten 16 KiB KV caches beside the
activations, and the other seven must go to SRAM whatever the plan.

The relaxation (every step only drops constraints of the CP-SAT model in passes/allocate.py,
so no plan costs less than the bound):

* Persistent buffers (live over the whole program) are grouped by their memories with the
  bytes they take there (size rounded to the alignment) and their cost; buffers of a group
  are interchangeable, so only how many of each group go to each memory matters. Every such
  split whose stack (the persistent bytes) fits in every memory is enumerated, up to
  `MAX_SPLITS` of them (beyond that: no bound, and the solver decides).
* For one split, the room left in memory m is its capacity minus its stack, at every instant
  (the bytes of the other transient buffers are ignored). A transient buffer can be in m only
  if it fits in that room alone, so its cost is at least that of its cheapest such memory.
* The bound is the least, over the splits, of the persistent cost plus the transient costs.

On stories260K this is exact: with three caches in the DTIM every activation still fits
there, with four none does, and the bound is the greedy plan's cost.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterator, Sequence
from itertools import combinations_with_replacement, product
from typing import TYPE_CHECKING

from irtool.liveness import Buffer

if TYPE_CHECKING:
    from irtool.passes.allocate import Problem

MAX_SPLITS = 512
"""Most splits of the persistent groups tried (each costs a pass over the transient buffers)."""


def capacity_cost_bound(problem: Problem) -> int | None:
    """The least integer access cost (`Problem.cost` units) any plan can have, or None when
    the persistent buffers split more than `MAX_SPLITS` ways or no split fits."""
    groups = _persistent_groups(problem)
    if any(not options for _, options in groups):  # a buffer with no memory: no plan at all
        return None
    counts = [math.comb(len(members) + len(options) - 1, len(options) - 1)
              for members, options in groups]
    if math.prod(counts) > MAX_SPLITS:
        return None
    transient = Counter(_options(problem, b) for b in problem.buffers
                        if b.name not in problem.persistent_names)  # alike ones counted once
    capacity = {m.name: m.capacity for m in problem.target.memories}
    best: int | None = None
    for split in product(*(_splits(len(members), len(options)) for members, options in groups)):
        stack = dict.fromkeys(capacity, 0)
        cost = 0
        for (_, options), shares in zip(groups, split, strict=True):
            for (name, footprint, unit_cost), n in zip(options, shares, strict=True):
                stack[name] += n * footprint
                cost += n * unit_cost
        if any(stack[name] > capacity[name] for name in capacity):
            continue
        room = {name: capacity[name] - stack[name] for name in capacity}
        for (size, options), alike in transient.items():
            fitting = [c for name, c in options if size <= room[name]]
            if not fitting:
                break
            cost += alike * min(fitting)
        else:
            best = cost if best is None else min(best, cost)
    return best


def _options(problem: Problem, b: Buffer) -> tuple[int, tuple[tuple[str, int], ...]]:
    return b.size, tuple((m.name, problem.cost(b, m)) for m in problem.options[b.name])


def _persistent_groups(problem: Problem
                       ) -> list[tuple[list[Buffer], tuple[tuple[str, int, int], ...]]]:
    """Interchangeable persistent buffers, with their memories as (name, footprint, cost)."""
    groups: dict[tuple, list[Buffer]] = {}
    for b in problem.persistent:
        key = tuple((m.name, _round_up(b.size, problem.alignment(b, m)), problem.cost(b, m))
                    for m in problem.options[b.name])
        groups.setdefault(key, []).append(b)
    return [(members, key) for key, members in groups.items()]


def _round_up(size: int, alignment: int) -> int:
    """The bytes a persistent buffer takes in the stack (passes/allocate.py `footprint`)."""
    return -(-size // alignment) * alignment


def _splits(n: int, k: int) -> Iterator[Sequence[int]]:
    """Every way of sharing n interchangeable buffers among k memories (counts per memory)."""
    for chosen in combinations_with_replacement(range(k), n):
        shares = [0] * k
        for i in chosen:
            shares[i] += 1
        yield shares
