"""`irtool-opt -t c` and `-t c-project{dir=OUT}`: the C emitter as xDSL output targets.

`c` prints model.h and model.c of a placed hw-level module (what FileCheck tests read);
`c-project` writes the whole project (weights from the module's store, a prompt given as
token ids, the runtime, main.c, the Makefile) and prints where it went. Both use the target
the module was compiled for (its `hw.target` attribute), found through the registry.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import IO

from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp
from xdsl.utils.target import Target as XdslTarget

from irtool.dialects.hw import TARGET_ATTR, TargetAttr
from irtool.errors import IrtoolError
from irtool.weights import WeightStore


def module_target(module: ModuleOp):
    """The C target a placed module was compiled for."""
    from irtool.targets.c.target import CTarget
    from irtool.targets.registry import load_target

    attr = module.attributes.get(TARGET_ATTR)
    if not isinstance(attr, TargetAttr):
        raise IrtoolError("the C emitter needs a placed hw-level module with a hw.target "
                          "attribute: run e.g. irtool-opt --pipeline=riscv-ulp first")
    target = load_target(attr.target.data)
    if not isinstance(target, CTarget):
        raise IrtoolError(f"target '{target.name}' is not a C target: use its own emitter")
    return target


@dataclass(frozen=True)
class CEmitTarget(XdslTarget):
    name = "c"

    def emit(self, ctx: Context, module: ModuleOp, output: IO[str]) -> None:
        project = module_target(module).project(module, WeightStore())
        output.write("// ----- model.h\n" + project.model_h())
        output.write("// ----- model.c\n" + project.model_c())


@dataclass(frozen=True)
class CProjectEmitTarget(XdslTarget):
    name = "c-project"
    dir: str = "out"
    prompt: tuple[int, ...] = (1,)
    steps: int = 16
    tokenizer: str | None = None

    def emit(self, ctx: Context, module: ModuleOp, output: IO[str]) -> None:
        from irtool.module_io import load_store
        from irtool.run_limits import check_c_program_inputs
        from irtool.tokenizer import load_tokenizer

        store = load_store(module, "the module")
        check_c_program_inputs(module, self.prompt, self.steps, tokenizer=self.tokenizer)  # #15
        target = module_target(module)
        tokenizer = load_tokenizer(self.tokenizer) if self.tokenizer else None
        target.write_project(module, store, Path(self.dir), prompt=self.prompt,
                             steps=self.steps, tokenizer=tokenizer)
        output.write(f"wrote the C project to {self.dir}\n")
