"""calibrate's numbers: the `irtool.act_range` of every linear against the inputs captured
by a numpy forward pass written here.

The forward pass is tests/numpy_llama.py's (stories260K written from the model's description,
on the weights of the imported store); its logits are checked against the torch golden first.
It records every linear's input per sequence, and the expected ranges are the running min/max
(and percentiles) over all the sequences: a calibration that kept only one sequence's range
would differ, and the test checks that it would, for these sequences.
"""

from __future__ import annotations

import numpy as np
import pytest

from irtool.dialects import transformer as tf
from irtool.frontend.load import import_model
from irtool.passes.calibrate import act_range, calibrate_module
from irtool.quality import load_sequences
from tests.numpy_llama import LAYERS, float_linear, forward, store_weights

SEQUENCES, LENGTH = 4, 40


@pytest.fixture(scope="module")
def stories(shared_models):
    d = shared_models / "stories260K"
    seqs = [s[:LENGTH] for s in load_sequences(d / "eval_tokens.json", "calib")[:SEQUENCES]]
    return d, seqs


@pytest.fixture(scope="module")
def captured(stories):
    """Per weight name, the inputs its linear saw, one array per sequence."""
    d, seqs = stories
    _, store = import_model(d / "stories260K.bin")
    weights = store_weights(store)
    golden = np.load(d / "golden_logits.npz")
    logits = forward(weights, golden["input_ids"][0])
    np.testing.assert_allclose(logits, golden["logits"][0], rtol=0, atol=1e-4)
    seen: dict[str, list[np.ndarray]] = {}

    def capture(name: str, x: np.ndarray, w: np.ndarray) -> np.ndarray:
        seen.setdefault(name, []).append(x.astype(np.float32))
        return float_linear(name, x, w)

    for s in seqs:
        forward(weights, s, capture)
    assert len(seen) == 7 * LAYERS + 1 and all(len(v) == SEQUENCES for v in seen.values())
    return seen


def calibrated(stories, percentile: float) -> dict[str, tuple[float, float]]:
    d, seqs = stories
    module, store = import_model(d / "stories260K.bin")
    calibrate_module(module, store, seqs, percentile=percentile)
    ranges = {}
    for op in module.walk():
        if isinstance(op, tf.LinearOp):
            name = op.weight.owner.weight_name.data
            assert name not in ranges
            ranges[name] = tuple(float(v) for v in act_range(op))
    return ranges


def _close(got: tuple[float, float], want: tuple[float, float]) -> bool:
    scale = max(abs(want[0]), abs(want[1]))
    return np.allclose(got, want, rtol=0, atol=1e-4 * scale)


def test_ranges_are_the_min_and_max_over_all_sequences(stories, captured):
    ranges = calibrated(stories, 100.0)
    assert set(ranges) == set(captured)
    for name, inputs in captured.items():
        want = (min(float(x.min()) for x in inputs), max(float(x.max()) for x in inputs))
        assert _close(ranges[name], want), (name, ranges[name], want)
    # these sequences tell the running range from any single sequence's range
    for k in range(SEQUENCES):
        single = {n: (float(v[k].min()), float(v[k].max())) for n, v in captured.items()}
        assert sum(not _close(ranges[n], single[n]) for n in captured) >= len(captured) // 4


def test_percentile_ranges_pool_all_sequences(stories, captured):
    p = 99.0
    ranges = calibrated(stories, p)
    for name, inputs in captured.items():
        pooled = np.concatenate([x.ravel() for x in inputs]).astype(np.float64)
        want = (float(np.percentile(pooled, 100 - p)), float(np.percentile(pooled, p)))
        assert _close(ranges[name], want), (name, ranges[name], want)
        full = (float(pooled.min()), float(pooled.max()))
        assert ranges[name][0] > full[0] and ranges[name][1] < full[1]  # really cut
