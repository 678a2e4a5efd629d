"""optimum's `text-generation` ONNX exports (no KV cache) of one zoo model per family
(tests/hf_zoo.py), imported as a user would: logits within 1e-4 of onnxruntime on the same
file, its extra inputs bound (attention_mask = ones, position_ids = 0..T-1) and the binding
stated in the IR.

The exports run once per session in the side environment scripts/setup.sh makes
(.venv-optimum: optimum-onnx needs transformers < 4.58); without it these tests are skipped
(fail under CI=true).
"""

from __future__ import annotations

import numpy as np
import pytest

from irtool.frontend.load import import_model
from irtool.interpreter.runner import ModelRunner
from tests import hf_zoo
from tests.requirements import need, need_module

need_module("onnxruntime")

IDS = [3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8, 9, 7, 9, 3, 2, 3, 8, 4]  # past window 8


@pytest.fixture(scope="session")
def optimum_exports(tmp_path_factory):
    need("optimum")
    return hf_zoo.export_optimum(hf_zoo.OPTIMUM_FAMILIES, tmp_path_factory.mktemp("optimum"))


@pytest.mark.parametrize("name", hf_zoo.OPTIMUM_FAMILIES)
def test_optimum_export_logits_match_onnxruntime(optimum_exports, name):
    import onnx

    path = optimum_exports[name]
    inputs = [i.name for i in onnx.load(path, load_external_data=False).graph.input]
    assert inputs[:2] == ["input_ids", "attention_mask"]
    assert not any(i.startswith("past_key_values") for i in inputs)
    module, store = import_model(path)
    got = ModelRunner(module, store).forward(IDS)
    want = hf_zoo.onnxruntime_logits(path, IDS)
    assert float(np.abs(got - want).max() / np.abs(want).max()) < 1e-4
    assert hf_zoo.attention_windows(module) == {hf_zoo.BY_NAME[name].window}
    bound = "attention_mask = ones [1, T]" + (
        "; position_ids = 0..T-1 [1, T]" if "position_ids" in inputs else "")
    assert module.attributes["irtool.onnx_bound_inputs"].data == bound
