"""The ONNX importer on real torch.onnx.export output of models with other shapes.

The models (tests/torch_models.py) are exported in the test exactly as the shared models were
(classic exporter, opset 17, dynamic length), then imported and compared with onnxruntime on
the same file at several lengths up to the maximum. Skipped when torch is not installed
(scripts/setup.sh installs the CPU build when the machine has it).
"""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
ort = pytest.importorskip("onnxruntime")

from irtool.frontend.load import import_model  # noqa: E402
from irtool.interpreter.runner import ModelRunner  # noqa: E402
from tests.torch_models import MODELS, export  # noqa: E402


@pytest.mark.parametrize("name", sorted(MODELS))
def test_exported_model_matches_onnxruntime(name, tmp_path):
    path = tmp_path / f"{name}.onnx"
    max_len = export(name, path)
    runner = ModelRunner(*import_model(path))
    assert runner.max_seq_len == max_len
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(1)
    for length in (1, 2, max_len // 2 + 1, max_len):
        ids = rng.integers(0, 40, size=length)
        (reference,) = session.run(None, {"input_ids": ids[None].astype(np.int64)})
        assert np.abs(runner.forward(ids) - reference[0]).max() < 1e-4, (name, length)
