"""Cycle formulas of siracusa's engines, shared by the lowering rules (NPU or cluster for a
linear) and by `irtool estimate --target siracusa`.

* Cluster: a W8A8 linear split by output rows in 4-row blocks over `cores` cores takes the
  slowest core's share, at the portable kernel's 4.25 instructions per multiply-accumulate
  (counted in targets/c/runtime/irt_quant.c), at the description's CPI, plus the fork/join:
  FORK_JOIN_INSTRUCTIONS per phase (measured on qemu with the hart-count plugin:
  tests/test_siracusa.py bounds it by 400 per hart and phase).
* NPU: the engine's `cost` in description.json: setup + ceil(K/32) * ceil(N/32) * T *
  cycles per block, plus the cluster's requantization of the N x T int32 outputs
  (REQUANT_INSTRUCTIONS each, on core 0).
"""

from __future__ import annotations

import math

from irtool.targets.description import EngineSpec

W8A8_INSTRUCTIONS_PER_MAC = 4.25
F32_INSTRUCTIONS_PER_MAC = 2.44
FORK_JOIN_INSTRUCTIONS = 300
REQUANT_INSTRUCTIONS = 8
NPU_ENGINE = "npu"


def cluster_linear_cycles(T: int, K: int, N: int, cores: int, cpi: float = 1.0,
                          per_mac: float = W8A8_INSTRUCTIONS_PER_MAC) -> float:
    """The slowest core's share of a linear split by 4-row blocks, plus the fork/join."""
    blocks = math.ceil(N / 4)
    rows = min(N, math.ceil(blocks / cores) * 4)
    fork = FORK_JOIN_INSTRUCTIONS if cores > 1 else 0
    return cpi * (rows * K * T * per_mac + fork)


def npu_linear_cycles(npu: EngineSpec, T: int, K: int, N: int, cpi: float = 1.0) -> float:
    c = npu.cost
    blocks = math.ceil(K / c["tile_in"]) * math.ceil(N / c["tile_out"]) * T
    return (c["setup_cycles"] + blocks * c["cycles_per_tile_token"]
            + cpi * REQUANT_INSTRUCTIONS * N * T)


# -- the cost model of `irtool estimate --target siracusa` ------------------------------------

SCHEDULES = ("npu", "cluster", "single")
"""npu: 8 cores + the NPU where its formula wins (the compiled program's choice); cluster:
the 8 cores alone; single: one core (the team of one)."""


class SiracusaCostModel:
    """Linears as the compiled program runs them: weights streamed L2 -> L1 in row tiles
    through two windows of half the L1 each (the tile pass's rule, less the activations), one
    fork/join (or one NPU job) per tile, the transfer of a tile hidden behind the compute of
    the one before (a linear costs the larger of its compute and its link time). Attention,
    norms and elementwise ops run on core 0 (the core model of `irtool.estimate`)."""

    schedules = SCHEDULES
    default_quant = "w8a8"

    def __init__(self, description, schedule: str = "npu", window_space: str = "l1",
                 weight_home: str = "l2"):
        from irtool.targets.cost_model import CoreCostModel

        self.description = description
        self.schedule = schedule
        self.host = CoreCostModel(description, data_memory=window_space)  # activations in L1
        self.cluster = description.core
        self.cores = 1 if schedule == "single" else self.cluster.cores
        self.npu = (next((e for e in description.engines if e.name == NPU_ENGINE), None)
                    if schedule == "npu" else None)
        self.link = description.link(weight_home, window_space)
        self.window = description.memory(window_space).capacity // 2
        self.weight_home, self.window_space = weight_home, window_space

    @property
    def clock_hz(self) -> int | None:
        """The description's clock; None when it states none (cycles, no time)."""
        return self.description.clock_hz or None

    def linear(self, op, tokens: int):
        from irtool.targets.cost_model import OpCost

        T, K, N = tokens, op.K, op.N
        elem = 1 if op.quantized else 4
        per_mac = W8A8_INSTRUCTIONS_PER_MAC if op.quantized else F32_INSTRUCTIONS_PER_MAC
        rows = max(1, min(N, self.window // (K * elem)))
        tiles = [min(rows, N - r) for r in range(0, N, rows)]
        cpi = self.cluster.cpi
        on_cluster = sum(cluster_linear_cycles(T, K, n, self.cores, cpi, per_mac)
                         for n in tiles)
        on_npu = (sum(npu_linear_cycles(self.npu, T, K, n, cpi) for n in tiles)
                  if self.npu is not None and op.quantized else None)
        engine, compute = self.cluster.name, on_cluster
        if on_npu is not None and on_npu < on_cluster:
            engine, compute = NPU_ENGINE, on_npu
        wbytes = K * N * elem
        home = self.weight_home
        if engine == NPU_ENGINE and self.npu.reads and self.npu.reads[-1] != self.window_space:
            home, link = self.npu.reads[-1], 0.0  # in the NPU's weight memory, read in place
        else:
            link = (sum(self.link.cycles(n * K * elem) for n in tiles) if self.link else 0.0)
        extra = {"tiles": len(tiles), "link_cycles": link,
                 "alternative_cycles": on_cluster if engine == NPU_ENGINE else (on_npu or 0)}
        return OpCost(op.layer, op.name, engine, T * K * N,
                      {home: wbytes, self.window_space: T * (K + N) * 4},
                      compute, link, max(compute, link), extra)

    def attention(self, op, tokens: int, start: int):
        """Attention has its heads shared among the cores (the slowest core's heads + a
        fork/join), one token's or a batched prefill's rows, as the compiled program does."""
        cost = self.host.op_cost(op, tokens, start)
        if self.cores == 1 or not op.heads:
            return cost
        share = math.ceil(op.heads / self.cores) / op.heads
        compute = cost.compute_cycles * share + self.cluster.cpi * FORK_JOIN_INSTRUCTIONS
        cost.compute_cycles = compute
        cost.cycles = compute + cost.movement_cycles
        return cost

    def op_cost(self, op, tokens: int, start: int):
        if op.kind == "linear":
            return self.linear(op, tokens)
        if op.kind == "attention":
            return self.attention(op, tokens, start)
        return self.host.op_cost(op, tokens, start)

    def assumptions(self) -> list[str]:
        who = {"npu": f"{self.cores} cores + NPU (where its formula is cheaper)",
               "cluster": f"{self.cores} cores", "single": "1 core"}[self.schedule]
        npu = (f"; NPU: {self.npu.cost['setup_cycles']} + {self.npu.cost['cycles_per_tile_token']}"
               f" cycles per 32x32 block and token" if self.npu else "")
        link = (f"{self.link.setup_cycles} + bytes / {self.link.bytes_per_cycle:g} cycles"
                if self.link else "no link")
        return [(f"linears on {who}: the slowest core's 4-row blocks at {W8A8_INSTRUCTIONS_PER_MAC}"
                 f" (W8A8) / {F32_INSTRUCTIONS_PER_MAC} (f32) instructions per MAC + "
                 f"{FORK_JOIN_INSTRUCTIONS} per fork/join{npu}"),
                (f"weights stream {self.weight_home} -> {self.window_space} in row tiles of at "
                 f"most {self.window:,} bytes ({link}), hidden behind compute (double-buffered)"),
                "attention split by heads over the cores; norms and elementwise ops on "
                "core 0; qemu's RV32IMF counts "
                "(no XPULP hardware loops or SIMD) make these an upper bound for a PULP core",
                *self.host.assumptions()[:1]]
