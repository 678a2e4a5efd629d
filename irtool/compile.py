"""`irtool compile`: a model to a project for a target, through every IR level.

The path is the target's pipeline (`Target.stages`, the same one `irtool-opt --pipeline=T`
runs): clean-up -> [calibrate (w8a8)] -> extract-kv-cache (token-by-token prefill: one kernel
set for prompt and generation) -> [quantize] -> bufferize -> allocate (CP-SAT placement in the
target's memories) -> lower-to-hw (the target's rules) -> the target's project emitter.

Quantization (`--quant`, `--kv int8`) runs at the transformer level after extract-kv-cache, so
the int8 KV cache is real state of `@decode`. This driver holds the weights in memory, so it
runs the calibrate and quantize stages itself (same options, `quantize_module`) instead of
through files. `prepare_for_target` is that first half (the quant-level module the
interpreter can run), `lower_for_target` the second.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from xdsl.dialects import func
from xdsl.dialects.builtin import IntegerAttr, ModuleOp
from xdsl.passes import PassPipeline

from irtool import progress
from irtool.context import make_context
from irtool.errors import IrtoolError
from irtool.ir_names import has_decode
from irtool.passes import get_all_passes
from irtool.targets.registry import load_target
from irtool.targets.target import PipelineOptions, Target
from irtool.weights import WeightStore

MAPPING_FILE = "mapping.txt"
"""In the project: Target.mapping_report's lines (irtool compile prints them too)."""


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
    calibration_tokenizer: str | None = None
    """The tokenizer that encodes a calibration file of text (compile's --tokenizer)."""
    quantize_lm_head: bool = False
    """Quantize the linear producing the logits as well (it stays float by default), and a
    token embedding tied to it reads its quantized rows."""
    lora: tuple[str, ...] = ()
    """Task adapters, `NAME=FILE[:SCALE]` (irtool.frontend.lora), numbered in this order."""
    adapter: str | None = None
    """The adapter the program starts with (default the first; 'none': the base model)."""
    prefill: str | None = None
    """batched or token (None: the target's default); see PipelineOptions."""
    prefill_tokens: int = 0
    """T of a batched prefill; compile_to_c sets the prompt's length when it is 0."""
    integer_only: bool = False
    """With w8a8: RMSNorm, SiLU and softmax by their integer approximations too."""
    stream_window: int | None = None
    """Most bytes per window of streamed weights (see PipelineOptions)."""

    @property
    def quantized(self) -> bool:
        return self.quant != "none" or self.kv != "none" or self.quantize_lm_head

    def pipeline_options(self) -> PipelineOptions:
        return PipelineOptions(capacity=self.capacity, window=self.window, quant=self.quant,
                               kv=self.kv, calibration=self.calibration,
                               time_limit=self.time_limit, copy_weights=self.copy_weights,
                               prefill=self.prefill, prefill_tokens=self.prefill_tokens,
                               stream_window=self.stream_window)

    def load_target(self) -> Target:
        return load_target(self.target)


def _run(spec: str, module: ModuleOp) -> None:
    if spec:
        PassPipeline.parse_spec(get_all_passes(), spec).apply(make_context(), module)


def _extract_kv_cache(module: ModuleOp, opts: CompileOptions) -> None:
    """extract-kv-cache{prefill=token-by-token ...}, unless the module already has @decode
    (e.g. an `irtool quantize --kv int8` output): then --capacity/--window must agree."""
    if not has_decode(module):
        stages = opts.load_target().stages(opts.pipeline_options())
        _run(",".join(s for s in (stages["cleanup"], stages["kv"]) if s), module)
        return
    from irtool.ir_names import KV_CAPACITY_ATTR as CAPACITY_ATTR
    from irtool.ir_names import KV_WINDOW_ATTR as WINDOW_ATTR
    from irtool.ir_names import PREFILL, PREFILL_TOKENS_ATTR

    target = opts.load_target()
    have = module.attributes.get(PREFILL_TOKENS_ATTR)
    keep = (isinstance(have, IntegerAttr)
            and target.prefill_mode(opts.pipeline_options()) == "batched")
    if opts.prefill == "batched" and have is None and opts.prefill_tokens >= 2:
        raise IrtoolError("--prefill batched: the module already has its KV cache (@decode) "
                          "without a static @prefill; prepare it with a batched prefill of a "
                          "known token count, or compile the model it was made from")
    if not keep:  # the C program feeds the prompt through @decode
        module.attributes.pop(PREFILL_TOKENS_ATTR, None)
        for op in list(module.body.block.ops):
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
    if opts.quant == "none" and opts.kv == "none" and opts.calibration is None:
        if opts.quantize_lm_head:
            raise IrtoolError("--quantize-lm-head quantizes the lm_head with the scheme of "
                              "--quant, and none was given (e.g. --quant w4g32)")
        return  # fp32: the quantize pass (and its imports) is not needed at all
    from irtool.passes.quantize import KV_MODES
    from irtool.passes.quantize import SCHEMES as QUANT_SCHEMES

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
        _attach_adapters(module, store, opts)
        return module, store
    from irtool.blas import blas_threads
    from irtool.ir_names import QUANT_ATTR
    from irtool.passes.quantize import QuantOptions, quantize_module

    if QUANT_ATTR in module.attributes:
        raise IrtoolError(f"the module is already quantized ({QUANT_ATTR} = "
                          f"{module.attributes[QUANT_ATTR]}): compile it without --quant/--kv")
    with blas_threads(1):  # the interpreter's tiny matmuls: threads only slow them down
        if opts.quant == "w8a8":
            from irtool.passes.calibrate import calibrate_module
            from irtool.quality import load_sequences

            seqs = load_sequences(opts.calibration, key="calib", what="calibration",
                                  tokenizer=opts.calibration_tokenizer)
            calibrate_module(module, store, seqs,
                             where=f"calibration file '{opts.calibration}'")
        _extract_kv_cache(module, opts)
        _attach_adapters(module, store, opts)  # before quantize: the deltas stay float
        module, store = quantize_module(module, store, QuantOptions(
            opts.quant, opts.kv, quantize_lm_head=opts.quantize_lm_head,
            tied_embedding=opts.quantize_lm_head, integer_only=opts.integer_only))
    return module, store


def _attach_adapters(module: ModuleOp, store: WeightStore, opts: CompileOptions) -> None:
    """`--lora`: each adapted linear gets a `transformer.lora` with every adapter's delta."""
    if not opts.lora:
        if opts.adapter is not None:
            raise IrtoolError(f"--adapter {opts.adapter} chooses among --lora adapters, and "
                              "none was given")
        return
    from irtool.frontend.lora import attach_adapters, check_selected, load_adapter

    adapters = [load_adapter(spec) for spec in opts.lora]
    attach_adapters(module, store, adapters, check_selected(adapters, opts.adapter))


def lower_for_target(module: ModuleOp, opts: CompileOptions) -> ModuleOp:
    """Run the target pipeline in place; returns the hw-level module.

    A module without @decode goes through extract-kv-cache first (token-by-token prefill);
    one that has it (prepare_for_target, or a quantized module) starts at bufferize.
    """
    _extract_kv_cache(module, opts)
    _run(opts.load_target().stages(opts.pipeline_options())["lower"], module)
    module.verify()
    return module


def compile_to_c(module: ModuleOp, store: WeightStore, out_dir: Path, *, prompt: Sequence[int],
                 steps: int, tokenizer, opts: CompileOptions, sampling=None,
                 report: bool = False, on_mapping=None) -> Path:
    """The whole path to the target's project in `out_dir` (the name stays for the C
    targets' sake; a target with another emitter writes its own kind of project).
    `sampling` (irtool.sampling.SamplingOptions, default greedy) is how the program chooses
    tokens; the project also keeps model.hw.mlir and estimate.json (and with `report`,
    report.html) for `irtool report`. `on_mapping(text)` gets this project's mapping.txt (the
    engines of each mode), when the target writes one: the files are only put in place when
    the command ends, so a caller reading the folder would see the previous project's."""
    target = opts.load_target()
    target.check_stream_window(opts.pipeline_options())  # before the work, not after it
    opts = with_prefill_tokens(module, opts, len(prompt))
    workload = _workload(module, opts)  # before the module is lowered in place
    with progress.step("quantizing" if opts.quantized else "extracting the KV cache"):
        module, store = prepare_for_target(module, store, opts)
    with progress.step(f"compiling for {target.name} (bufferize, allocate, lower-to-hw)"):
        lower_for_target(module, opts)
    project = target.project(module, store) if hasattr(target, "project") else None
    vocab = project.vocab if project is not None else None
    if vocab is not None:  # irtool.run_limits (issue 15)
        from irtool.run_limits import check_c_program_inputs

        check_c_program_inputs(module, prompt, steps, vocab)
    extra = {} if sampling is None else {"sampling": sampling}
    if project is not None:  # a C project keeps what irtool report reads
        extra["extra_files"] = _record(module, target, opts, prompt, steps, sampling,
                                       workload, str(out_dir), report)
        mapping = target.mapping_report(module)
        if mapping:  # the engines of each mode (prefill, decode) and the alternative's cost
            extra["extra_files"][MAPPING_FILE] = "\n".join(mapping) + "\n"
            if on_mapping is not None:
                on_mapping(extra["extra_files"][MAPPING_FILE])
    with progress.step(f"writing the project to {out_dir}"):
        return target.write_project(module, store, out_dir, prompt=prompt, steps=steps,
                                    tokenizer=tokenizer, project=project, **extra)


def with_prefill_tokens(module: ModuleOp, opts: CompileOptions, prompt: int) -> CompileOptions:
    """The options with the batched prefill's T: as given, else the prompt's length (at most
    the KV cache's positions)."""
    from dataclasses import replace

    from irtool.ir_names import MAX_SEQ_LEN_ATTR

    if opts.prefill_tokens:
        return opts
    context = module.attributes.get(MAX_SEQ_LEN_ATTR)
    cap = opts.window or opts.capacity or (context.value.data
                                           if isinstance(context, IntegerAttr) else prompt)
    return replace(opts, prefill_tokens=min(prompt, cap))


def _workload(module: ModuleOp, opts: CompileOptions):
    """What `irtool estimate` models, from the @forward function (None without one, or for
    schemes the estimate does not model)."""
    from irtool.estimate import workload_from_module

    if has_decode(module) or opts.quant not in ("none", "w8a8"):
        return None
    return workload_from_module(module, "model", quantized=opts.quant == "w8a8")


def _record(module: ModuleOp, target: Target, opts: CompileOptions, prompt: Sequence[int],
            steps: int, sampling, workload, name: str, report: bool) -> dict[str, str]:
    """What `irtool report DIR` reads: the placed module with the options, the estimate."""
    from irtool.ir_names import KV_CAPACITY_ATTR, KV_WINDOW_ATTR
    from irtool.report import decode_estimate, project_record

    options = {k: v for k, v in asdict(opts).items() if v is not None}
    options.update(prompt_tokens=len(prompt), steps=steps)
    if sampling is not None:
        options.update({k: v for k, v in asdict(sampling).items()})
    cap = module.attributes.get(KV_CAPACITY_ATTR)
    positions = len(prompt) + steps - 1
    if isinstance(cap, IntegerAttr) and KV_WINDOW_ATTR not in module.attributes:
        positions = min(positions, cap.value.data - 1)
    return project_record(module, options,
                          decode_estimate(workload, target, len(prompt), positions), name,
                          with_report=report)
