"""irtool.blas: the thread count and the kernels of the OpenBLAS numpy loaded, read from the
library itself. Checked in fresh interpreters, where OPENBLAS_CORETYPE and
OPENBLAS_NUM_THREADS choose them as the library loads (OpenBLAS's documented variables)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

PROBE = """
import json, numpy
from irtool.blas import _openblas_controls, blas_threads, openblas_corename
controls = _openblas_controls()
before = controls[0]() if controls else None
with blas_threads(1):
    inside = controls[0]() if controls else None
print(json.dumps({"core": openblas_corename(), "threads": before, "inside": inside,
                  "after": controls[0]() if controls else None}))
"""


def probe(**env: str) -> dict:
    base = {k: v for k, v in os.environ.items()
            if k not in ("OPENBLAS_CORETYPE", "OPENBLAS_NUM_THREADS", "GOTO_NUM_THREADS",
                         "OMP_NUM_THREADS")}
    out = subprocess.run([sys.executable, "-c", PROBE], env={**base, **env},
                         capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def _has_avx2() -> bool:
    try:
        with open("/proc/cpuinfo") as f:
            return "avx2" in f.read().split()
    except OSError:
        return False


def test_the_kernels_and_threads_the_environment_chose_are_reported():
    if not _has_avx2():
        pytest.skip("the Haswell kernels need AVX2")
    seen = probe(OPENBLAS_CORETYPE="Haswell", OPENBLAS_NUM_THREADS="2")
    if seen["core"] is None:
        pytest.skip("numpy here is not linked with OpenBLAS")
    assert seen["core"] == "Haswell"
    assert (seen["threads"], seen["inside"], seen["after"]) == (2, 1, 2)


def test_without_a_setting_openblas_names_its_own_choice():
    """The name reported without a setting is one OpenBLAS accepts back as a setting."""
    seen = probe()
    if seen["core"] is None:
        pytest.skip("numpy here is not linked with OpenBLAS")
    assert seen["core"]
    assert probe(OPENBLAS_CORETYPE=seen["core"])["core"] == seen["core"]
