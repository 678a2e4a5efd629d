"""matrix8x8: stories260K W8A8 on the 8x8 unit, the hand analysis's schedule vs irtool's.

    .venv/bin/python bench/matrix8x8.py [--positions P] [--qemu]

Cycles per token for a decode step (at cache position P) and for an 8-token prefill, under the
naive schedule (every token alone, A, B and C moved per tile) and irtool's (8 tokens in A's
rows, A reused across 8 B tiles, partial sums kept in the unit), with the unit's utilisation
(MACs done / MAC slots of the tiles started) and the share of cycles spent in AXI-Lite
transfers. Modelled figures (`irtool estimate`'s cost model: 532 cycles per tile, 2 per word,
100 MHz); with --qemu the W8A8 build also runs on qemu and the unit model's counters per
forward call are printed beside the estimate (they are equal: tests/test_matrix8x8.py).
"""

from __future__ import annotations

import argparse
import re
import subprocess
import tempfile
from pathlib import Path

from irtool.estimate import estimate, load_workload
from irtool.targets.registry import load_target

MODEL = Path(__file__).resolve().parents[2] / "shared" / "models" / "stories260K"


def modelled(positions: int) -> dict:
    target = load_target("matrix8x8")
    work = load_workload(str(MODEL / "stories260K.bin"), quantized=True)
    out = {}
    for sched in ("naive", "irtool"):
        phases = estimate(work, target.cost_model(sched), prefill=8, positions=positions)
        out[sched] = {name: ph.totals() for name, ph in phases.items()}
    return out


def qemu_counts() -> dict:
    with tempfile.TemporaryDirectory() as d:
        subprocess.run([".venv/bin/irtool", "compile", str(MODEL / "stories260K.bin"),
                        "--target", "matrix8x8", "--quant", "w8a8", "--capacity", "64",
                        "--steps", "8", "-o", d], check=True, capture_output=True)
        out = subprocess.run(["make", "-s", "-C", d, "run"], check=True, text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT).stdout
    m = re.search(r"^mxu: forward calls (\d+) tiles (\d+) words in (\d+) words out (\d+) "
                  r"unit cycles (\d+) axi cycles (\d+)$", out, re.MULTILINE)
    calls, *rest = map(int, m.groups())
    keys = ("tiles", "words_in", "words_out", "unit_cycles", "axi_cycles")
    return {k: v // calls for k, v in zip(keys, rest, strict=True)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--positions", type=int, default=32)
    ap.add_argument("--qemu", action="store_true")
    args = ap.parse_args()
    res = modelled(args.positions)
    print(f"stories260K W8A8 on matrix8x8 (100 MHz), decode at position {args.positions}")
    print(f"{'phase':<16}{'schedule':<9}{'cycles/token':>14}{'tokens/s':>10}{'unit cyc/tok':>14}"
          f"{'axi cyc/tok':>13}{'host cyc/tok':>14}{'util':>7}{'axi share':>11}")
    for phase, label in (("decode", "decode"), ("prefill", "prefill 8 tok")):
        for sched in ("naive", "irtool"):
            t = res[sched][phase]
            n = t["tokens"]
            host = t["cycles"] - t["unit_cycles"] - t["axi_cycles"]
            print(f"{label:<16}{sched:<9}{t['cycles_per_token']:>14,.0f}"
                  f"{t['tokens_per_s']:>10.1f}{t['unit_cycles'] / n:>14,.0f}"
                  f"{t['axi_cycles'] / n:>13,.0f}{host / n:>14,.0f}"
                  f"{t['utilisation']:>7.1%}{t['axi_share']:>11.1%}")
    print("a decode token fills 1 of A's 8 rows: at most 12.5% of the unit's MAC slots; "
          "8 prompt tokens fill all 8")
    if args.qemu:
        got, want = qemu_counts(), res["irtool"]["decode"]
        print("qemu (unit model) per forward call: " + ", ".join(
            f"{k} {v:,} (estimate {want[k]:,.0f})" for k, v in got.items()))


if __name__ == "__main__":
    main()
