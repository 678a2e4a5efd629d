"""Fabric resources of the emitted kernels (DSP, BRAM36, URAM, LUT), estimated from the design.

Vitis reports the real figures after `v++ -c`; this estimate comes before, from what the emitter
writes for each kernel (`kernels.py`, `runtime/irt_hls.h`), so that the kernels can be placed
on the SLRs (`slr_place.py`) and a design too big for the device refused. It counts:

* DSP: each unrolled lane and each pipelined loop body is its own hardware. A W8A8 stripe
  unrolls one 64-byte beat: 64 int8 products, two per DSP48E2 (AMD WP486) = 32 DSPs, plus its
  float epilogue (x m, + bias); a float stripe 16 lanes of multiply-add. A float multiply is
  3 DSPs and an add 2 (Vitis HLS's full-DSP mapping, as in `cost.py`); exp/tanh/erfc are taken
  as 7 DSPs each, division and square root as none (LUT logic): assumptions, stated here.
* Memory: every on-chip array (the emitter's locals, and the templates' own: the partitioned
  activation copy of a linear, the attention's score row) in banks as partitioned; a bank of
  fewer than `LUTRAM_MAX_BITS` bits is LUTRAM/registers, an array bound to UltraRAM
  (`kernels.URAM_MIN_BITS`) takes URAM288 blocks (4K x 72), the rest BRAM36 blocks in their
  best aspect (512x72 ... 32Kx1). Each m_axi port has its adapter's FIFOs: a read buffer of
  num_read_outstanding x max_read_burst_length beats and a write buffer of
  num_write_outstanding x max_write_burst_length beats (UG1399, "Options for Controlling AXI4
  Burst Behavior"; outstanding 16 by default, read bursts 64 as emitted, write bursts 16 by
  default), 512 bits wide.
* LUT: a rough figure, `LUT_PER_DSP` per DSP of datapath plus `LUT_PER_PORT` per m_axi adapter
  (assumptions, for the budget check only).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from irtool.block_parts import ATTENTION, Part
from irtool.targets.u280_hls.cost import DSP_PER_INT8_MAC, FLOAT_LANES, INT8_LANES
from irtool.targets.u280_hls.kernels import URAM_MIN_BITS, KernelWriter, _bits, _shape

FMUL, FADD, FFUNC = 3, 2, 7
"""DSPs of a float multiply, a float add, an exp/tanh/erfc (assumed)."""
LUTRAM_MAX_BITS = 2048
"""A bank smaller than this is LUTRAM or registers, not a BRAM (an assumption)."""
OUTSTANDING, READ_BURST, WRITE_BURST, BEAT_BITS = 16, 64, 16, 512
LUT_PER_DSP, LUT_PER_PORT = 30, 1500
"""Rough LUT costs (assumptions): glue logic per DSP of datapath, one m_axi adapter."""
BRAM36_SHAPES = [(512, 72), (1024, 36), (2048, 18), (4096, 9), (8192, 4), (16384, 2),
                 (32768, 1)]


@dataclass(frozen=True)
class Resources:
    dsp: int = 0
    bram36: int = 0
    uram: int = 0
    luts: int = 0

    def __add__(self, other: Resources) -> Resources:
        return Resources(self.dsp + other.dsp, self.bram36 + other.bram36,
                         self.uram + other.uram, self.luts + other.luts)

    def as_dict(self) -> dict[str, int]:
        return {"dsp": self.dsp, "bram36": self.bram36, "uram": self.uram, "luts": self.luts}


def memory(depth: int, width: int, banks: int = 1, uram: bool = False) -> Resources:
    """Blocks for an array of `banks` banks of `depth` words of `width` bits."""
    if depth * width < LUTRAM_MAX_BITS and not uram:
        return Resources()
    if uram:
        return Resources(uram=banks * math.ceil(width / 72) * math.ceil(depth / 4096))
    per = min(math.ceil(width / w) * math.ceil(depth / d) for d, w in BRAM36_SHAPES)
    return Resources(bram36=banks * per)


def port_buffers(reads: bool, writes: bool) -> Resources:
    r = memory(OUTSTANDING * READ_BURST, BEAT_BITS) if reads else Resources()
    w = memory(OUTSTANDING * WRITE_BURST, BEAT_BITS) if writes else Resources()
    return r + w + Resources(luts=LUT_PER_PORT)


def _op_resources(op, stripes_of) -> Resources:
    """DSPs and template-internal arrays of one op as the emitter writes it."""
    n, o = op.name, op.operands
    if n == "quant.qlinear":
        _, k = _shape(o[1])
        s = stripes_of(o[1])
        dsp = s * (math.ceil(INT8_LANES * DSP_PER_INT8_MAC) + FMUL + (FADD if len(o) > 4 else 0))
        return Resources(dsp=dsp) + memory(math.ceil(k / INT8_LANES), 16, INT8_LANES)
    if n == "transformer.linear":
        _, k = _shape(o[1])
        s = stripes_of(o[1])
        dsp = s * (FLOAT_LANES * (FMUL + FADD) + (FADD if len(o) > 2 else 0))
        return Resources(dsp=dsp) + memory(math.ceil(k / FLOAT_LANES), 32, FLOAT_LANES)
    if n in ATTENTION:
        _, _, cap, hd = _shape(o[1])
        dsp = 2 * hd * (FMUL + FADD) + 2 * FMUL + 2 * FADD + FFUNC
        if n == "quant.cached_attention":  # int8 rows times their scale, in both passes
            dsp += 2 * hd * FMUL
        return Resources(dsp=dsp) + memory(cap, 32)
    dsp = {"transformer.rms_norm": 3 * FMUL + FADD,
           "transformer.layer_norm": 3 * FMUL + 4 * FADD,
           "quant.quantize": 2 * FADD, "quant.kv_write": 2 * FADD,
           "transformer.rope": 4 * FMUL + 2 * FADD,
           "transformer.add": FADD, "transformer.mul": FMUL,
           "transformer.silu": FADD + FFUNC,
           "transformer.gelu": 6 * FMUL + 3 * FADD + FFUNC}.get(n, 0)
    return Resources(dsp=dsp)


def kernel_resources(part: Part, stripes: int = 1) -> Resources:
    """The estimate for the kernel of `part`'s kind (see the module docstring)."""
    w = KernelWriter(part, stripes)
    w.write()

    def stripes_of(v) -> int:
        return len(w.striped.get(v, [None]))

    total = Resources()
    for op in part.ops:
        total += _op_resources(op, stripes_of)
    for _, ct, elems in w.arrays:
        total += memory(elems, _bits(ct), uram=elems * _bits(ct) >= URAM_MIN_BITS)
    for p in w.ports:
        if p.is_buffer:
            total += port_buffers(reads=p.role != "output", writes=p.role in ("output", "cache"))
    return total + Resources(luts=LUT_PER_DSP * total.dsp)


def design_resources(bp, stripes: int = 1) -> dict[str, Resources]:
    """Kernel kind -> its estimate (one compute unit per kind)."""
    return {p.kind: kernel_resources(p, stripes) for p in bp.kinds()}
