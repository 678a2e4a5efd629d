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
within its capacity. A greedy map (heaviest group of buffers first on the least-loaded channel
its conflicts allow) is the solver's starting point, and the answer when the solver finds
nothing in its time limit (`status` says which). Objective:
the bytes per token of the most-loaded channel (weights are read once per token, caches at
full capacity, activations once), smallest first; then the fewest channels per port. No
channel can carry less than the heaviest buffer's bytes per token, nor less than an even share
of all of them (said to the solver too, for its bound); when the greedy map's load is that
floor, the load is fixed there and only the channels per port are minimised. For stories260K
the solver then proves the map optimal in about 5 s on one core, where minimising both at once
ran to the 10 s limit with a map that varied from run to run; one worker and no time cut make
the map the same at every compile.

The result is the module attribute `irtool.hbm_banks` (JSON): ports -> channel ranges,
buffers -> channel, bytes and bytes per token per channel; `BankMap.connectivity_cfg()` writes
the Vitis `[connectivity]` section (`nk=`, `sp=<cu>.<arg>:HBM[a:b]`, `slr=`) and
`BankMap.table()` the bank map as a Markdown table.
"""

from __future__ import annotations

import json
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
    if greedy is not None:
        for b, c0 in greedy.items():
            for c in range(C):
                m.AddHint(y[b, c], c == c0)
    span = sum(hi[p] - lo[p] for p in plist)
    greedy_load = None if greedy is None else max(
        sum(per_token[b] for b in bufs if greedy[b] == c) for c in range(C))
    solver = cp_model.CpSolver()
    solver.parameters.max_time_in_seconds = time_limit
    solver.parameters.num_workers = 1
    if greedy_load is not None and greedy_load <= floor:
        m.Add(load == greedy_load)  # the greedy map's load is the floor: optimal
        m.Minimize(span)
    else:
        m.Minimize(load * (len(plist) * C + 1) + span)
    status = solver.Solve(m)
    if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE) and greedy is not None:
        where = greedy  # the solver found nothing better in its time: the greedy start
        ranges = {p: [greedy[next(iter(port_buffers[p]))]] * 2 for p in plist}
        status_name = "greedy"
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
    """A feasible start: buffers joined by the ports they share form groups, each group on one
    channel, the heaviest first on the least-loaded channel its conflicts allow (a group of a
    kernel and a group of a concurrent kernel, or the K and the V cache, never together)."""
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

    def conflict(g, h):
        if any(kind_step[a] == kind_step[b] and a != b
               for a in kinds_of[g] for b in kinds_of[h]):
            return True
        return any(groups[g] & set(a) and groups[h] & set(a) for a in apart)

    load = [0] * len(channels)
    used = [0] * len(channels)
    on: dict[int, list[str]] = {c: [] for c in range(len(channels))}
    where: dict[str, int] = {}
    order = sorted(groups, key=lambda g: -sum(per_token[b] for b in groups[g]))
    for g in order:
        need = sum(size[b] for b in groups[g])
        ok = [c for c in range(len(channels)) if used[c] + need <= channels[c][1]
              and not any(conflict(g, h) for h in on[c])]
        if not ok:
            return None
        c = min(ok, key=lambda c: (load[c], c))
        on[c].append(g)
        load[c] += sum(per_token[b] for b in groups[g])
        used[c] += need
        for b in groups[g]:
            where[b] = c
    return where


@dataclass(frozen=True)
class AssignHbmBanksPass(ModulePass):
    name = "assign-hbm-banks"

    target: str = "u280-hls"
    engine: str | None = None
    """The accelerator engine whose memories are the channels (default: the first one)."""
    time_limit: float = 10.0
    stripes: int = 4
    """Row blocks of every linear layer's matrix, each on its own channel, read in parallel."""

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        from irtool.targets.registry import load_target

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
