"""The tile planner charges each tile the engine's fork/join (`fork_join_cycles` of a
cluster in the target description): figures checked by hand on a small problem.

One linear of 64 rows of 256 bytes, 35 compute cycles per row (2,240 in all), a link of
8 bytes per cycle with 30 cycles of set-up (transfer 2,048 + 30 per tile), room for windows
of up to 8 KiB (32 rows). Without a per-tile cost the planner may pick any tiling whose
transfer stays under the compute (up to 6 tiles: 2,048 + 6 * 30 <= 2,240): 2,240 cycles.
With 300 cycles per tile, the fewest tiles the windows allow (2 of 32 rows) cost
2,240 + 2 * 300 = 2,840 and every extra tile 300 more; reading in place costs
2,240 + 300 + 2,048 = 4,588.
"""

from __future__ import annotations

from irtool.passes.tile_plan import Candidate, solve_tile_plan


def plan(tile_cycles: float, free: int = 16384):
    return solve_tile_plan([Candidate(64, 256, 35.0)], free=free, alignment=4, setup_cycles=30,
                           cycles_per_byte=1 / 8, max_tiles=64, tile_cycles=tile_cycles)


def test_without_fork_cost_any_overlapping_tiling_is_optimal():
    p = plan(0)
    assert p.status == "OPTIMAL" and p.cycles == 2240
    tiles = -(-64 // p.rows_per_tile[0])
    assert tiles * 30 + 2048 <= 2240


def test_fork_cost_picks_the_fewest_tiles():
    p = plan(300)
    assert p.status == "OPTIMAL"
    assert p.rows_per_tile == (32,) and p.window == 32 * 256
    assert p.cycles == 2240 + 2 * 300


def test_fork_cost_counts_when_reading_in_place():
    # windows of at most 2 rows (free 1 KiB): 32 tiles cost 2,240 + 9,600; in place 4,588
    p = plan(300, free=1024)
    assert p.rows_per_tile == (0,) and p.cycles == 2240 + 300 + 2048
