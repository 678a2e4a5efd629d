"""SLR placement: every compute unit to one of the device's SLRs, within each SLR's budgets.

The U280 is three dies (SLRs); the HBM sits beside SLR0, so an m_axi port of a kernel placed
in SLR1 crosses one die boundary to reach it and one in SLR2 two (Vitis inserts the crossing
registers; the cost is latency and the limited die-to-die wires, not bandwidth, so the time
estimate is unchanged and the crossings are reported). CP-SAT places the kernels (one compute
unit each) so that each SLR's DSP, BRAM36, URAM and LUT sums stay within what the platform
leaves to kernels there (the description's `slr_budgets`), minimising the port crossings
(ports x SLR distance from the HBM); the answer is exact (the model is tiny). A design that
fits no placement is refused, naming what it needs against what the device has.
"""

from __future__ import annotations

from dataclasses import dataclass

from ortools.sat.python import cp_model

from irtool.errors import IrtoolError
from irtool.targets.u280_hls.resources import Resources

KINDS = ("dsp", "bram36", "uram", "luts")


@dataclass
class Placement:
    slr: dict[str, str]
    """Kernel kind -> SLR name."""
    resources: dict[str, Resources]
    budgets: list[dict]
    ports: dict[str, int]
    hbm_slr: str

    def used(self, name: str) -> dict[str, int]:
        return {r: sum(getattr(self.resources[k], r) for k, s in self.slr.items() if s == name)
                for r in KINDS}

    @property
    def crossings(self) -> int:
        return sum(self.ports[k] * _distance(self.budgets, s, self.hbm_slr)
                   for k, s in self.slr.items())

    def to_json(self) -> dict:
        return {"slr": self.slr, "hbm_slr": self.hbm_slr, "crossings": self.crossings,
                "kernels": {k: {**r.as_dict(), "ports": self.ports[k]}
                            for k, r in self.resources.items()},
                "budgets": self.budgets}

    def table(self) -> str:
        rows = ["# Kernel resources and SLR placement (estimated before v++; see "
                "targets/u280_hls/resources.py)", "",
                "| kernel | SLR | DSP | BRAM36 | URAM | LUT | m_axi ports |",
                "| --- | --- | ---: | ---: | ---: | ---: | ---: |"]
        for k, r in self.resources.items():
            rows.append(f"| {k} | {self.slr[k]} | {r.dsp:,} | {r.bram36:,} | {r.uram:,} | "
                        f"{r.luts:,} | {self.ports[k]} |")
        rows += ["", "| SLR | DSP | BRAM36 | URAM | LUT |", "| --- | ---: | ---: | ---: | ---: |"]
        for b in self.budgets:
            u = self.used(b["name"])
            rows.append(" | ".join([f"| {b['name']}"] + [f"{u[r]:,} of {b[r]:,}" for r in KINDS])
                        + " |")
        rows.append(f"\nHBM beside {self.hbm_slr}: {self.crossings} port crossings "
                    "(ports x SLR distance).")
        return "\n".join(rows) + "\n"


def _distance(budgets: list[dict], a: str, b: str) -> int:
    names = [x["name"] for x in budgets]
    return abs(names.index(a) - names.index(b))


def place_kernels(resources: dict[str, Resources], ports: dict[str, int], budgets: list[dict],
                  hbm_slr: str, time_limit: float = 10.0) -> Placement:
    """The placement of the kernels on the SLRs (see the module docstring)."""
    for r in KINDS:
        need = sum(getattr(x, r) for x in resources.values())
        have = sum(b[r] for b in budgets)
        if need > have:
            raise IrtoolError(f"u280-hls: the design does not fit the device: its kernels need "
                              f"{need:,} {r.upper()} and the {len(budgets)} SLRs offer {have:,}; "
                              "use fewer stripes (assign-hbm-banks{stripes=N}) or a smaller "
                              "model")
    for k, x in resources.items():
        if not any(all(getattr(x, r) <= b[r] for r in KINDS) for b in budgets):
            worst = max(KINDS, key=lambda r: getattr(x, r) / max(1, max(b[r] for b in budgets)))
            raise IrtoolError(f"u280-hls: kernel {k} does not fit in any one SLR: it needs "
                              f"{getattr(x, worst):,} {worst.upper()}, the largest SLR offers "
                              f"{max(b[worst] for b in budgets):,}; use fewer stripes "
                              "(assign-hbm-banks{stripes=N})")
    m = cp_model.CpModel()
    kernels = list(resources)
    x = {(k, s): m.NewBoolVar(f"x_{k}_{s}") for k in kernels for s in range(len(budgets))}
    for k in kernels:
        m.AddExactlyOne(x[k, s] for s in range(len(budgets)))
    for s, b in enumerate(budgets):
        for r in KINDS:
            m.Add(sum(getattr(resources[k], r) * x[k, s] for k in kernels) <= b[r])
    m.Minimize(sum(ports[k] * _distance(budgets, b["name"], hbm_slr) * x[k, s]
                   for k in kernels for s, b in enumerate(budgets)))
    solver = cp_model.CpSolver()
    solver.parameters.max_time_in_seconds = time_limit
    solver.parameters.num_workers = 1
    status = solver.Solve(m)
    if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        raise IrtoolError(f"u280-hls: the design does not fit the device: no placement of its "
                          f"{len(kernels)} kernels keeps every SLR within its budgets "
                          f"({solver.StatusName(status)}); use fewer stripes "
                          "(assign-hbm-banks{stripes=N})")
    slr = {k: budgets[s]["name"] for k in kernels for s in range(len(budgets))
           if solver.Value(x[k, s])}
    return Placement(slr, resources, budgets, ports, hbm_slr)


def place_design(bp, stripes: int, description) -> Placement:
    """Estimate the kernels of `bp` and place them with the target's budgets."""
    from irtool.block_parts import ports
    from irtool.targets.u280_hls.resources import design_resources

    cost = description.engine("fabric").cost
    resources = design_resources(bp, stripes)
    nports = {p.kind: sum(q.is_buffer for q in ports(p, stripes)) for p in bp.kinds()}
    return place_kernels(resources, nports, cost["slr_budgets"], cost.get("hbm_slr", "SLR0"))
