"""Tests for the llama2.c checkpoint reader.

The real checkpoint (stories260K) is checked against its README and against floats read by hand
from the raw bytes; small synthetic checkpoints cover the untied classifier and the error paths.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest

from irtool.errors import IrtoolError
from irtool.frontend.llama2c import Llama2cConfig, read_llama2c_checkpoint
from tests.requirements import need

MODELS = Path(__file__).resolve().parents[1].parent / "shared" / "models"
STORIES = MODELS / "stories260K" / "stories260K.bin"


@pytest.fixture
def stories_path() -> Path:
    need("models")
    assert STORIES.is_file(), f"reference model not found: {STORIES}"
    return STORIES


def _float_at(raw: bytes, index: int) -> float:
    """The index-th float32 after the 28-byte header, read without numpy."""
    return struct.unpack_from("<f", raw, 28 + 4 * index)[0]


def _write_checkpoint(
    path: Path, header: tuple[int, ...], n_floats: int, seed: int = 0
) -> np.ndarray:
    data = np.random.default_rng(seed).standard_normal(n_floats).astype("<f4")
    path.write_bytes(struct.pack("<7i", *header) + data.tobytes())
    return data


def _n_floats(dim, hidden, layers, heads, kv, vocab, seq_len, shared=True) -> int:
    hd = dim // heads
    per_layer = 2 * dim + 2 * dim * heads * hd + 2 * dim * kv * hd + 3 * dim * hidden
    n = vocab * dim + layers * per_layer
    n += dim + seq_len * hd  # final norm + both RoPE tables of seq_len * hd/2
    return n + (0 if shared else vocab * dim)


# --------------------------------------------------------------------------- real checkpoint


def test_stories260k_config(stories_path):
    cfg = read_llama2c_checkpoint(stories_path).config
    assert cfg == Llama2cConfig(
        dim=64, hidden_dim=172, n_layers=5, n_heads=8, n_kv_heads=4,
        vocab_size=512, seq_len=512, shared_classifier=True,
    )
    assert cfg.head_dim == 8


def test_stories260k_shapes_and_param_count(stories_path):
    ckpt = read_llama2c_checkpoint(stories_path)
    w = ckpt.weights
    assert w["tok_embeddings"].shape == (512, 64)
    assert w["layers.0.wq"].shape == (64, 64)
    assert w["layers.4.wk"].shape == (32, 64)
    assert w["layers.4.wv"].shape == (32, 64)
    assert w["layers.2.wo"].shape == (64, 64)
    assert w["layers.3.w1"].shape == (172, 64)
    assert w["layers.3.w2"].shape == (64, 172)
    assert w["layers.3.w3"].shape == (172, 64)
    assert w["layers.1.attention_norm"].shape == (64,)
    assert w["layers.1.ffn_norm"].shape == (64,)
    assert w["norm"].shape == (64,)
    assert all(a.dtype == np.float32 for a in w.values())
    assert len(w) == 3 + 9 * 5
    # Shared classifier: the output *is* the embedding, counted once.
    assert w["output"] is w["tok_embeddings"]
    n_params = sum(a.size for name, a in w.items() if name != "output")
    assert n_params == 260_032


def test_stories260k_weights_match_raw_bytes(stories_path):
    raw = stories_path.read_bytes()
    w = read_llama2c_checkpoint(stories_path).weights
    vocab, dim, layers, kv_dim, hidden = 512, 64, 5, 32, 172

    wq_start = vocab * dim + layers * dim  # after embeddings and rms_att_weight
    assert w["layers.0.wq"][0, 0] == _float_at(raw, wq_start)
    assert w["layers.0.wq"][-1, -1] == _float_at(raw, wq_start + dim * dim - 1)
    # Row-major, out x in: element [1, 0] is one input-row further on.
    assert w["layers.0.wq"][1, 0] == _float_at(raw, wq_start + dim)
    assert w["layers.1.wq"][0, 0] == _float_at(raw, wq_start + dim * dim)

    final_start = (
        vocab * dim
        + layers * dim  # rms_att
        + layers * dim * dim  # wq
        + 2 * layers * kv_dim * dim  # wk, wv
        + layers * dim * dim  # wo
        + layers * dim  # rms_ffn
        + 3 * layers * hidden * dim  # w1, w2, w3
    )
    assert w["norm"][0] == _float_at(raw, final_start)
    assert w["norm"][-1] == _float_at(raw, final_start + dim - 1)
    assert w["tok_embeddings"][-1, -1] == _float_at(raw, vocab * dim - 1)


# --------------------------------------------------------------------------- synthetic files


def test_unshared_classifier_follows_rope_tables(tmp_path):
    dims = (16, 24, 2, 4, 2, 10, 8)  # dim, hidden, layers, heads, kv, vocab, seq_len
    n = _n_floats(*dims, shared=False)
    path = tmp_path / "unshared.bin"
    header = dims[:5] + (-dims[5], dims[6])
    data = _write_checkpoint(path, header, n)
    ckpt = read_llama2c_checkpoint(path)
    assert ckpt.config.shared_classifier is False
    assert ckpt.config.vocab_size == 10
    np.testing.assert_array_equal(ckpt.weights["output"], data[-10 * 16 :].reshape(10, 16))
    np.testing.assert_array_equal(ckpt.weights["tok_embeddings"], data[: 10 * 16].reshape(10, 16))
    assert ckpt.weights["layers.1.wk"].shape == (8, 16)


def test_file_shorter_than_header(tmp_path):
    path = tmp_path / "short.bin"
    path.write_bytes(b"\x01\x02\x03")
    with pytest.raises(IrtoolError, match="shorter than the 28-byte header") as exc:
        read_llama2c_checkpoint(path)
    assert str(path) in str(exc.value)


def test_missing_file(tmp_path):
    path = tmp_path / "nope.bin"
    with pytest.raises(IrtoolError, match="cannot read") as exc:
        read_llama2c_checkpoint(path)
    assert str(path) in str(exc.value)


def test_truncated_checkpoint(tmp_path, stories_path):
    raw = stories_path.read_bytes()
    path = tmp_path / "truncated.bin"
    path.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(IrtoolError) as exc:
        read_llama2c_checkpoint(path)
    msg = str(exc.value)
    assert str(path) in msg
    assert "truncated or wrong-format checkpoint" in msg
    assert f"expected {len(raw)} bytes" in msg
    assert f"found {len(raw) // 2} bytes" in msg
    assert "dim=64" in msg


def test_trailing_bytes_are_rejected(tmp_path):
    dims = (16, 24, 1, 4, 4, 10, 8)
    path = tmp_path / "long.bin"
    _write_checkpoint(path, dims, _n_floats(*dims) + 1)
    with pytest.raises(IrtoolError, match="truncated or wrong-format checkpoint"):
        read_llama2c_checkpoint(path)


@pytest.mark.parametrize(
    "header, field, value",
    [
        ((0, 24, 1, 4, 4, 10, 8), "dim", 0),
        ((16, -3, 1, 4, 4, 10, 8), "hidden_dim", -3),
        ((16, 24, 1, 4, 3, 10, 8), "n_kv_heads", 3),  # 4 heads not divisible by 3 kv heads
        ((18, 24, 1, 4, 4, 10, 8), "dim", 18),  # not divisible by n_heads
        ((16, 24, 1_000_000, 4, 4, 10, 8), "n_layers", 1_000_000),
        ((16, 24, 1, 4, 4, 0, 8), "vocab_size", 0),
    ],
)
def test_implausible_header(tmp_path, header, field, value):
    path = tmp_path / "bad.bin"
    path.write_bytes(struct.pack("<7i", *header) + bytes(64))
    with pytest.raises(IrtoolError) as exc:
        read_llama2c_checkpoint(path)
    msg = str(exc.value)
    assert str(path) in msg
    assert "not a llama2.c checkpoint (bad header" in msg
    assert f"{field} = {value}" in msg


def test_random_bytes_are_not_a_checkpoint(tmp_path):
    path = tmp_path / "model.onnx"
    path.write_bytes(b"\x08\x07\x12\x07pytorch\x1a\x052.1.0" + bytes(100))
    with pytest.raises(IrtoolError, match="not a llama2.c checkpoint"):
        read_llama2c_checkpoint(path)


def test_version2_magic(tmp_path):
    path = tmp_path / "v2.bin"
    path.write_bytes(struct.pack("<Ii7i", 0x616B3432, 2, 64, 172, 5, 8, 4, 512, 512) + bytes(256))
    with pytest.raises(IrtoolError) as exc:
        read_llama2c_checkpoint(path)
    msg = str(exc.value)
    assert "unsupported llama2.c format version 2" in msg
    assert str(path) in msg
