"""Cost models: what an op costs on a target, per token, as `irtool estimate` and the
targets' own models (an accelerator's schedule) compute it.

Lives with the targets so that a target's cost model can build on the core model without
importing a driver. `WorkOp` is one op of a forward pass in shape-only terms (from a config or
an imported model); `CoreCostModel` is the generic model of a target's core.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from irtool.targets.description import TargetDescription


@dataclass(frozen=True)
class WorkOp:
    """One op of a forward pass, per token. kind: linear (K -> N), attention (heads x
    head_dim over the cache) or elementwise (`elements` values per token, ~`weight` ops each)."""

    layer: str
    name: str
    kind: str
    K: int = 0
    N: int = 0
    quantized: bool = False
    heads: int = 0
    kv_heads: int = 0
    head_dim: int = 0
    elements: int = 0


@dataclass
class OpCost:
    """One op's modelled cost for a pass over `tokens` tokens."""

    layer: str
    op: str
    engine: str
    macs: int
    bytes: dict[str, int]
    compute_cycles: float
    movement_cycles: float
    cycles: float
    extra: dict = field(default_factory=dict)

    @property
    def bound(self) -> str:
        return "compute" if self.compute_cycles >= self.movement_cycles else "data movement"


# Instructions per multiply-accumulate of the portable C kernels on an in-order RV32 core, as
# their sources state them (targets/c/runtime/irt_linear.c, irt_quant.c): f32 ~2.44, w8a8
# 4.25, w8 3.6; attention over a cache ~3.5 per MAC; an elementwise value ~10 instructions
# (norms, rope, activations with expf, quantization with one fdiv). These are a model: qemu
# counts the instructions of a built program.
INSTRUCTIONS_PER_MAC = {"f32": 2.44, "w8a8": 4.25}
ATTENTION_INSTRUCTIONS_PER_MAC = 3.5
SOFTMAX_INSTRUCTIONS_PER_SCORE = 20
ELEMENTWISE_INSTRUCTIONS = 10


class CoreCostModel:
    """Everything on the description's core: instructions x CPI, plus the extra cycles of
    reads from memories slower than the fastest one (read_cost per 32-bit word relative to
    it; an in-order core stalls on them, so the two add). Weights are read from the largest
    read-only memory (Flash, executed in place), activations and the KV cache from the
    largest writable one. When a DMA link leaves the weights' memory (external Flash streamed
    into SRAM windows by the `tile` pass), weights move over that link instead, double-buffered
    behind the compute: an op then takes the longer of the two."""

    def __init__(self, description: TargetDescription, data_memory: str | None = None):
        """`data_memory`: where activations and the KV cache are (default: the largest
        writable memory the core reads; a memory only another engine reads, as siracusa's NPU
        weight memory, holds none)."""
        self.description = description
        mems = description.memories
        reads = set(description.core.reads) or {m.name for m in mems}
        ro = sorted((m for m in mems if m.read_only), key=lambda m: -m.size)
        rw = sorted([m for m in description.writable if m.name in reads]
                    or description.writable or mems, key=lambda m: -m.size)
        self.weights_memory = (ro or list(mems))[0]
        self.data_memory = rw[0] if data_memory is None else description.memory(data_memory)
        self.fastest = min(m.read_cost for m in mems) or 1
        self.cpi = description.core.cpi
        self.schedule = "core"
        self.stream = next((link for link in description.links
                            if link.source == self.weights_memory.name), None)

    @property
    def clock_hz(self) -> int | None:
        """The description's clock; None when it states none (cycles, no time)."""
        return self.description.clock_hz or None

    def _stall(self, memory, nbytes: float) -> float:
        return nbytes / 4 * max(0.0, memory.read_cost / self.fastest - 1)

    def _cost(self, op: WorkOp, macs: int, instructions: float, weight_bytes: float,
              data_bytes: float, engine: str | None = None) -> OpCost:
        wm, dm = self.weights_memory.name, self.data_memory.name
        nbytes: dict[str, int] = {}
        for mem, n in ((wm, weight_bytes), (dm, data_bytes)):
            if n:
                nbytes[mem] = nbytes.get(mem, 0) + int(n)
        compute = instructions * self.cpi
        data_stall = self._stall(self.data_memory, data_bytes)
        extra = {"instructions": round(instructions)}
        energy = self.energy_pj(instructions=instructions, nbytes=nbytes)
        if energy is not None:
            extra["energy_pj"] = energy
        engine = engine or self.description.core.name
        if self.stream is not None and weight_bytes:
            movement = self.stream.cycles(weight_bytes) + data_stall
            return OpCost(op.layer, op.name, engine, macs, nbytes, compute, movement,
                          max(compute + data_stall, movement), extra)
        movement = self._stall(self.weights_memory, weight_bytes) + data_stall
        return OpCost(op.layer, op.name, engine, macs, nbytes, compute, movement,
                      compute + movement, extra)

    def energy_pj(self, *, instructions: float = 0, nbytes: dict[str, int] | None = None,
                  engine=None, **counts: float) -> float | None:
        """Energy where the description states it: an engine's `cost` may give
        `energy_pj_per_instruction` (a core), `energy_pj_per_<count>` for the counts passed
        (an accelerator's `mac`, `axi_word`, ...) and `energy_pj_per_byte` {memory: pJ} for
        the bytes accessed in each memory. None when the description gives no energy."""
        cost = (engine or self.description.core).cost
        per_byte = cost.get("energy_pj_per_byte") or {}
        if not any(k.startswith("energy_pj_per_") for k in cost):
            return None
        total = instructions * float(cost.get("energy_pj_per_instruction", 0))
        total += sum(n * float(cost.get(f"energy_pj_per_{k}", 0)) for k, n in counts.items())
        total += sum(n * float(per_byte.get(m, 0)) for m, n in (nbytes or {}).items())
        return total

    def linear(self, op: WorkOp, tokens: int) -> OpCost:
        macs = tokens * op.K * op.N
        kind = "w8a8" if op.quantized else "f32"
        wbytes = op.K * op.N * (1 if op.quantized else 4)
        return self._cost(op, macs, macs * INSTRUCTIONS_PER_MAC[kind], wbytes,
                          tokens * (op.K + op.N) * 4)

    def attention(self, op: WorkOp, tokens: int, start: int) -> OpCost:
        # token t (0-based in this pass) sees start + t + 1 cached positions
        seen = tokens * start + tokens * (tokens + 1) // 2
        macs = 2 * op.heads * op.head_dim * seen
        instr = macs * ATTENTION_INSTRUCTIONS_PER_MAC + op.heads * seen * \
            SOFTMAX_INSTRUCTIONS_PER_SCORE
        kv_bytes = 2 * op.kv_heads * op.head_dim * 4 * (seen + tokens)
        return self._cost(op, macs, instr, 0, kv_bytes)

    def elementwise(self, op: WorkOp, tokens: int) -> OpCost:
        n = tokens * op.elements
        return self._cost(op, 0, n * ELEMENTWISE_INSTRUCTIONS, 0, 2 * n * 4)

    def op_cost(self, op: WorkOp, tokens: int, start: int) -> OpCost:
        if op.kind == "linear":
            return self.linear(op, tokens)
        if op.kind == "attention":
            return self.attention(op, tokens, start)
        return self.elementwise(op, tokens)

    def assumptions(self) -> list[str]:
        clock = ("no clock stated" if self.clock_hz is None
                 else f"at {self.clock_hz / 1e6:g} MHz")
        return [(f"core '{self.description.core.name}' {clock}, CPI "
                f"{self.cpi:g}; instructions/MAC {INSTRUCTIONS_PER_MAC} (linears), "
                f"{ATTENTION_INSTRUCTIONS_PER_MAC} (attention), {ELEMENTWISE_INSTRUCTIONS} "
                "per elementwise value (from the C kernels' stated counts)"),
                (f"weights read from {self.weights_memory.name}, activations and KV cache from "
                f"{self.data_memory.name}; slower memories stall per word by their read_cost"),
                *([f"weights streamed {self.stream.source} -> {self.stream.dest} at "
                   f"{self.stream.bytes_per_cycle:g} B/cycle + {self.stream.setup_cycles} "
                   "set-up cycles per op, double-buffered (an op takes the longer of compute "
                   "and transfer)"] if self.stream else [])]
