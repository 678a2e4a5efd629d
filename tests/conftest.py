"""Shared fixtures: the reference models in ../shared/models (beside the checkout)."""

import os

# The models are tiny: BLAS threads only add contention on a 2-core machine (10-20x slower
# attention under load). Set before numpy is imported by any test module.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_MODELS = ROOT.parent / "shared" / "models"


@pytest.fixture(scope="session")
def shared_models() -> Path:
    if not SHARED_MODELS.is_dir():
        pytest.skip(f"reference models not found at {SHARED_MODELS}")
    return SHARED_MODELS
