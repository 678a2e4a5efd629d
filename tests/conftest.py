"""Shared fixtures: the reference models in ../shared/models (beside the checkout)."""

import os

# The models are tiny: BLAS threads only add contention on a 2-core machine (10-20x slower
# attention under load). Set before numpy is imported by any test module.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

from pathlib import Path

import pytest

from tests.requirements import SHARED_MODELS, need

ROOT = Path(__file__).resolve().parents[1]


def pytest_configure(config):
    config.addinivalue_line("markers", "needs(*requirements): what the test needs from the "
                            "machine (tests/requirements.py): skipped without it, failed under CI")


@pytest.fixture(autouse=True)
def _requirements(request):
    """`@pytest.mark.needs("riscv", "qemu")` on a test (or `pytestmark` of a module)."""
    for mark in request.node.iter_markers("needs"):
        need(*mark.args)


@pytest.fixture(scope="session")
def shared_models() -> Path:
    need("models")
    return SHARED_MODELS
