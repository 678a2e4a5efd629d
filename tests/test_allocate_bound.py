"""The capacity-aware access-cost bound (passes/allocate_bound.py) and the solver it saves.

The reference is CP-SAT itself on the same problem: the bound is never above the proven
optimum, and whenever `plan_memory` keeps the greedy plan without the solver, that plan's
access cost and its sum of peaks are the solver's optimal ones.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from xdsl.passes import PassPipeline

from irtool.context import make_context
from irtool.liveness import Buffer, Liveness, analyze
from irtool.passes import get_all_passes
from irtool.passes.allocate import (
    GREEDY_IS_OPTIMAL,
    Problem,
    best_greedy_plan,
    plan_memory,
    solve_cpsat,
)
from irtool.passes.allocate_bound import capacity_cost_bound
from irtool.targets.description import parse_target
from irtool.targets.registry import load_target

HORIZON = 12


def target(fast: int, mid: int | None):
    """A fast small memory, optionally a middle one, and a large slow one."""
    memories = [{"name": "fast", "size": fast, "alignment": 4, "read_cost": 1,
                 "write_cost": 1, "read_only": False}]
    if mid is not None:
        memories.append({"name": "mid", "size": mid, "alignment": 8, "read_cost": 2,
                         "write_cost": 3, "read_only": False})
    memories.append({"name": "slow", "size": 1 << 16, "alignment": 4, "read_cost": 5,
                     "write_cost": 5, "read_only": False})
    return parse_target({"name": "t", "memories": memories})


def buffers(draw) -> list[Buffer]:
    out = []
    for i in range(draw(st.integers(0, 5))):  # persistent: live over the whole program
        size = draw(st.sampled_from([16, 32, 48, 64]))
        out.append(Buffer(f"@p{i}", "state", size, 4, 0, HORIZON, None,
                          reads=draw(st.integers(1, 3)), writes=1))
    for i in range(draw(st.integers(1, 6))):
        start = draw(st.integers(0, HORIZON - 1))
        end = draw(st.integers(start + 1, HORIZON))
        out.append(Buffer(f"%t{i}", "activation", draw(st.sampled_from([8, 16, 24, 40])), 4,
                          start, end, None, reads=draw(st.integers(1, 4)), writes=1))
    return out


@st.composite
def problems(draw) -> Problem:
    bufs = buffers(draw)
    fast = draw(st.sampled_from([32, 48, 64, 96, 128]))
    mid = draw(st.sampled_from([None, 40, 64]))
    return Problem(Liveness(bufs, HORIZON, {}), target(fast, mid))


def cpsat_optimum(problem: Problem) -> tuple[int, int]:
    """(access cost, sum of peaks) of CP-SAT's proven optimal plan."""
    result = solve_cpsat(problem, best_greedy_plan(problem), 10.0)
    assert result is not None and result.status == "OPTIMAL"
    return plan_figures(problem, result.placements)


def plan_figures(problem: Problem, placements) -> tuple[int, int]:
    cost = sum(problem.cost(b, problem.target.memory(placements[b.name].space))
               for b in problem.buffers)
    peaks = problem.peaks(placements)
    stacks = problem.stack_heights(placements)
    return cost, sum(max(peaks.get(m, 0), stacks[m]) for m in stacks)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(problems())
def test_the_bound_never_exceeds_the_solvers_optimum_and_the_shortcut_keeps_it(problem):
    if best_greedy_plan(problem) is None:
        return  # nothing to compare: the pass asks the solver anyway
    cost, peaks = cpsat_optimum(problem)
    bound = capacity_cost_bound(problem)
    if bound is not None:
        assert bound <= cost
    plan = plan_memory(problem.live, problem.target, 10.0)
    if plan.solver == GREEDY_IS_OPTIMAL:
        assert plan_figures(problem, plan.placements) == (cost, peaks)


def test_kv_caches_that_crowd_the_fast_memory():
    """Five 32-byte caches, a 96-byte fast memory and activations that want it too: two
    caches there leave room for every activation, three leave none. The bound sees that,
    and it is the greedy plan's cost (by hand: each cache costs 96 in fast, 480 in slow)."""
    caches = [Buffer(f"@c{i}", "state", 32, 4, 0, HORIZON, None, reads=2, writes=1)
              for i in range(5)]
    acts = [Buffer(f"%a{i}", "activation", 32, 4, 2 * i, 2 * i + 2, None, reads=2, writes=1)
            for i in range(6)]
    problem = Problem(Liveness(caches + acts, HORIZON, {}), target(96, None))
    by_hand = 2 * 96 + 3 * 480 + 6 * 96  # two caches fast, activations fast
    assert capacity_cost_bound(problem) == by_hand
    plan = plan_memory(problem.live, problem.target, 10.0)
    assert plan.solver == GREEDY_IS_OPTIMAL
    assert plan_figures(problem, plan.placements) == cpsat_optimum(problem)


def test_stories260k_on_riscv_ulp_needs_no_solver(shared_models):
    """`irtool compile`'s case (128 positions): the ten KV caches do not all fit the DTIM; the
    bound still proves the greedy plan, whose cost and peaks are CP-SAT's."""
    from irtool.frontend.load import import_model

    module, _ = import_model(shared_models / "stories260K" / "stories260K.bin")
    spec = ('canonicalize,cse,extract-kv-cache{prefill=token-by-token capacity=128},'
            'bufferize{target="riscv-ulp"}')  # as its pipeline has them, then allocate with:
    PassPipeline.parse_spec(get_all_passes(), spec).apply(make_context(), module)
    description = load_target("riscv-ulp").description
    problem = Problem(analyze(module), description, copy_weights=False)
    plan = plan_memory(problem.live, description, 10.0, copy_weights=False)
    assert plan.solver == GREEDY_IS_OPTIMAL
    assert any(problem.cost(b, m) < problem.cost(b, description.memory(plan.placements[
        b.name].space)) for b in problem.buffers for m in problem.options[b.name])
    assert plan_figures(problem, plan.placements) == cpsat_optimum(problem)
