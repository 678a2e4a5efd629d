"""stories260K imported from its llama2.c checkpoint reproduces the PyTorch goldens.

References: golden_logits.npz and golden.json in ../shared/models/stories260K (computed with
PyTorch, cross-checked with llama2.c's run.c), independent of irtool.
"""

import json
import shutil

import numpy as np
import pytest

from irtool.errors import IrtoolError
from irtool.frontend.load import DEFAULT_MODEL, import_model
from irtool.interpreter.runner import ModelRunner
from irtool.module_io import load_module, module_text, write_module
from irtool.weights import store_path_for


@pytest.fixture(scope="module")
def stories(shared_models):
    return import_model(shared_models / "stories260K" / "stories260K.bin")


def test_logits_equal_golden(stories, shared_models):
    golden = np.load(shared_models / "stories260K" / "golden_logits.npz")
    logits = ModelRunner(*stories).forward(golden["input_ids"][0])
    assert logits.shape == golden["logits"].shape[1:]
    assert np.abs(logits - golden["logits"][0]).max() < 1e-4


def test_greedy_tokens_equal_golden(stories, shared_models):
    golden = json.loads((shared_models / "stories260K" / "golden.json").read_text())
    assert ModelRunner(*stories).generate(golden["prompt_ids"], 64) == golden["new_ids"]


def test_bundled_default_model_is_stories260k(shared_models):
    shared = shared_models / "stories260K" / "stories260K.bin"
    assert DEFAULT_MODEL.read_bytes() == shared.read_bytes()


def test_printed_ir_is_small_and_weights_live_in_the_store(stories, tmp_path, shared_models):
    module, store = stories
    text = module_text(module)
    assert len(text) < 50_000
    # 260,032 parameters, plus the rope tables: all in the store, none in the text
    assert sum(a.size for k, a in store.arrays.items() if not k.startswith("rope.")) == 260_032
    assert "dense" not in text
    write_module(module, store, tmp_path / "m.mlir")
    module2, store2 = load_module(tmp_path / "m.mlir")
    golden = np.load(shared_models / "stories260K" / "golden_logits.npz")
    logits = ModelRunner(module2, store2).forward(golden["input_ids"][0][:9])
    assert np.abs(logits - golden["logits"][0][:9]).max() < 1e-4


def test_missing_and_mismatched_store(stories, tmp_path, shared_models):
    module, store = stories
    write_module(module, store, tmp_path / "m.mlir")
    moved = tmp_path / "alone"
    moved.mkdir()
    shutil.copy(tmp_path / "m.mlir", moved / "m.mlir")
    with pytest.raises(IrtoolError, match=r"weight store .*m\.weights\.npz' not found"):
        load_module(moved / "m.mlir")
    # a store of another model beside it: names or shapes disagree
    other, other_store = import_model(shared_models / "stories260K" / "stories260K.bin")
    other_store.arrays["layers.0.wq"] = np.zeros((3, 3), np.float32)
    other_store.save(store_path_for(moved / "m.mlir"))
    with pytest.raises(IrtoolError, match=r'weight "layers.0.wq" .* float32\[3, 3\] but the '
                                          r"module declares tensor<64x64xf32>"):
        load_module(moved / "m.mlir")
    del other_store.arrays["layers.0.wq"]
    other_store.save(store_path_for(moved / "m.mlir"))
    with pytest.raises(IrtoolError, match=r'has no weight "layers.0.wq"'):
        load_module(moved / "m.mlir")


def test_token_outside_vocabulary(stories):
    with pytest.raises(IrtoolError,
                       match=r"token id 512 \(position 1\) is outside the vocabulary 0..511"):
        ModelRunner(*stories).forward([1, 512])
