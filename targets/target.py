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
    prefill: str | None = None
    """How the prompt goes in: "batched" (a static `@prefill` of `prefill_tokens` tokens per
    call, each linear a GEMM) or "token" (through `@decode`); None: the target's default."""
    prefill_tokens: int = 0
    """T of the batched prefill (the prompt's length, or a bound); below 2 it is "token"."""
    stream_window: int | None = None
    """Most bytes of each window that weights in a slow memory stream through (`irtool
    compile --stream-window`: the `window` of `allocate{tile=true}` and `tile`); None: the
    plan's own choice. Only for a target that streams weights (Target.streams_weights)."""

    @property
    def quantized(self) -> bool:
        return self.quant != "none" or self.kv != "none"


PREFILL_CHOICES = ("batched", "token")


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

    default_prefill = "token"
    """The prefill `irtool compile` uses unless told (PipelineOptions.prefill)."""

    streams_weights = False
    """Whether the pipeline streams weights through windows in a fast memory (a `tile` pass),
    the windows PipelineOptions.stream_window caps."""

    stream_window_refusal = ("streams no weights through a window (its pipeline has no tile "
                             "pass)")
    """Why --stream-window does not apply, for a target that does not take it."""

    def check_stream_window(self, opts: PipelineOptions) -> None:
        """A clear error for a window cap that is not positive, or given to a target that
        streams nothing."""
        cap = opts.stream_window
        if cap is None:
            return
        if cap <= 0:
            raise IrtoolError(f"--stream-window {cap}: the cap on a weight window must be a "
                              "positive number of bytes (e.g. --stream-window 4096)")
        if not self.streams_weights:
            raise IrtoolError(f"--stream-window {cap}: target '{self.name}' "
                              f"{self.stream_window_refusal}; drop --stream-window, or compile "
                              "for a target that streams them from a slow memory (e.g. "
                              "cortex-m7-256k)")

    def prefill_mode(self, opts: PipelineOptions) -> str:
        """"batched" or "token": the option, else the target's default; "token" when no
        static token count of at least 2 is known."""
        mode = opts.prefill or self.default_prefill
        if mode not in PREFILL_CHOICES:
            raise IrtoolError(f"prefill '{mode}': expected one of {', '.join(PREFILL_CHOICES)}")
        return mode if mode == "token" or opts.prefill_tokens >= 2 else "token"

    def kv_pass(self, opts: PipelineOptions) -> str:
        batched = self.prefill_mode(opts) == "batched"
        parts = [f"prefill=batched tokens={opts.prefill_tokens}" if batched
                 else "prefill=token-by-token"]
        if opts.capacity is not None:
            parts.append(f"capacity={opts.capacity}")
        if opts.window is not None:
            parts.append(f"window={opts.window}")
        return f"extract-kv-cache{{{' '.join(parts)}}}"

    def stages(self, opts: PipelineOptions) -> dict[str, str]:
        """The pipeline in named stages (drivers that hold the weights in memory run the
        `quant` stage themselves, with the same options)."""
        self.check_stream_window(opts)
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

    def mapping_report(self, module) -> list[str]:
        """Lines on how the lowered module's modes (batched prefill, decode) are mapped to
        the engines, with the alternative's modelled cost; none unless the target has a
        choice to report (irtool compile prints them and keeps them as mapping.txt)."""
        return []

    # -- emitters -------------------------------------------------------------------------

    def emitters(self) -> dict[str, Callable[[], type]]:
        """`irtool-opt -t NAME` targets (xDSL `Target` classes), imported lazily."""
        return {}

    def write_project(self, module, store, out_dir: Path, **options) -> Path:
        raise IrtoolError(f"target '{self.name}' has no project emitter")
