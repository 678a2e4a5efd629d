"""Cycle formulas of siracusa's engines, shared by the lowering rules (NPU or cluster for a
linear) and by `irtool estimate --target siracusa`.

* Cluster: a W8A8 linear split by output rows in 4-row blocks over `cores` cores takes the
  slowest core's share, at the portable kernel's 4.25 instructions per multiply-accumulate
  (counted in targets/c/runtime/irt_quant.c), at the description's CPI, plus the fork/join:
  FORK_JOIN_INSTRUCTIONS per phase (measured on qemu with the hart-count plugin:
  tests/test_siracusa.py bounds it by 400 per hart and phase).
* NPU: the engine's `cost` in description.json: setup + ceil(K/32) * ceil(N/32) * T *
  cycles per block, plus the cluster's requantization of the N x T int32 outputs
  (REQUANT_INSTRUCTIONS each, on core 0).
"""

from __future__ import annotations

import math

from irtool.targets.description import EngineSpec

W8A8_INSTRUCTIONS_PER_MAC = 4.25
F32_INSTRUCTIONS_PER_MAC = 2.44
FORK_JOIN_INSTRUCTIONS = 300
REQUANT_INSTRUCTIONS = 8


def cluster_linear_cycles(T: int, K: int, N: int, cores: int, cpi: float = 1.0,
                          per_mac: float = W8A8_INSTRUCTIONS_PER_MAC) -> float:
    """The slowest core's share of a linear split by 4-row blocks, plus the fork/join."""
    blocks = math.ceil(N / 4)
    rows = min(N, math.ceil(blocks / cores) * 4)
    fork = FORK_JOIN_INSTRUCTIONS if cores > 1 else 0
    return cpi * (rows * K * T * per_mac + fork)


def npu_linear_cycles(npu: EngineSpec, T: int, K: int, N: int, cpi: float = 1.0) -> float:
    c = npu.cost
    blocks = math.ceil(K / c["tile_in"]) * math.ceil(N / c["tile_out"]) * T
    return c["setup_cycles"] + blocks * c["cycles_per_tile_token"] + cpi * REQUANT_INSTRUCTIONS * N * T
