"""u280-hls: an AMD Alveo U280 (HBM2, 32 pseudo-channels) programmed with Vitis HLS kernels.

Everything that is only this target's lives here: its description (HBM channels, SLRs, clock,
fabric budgets and what the cost model assumes), the HLS C++ emitter (`kernels.py`), the host
program and Makefile (`host.py`, `runtime/`), the xDSL output targets (`-t hls`,
`-t hls-project{dir=...}`) and the cost model (`cost.py`).
"""


def make_target():
    from irtool.targets.u280_hls.target import U280Target

    return U280Target()
