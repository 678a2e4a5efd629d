"""C targets: a placed hw-level module -> a bare-metal (or native) C project.

`CTarget` is a `Target` whose emitters are the C emitter (`irtool-opt -t c`, `-t c-project`)
and whose project files (Makefile, linker script, counter header) come from the description's
toolchain. It composes the shared pieces: the portable lowering rules and C calls, the
portable runtime, and whatever a target adds (its own rules in front, C calls, a runtime
folder). A target folder with only a `description.json` is a `CTarget` with the portable
kernels.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from irtool.lowering import LoweringRules
from irtool.sampling import GREEDY, SamplingOptions
from irtool.targets.c import project_files
from irtool.targets.c.calling import PORTABLE_CALLS, CCalls
from irtool.targets.c.emit import RUNTIME_DIR, CProject, TokenTable
from irtool.targets.c.program_fit import check_program_fits
from irtool.targets.c.rules import PORTABLE_RULES
from irtool.targets.description import TargetDescription, load_description
from irtool.targets.target import Target

LIBRARY_DIR = Path(__file__).resolve().parent / "library"
"""The generation loop over model.h (irt_generate.h/.c), part of every project's library."""
HARTCOUNT_PLUGIN = Path(__file__).resolve().parent / "plugin" / "irt_hartcount_plugin.c"
"""The qemu TCG plugin counting instructions exactly per hart and decode step, for any guest
(the qemu targets copy it into their projects)."""


class CTarget(Target):
    def __init__(self, description: TargetDescription, rules: LoweringRules = PORTABLE_RULES,
                 *, calls: CCalls = PORTABLE_CALLS, runtime_dirs: Sequence[Path] = (),
                 **kwargs):
        super().__init__(description, rules, **kwargs)
        self.calls = calls
        self.runtime_dirs = (RUNTIME_DIR, *runtime_dirs)

    @classmethod
    def from_folder(cls, folder: Path, **kwargs) -> CTarget:
        """The target of a folder: its description.json, and its runtime/ sources if any."""
        folder = Path(folder)
        runtime = folder / "runtime"
        extra = (runtime,) if runtime.is_dir() else ()
        return cls(load_description(folder / "description.json"), folder=folder,
                   runtime_dirs=(*extra, *kwargs.pop("runtime_dirs", ())), **kwargs)

    def emitters(self) -> dict[str, Callable[[], type]]:
        def c():
            from irtool.targets.c.opt_targets import CEmitTarget

            return CEmitTarget

        def c_project():
            from irtool.targets.c.opt_targets import CProjectEmitTarget

            return CProjectEmitTarget

        return {"c": c, "c-project": c_project}

    # -- the project --------------------------------------------------------------------

    def project(self, module, store) -> CProject:
        return CProject(module, store, self.description, self.calls)

    def main_hooks(self) -> str:
        """C text main.c includes after its headers: a target's definitions of the hooks
        around the model's calls (project_files.MAIN_HOOKS); none by default."""
        return ""

    token_table_section: str | None = None
    """The section main.c's token table goes into (None: with the other constants, in the
    first read-only memory); a target whose linker script places it elsewhere names it."""
    token_table_memory: str | None = None
    """The memory that section is in (None: the program's), for program_fit."""

    def main_c(self, prompt: Sequence[int], steps: int, table: TokenTable) -> str:
        return project_files.main_c(prompt, steps, table, self.main_hooks(),
                                    self.token_table_section)

    def make_variables(self) -> str:
        """Make text the Makefile reads before its rules: a target's own make variables, the
        flags they add and their names in the group of what they change, so that a change
        rebuilds that (`CFLAGS_VARS += DSP`, project_files.makefile); none by default."""
        return ""

    def project_files(self, prompt: Sequence[int], steps: int,
                      table: TokenTable) -> dict[str, str]:
        """Every file besides the model's: override to add or change one."""
        files = {"main.c": self.main_c(prompt, steps, table),
                 "Makefile": project_files.makefile(self.description, self.make_variables()),
                 "irt_target.h": project_files.target_header(self.description)}
        for name in ("irt_generate.h", "irt_generate.c"):  # the generation loop of the library
            files[name] = (LIBRARY_DIR / name).read_text()
        linker = project_files.linker_script(self.description)
        if linker is not None:
            files["irt_memory.ld"] = linker
        return files

    def write_project(self, module, store, out_dir: Path, *, prompt: Sequence[int],
                      steps: int, tokenizer=None, project: CProject | None = None,
                      sampling: SamplingOptions = GREEDY,
                      extra_files: dict[str, str] | None = None) -> Path:
        """The project; main.c chooses tokens as `sampling` says (its irt_run.h);
        `extra_files` (name -> text) are written with it (irtool compile's record for
        irtool report)."""
        project = project or self.project(module, store)
        table = TokenTable.from_tokenizer(tokenizer, project.vocab)
        check_program_fits(module, self.description, table, self.token_table_memory)
        files = self.project_files(prompt, steps, table)
        files["irt_run.h"] = project_files.run_header(sampling, project.vocab)
        files.update(extra_files or {})
        project.write(Path(out_dir), files, self.runtime_dirs)
        return Path(out_dir)
