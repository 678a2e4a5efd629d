"""`irtool compile`: a model to a C project for a target, through every IR level.

The path is the compiler's: import -> extract-kv-cache (token-by-token prefill: one kernel set
for prompt and generation) -> bufferize -> allocate (CP-SAT placement in the target's
memories) -> lower-to-hw -> C emitter.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from xdsl.dialects.builtin import ModuleOp
from xdsl.passes import PassPipeline

from irtool.context import make_context
from irtool.errors import IrtoolError
from irtool.passes import get_all_passes
from irtool.weights import WeightStore


@dataclass(frozen=True)
class CompileOptions:
    target: str = "riscv-ulp"
    capacity: int | None = None
    window: int | None = None
    time_limit: float = 10.0
    copy_weights: bool = False
    """Weights stay in Flash and are read in place unless this is set (RAM is the scarce part)."""


def kv_options(opts: CompileOptions) -> str:
    parts = ["prefill=token-by-token"]
    if opts.capacity is not None:
        parts.append(f"capacity={opts.capacity}")
    if opts.window is not None:
        parts.append(f"window={opts.window}")
    return " ".join(parts)


def lower_for_target(module: ModuleOp, opts: CompileOptions) -> ModuleOp:
    """Run the target pipeline in place; returns the hw-level module."""
    # quoted: a target may be the path of a description (`/`, `.` are not bare-word chars)
    target = '"' + opts.target.replace("\\", "\\\\").replace('"', '\\"') + '"'
    spec = (f"extract-kv-cache{{{kv_options(opts)}}},bufferize,"
            f"allocate{{target={target} time_limit={opts.time_limit} "
            f"copy_weights={str(opts.copy_weights).lower()}}},"
            f"lower-to-hw{{target={target}}}")
    PassPipeline.parse_spec(get_all_passes(), spec).apply(make_context(), module)
    module.verify()
    return module


def compile_to_c(module: ModuleOp, store: WeightStore, out_dir: Path, *, prompt: Sequence[int],
                 steps: int, tokenizer, opts: CompileOptions) -> Path:
    from irtool.targets.c.emit import CProject, TokenTable
    from irtool.targets.c.project_files import QemuLayout, main_c, makefile
    from irtool.targets.description import load_target

    target = load_target(opts.target)
    lower_for_target(module, opts)
    project = CProject(module, store, target)
    if any(not 0 <= t < project.vocab for t in prompt):
        raise IrtoolError(f"prompt token outside the vocabulary (0..{project.vocab - 1})")
    table = TokenTable.from_tokenizer(tokenizer, project.vocab)
    project.write(out_dir, main_c(prompt, steps, table.pieces, table.bos, table.strip_after_bos),
                  makefile(target, QemuLayout()))
    return out_dir
