"""The u280-hls cost model: time per token of the block-part kernels, from shapes alone.

A plain function (`estimate`) that a generic `irtool estimate` can call. It models the kernels
the emitter writes (`kernels.py`, `runtime/irt_hls.h`), for a model given by its shape (a
config such as Phi-2's, or `shape_of(module)` for a compiled one):

* compute: the trip counts of the pipelined loops at II=1 (the description's `cost.ii`): a
  W8A8 linear N x K takes N * ceil(K / 64) cycles per weight stripe (one 64-byte beat of a row
  per cycle), the float lm_head N * ceil(K / 16) (16 floats a beat), attention 3 passes over
  the cached positions per head, norms and elementwise ops one element a cycle;
* memory: the bytes each kernel reads and writes per token (int8 weights, float32 scales,
  biases, the lm_head and the KV cache at `position` cached positions), spread over the
  channels its weights are striped across; a channel delivers `channel_bytes_per_s *
  achievable_share`;
* a kernel takes the longer of the two (its bound); kernels of one host step (attn_q/k/v)
  share the channels and overlap; steps follow each other.

Weights of a linear are striped row-wise over the channels its kernel owns, one m_axi port
(and 64 multipliers) per stripe: with `channels` channels, a kernel that runs alone owns them
all, the concurrent q/k/v kernels split them in proportion to their bytes. DSPs: one per int8
lane, five per float32 multiply-add lane (the usual Vitis mapping), summed over all kernels'
lanes (they all sit in the fabric), against the description's budget; `Estimate.fits` says
whether they fit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from irtool.targets.description import TargetDescription

INT8_LANES = 64   # int8 lanes of one 512-bit beat
FLOAT_LANES = 16  # float32 lanes of one 512-bit beat
DSP_PER_INT8_MAC = 0.5
"""Two int8 products that share an operand (one activation, two weights) per DSP48E2 (AMD
WP486, "Deep Learning with INT8 Optimization on Xilinx Devices")."""
DSP_PER_FLOAT_MAC = 5
"""A float32 multiplier (3 DSPs) and adder (2 DSPs), Vitis HLS's usual full-DSP mapping."""


@dataclass(frozen=True)
class ModelShape:
    """What the cost depends on (a Hugging Face style config, or a compiled module's)."""

    name: str
    hidden: int
    layers: int
    heads: int
    head_dim: int
    mlp: int
    vocab: int
    kv_heads: int | None = None
    mlp_linears: int = 2
    """2 for an up/down MLP (GPT-2, Phi), 3 for SwiGLU (Llama)."""
    bias: bool = True

    @property
    def kv(self) -> int:
        return self.kv_heads or self.heads


PHI2 = ModelShape("Phi-2", hidden=2560, layers=32, heads=32, head_dim=80, mlp=10240,
                  vocab=51200, mlp_linears=2, bias=True)
"""microsoft/phi-2 config.json: hidden_size 2560, 32 layers, 32 heads (head_dim 80),
intermediate_size 10240, vocab_size 51200, partial_rotary_factor 0.4 (32 of 80 dims)."""

USERS_S_PER_TOKEN = 0.8
"""The hand-written Phi-2 U280 design of issue 13 (W8A8, 11 months of work): 0.8 s/token."""


@dataclass
class Linear:
    n: int
    k: int
    int8: bool = True

    def weight_bytes(self, bias: bool) -> int:
        if self.int8:
            return self.n * self.k + 4 * self.n + (4 * self.n if bias else 0)  # q8, m, bias
        return 4 * self.n * self.k + (4 * self.n if bias else 0)

    def cycles(self, stripes: int) -> int:
        lanes = INT8_LANES if self.int8 else FLOAT_LANES
        return math.ceil(self.n / stripes) * math.ceil(self.k / lanes)

    def dsp(self, stripes: int) -> int:
        if self.int8:
            return math.ceil(stripes * INT8_LANES * DSP_PER_INT8_MAC)
        return stripes * FLOAT_LANES * DSP_PER_FLOAT_MAC


@dataclass
class KernelCost:
    name: str
    calls: int
    """Runs per token (layers for per-layer kernels)."""
    step: int
    linears: list[Linear] = field(default_factory=list)
    other_cycles: int = 0
    other_bytes: int = 0
    channels: int = 1
    compute_s: float = 0.0
    memory_s: float = 0.0
    dsp: int = 0
    bias: bool = True

    @property
    def bytes_per_token(self) -> int:
        return self.calls * self.bytes_per_call

    @property
    def bytes_per_call(self) -> int:
        return self.other_bytes + sum(lin.weight_bytes(self.bias) for lin in self.linears)

    @property
    def time_s(self) -> float:
        return max(self.compute_s, self.memory_s)

    @property
    def bound(self) -> str:
        return "HBM" if self.memory_s >= self.compute_s else "compute"


@dataclass
class Estimate:
    shape: ModelShape
    channels: int
    position: int
    kernels: list[KernelCost]
    s_per_token: float
    weight_bytes_int8: int
    hbm_floor_s: float
    dsp: int
    dsp_budget: int
    clock_hz: int
    channel_bytes_per_s: float

    @property
    def tokens_per_s(self) -> float:
        return 1.0 / self.s_per_token

    @property
    def fits(self) -> bool:
        return self.dsp <= self.dsp_budget

    def table(self) -> str:
        rows = [(f"{self.shape.name} on u280-hls: {self.channels} HBM channels, "
                 f"{self.clock_hz / 1e6:.0f} MHz, KV cache at {self.position} positions"),
                "| kernel | runs/token | channels | cycles/run | MB/token | bound | ms/token |",
                "| --- | ---: | ---: | ---: | ---: | --- | ---: |"]
        for k in self.kernels:
            cyc = k.compute_s * self.clock_hz / max(k.calls, 1)
            rows.append(f"| {k.name} | {k.calls} | {k.channels} | {cyc:,.0f} | "
                        f"{k.bytes_per_token / 1e6:,.2f} | {k.bound} | "
                        f"{k.time_s * 1e3:,.3f} |")
        rows.append(f"\n{self.s_per_token * 1e3:,.2f} ms/token ({self.tokens_per_s:,.1f} "
                    f"tokens/s); HBM floor (int8 weights / 460 GB/s) "
                    f"{self.hbm_floor_s * 1e3:,.2f} ms; the users' design "
                    f"{USERS_S_PER_TOKEN * 1e3:,.0f} ms; DSPs {self.dsp:,} of {self.dsp_budget:,}")
        return "\n".join(rows)


def _kernels(shape: ModelShape, position: int) -> list[KernelCost]:
    d, hd, h, kv = shape.hidden, shape.head_dim, shape.heads, shape.kv
    L = shape.layers
    vec = 4 * d  # one float activation vector
    kernels = [
        KernelCost("embed", 1, 0, other_cycles=d, other_bytes=4 * d + vec),
        # the quantized vector written once per concurrent projection (3 copies, 3 channels)
        KernelCost("attn_in", L, 1, other_cycles=6 * d, other_bytes=2 * vec + 3 * d),
        KernelCost("attn_q", L, 2, [Linear(h * hd, d)], other_cycles=d, other_bytes=d + 4 * h * hd),
        KernelCost("attn_k", L, 2, [Linear(kv * hd, d)], other_cycles=d,
                   other_bytes=d + 4 * kv * hd),
        KernelCost("attn_v", L, 2, [Linear(kv * hd, d)], other_cycles=d,
                   other_bytes=d + 4 * kv * hd),
        # rope, cache writes, attention over `position` cached rows per head (scores, softmax,
        # values), the output projection and the residual add
        KernelCost("attn", L, 3, [Linear(d, h * hd)],
                   other_cycles=h * (3 * position + 2 * hd) + 2 * h * hd + 2 * d,
                   other_bytes=2 * h * position * hd * 4 + 2 * kv * hd * 4 + 4 * vec),
        KernelCost("mlp", L, 4,
                   [Linear(shape.mlp, d)] * (shape.mlp_linears - 1) + [Linear(d, shape.mlp)],
                   other_cycles=3 * d + 2 * shape.mlp, other_bytes=3 * vec),
        KernelCost("head", 1, 5, [Linear(shape.vocab, d, int8=False)], other_cycles=3 * d,
                   other_bytes=vec + 4 * shape.vocab),
    ]
    for k in kernels:
        k.bias = shape.bias
    return kernels


def estimate(shape: ModelShape, description: TargetDescription, channels: int | None = None,
             position: int = 512) -> Estimate:
    """Time per token of `shape` on the target with `channels` HBM channels in use."""
    fabric = description.engine("fabric")
    cost = fabric.cost
    clock = description.clock_hz or 300_000_000
    ii = float(cost.get("ii", 1))
    per_channel = float(cost["channel_bytes_per_s"]) * float(cost.get("achievable_share", 1.0))
    channels = channels or len(fabric.reads)
    kernels = _kernels(shape, position)
    steps: dict[int, list[KernelCost]] = {}
    for k in kernels:
        steps.setdefault(k.step, []).append(k)
    total = 0.0
    for group in steps.values():
        weights = [sum(lin.weight_bytes(shape.bias) for lin in k.linears) or 1 for k in group]
        share = [max(1, round(channels * w / sum(weights))) if len(group) > 1 else channels
                 for w in weights]
        for k, ch in zip(group, share, strict=False):
            k.channels = ch
            stripes = ch if k.linears else 1
            cycles = k.other_cycles + sum(lin.cycles(stripes) for lin in k.linears)
            k.compute_s = k.calls * cycles * ii / clock
            k.memory_s = k.bytes_per_token / (ch * per_channel)
            k.dsp = sum(lin.dsp(stripes) for lin in k.linears)
        # concurrent kernels never beat the channels they share between them
        together = sum(k.bytes_per_token for k in group) / (channels * per_channel)
        total += max(max(k.time_s for k in group), together)
    int8 = sum(k.calls * sum(lin.n * lin.k for lin in k.linears if lin.int8) for k in kernels)
    floor = int8 / (float(cost["channel_bytes_per_s"]) * len(fabric.reads))
    return Estimate(shape, channels, position, kernels, total, int8, floor,
                    sum(k.dsp for k in kernels), int(cost.get("dsp", 0)), clock, per_channel)


def shape_of(module, name: str = "model") -> ModelShape:
    """The shape of a compiled module (quant level with @decode), from its block parts."""
    from irtool.block_parts import ATTENTION, LINEARS, split_decode

    bias_at = {"transformer.linear": 2, "quant.wlinear": 3, "quant.qlinear": 4}

    bp = split_decode(module)
    att = next(op for p in bp.parts if p.kind == "attn" for op in p.ops
               if op.name in ATTENTION)
    props = att.properties
    mlp = next(p for p in bp.parts if p.kind == "mlp")
    linears = [op for op in mlp.ops if op.name in LINEARS]
    head = next(p for p in bp.parts if p.kind == "head")
    vocab = head.outputs[0].type.get_shape()[-1]
    hidden = mlp.outputs[0].type.get_shape()[-1]
    return ModelShape(name, hidden=hidden, layers=bp.layers, heads=props["heads"].value.data,
                      head_dim=props["head_dim"].value.data,
                      mlp=linears[0].results[0].type.get_shape()[-1], vocab=vocab,
                      kv_heads=props["kv_heads"].value.data, mlp_linears=len(linears),
                      bias=any(len(op.operands) > bias_at[op.name] for op in linears))


class OpCostModel:
    """The same kernels' arithmetic, op by op, for `irtool estimate --target u280-hls`.

    `irtool estimate` adds ops one after the other, so here every op runs alone on all the
    channels the fabric reads (weights striped over all of them, `INT8_LANES` multipliers per
    stripe) and takes the longer of its pipelined-loop cycles (II from the description) and
    its HBM transfer at the achievable share of the channels' bandwidth; the concurrency of
    the Q/K/V kernels that `estimate` above models is not counted (an upper bound on time).
    The prompt goes token by token through the decode kernels, so a prefill of T tokens costs
    T decode steps."""

    schedules = ("kernels",)
    default_quant = "w8a8"

    def __init__(self, description: TargetDescription):
        self.description = description
        self.fabric = description.engine("fabric")
        cost = self.fabric.cost
        self.channels = len(self.fabric.reads)
        self.ii = float(cost.get("ii", 1))
        self.per_channel = (float(cost["channel_bytes_per_s"])
                            * float(cost.get("achievable_share", 1.0)))
        self.schedule = "kernels"

    @property
    def clock_hz(self) -> int:
        return self.description.clock_hz or 300_000_000

    def _cost(self, op, macs: int, cycles: float, nbytes: float):
        from irtool.targets.cost_model import OpCost

        movement = nbytes / (self.channels * self.per_channel) * self.clock_hz
        compute = cycles * self.ii
        return OpCost(op.layer, op.name, self.fabric.name, macs, {"hbm": int(nbytes)},
                      compute, movement, max(compute, movement))

    def op_cost(self, op, tokens: int, start: int):
        if op.kind == "linear":
            lin = Linear(op.N, op.K, int8=op.quantized)
            return self._cost(op, tokens * op.K * op.N, tokens * lin.cycles(self.channels),
                              tokens * lin.weight_bytes(bias=False))
        if op.kind == "attention":
            seen = tokens * start + tokens * (tokens + 1) // 2
            return self._cost(op, 2 * op.heads * op.head_dim * seen,
                              op.heads * (3 * seen + 2 * op.head_dim * tokens),
                              2 * op.kv_heads * op.head_dim * 4 * (seen + tokens))
        return self._cost(op, 0, tokens * op.elements, tokens * op.elements * 8)

    def assumptions(self) -> list[str]:
        return [f"every op alone on {self.channels} HBM channels at "
                f"{self.per_channel / 1e9:.2f} GB/s each (achievable share), II {self.ii:g} at "
                f"{self.clock_hz / 1e6:g} MHz, {INT8_LANES} int8 MACs per channel stripe",
                "Q/K/V concurrency not counted (see bench/u280.py for the kernel-level model); "
                "prefill token by token through the decode kernels"]
