"""The u280-hls target: a decode step as Vitis HLS kernels on an Alveo U280 with HBM.

Not a C target: the pipeline stops at the quant level (calibrate, extract-kv-cache with
token-by-token prefill, quantize) and binds buffers to HBM pseudo-channels
(`assign-hbm-banks`); the project is HLS C++ (one kernel per block part, `kernels.py`), a host
program behind a thin accelerator interface (`host.py`, `runtime/`), `connectivity.cfg`, the
bank map and a Makefile with `csim` (g++) and the `v++ -c/-l` targets.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path

from xdsl.dialects.builtin import ModuleOp

from irtool.block_parts import KV_WRITE, split_decode
from irtool.errors import IrtoolError
from irtool.lowering import LoweringRules
from irtool.output_safety import project_directory
from irtool.targets.description import load_description
from irtool.targets.target import PipelineOptions, Target, quote
from irtool.targets.u280_hls import host, kernels
from irtool.targets.u280_hls.slr_place import place_design

FOLDER = Path(__file__).resolve().parent
RUNTIME = FOLDER / "runtime"
RING_POSITIONS = 1 << 30
"""IRT_MAX_POSITIONS of a ring cache: no limit from the cache (the steps asked for end it)."""


class U280Target(Target):
    def __init__(self, folder: Path = FOLDER, reference: str = "u280-hls"):
        super().__init__(load_description(folder / "description.json"), LoweringRules(),
                         reference=reference, folder=folder)

    @property
    def fabric(self):
        return self.description.engine("fabric")

    def cost_model(self, schedule: str | None = None):
        """For `irtool estimate`: the emitted kernels' arithmetic, op by op."""
        from irtool.errors import IrtoolError
        from irtool.targets.u280_hls.cost import OpCostModel

        if schedule not in (None, "kernels"):
            raise IrtoolError(f"target '{self.name}' has one schedule (kernels), not "
                              f"'{schedule}'")
        return OpCostModel(self.description)

    def prefill_mode(self, opts: PipelineOptions) -> str:
        """Always token by token: the host feeds the prompt through the decode kernels (a
        batched prefill was accepted and then not emitted)."""
        from irtool.errors import IrtoolError

        if opts.prefill == "batched":
            raise IrtoolError(f"--prefill batched: target '{self.name}' feeds the prompt "
                              "through its decode kernels one token at a time; drop --prefill")
        return super().prefill_mode(opts)

    def stages(self, opts: PipelineOptions) -> dict[str, str]:
        stages = super().stages(opts)
        stages["lower"] = f"assign-hbm-banks{{target={quote(self.reference)}}}"
        return stages

    def emitters(self) -> dict[str, Callable[[], type]]:
        def hls():
            from irtool.targets.u280_hls.opt_targets import HlsEmitTarget

            return HlsEmitTarget

        def hls_project():
            from irtool.targets.u280_hls.opt_targets import HlsProjectEmitTarget

            return HlsProjectEmitTarget

        return {"hls": hls, "hls-project": hls_project}

    report_instead = (" (its buffers are bound to HBM channels: see bank_map.md and "
                      "resources.md in the project)")
    """What `irtool compile --report` points to instead of report.html (the pipeline runs no
    allocate pass: there is no memory plan for irtool report to draw)."""

    def run_hint(self, out_dir: Path) -> str:
        """The end of irtool compile's message: the project's Makefile targets that run it."""
        return host.run_hint(out_dir)

    def write_project(self, module: ModuleOp, store, out_dir: Path, *, prompt: Sequence[int],
                      steps: int, tokenizer=None, project=None, sampling=None) -> Path:
        from irtool.bank_map import BANK_MAP_ATTR, read_bank_map

        if sampling is not None and not sampling.greedy:
            raise IrtoolError("u280-hls: the host program decodes greedily; drop "
                              "--temperature/--top-k/--top-p for this target")
        stop = tuple(sampling.stop) if sampling is not None else ()
        bp = split_decode(module)
        vocab = module.attributes["irtool.vocab_size"].value.data
        capacity = bp.cache_args[0].type.get_shape()[2]
        ring = any(op.name in KV_WRITE and op.ring is not None for p in bp.parts for op in p.ops)
        bad = [t for t in prompt if not 0 <= t < vocab]
        if bad:
            raise IrtoolError(f"prompt token {bad[0]} is outside the vocabulary (0..{vocab - 1})")
        if not ring and len(prompt) + steps > capacity + 1:
            raise IrtoolError(f"{len(prompt)} prompt tokens + {steps} steps need more positions "
                              f"than the KV cache's {capacity}: compile with a larger --capacity")
        bank_map = read_bank_map(module) if BANK_MAP_ATTR in module.attributes else None
        stripes = bank_map.data.get("stripes", 1) if bank_map else 1
        plan = host.plan_host(bp, stripes)
        blob = host.weights_blob(plan, store)  # records the offsets model.cpp's table gives
        files = {
            "kernels.cpp": kernels.kernels_cpp(bp, stripes),
            "kernels.h": kernels.kernels_h(bp, stripes),
            "model.cpp": host.model_cpp(plan, store),
            # a ring (--window) keeps the last `capacity` positions: generation never stops
            "irt_model.h": host.model_h(plan, vocab, RING_POSITIONS if ring else capacity),
            "dispatch_csim.cpp": host.dispatch_cpp(plan, stripes),
            "main.cpp": host.main_cpp(prompt, steps, stop),
            "Makefile": host.makefile(plan.kinds, self.fabric.cost.get("platform", "")),
        }
        placement = place_design(bp, stripes, self.description)
        files["resources.md"] = placement.table()
        files["resources.json"] = json.dumps(placement.to_json(), indent=1) + "\n"
        if bank_map is not None:
            files["connectivity.cfg"] = bank_map.connectivity_cfg(placement.slr)
            files["bank_map.md"] = bank_map.table()
            files["bank_map.json"] = json.dumps(bank_map.to_json(), indent=1) + "\n"
        # as the C targets' (irtool.output_safety): built in a temporary folder, merged into
        # out_dir with a manifest of what irtool wrote when the command succeeds; a folder that
        # holds an input, or a user's folder without --force, is refused
        with project_directory(out_dir) as tmp:
            (tmp / "weights.bin").write_bytes(blob)
            for name, text in files.items():
                (tmp / name).write_text(text)
            for src in sorted(RUNTIME.iterdir()):
                if src.suffix in (".h", ".cpp"):
                    shutil.copyfile(src, tmp / src.name)
        return Path(out_dir)
