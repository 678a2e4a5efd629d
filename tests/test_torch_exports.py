"""The ONNX importer on real torch.onnx.export output of models with other shapes.

The models (tests/torch_models.py) are exported in the test exactly as the shared models were
(classic exporter, opset 17, dynamic length), then imported and compared at several lengths up
to the maximum with two references: the torch module's own forward pass (what the model IS)
and onnxruntime on the exported file (what the file says). Needs torch (tests/requirements.py:
skipped without it, a failure under CI; scripts/setup.sh installs the CPU build when the
machine has it).
"""

import numpy as np
import pytest

from tests.requirements import need_module

torch = need_module("torch")
ort = need_module("onnxruntime")

from irtool.frontend.load import import_model  # noqa: E402
from irtool.interpreter.runner import ModelRunner  # noqa: E402
from tests.torch_models import MODELS, build, export  # noqa: E402


@pytest.mark.parametrize("name", sorted(MODELS))
def test_exported_model_matches_torch_and_onnxruntime(name, tmp_path):
    path = tmp_path / f"{name}.onnx"
    max_len = export(name, path)
    runner = ModelRunner(*import_model(path))
    assert runner.max_seq_len == max_len
    model = build(name)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(1)
    for length in (1, 2, max_len // 2 + 1, max_len):
        ids = rng.integers(0, 40, size=length)
        got = runner.forward(ids)
        with torch.no_grad():
            want = model(torch.from_numpy(ids[None].astype(np.int64)))[0].numpy()
        assert got.shape == want.shape
        assert np.abs(got - want).max() < 1e-4, (name, length, "torch")
        (reference,) = session.run(None, {"input_ids": ids[None].astype(np.int64)})
        assert np.abs(got - reference[0]).max() < 1e-4, (name, length, "onnxruntime")
