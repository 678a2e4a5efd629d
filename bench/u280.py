"""u280-hls: the modelled Phi-2 decode step vs the users' 0.8 s/token and the HBM floor.

    .venv/bin/python bench/u280.py [--position 512] [--channels 1,8,16,32]

Phi-2 from its config alone (hidden 2560, 32 layers, 32 heads of 80, MLP 10240, vocab
51200), W8A8 linears and a float lm_head, with the cost model of targets/u280_hls/cost.py
(II=1 trip counts of the emitted kernels, 80% of 14.375 GB/s per HBM pseudo-channel, 300 MHz;
the assumptions are in the target's description). Prints the per-kernel table for 32 channels
and how tokens/s grows with the channels the weights are striped over. A model, not a
measurement: no Vitis or card here.
"""

from __future__ import annotations

import argparse

from irtool.targets.registry import load_target
from irtool.targets.u280_hls.cost import PHI2, USERS_S_PER_TOKEN, estimate


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--position", type=int, default=512, help="cached positions attended")
    ap.add_argument("--channels", default="1,8,16,32")
    args = ap.parse_args()
    desc = load_target("u280-hls").description
    print(estimate(PHI2, desc, 32, args.position).table())
    print()
    print("| HBM channels | ms/token | tokens/s | vs users' 0.8 s/token | x HBM floor | DSPs "
          "| fits |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    for ch in (int(c) for c in args.channels.split(",")):
        e = estimate(PHI2, desc, ch, args.position)
        print(f"| {ch} | {e.s_per_token * 1e3:,.2f} | {e.tokens_per_s:,.1f} | "
              f"{USERS_S_PER_TOKEN / e.s_per_token:,.1f}x faster | "
              f"{e.s_per_token / e.hbm_floor_s:,.2f} | {e.dsp:,} | {'yes' if e.fits else 'no'} |")


if __name__ == "__main__":
    main()
