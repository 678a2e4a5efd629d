"""The cost model of matrix8x8 for `irtool estimate`: W8A8 linears on the unit, the rest on
the host core (the core model of `irtool.estimate`).

Two schedules of a linear [T, K] x [K, N] on the unit, both over 8x8 tiles with padded edges:

* `naive` -- the chip team's hand analysis: every token alone (one of A's 8 rows), and for
  every (output tile, reduction slice) A, B and a start are written, the status polled and C
  read back (the host adds the partial sums): T * ceil(K/8) * ceil(N/8) tiles, 194 words each.
* `irtool` -- what `runtime/mxu_linear.c` does: up to 8 tokens share A's rows; per group of
  up to `accumulator_tiles` output tiles and per reduction slice, A is written once (only the
  rows in use) and reused for every B tile of the group; partial sums stay in the unit's
  store, C is read once (rows in use).

The coefficients (532 cycles per tile = 512 multiply-accumulates + 20 of control, 2 cycles
per AXI-Lite word, 8 accumulator tiles) are the engine's `cost` in description.json. The
host waits for every port access and every tile: unit and port time add.
"""

from __future__ import annotations

import math

from irtool.targets.cost_model import CoreCostModel, OpCost, WorkOp
from irtool.targets.description import TargetDescription

SCHEDULES = ("irtool", "naive")


class MxuCostModel:
    schedules = SCHEDULES
    default_quant = "w8a8"

    def __init__(self, description: TargetDescription, schedule: str = "irtool",
                 engine: str = "mxu"):
        self.description = description
        self.schedule = schedule
        self.host = CoreCostModel(description)
        self.engine = description.engine(engine)
        c = self.engine.cost
        self.tile = int(c["tile"])
        self.tile_cycles = int(c["tile_compute_cycles"]) + int(c["tile_control_cycles"])
        self.mac_cycles = int(c["tile_compute_cycles"])
        self.word_cycles = float(c["cycles_per_axi_word"])
        self.slots = int(c["accumulator_tiles"])
        self.control_words = int(c["control_words_per_tile"])
        self.clock_hz = int(c.get("clock_hz") or description.clock_hz)

    def unit_counts(self, T: int, K: int, N: int) -> dict[str, int]:
        """Tiles and words in/out of one linear on the unit under this schedule."""
        e = self.tile
        kb, nb = math.ceil(K / e), math.ceil(N / e)
        if self.schedule == "naive":
            tiles = T * kb * nb
            return {"tiles": tiles, "words_in": tiles * (2 * e * e + 1),
                    "words_out": tiles * (e * e + 1)}
        groups = math.ceil(nb / self.slots)
        tiles = words_in = words_out = 0
        for t0 in range(0, T, e):
            r = min(e, T - t0)
            tiles += kb * nb
            words_in += groups * kb * r * e + kb * nb * (e * e + 1)
            words_out += kb * nb + nb * r * e
        return {"tiles": tiles, "words_in": words_in, "words_out": words_out}

    def unit_linear(self, op: WorkOp, tokens: int) -> OpCost:
        n = self.unit_counts(tokens, op.K, op.N)
        words = n["words_in"] + n["words_out"]
        unit = n["tiles"] * self.tile_cycles
        axi = words * self.word_cycles
        reads = tokens if self.schedule == "naive" else math.ceil(tokens / self.tile)
        wm, dm = self.host.weights_memory.name, self.host.data_memory.name
        nbytes = {wm: reads * op.K * op.N, dm: tokens * (op.K + op.N * 4), "mxu_axi": words * 4}
        extra = {**n, "unit_cycles": unit, "axi_cycles": axi,
                 "mac_cycles": n["tiles"] * self.mac_cycles, "unit_macs": tokens * op.K * op.N}
        host_bytes = {m: b for m, b in nbytes.items() if m != "mxu_axi"}
        energy = [self.host.energy_pj(nbytes=host_bytes),
                  self.host.energy_pj(engine=self.engine, mac=n["tiles"] * self.mac_cycles,
                                      axi_word=words)]
        if any(e is not None for e in energy):
            extra["energy_pj"] = sum(e or 0 for e in energy)
        return OpCost(op.layer, op.name, self.engine.name, tokens * op.K * op.N, nbytes,
                      unit, axi, unit + axi, extra)

    def op_cost(self, op: WorkOp, tokens: int, start: int) -> OpCost:
        if op.kind == "linear" and op.quantized:
            return self.unit_linear(op, tokens)
        return self.host.op_cost(op, tokens, start)

    def assumptions(self) -> list[str]:
        how = ("each token alone, A, B and C moved for every tile (the hand analysis)"
               if self.schedule == "naive" else
               f"8 tokens per A tile, A reused across {self.slots} B tiles, partial sums kept "
               "in the unit's store")
        return [(f"unit '{self.engine.name}': {self.tile_cycles} cycles per 8x8x8 tile, "
                f"{self.word_cycles:g} cycles per AXI-Lite word, {self.clock_hz / 1e6:g} MHz; "
                f"{how}; W8A8 linears on the unit, unit and port time add"),
                *self.host.assumptions()]
