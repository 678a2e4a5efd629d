"""irtool.cpsat loads OR-Tools' CP-SAT without pandas, and leaves the process's pandas alone.

Each case runs in a fresh interpreter (a module import is once per process). The solver must
still solve (a small model with a known optimum), a later `import pandas` must give the real
pandas, and an OR-Tools that needed more of pandas at import must still load (the fallback).
"""

import subprocess
import sys
import textwrap

SOLVE = """
m = cp.CpModel()
x, y = m.new_int_var(0, 10, "x"), m.new_int_var(0, 10, "y")
m.add(x + 2 * y <= 14)
m.add(3 * x - y >= 0)
m.maximize(3 * x + 4 * y)
s = cp.CpSolver()
assert s.solve(m) == cp.OPTIMAL
assert (s.value(x), s.value(y), s.objective_value) == (10, 2, 38.0), (s.value(x), s.value(y))
"""


def _run(code: str) -> None:
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code) + SOLVE],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_cp_model_loads_without_pandas_and_pandas_stays_real():
    _run("""
        import sys
        from irtool.cpsat import cp_model
        cp = cp_model()
        assert "pandas" not in sys.modules
        assert cp_model() is cp
        import pandas
        assert hasattr(pandas, "DataFrame") and hasattr(pandas.Series, "iloc")
    """)


def test_cp_model_falls_back_to_a_normal_import():
    _run("""
        import sys, types
        import irtool.cpsat as c
        c._stand_in = lambda: types.ModuleType("pandas")  # lacks what cp_model reads
        cp = c.cp_model()
        assert hasattr(sys.modules["pandas"], "DataFrame")  # loaded for real this time
    """)
