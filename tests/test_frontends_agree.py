"""The two frontends of stories260K (llama2.c checkpoint, ONNX export) give the same model."""

import numpy as np

from irtool.frontend.load import import_model
from irtool.interpreter.runner import ModelRunner


def test_llama2c_import_equals_onnx_import(shared_models):
    d = shared_models / "stories260K"
    from_bin = ModelRunner(*import_model(d / "stories260K.bin"))
    from_onnx = ModelRunner(*import_model(d / "stories260K.onnx"))
    rng = np.random.default_rng(7)
    for length in (1, 17, 100):
        tokens = rng.integers(0, 512, size=length)
        a, b = from_bin.forward(tokens), from_onnx.forward(tokens)
        assert np.abs(a - b).max() < 1e-4, length
