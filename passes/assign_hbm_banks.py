"""`assign-hbm-banks`: every buffer of the block-part kernels to a memory channel, with CP-SAT.

For accelerators whose kernels reach many independent memory channels (HBM pseudo-channels):
`@decode` is cut into block-part kernels (`irtool.block_parts`); each buffer argument of a
kernel is a port that `connectivity.cfg` binds to a contiguous range of channels, and each
buffer (a weight, a KV cache, an activation) lives in one channel inside the range of every
port it is passed to (all layers' buffers of a port share its range). The channels are the
memories the target's accelerator engine reads (its description); their sizes are the
capacities. With `stripes=S` (default 4) the matrix of every linear layer is split by rows into
S buffers, each passed to its own port and kept on its own channel, so that the kernel reads
the S stripes in parallel (the emitter reads the stripe count from the bank map).

Constraints: every port has a non-empty range and every buffer one channel in the ranges of
its ports; kernels that run at the same time (one host step) never share a channel, not
even for an input they all read (the producer writes one copy per reader, each in its own
channel; the copies are buffers, so their bytes count in the channels' load); the K
and V caches in different channels, and the stripes of one matrix; the bytes of each channel
within its capacity. A greedy map (heaviest group of buffers first, on the consecutive channels
its members kept apart need, from the least-loaded start its conflicts allow; checked against
every constraint) is the solver's starting point, and the answer when the solver finds nothing
in its time limit (`status` says which).

Objective, in two stages: the bytes per token of the most-loaded channel (weights are read once
per token, caches at full capacity, activations once), smallest first; then, at that load, the
fewest channels per port. No channel can carry less than the heaviest buffer's bytes per token,
nor less than an even share of all of them: when the greedy map is at that floor, the first
stage is skipped. A port needs at least as many channels as its kept-apart caches, and as
bin packing at that load says (`_bins_needed`: stories260K's five 44,032-byte w1 matrices under
131,072 need three); when the greedy map is at both floors it is optimal and the solver is not
run (stories260K with 4 stripes, `--capacity 128`: 0.1 s, where the solver took 5 s to prove
it); else the solver knows both bounds (with 1 stripe it proves the map in about 1 s, where it
ended FEASIBLE at its 10 s limit without them). Each stage runs one worker and stops at a
deterministic time limit before the wall-clock one (`_solve`): the same map at every compile,
also where the limit cuts the search.

The result is the module attribute `irtool.hbm_banks` (JSON): ports -> channel ranges,
buffers -> channel, bytes and bytes per token per channel; `BankMap.connectivity_cfg()` writes
the Vitis `[connectivity]` section (`nk=`, `sp=<cu>.<arg>:HBM[a:b]`, `slr=`) and
`BankMap.table()` the bank map as a Markdown table.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

from ortools.sat.python import cp_model
from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp, StringAttr
from xdsl.passes import ModulePass

from irtool.bank_map import BANK_MAP_ATTR
from irtool.block_parts import BlockParts, buffer_names, ports, split_decode
from irtool.errors import IrtoolError


def _elem_bytes(v) -> int:
    t = v.type.element_type
    return max(1, getattr(t, "bitwidth", 32) // 8)


def solve_banks(bp: BlockParts, channels: list[tuple[str, int]], time_limit: float = 10.0,
                slr: str = "SLR0", stripes: int = 1) -> dict:
    """The bank map of `bp` over `channels` ((name, capacity in bytes), in order), with the
    matrix of every linear layer split into `stripes` row blocks on different channels."""
    names = buffer_names(bp, stripes)
    size: dict[str, int] = {}
    role: dict[str, str] = {}
    port_buffers: dict[tuple[str, str], set[str]] = {}
    kind_step: dict[str, int] = {}
    stripe_sets: dict = {}
    for part in bp.parts:
        kind_step.setdefault(part.kind, part.step)
        for port in ports(part, stripes):
            if not port.is_buffer:
                continue
            b = names[port.key]
            size[b] = port.nbytes
            role[b] = port.role
            if port.rows is not None:
                stripe_sets.setdefault(port.value, set()).add(b)
            port_buffers.setdefault((part.kind, port.name), set()).add(b)
    per_token = {b: size[b] for b in size}  # each read (or written) once per token
    for b, row in _embedding_rows(bp, names).items():
        per_token[b] = row  # a lookup table only used for lookups: one row per token
    C = len(channels)
    bufs = sorted(size)
    caches = [b for b in bufs if role[b] == "cache"]
    plist = list(port_buffers)
    m = cp_model.CpModel()
    y = {(b, c): m.NewBoolVar(f"y_{i}_{c}") for i, b in enumerate(bufs) for c in range(C)}
    z, lo, hi = {}, {}, {}
    for j, p in enumerate(plist):
        lo[p], hi[p] = m.NewIntVar(0, C - 1, f"lo{j}"), m.NewIntVar(0, C - 1, f"hi{j}")
        m.Add(lo[p] <= hi[p])
        for c in range(C):
            ge = m.NewBoolVar("")
            le = m.NewBoolVar("")
            m.Add(lo[p] <= c).OnlyEnforceIf(ge)
            m.Add(lo[p] > c).OnlyEnforceIf(ge.Not())
            m.Add(hi[p] >= c).OnlyEnforceIf(le)
            m.Add(hi[p] < c).OnlyEnforceIf(le.Not())
            z[p, c] = m.NewBoolVar(f"z{j}_{c}")
            m.AddBoolAnd([ge, le]).OnlyEnforceIf(z[p, c])
            m.AddBoolOr([ge.Not(), le.Not()]).OnlyEnforceIf(z[p, c].Not())
    for b in bufs:
        m.AddExactlyOne(y[b, c] for c in range(C))
    for p, held in port_buffers.items():
        for b in held:
            for c in range(C):
                m.AddImplication(y[b, c], z[p, c])
    # concurrent kernels: no channel in two of their ports' ranges (an input they all read
    # comes in one copy per kernel, `block_parts`)
    for a in plist:
        for b in plist:
            if a >= b or a[0] == b[0] or kind_step[a[0]] != kind_step[b[0]]:
                continue
            if port_buffers[a] & port_buffers[b]:
                raise IrtoolError(f"assign-hbm-banks: concurrent kernels {a[0]} and {b[0]} "
                                  "pass the same buffer")
            for c in range(C):
                m.Add(z[a, c] + z[b, c] <= 1)
    for i, k in enumerate(caches):
        for v in caches[i + 1:]:
            for c in range(C):
                m.Add(y[k, c] + y[v, c] <= 1)
    for held in stripe_sets.values():  # the stripes of one matrix are read in parallel
        for c in range(C):
            m.Add(sum(y[b, c] for b in held) <= 1)
    for c, (_, cap) in enumerate(channels):
        m.Add(sum(size[b] * y[b, c] for b in bufs) <= cap)
    load = m.NewIntVar(0, sum(per_token.values()), "load")
    for c in range(C):
        m.Add(sum(per_token[b] * y[b, c] for b in bufs) <= load)
    # redundant, for the solver's bound: no channel carries less than the heaviest buffer,
    # nor less than an even share of all the bytes
    floor = max(max(per_token.values(), default=0), -(-sum(per_token.values()) // C))
    m.Add(load >= floor)
    apart = [*([k, v] for i, k in enumerate(caches) for v in caches[i + 1:]),
             *(sorted(h) for h in stripe_sets.values())]
    greedy = _greedy(bufs, size, per_token, port_buffers, kind_step, apart, channels)
    if greedy is not None and not _map_is_valid(greedy, size, port_buffers, kind_step, apart,
                                                channels):
        greedy = None  # not a map the model allows: no start, no fallback
    if greedy is not None:
        for b, c0 in greedy.items():
            for c in range(C):
                m.AddHint(y[b, c], c == c0)
    span = sum(hi[p] - lo[p] for p in plist)

    def ranges_of(w: dict[str, int]) -> dict:
        return {p: [min(w[b] for b in port_buffers[p]), max(w[b] for b in port_buffers[p])]
                for p in plist}

    greedy_load = None if greedy is None else max(
        sum(per_token[b] for b in bufs if greedy[b] == c) for c in range(C))
    deadline = time.perf_counter() + time_limit
    solver, status, proved_greedy = None, cp_model.UNKNOWN, False
    if greedy_load is not None and greedy_load <= floor:
        best_load, load_proved = greedy_load, True  # the greedy map's load is the floor
    else:  # first stage: the load alone, down to the floor at best
        m.Minimize(load)
        solver, status = _solve(m, time_limit / 2)
        if status in (cp_model.OPTIMAL, cp_model.FEASIBLE):
            best_load, load_proved = solver.Value(load), status == cp_model.OPTIMAL
            m.ClearHints()
            for b in bufs:
                for c in range(C):
                    m.AddHint(y[b, c], solver.Value(y[b, c]))
        else:
            best_load, load_proved = None, False
    if best_load is not None:  # second stage: that load, the fewest channels per port
        needs = {q: max(_bins_needed([per_token[b] for b in port_buffers[q]], best_load),
                        len(port_buffers[q] & set(caches)))  # the caches pairwise apart
                 for q in plist}
        span_floor = sum(max(0, n - 1) for n in needs.values())
        proved_greedy = (load_proved and greedy_load == best_load and sum(
            hi_ - lo_ for lo_, hi_ in ranges_of(greedy).values()) <= span_floor)
        if not proved_greedy:  # else the greedy map is at both floors: optimal, no search
            m.Add(load == best_load)
            for q in plist:  # redundant, for the bound: the channels a port needs
                m.Add(hi[q] - lo[q] >= needs[q] - 1)
            m.Minimize(span)
            solver, status = _solve(m, deadline - time.perf_counter())
            if status == cp_model.OPTIMAL and not load_proved:
                status = cp_model.FEASIBLE
    if proved_greedy:
        where, ranges, status_name = greedy, ranges_of(greedy), "optimal"
    elif status not in (cp_model.OPTIMAL, cp_model.FEASIBLE) and greedy is not None:
        # the solver found nothing better in its time: the greedy start
        where, ranges, status_name = greedy, ranges_of(greedy), "greedy"
    elif status not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        total = sum(size.values())
        raise IrtoolError(f"assign-hbm-banks: no bank map ({solver.StatusName(status)}): "
                          f"{total:,} bytes in {len(bufs)} buffers over {C} channels of "
                          f"{channels[0][1]:,} bytes; the largest buffer is "
                          f"{max(size, key=size.get)} ({max(size.values()):,} bytes)")
    else:
        where = {b: next(c for c in range(C) if solver.Value(y[b, c])) for b in bufs}
        ranges = {p: [solver.Value(lo[p]), solver.Value(hi[p])] for p in plist}
        status_name = "optimal" if status == cp_model.OPTIMAL else "feasible"
    out_ports: dict[str, dict[str, list[int]]] = {}
    for p in plist:
        out_ports.setdefault(p[0], {})[p[1]] = ranges[p]
    bytes_c = [sum(size[b] for b in bufs if where[b] == c) for c in range(C)]
    token_c = [sum(per_token[b] for b in bufs if where[b] == c) for c in range(C)]
    groups: dict[int, list[str]] = {}
    for kind, s in kind_step.items():
        groups.setdefault(s, []).append(kind)
    return {"channels": [n for n, _ in channels], "capacity": [cap for _, cap in channels],
            "ports": out_ports, "buffers": where, "sizes": size, "roles": role,
            "bytes": bytes_c, "per_token": token_c,
            "concurrent": [g for g in groups.values() if len(g) > 1],
            "kv_caches": caches, "slr": slr, "stripes": stripes,
            "status": status_name}


def _bins_needed(items: list[int], cap: int) -> int:
    """A lower bound on the channels of load `cap` that hold `items` (bytes per token): their
    sum over `cap`, and for every k, the items above cap/(k+1), at most k of which share a
    channel (five 44,032-byte matrices under 131,072 need 3 channels, not 2)."""
    if not items:
        return 0
    if cap <= 0:
        return len(items)
    need = -(-sum(items) // cap)
    ranked = sorted(items, reverse=True)
    for k in range(1, len(ranked) + 1):
        over = sum(1 for x in ranked if x * (k + 1) > cap)
        need = max(need, -(-over // k))
    return need


def _solve(m: cp_model.CpModel, seconds: float) -> tuple[cp_model.CpSolver, int]:
    """One worker (a deterministic search), stopped at three quarters of `seconds` in
    deterministic time, the wall clock at `seconds` only a backstop: a search the limit cuts
    then ends at the same point, with the same map, at every compile on any machine up to
    about 1.4x slower than this one (one worker here: about 1.05 s a unit)."""
    solver = cp_model.CpSolver()
    solver.parameters.num_workers = 1
    solver.parameters.max_time_in_seconds = max(0.05, seconds)
    solver.parameters.max_deterministic_time = max(0.04, 0.75 * seconds)
    return solver, solver.Solve(m)


def _embedding_rows(bp: BlockParts, names) -> dict[str, int]:
    """Tables only read by `transformer.embedding`: bytes of the one row read per token."""
    rows: dict[str, int] = {}
    other: set[str] = set()
    for part in bp.parts:
        for op in part.ops:
            for i, v in enumerate(op.operands):
                if (v, None, 0) not in names:
                    continue
                if op.name == "transformer.embedding" and i == 1:
                    rows[names[v, None, 0]] = v.type.get_shape()[1] * _elem_bytes(v)
                else:
                    other.add(names[v, None, 0])
    return {b: r for b, r in rows.items() if b not in other}


def _greedy(bufs, size, per_token, port_buffers, kind_step, apart, channels):
    """A feasible start, or None: buffers joined by the ports they share form groups, the
    heaviest group first, each on the consecutive channels (from the least-loaded start its
    conflicts allow) that its members kept apart need (five layers' K caches: five channels,
    one lane each); never two concurrent kernels' groups on overlapping channels, nor two
    buffers kept apart on one channel. The map is checked against every constraint
    (`_map_is_valid`) before it is used."""
    parent = {b: b for b in bufs}

    def find(b):
        while parent[b] != b:
            parent[b] = parent[parent[b]]
            b = parent[b]
        return b

    for held in port_buffers.values():
        first, *rest = sorted(held)
        for b in rest:
            parent[find(b)] = find(first)
    groups: dict[str, set[str]] = {}
    for b in bufs:
        groups.setdefault(find(b), set()).add(b)
    kinds_of = {g: {p[0] for p, held in port_buffers.items() if held & members}
                for g, members in groups.items()}
    kept_apart: dict[str, set[str]] = {b: set() for b in bufs}
    for pair in apart:
        for a in pair:
            kept_apart[a].update(x for x in pair if x != a)

    def lanes_of(members: set[str]) -> list[list[str]]:
        """The members in as few lanes as keep every two kept apart in different lanes."""
        lanes: list[list[str]] = []
        for b in sorted(members, key=lambda b: (-per_token[b], b)):
            lane = next((lane for lane in lanes if not kept_apart[b] & set(lane)), None)
            if lane is None:
                lanes.append(lane := [])
            lane.append(b)
        return lanes

    C = len(channels)
    load = [0] * C
    used = [0] * C
    on: dict[int, set[str]] = {c: set() for c in range(C)}  # the buffers on each channel
    spans: list[tuple[str, int, int]] = []  # each placed group's first and last channel
    where: dict[str, int] = {}
    order = sorted(groups, key=lambda g: (-sum(per_token[b] for b in groups[g]), g))
    def fits(c: int, lanes: list[list[str]], rivals: list[tuple[int, int]]) -> bool:
        """Lane i on channel c + i: clear of concurrent kernels' channels, within capacity,
        beside nothing its members are kept apart from."""
        if any(lo <= c + len(lanes) - 1 and c <= hi for lo, hi in rivals):
            return False
        return all(used[c + i] + sum(size[b] for b in lane) <= channels[c + i][1]
                   and not any(kept_apart[b] & on[c + i] for b in lane)
                   for i, lane in enumerate(lanes))

    for g in order:
        lanes = lanes_of(groups[g])
        rivals = [(lo, hi) for h, lo, hi in spans
                  if any(kind_step[a] == kind_step[b] and a != b
                         for a in kinds_of[g] for b in kinds_of[h])]
        ok = [c for c in range(C - len(lanes) + 1) if fits(c, lanes, rivals)]
        if not ok:
            return None
        c = min(ok, key=lambda c: (max(load[c + i] + sum(per_token[b] for b in lane)
                                       for i, lane in enumerate(lanes)), c))
        for i, lane in enumerate(lanes):
            for b in lane:
                where[b] = c + i
                on[c + i].add(b)
                load[c + i] += per_token[b]
                used[c + i] += size[b]
        spans.append((g, c, c + len(lanes) - 1))
    return where


def _map_is_valid(where, size, port_buffers, kind_step, apart, channels) -> bool:
    """Whether a map keeps every constraint of the model: capacities, buffers kept apart on
    different channels, and concurrent kernels' port ranges disjoint."""
    used = [0] * len(channels)
    for b, c in where.items():
        used[c] += size[b]
    if any(u > cap for u, (_, cap) in zip(used, channels, strict=True)):
        return False
    if any(len({where[b] for b in pair}) < len(pair) for pair in apart):
        return False
    ranges = {p: (min(where[b] for b in held), max(where[b] for b in held))
              for p, held in port_buffers.items()}
    for a, (alo, ahi) in ranges.items():
        for b, (blo, bhi) in ranges.items():
            if (a < b and a[0] != b[0] and kind_step[a[0]] == kind_step[b[0]]
                    and alo <= bhi and blo <= ahi):
                return False
    return True


@dataclass(frozen=True)
class AssignHbmBanksPass(ModulePass):
    name = "assign-hbm-banks"

    target: str = "u280-hls"
    engine: str | None = None
    """The accelerator engine whose memories are the channels (default: the first one)."""
    time_limit: float | int = 10.0
    """Seconds for CP-SAT (`int` too, so that `time_limit=5` parses)."""
    stripes: int = 4
    """Row blocks of every linear layer's matrix, each on its own channel, read in parallel."""

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        from irtool.run_limits import check_time_limit
        from irtool.targets.registry import load_target

        check_time_limit(self.time_limit, "assign-hbm-banks: time_limit")
        desc = load_target(self.target).description
        engines = [e for e in desc.engines if e.kind == "accelerator"]
        if self.engine is not None:
            engines = [desc.engine(self.engine)]
        if not engines or not engines[0].reads:
            raise IrtoolError(f"assign-hbm-banks: target '{desc.name}' has no accelerator "
                              "engine reading memory channels")
        channels = [(m, desc.memory(m).capacity) for m in engines[0].reads]
        if self.stripes < 1:
            raise IrtoolError(f"assign-hbm-banks: stripes must be >= 1, got {self.stripes}")
        data = solve_banks(split_decode(op), channels, self.time_limit, stripes=self.stripes)
        op.attributes[BANK_MAP_ATTR] = StringAttr(json.dumps(data, sort_keys=True))
