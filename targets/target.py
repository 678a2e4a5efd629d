"""The `Target` interface: what irtool needs to know to compile for one piece of hardware.

A target is its description (data: memories, links, engines, clock, toolchain), its pipeline
(one definition, built from the user's options; `irtool compile --target T` and
`irtool-opt --pipeline=T{...}` both use it), its lowering rules (op -> kernel, composable),
the kernels of its own (signatures registered when the target is loaded) and its emitters
(`irtool-opt -t NAME`). Targets are found through `irtool.targets.registry`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from irtool.errors import IrtoolError
from irtool.kernels import KernelSignature
from irtool.lowering import LoweringRules
from irtool.targets.description import TargetDescription


@dataclass(frozen=True)
class PipelineOptions:
    """What a user chooses when compiling; each target's pipeline is built from these."""

    capacity: int | None = None
    window: int | None = None
    quant: str = "none"
    """Weight (and activation) quantization scheme: none, w8, w8a8, w4g32, w1, w1a4."""
    kv: str = "none"
    """KV cache element type: none (float32) or int8."""
    calibration: str | None = None
    """Calibration data for w8a8 (an eval_tokens.json `calib` list, a token-id file, ...)."""
    time_limit: float = 10.0
    copy_weights: bool = False
    """Weights stay where the allocator may read them in place (Flash) unless this is set."""

    @property
    def quantized(self) -> bool:
        return self.quant != "none" or self.kv != "none"


def quote(text: str) -> str:
    """A pass option value that may hold `/`, `.` or spaces (a path)."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


class Target:
    """A compilation target. Subclasses provide the emitters; the pipeline below suits any
    target that runs one decode step per token from placed buffers."""

    def __init__(self, description: TargetDescription, rules: LoweringRules, *,
                 reference: str | None = None, folder: Path | None = None,
                 kernels: tuple[KernelSignature, ...] = ()):
        self.description = description
        self.rules = rules
        self.reference = reference or description.name
        """How passes name this target in their options (a registry name or a path)."""
        self.folder = folder
        self.kernels = kernels

    @property
    def name(self) -> str:
        return self.description.name

    # -- the pipeline ---------------------------------------------------------------------

    def kv_pass(self, opts: PipelineOptions) -> str:
        parts = ["prefill=token-by-token"]
        if opts.capacity is not None:
            parts.append(f"capacity={opts.capacity}")
        if opts.window is not None:
            parts.append(f"window={opts.window}")
        return f"extract-kv-cache{{{' '.join(parts)}}}"

    def stages(self, opts: PipelineOptions) -> dict[str, str]:
        """The pipeline in named stages (drivers that hold the weights in memory run the
        `quant` stage themselves, with the same options)."""
        t = quote(self.reference)
        quant = []
        if opts.quant == "w8a8" and opts.calibration:
            quant.append(f"calibrate{{calibration={quote(opts.calibration)}}}")
        stages = {"cleanup": "canonicalize,cse", "calibrate": ",".join(quant),
                  "kv": self.kv_pass(opts)}
        stages["quantize"] = (f"quantize{{scheme={opts.quant} kv={opts.kv}}}"
                              if opts.quantized else "")
        stages["lower"] = (f"bufferize{{target={t}}},"
                           f"allocate{{target={t} time_limit={opts.time_limit} "
                           f"copy_weights={str(opts.copy_weights).lower()}}},"
                           f"lower-to-hw{{target={t}}}")
        return stages

    def pipeline(self, opts: PipelineOptions) -> str:
        return ",".join(s for s in self.stages(opts).values() if s)

    # -- emitters -------------------------------------------------------------------------

    def emitters(self) -> dict[str, Callable[[], type]]:
        """`irtool-opt -t NAME` targets (xDSL `Target` classes), imported lazily."""
        return {}

    def write_project(self, module, store, out_dir: Path, **options) -> Path:
        raise IrtoolError(f"target '{self.name}' has no project emitter")
