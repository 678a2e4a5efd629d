"""The entry points' start-up: numpy's OpenBLAS loads with one thread (irtool.startup).

Checked in a fresh interpreter, as the variable only matters while the library loads: after
importing an entry point's module (irtool, irtool-opt, irtool-run) OpenBLAS reports one
thread, the variable is gone again (children and the importing process keep their own
environment), and a user's own setting is kept.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

PROBE = """
import importlib, json, os, sys
importlib.import_module(sys.argv[1])
from irtool.blas import _openblas_controls
controls = _openblas_controls()
print(json.dumps({"threads": controls[0]() if controls else None,
                  "env": os.environ.get("OPENBLAS_NUM_THREADS")}))
"""


def probe(entry_point: str, env_value: str | None) -> dict:
    env = {k: v for k, v in os.environ.items()  # conftest pins these for the tests' own numpy
           if k not in ("OPENBLAS_NUM_THREADS", "GOTO_NUM_THREADS", "OMP_NUM_THREADS")}
    if env_value is not None:
        env["OPENBLAS_NUM_THREADS"] = env_value
    out = subprocess.run([sys.executable, "-c", PROBE, entry_point], env=env, capture_output=True,
                         text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


@pytest.mark.parametrize("entry_point", ["irtool.cli", "irtool.opt", "irtool.run"])
def test_entry_points_load_openblas_with_one_thread_and_restore_the_environment(entry_point):
    seen = probe(entry_point, None)
    if seen["threads"] is None:
        pytest.skip("numpy here is not linked with OpenBLAS")
    assert seen == {"threads": 1, "env": None}


def test_a_users_openblas_setting_is_kept():
    seen = probe("irtool.cli", "2")
    if seen["threads"] is None:
        pytest.skip("numpy here is not linked with OpenBLAS")
    assert seen == {"threads": 2, "env": "2"}


EXIT_PROBE = """
import atexit, gc, importlib, sys
atexit.register(lambda: print("frozen at exit:", gc.get_freeze_count()))  # runs after main's
module = importlib.import_module(sys.argv[1])
gc.unfreeze()
try:
    module.main(["--help"])
except SystemExit:
    pass
print("frozen after main:", gc.get_freeze_count())
made_after_main = [[i] for i in range(50_000)]  # tracked by the collector
"""


@pytest.mark.parametrize("entry_point", ["irtool.cli", "irtool.opt", "irtool.run"])
def test_entry_points_freeze_everything_at_exit_only(entry_point):
    """The shutdown collections walk nothing (irtool.startup.no_collection_at_exit), and
    not before the process exits: a caller of main() keeps its collector."""
    out = subprocess.run([sys.executable, "-c", EXIT_PROBE, entry_point], capture_output=True,
                         text=True, check=True).stdout.splitlines()
    after_main = int(next(line for line in out if "after main" in line).split(":")[1])
    at_exit = int(out[-1].split(":")[1]) if out[-1].startswith("frozen at exit") else -1
    assert at_exit >= after_main + 50_000
