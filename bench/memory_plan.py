"""Memory plans: CP-SAT against greedy-by-size (TFLite Micro), no reuse and the lower bound.

    .venv/bin/python bench/memory_plan.py [--time-limit 10] [--capacity 64]

For stories260K, nanogpt-tiny, phi-tiny (memory level after
`extract-kv-cache{prefill=token-by-token},bufferize`) and a synthetic 64-layer graph, on the
`host` target (full KV capacity) and on `riscv-ulp` (KV capacity `--capacity`, so that the
caches fit its SRAM), prints per memory space:

* cp-sat: the peak (highest byte used) of the `allocate` plan;
* greedy: the peak of TFLite Micro's greedy planner (buffers sorted by size, each at the
  first offset where it fits) on the same space assignment, so that only packing differs;
* no reuse: the sum of the sizes (every buffer its own bytes);
* bound: the most bytes live at once (no plan of that assignment can do better);
* act: the same three figures for the activations alone (the bytes above the weights and
  state, which live all the time and leave nothing to optimise): where reuse is decided;

with the solver status (and its gap when the time limit stopped it) and the times of both
planners. A model that fails to import or does not fit is reported with a note instead.
"""

from __future__ import annotations

import argparse
import sys
import time
import traceback
from pathlib import Path

from xdsl.passes import PassPipeline

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # for tests.plan_checker (the synthetic graph generator)

from irtool.context import make_context  # noqa: E402
from irtool.errors import IrtoolError  # noqa: E402
from irtool.ir_names import KV_CAPACITY_ATTR  # noqa: E402
from irtool.liveness import Buffer, analyze, peak_live_bytes  # noqa: E402
from irtool.passes import get_all_passes  # noqa: E402
from irtool.passes.allocate import first_fit_offsets, plan_memory  # noqa: E402
from irtool.targets.registry import load_target  # noqa: E402
from tests.plan_checker import layered_module_text, parse_module  # noqa: E402

MODELS = ROOT.parent / "shared" / "models"
CASES = [("stories260K", MODELS / "stories260K" / "stories260K.bin"),
         ("nanogpt-tiny", MODELS / "nanogpt-tiny" / "nanogpt.onnx"),
         ("phi-tiny", MODELS / "phi-tiny" / "phi.onnx"),
         ("synthetic-64", (64, 3, 0, (16, 32, 64, 128, 256))),
         ("synthetic-64w", (64, 6, 1, (16, 32, 64, 128, 256, 512, 1024)))]


def memory_level(path: Path | tuple, capacity: int | None):
    """The memory-level module of a model file, or of a synthetic layered graph given as
    (layers, width, seed, sizes)."""
    if isinstance(path, tuple):
        return parse_module(layered_module_text(*path))
    from irtool.frontend.load import import_model

    module, _ = import_model(path)
    cap = f" capacity={capacity}" if capacity else ""
    spec = f"extract-kv-cache{{prefill=token-by-token{cap}}},bufferize"
    PassPipeline.parse_spec(get_all_passes(), spec).apply(make_context(), module)
    return module


def greedy_by_size(buffers: list[Buffer], align) -> int:
    """Peak of TFLite Micro's planner: largest first, each at its first fitting offset."""
    mine = sorted(buffers, key=lambda b: (-b.size, b.name))
    offsets = first_fit_offsets(mine, align)
    return max((offsets[b.name] + b.size for b in mine), default=0)


def run_case(name: str, module, target_name: str, time_limit: float) -> list[str]:
    target = load_target(target_name).description
    live = analyze(module)
    cap = module.attributes.get(KV_CAPACITY_ATTR)
    plan = plan_memory(live, target, time_limit,
                       kv_capacity=cap.value.data if cap is not None else None)
    status = plan.status
    if status == "FEASIBLE":
        status += f" {max(plan.cost_gap, plan.peak_gap):.1%}"
    rows = []
    for m in target.memories:
        if m.name not in plan.no_reuse:
            continue
        mine = [b for b in live.buffers if plan.placements[b.name].space == m.name]
        acts = [b for b in mine if b.kind == "activation"]
        t0 = time.perf_counter()
        align = lambda b, m=m: max(b.alignment, m.alignment)  # noqa: E731
        greedy = greedy_by_size(mine, align)
        greedy_ms = (time.perf_counter() - t0) * 1000
        offsets = [plan.placements[b.name].offset for b in acts]
        ends = (o + b.size for o, b in zip(offsets, acts, strict=True))
        act_cp = max(ends, default=0) - min(offsets, default=0)
        rows.append(f"{name:<13} {target_name:<9} {len(live.buffers):>5} {m.name:<5} "
                    f"{plan.peaks[m.name]:>9} {greedy:>9} {plan.no_reuse[m.name]:>9} "
                    f"{plan.lower_bounds[m.name]:>9} | {act_cp:>7} "
                    f"{greedy_by_size(acts, align):>7} {peak_live_bytes(acts):>7} | "
                    f"{status:<13} {plan.solve_time_ms:>6} {greedy_ms:>6.1f}")
    return rows


HEADER = (f"{'model':<13} {'target':<9} {'bufs':>5} {'space':<5} {'cp-sat':>9} {'greedy':>9} "
          f"{'no reuse':>9} {'bound':>9} | {'act cp':>7} {'act gr':>7} {'act bnd':>7} | "
          f"{'status':<13} {'cp ms':>6} {'gr ms':>6}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--time-limit", type=float, default=10.0)
    ap.add_argument("--capacity", type=int, default=64,
                    help="KV capacity (positions) for riscv-ulp")
    args = ap.parse_args()
    print(HEADER)
    print("-" * len(HEADER))
    notes = []
    for name, path in CASES:
        for target, capacity in (("host", None), ("riscv-ulp", args.capacity)):
            try:
                module = memory_level(path, capacity)
            except Exception as e:  # noqa: BLE001 - a model the frontends cannot take yet
                notes.append(f"{name}: skipped, import failed: {type(e).__name__}: {e}")
                traceback.print_exc(limit=1, file=sys.stderr)
                break
            try:
                for row in run_case(name, module, target, args.time_limit):
                    print(row, flush=True)
            except IrtoolError as e:
                notes.append(f"{name} on {target}: does not fit:\n    "
                             + str(e).replace("\n", "\n    "))
    for note in notes:
        print("note:", note)


if __name__ == "__main__":
    main()
