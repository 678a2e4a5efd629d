"""`irtool-opt -t c` and `-t c-project{dir=OUT}`: the C emitter as xDSL output targets.

`c` prints model.h and model.c of a placed hw-level module (what FileCheck tests read);
`c-project` writes the whole project (weights from the module's store, a prompt given as
token ids, the runtime, main.c, the Makefile) and prints where it went.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import IO

from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp
from xdsl.utils.target import Target

from irtool.dialects.hw import TARGET_ATTR, TargetAttr
from irtool.errors import IrtoolError
from irtool.weights import WeightStore


def _project(module: ModuleOp, store: WeightStore):
    from irtool.targets.c.emit import CProject
    from irtool.targets.description import load_target

    attr = module.attributes.get(TARGET_ATTR)
    if not isinstance(attr, TargetAttr):
        raise IrtoolError("the C emitter needs a placed hw-level module with a hw.target "
                          "attribute: run e.g. irtool-opt --pipeline=riscv-ulp first")
    return CProject(module, store, load_target(attr.target.data))


@dataclass(frozen=True)
class CTarget(Target):
    name = "c"

    def emit(self, ctx: Context, module: ModuleOp, output: IO[str]) -> None:
        project = _project(module, WeightStore())
        output.write("// ----- model.h\n" + project.model_h())
        output.write("// ----- model.c\n" + project.model_c())


@dataclass(frozen=True)
class CProjectTarget(Target):
    name = "c-project"
    dir: str = "out"
    prompt: tuple[int, ...] = (1,)
    steps: int = 16
    tokenizer: str | None = None

    def emit(self, ctx: Context, module: ModuleOp, output: IO[str]) -> None:
        from irtool.module_io import load_store
        from irtool.run_limits import check_c_program_inputs
        from irtool.targets.c.emit import TokenTable
        from irtool.targets.c.project_files import QemuLayout, linker_script, main_c, makefile
        from irtool.tokenizer import load_tokenizer

        store = load_store(module, "the module")
        project = _project(module, store)
        check_c_program_inputs(module, self.prompt, self.steps, project.vocab,  # issue 15
                               self.tokenizer)
        if self.tokenizer:
            table = TokenTable.from_tokenizer(load_tokenizer(self.tokenizer), project.vocab)
        else:
            table = TokenTable.for_ids(project.vocab)
        project.write(Path(self.dir), main_c(self.prompt, self.steps, table.pieces, table.bos,
                                             table.strip_after_bos),
                      makefile(project.target, QemuLayout()),
                      linker_script(project.target, QemuLayout()))
        output.write(f"wrote the C project to {self.dir}\n")
