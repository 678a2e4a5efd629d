"""`irtool compile`: a model to a C project for a target, through every IR level.

The path is the compiler's: import -> [calibrate (w8a8)] -> extract-kv-cache (token-by-token
prefill: one kernel set for prompt and generation) -> [quantize] -> bufferize -> allocate
(CP-SAT placement in the target's memories) -> lower-to-hw -> C emitter.

Quantization (`--quant`, `--kv int8`) runs at the transformer level after extract-kv-cache, so
the int8 KV cache is real state of `@decode`; the quantized ops then lower to the kernels of
`irt_quant.h`. `prepare_for_target` is that first half (the quant-level module the
interpreter can run), `lower_for_target` the second.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from xdsl.dialects import func
from xdsl.dialects.builtin import IntegerAttr, ModuleOp
from xdsl.passes import PassPipeline

from irtool.context import make_context
from irtool.errors import IrtoolError
from irtool.passes import get_all_passes
from irtool.passes.quantize import KV_MODES
from irtool.passes.quantize import SCHEMES as QUANT_SCHEMES
from irtool.weights import WeightStore


@dataclass(frozen=True)
class CompileOptions:
    target: str = "riscv-ulp"
    capacity: int | None = None
    window: int | None = None
    time_limit: float = 10.0
    copy_weights: bool = False
    """Weights stay in Flash and are read in place unless this is set (RAM is the scarce part)."""
    quant: str = "none"
    """Weight (and activation) quantization scheme: none, w8, w8a8, w4g32, w1, w1a4."""
    kv: str = "none"
    """KV cache element type: none (float32) or int8."""
    calibration: str | None = None
    """Calibration data for w8a8 (an eval_tokens.json `calib` list, a token-id file, ...)."""

    @property
    def quantized(self) -> bool:
        return self.quant != "none" or self.kv != "none"


def kv_options(opts: CompileOptions) -> str:
    parts = ["prefill=token-by-token"]
    if opts.capacity is not None:
        parts.append(f"capacity={opts.capacity}")
    if opts.window is not None:
        parts.append(f"window={opts.window}")
    return " ".join(parts)


def has_decode(module: ModuleOp) -> bool:
    """extract-kv-cache was applied already (the module has `@decode`)."""
    return any(isinstance(op, func.FuncOp) and op.sym_name.data == "decode"
               for op in module.body.block.ops)


def _extract_kv_cache(module: ModuleOp, opts: CompileOptions) -> None:
    """extract-kv-cache{prefill=token-by-token ...}, unless the module already has @decode
    (e.g. an `irtool quantize --kv int8` output): then --capacity/--window must agree."""
    if not has_decode(module):
        PassPipeline.parse_spec(get_all_passes(), f"extract-kv-cache{{{kv_options(opts)}}}"
                                ).apply(make_context(), module)
        return
    from irtool.passes.extract_kv_cache import CAPACITY_ATTR, PREFILL, WINDOW_ATTR

    for op in list(module.body.block.ops):  # the C program feeds the prompt through @decode
        if isinstance(op, func.FuncOp) and op.sym_name.data == PREFILL:
            module.body.block.erase_op(op)

    for what, value, attr in (("capacity", opts.capacity, CAPACITY_ATTR),
                              ("window", opts.window, WINDOW_ATTR)):
        have = module.attributes.get(attr)
        have = have.value.data if isinstance(have, IntegerAttr) else None
        if value is not None and value != have:
            raise IrtoolError(f"the module already has a KV cache (@decode) with {what} "
                              f"{have}; --{what} {value} cannot change it (compile the model it "
                              f"was made from with --{what} {value} instead)")


def check_quant_options(opts: CompileOptions) -> None:
    if opts.quant not in QUANT_SCHEMES:
        raise IrtoolError(f"--quant {opts.quant}: unknown scheme (expected one of "
                          f"{', '.join(QUANT_SCHEMES)})")
    if opts.kv not in KV_MODES:
        raise IrtoolError(f"--kv {opts.kv}: unknown KV cache mode (expected one of "
                          f"{', '.join(KV_MODES)})")
    if opts.quant == "w8a8" and opts.calibration is None:
        raise IrtoolError("--quant w8a8 quantizes activations with ranges recorded on "
                          "calibration data, and none was given: pass --calibration FILE (an "
                          "eval_tokens.json, whose 'calib' stories are used, a token-id file, "
                          "or a JSON list of id lists)")
    if opts.calibration is not None and opts.quant != "w8a8":
        raise IrtoolError(f"--calibration is used by --quant w8a8 only (not by --quant "
                          f"{opts.quant})")


def prepare_for_target(module: ModuleOp, store: WeightStore, opts: CompileOptions
                       ) -> tuple[ModuleOp, WeightStore]:
    """The transformer/quant-level module the target pipeline starts from, in place:
    calibrate (w8a8) -> extract-kv-cache{prefill=token-by-token} -> quantize. Returns the
    module and its store (a new one when quantized). Without quantization only
    extract-kv-cache runs."""
    check_quant_options(opts)
    if not opts.quantized:
        _extract_kv_cache(module, opts)
        return module, store
    from irtool.passes.quantize import QUANT_ATTR, QuantOptions, quantize_module
    from irtool.quality import blas_threads

    if QUANT_ATTR in module.attributes:
        raise IrtoolError(f"the module is already quantized ({QUANT_ATTR} = "
                          f"{module.attributes[QUANT_ATTR]}): compile it without --quant/--kv")
    with blas_threads(1):  # the interpreter's tiny matmuls: threads only slow them down
        if opts.quant == "w8a8":
            from irtool.passes.calibrate import calibrate_module
            from irtool.quality import load_sequences

            seqs = load_sequences(opts.calibration, key="calib", what="calibration")
            calibrate_module(module, store, seqs,
                             where=f"calibration file '{opts.calibration}'")
        _extract_kv_cache(module, opts)
        module, store = quantize_module(module, store, QuantOptions(opts.quant, opts.kv))
    return module, store


def lower_for_target(module: ModuleOp, opts: CompileOptions) -> ModuleOp:
    """Run the target pipeline in place; returns the hw-level module.

    A module without @decode goes through extract-kv-cache first (token-by-token prefill);
    one that has it (prepare_for_target, or a quantized module) starts at bufferize.
    """
    _extract_kv_cache(module, opts)
    # quoted: a target may be the path of a description (`/`, `.` are not bare-word chars)
    target = '"' + opts.target.replace("\\", "\\\\").replace('"', '\\"') + '"'
    spec = (f"bufferize,"
            f"allocate{{target={target} time_limit={opts.time_limit} "
            f"copy_weights={str(opts.copy_weights).lower()}}},"
            f"lower-to-hw{{target={target}}}")
    PassPipeline.parse_spec(get_all_passes(), spec).apply(make_context(), module)
    module.verify()
    return module


def compile_to_c(module: ModuleOp, store: WeightStore, out_dir: Path, *, prompt: Sequence[int],
                 steps: int, tokenizer, opts: CompileOptions) -> Path:
    from irtool.targets.c.emit import CProject, TokenTable
    from irtool.targets.c.project_files import QemuLayout, linker_script, main_c, makefile
    from irtool.run_limits import check_c_program_inputs
    from irtool.targets.description import load_target

    target = load_target(opts.target)
    module, store = prepare_for_target(module, store, opts)
    lower_for_target(module, opts)
    project = CProject(module, store, target)
    check_c_program_inputs(module, prompt, steps, project.vocab)  # irtool.run_limits (issue 15)
    table = TokenTable.from_tokenizer(tokenizer, project.vocab)
    project.write(out_dir, main_c(prompt, steps, table.pieces, table.bos, table.strip_after_bos),
                  makefile(target, QemuLayout()), linker_script(target, QemuLayout()))
    return out_dir
