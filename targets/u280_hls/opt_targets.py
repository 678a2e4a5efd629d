"""`irtool-opt -t hls` and `-t hls-project{dir=OUT}`: the HLS emitter as xDSL output targets.

`hls` prints kernels.cpp of a quant-level module with `@decode` (what FileCheck tests read);
`hls-project` writes the whole project (weights from the module's store, the prompt as token
ids) and prints where it went. Run `assign-hbm-banks` first for connectivity.cfg.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import IO

from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp
from xdsl.utils.target import Target as XdslTarget


@dataclass(frozen=True)
class HlsEmitTarget(XdslTarget):
    name = "hls"

    def emit(self, ctx: Context, module: ModuleOp, output: IO[str]) -> None:
        from irtool.bank_map import BANK_MAP_ATTR, read_bank_map
        from irtool.block_parts import split_decode
        from irtool.targets.u280_hls.kernels import kernels_cpp

        bp = split_decode(module)
        bank_map = read_bank_map(module) if BANK_MAP_ATTR in module.attributes else None
        stripes = bank_map.data.get("stripes", 1) if bank_map else 1
        output.write("// ----- kernels.cpp\n" + kernels_cpp(bp, stripes))
        if bank_map is not None:
            from irtool.targets.registry import load_target
            from irtool.targets.u280_hls.slr_place import place_design

            placement = place_design(bp, stripes, load_target("u280-hls").description)
            output.write("// ----- connectivity.cfg\n"
                         + bank_map.connectivity_cfg(placement.slr))


@dataclass(frozen=True)
class HlsProjectEmitTarget(XdslTarget):
    name = "hls-project"
    dir: str = "out"
    prompt: tuple[int, ...] = (1,)
    steps: int = 16

    def emit(self, ctx: Context, module: ModuleOp, output: IO[str]) -> None:
        from irtool.module_io import load_store
        from irtool.targets.registry import load_target

        store = load_store(module, "the module")
        load_target("u280-hls").write_project(module, store, Path(self.dir),
                                              prompt=self.prompt, steps=self.steps)
        output.write(f"wrote the u280-hls project to {self.dir}\n")
