"""Reader for llama2.c checkpoints (the legacy, headerless "version 0" format).

llama2.c stores a Llama-2 model as one flat binary file so that a C program can ``mmap`` it and
point straight into it.  The file has no magic number and no tensor names: it is a 28-byte header
of seven little-endian int32 values

    dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len

followed by float32 tensors in a fixed order, each stacked over all layers:

    token_embedding_table [vocab, dim]
    rms_att_weight        [n_layers, dim]
    wq                    [n_layers, n_heads*head_dim, dim]
    wk, wv                [n_layers, n_kv_heads*head_dim, dim]
    wo                    [n_layers, dim, n_heads*head_dim]
    rms_ffn_weight        [n_layers, dim]
    w1, w3                [n_layers, hidden_dim, dim]   (w2 [n_layers, dim, hidden_dim] in between)
    rms_final_weight      [dim]
    freq_cis_real, freq_cis_imag  [seq_len, head_dim/2] each (precomputed RoPE tables; skipped)
    wcls                  [vocab, dim]  (only when the classifier is not shared)

Matrices are in PyTorch ``nn.Linear`` layout (out x in).  A *negative* vocab_size is how the
format says that the classifier is not tied to the token embedding.

Because nothing in the file identifies it, the only defence against being handed the wrong file
is to check that the header is plausible and that the file size is exactly what the header
implies; both checks produce a user-facing :class:`~irtool.errors.IrtoolError` naming the file.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from irtool.errors import IrtoolError

__all__ = ["Llama2cConfig", "Llama2cCheckpoint", "read_llama2c_checkpoint"]

_HEADER = struct.Struct("<7i")
_HEADER_FIELDS = ("dim", "hidden_dim", "n_layers", "n_heads", "n_kv_heads", "vocab_size", "seq_len")
#: First uint32 of the newer llama2.c export formats (version 1 = fp32, version 2 = int8).
_AK42_MAGIC = 0x616B3432

# Upper bounds far above any real llama2.c model; they only exist to reject random bytes early
# with a message about the header instead of a confusing size mismatch or a huge allocation.
_MAX = {
    "dim": 1 << 16,
    "hidden_dim": 1 << 20,
    "n_layers": 1 << 10,
    "n_heads": 1 << 12,
    "n_kv_heads": 1 << 12,
    "vocab_size": 1 << 24,
    "seq_len": 1 << 24,
}


@dataclass(frozen=True)
class Llama2cConfig:
    """Model hyper-parameters from the checkpoint header.

    ``vocab_size`` is always positive here; the sign the file uses to mark an untied classifier is
    turned into ``shared_classifier``.  ``norm_eps`` and ``rope_theta`` are not stored in the
    file: they are the constants llama2.c's ``run.c`` hard-codes, recorded here so that consumers
    do not have to repeat them.
    """

    dim: int
    hidden_dim: int
    n_layers: int
    n_heads: int
    n_kv_heads: int
    vocab_size: int
    seq_len: int
    shared_classifier: bool
    norm_eps: float = 1e-5
    rope_theta: float = 10000.0

    @property
    def head_dim(self) -> int:
        """Size of one attention head (``dim // n_heads``)."""
        return self.dim // self.n_heads

    def _describe(self) -> str:
        return (
            f"dim={self.dim}, hidden_dim={self.hidden_dim}, n_layers={self.n_layers}, "
            f"n_heads={self.n_heads}, n_kv_heads={self.n_kv_heads}, vocab_size={self.vocab_size}, "
            f"seq_len={self.seq_len}, "
            f"{'shared' if self.shared_classifier else 'separate'} classifier"
        )


@dataclass
class Llama2cCheckpoint:
    """A parsed checkpoint: the config plus float32 weights keyed by PyTorch-style names.

    When the classifier is shared, ``weights["output"]`` is the *same array object* as
    ``weights["tok_embeddings"]``, which keeps the tying explicit (count it once).
    """

    config: Llama2cConfig
    weights: dict[str, np.ndarray] = field(default_factory=dict)


def _layout(cfg: Llama2cConfig) -> list[tuple[str, tuple[int, ...]]]:
    """The tensors of the file in storage order as (name, shape); ``None`` marks skipped data."""
    L, d, h, hd = cfg.n_layers, cfg.dim, cfg.hidden_dim, cfg.head_dim
    q, kv = cfg.n_heads * hd, cfg.n_kv_heads * hd
    layout = [
        ("tok_embeddings", (cfg.vocab_size, d)),
        ("attention_norm", (L, d)),
        ("wq", (L, q, d)),
        ("wk", (L, kv, d)),
        ("wv", (L, kv, d)),
        ("wo", (L, d, q)),
        ("ffn_norm", (L, d)),
        ("w1", (L, h, d)),
        ("w2", (L, d, h)),
        ("w3", (L, h, d)),
        ("norm", (d,)),
        (None, (cfg.seq_len, hd // 2)),  # freq_cis_real
        (None, (cfg.seq_len, hd // 2)),  # freq_cis_imag
    ]
    if not cfg.shared_classifier:
        layout.append(("output", (cfg.vocab_size, d)))
    return layout


def _check_header(path: Path, values: tuple[int, ...]) -> Llama2cConfig:
    """Validate the raw header and build the config, or explain why this is not a checkpoint."""
    raw = dict(zip(_HEADER_FIELDS, values, strict=True))

    def bad(why: str) -> IrtoolError:
        return IrtoolError(f"{path}: not a llama2.c checkpoint (bad header: {why})")

    for name, value in raw.items():
        magnitude = abs(value) if name == "vocab_size" else value
        if magnitude <= 0:
            raise bad(f"{name} = {value}, must be positive")
        if magnitude > _MAX[name]:
            raise bad(f"{name} = {value} is implausibly large (limit {_MAX[name]})")
    if raw["dim"] % raw["n_heads"]:
        raise bad(f"dim = {raw['dim']} is not divisible by n_heads = {raw['n_heads']}")
    if raw["n_heads"] % raw["n_kv_heads"]:
        raise bad(
            f"n_heads = {raw['n_heads']} is not divisible by n_kv_heads = {raw['n_kv_heads']}"
        )
    if (raw["dim"] // raw["n_heads"]) % 2:
        raise bad(
            f"head_dim = dim / n_heads = {raw['dim'] // raw['n_heads']} is odd "
            "(rotary embeddings need pairs)"
        )
    return Llama2cConfig(
        dim=raw["dim"],
        hidden_dim=raw["hidden_dim"],
        n_layers=raw["n_layers"],
        n_heads=raw["n_heads"],
        n_kv_heads=raw["n_kv_heads"],
        vocab_size=abs(raw["vocab_size"]),
        seq_len=raw["seq_len"],
        shared_classifier=raw["vocab_size"] > 0,
    )


def read_llama2c_checkpoint(path: str | os.PathLike[str]) -> Llama2cCheckpoint:
    """Read a legacy-format llama2.c checkpoint into a config and named float32 arrays.

    All floats are read with one ``np.fromfile`` call into a single writable array; the returned
    weights are reshaped views into it, so no element is touched from Python.
    """
    path = Path(path)
    try:
        file_size = path.stat().st_size
        with path.open("rb") as f:
            head = f.read(_HEADER.size)
    except OSError as exc:
        raise IrtoolError(f"cannot read llama2.c checkpoint {path}: {exc.strerror or exc}") from exc

    if len(head) < _HEADER.size:
        raise IrtoolError(
            f"{path}: not a llama2.c checkpoint (file is {len(head)} bytes, shorter than the "
            f"{_HEADER.size}-byte header)"
        )
    (magic,) = struct.unpack_from("<I", head)
    if magic == _AK42_MAGIC:
        (version,) = struct.unpack_from("<i", head, 4)
        raise IrtoolError(
            f"{path}: unsupported llama2.c format version {version} (file starts with the 'ak42' "
            "magic); only the legacy headerless format (export.py --version 0) is supported"
        )

    cfg = _check_header(path, _HEADER.unpack(head))
    layout = _layout(cfg)
    n_floats = sum(int(np.prod(shape)) for _, shape in layout)
    expected = _HEADER.size + 4 * n_floats
    if file_size != expected:
        raise IrtoolError(
            f"{path}: truncated or wrong-format checkpoint: expected {expected} bytes for config "
            f"({cfg._describe()}), found {file_size} bytes"
        )

    try:
        flat = np.fromfile(path, dtype="<f4", count=n_floats, offset=_HEADER.size)
    except OSError as exc:  # pragma: no cover - the file was readable a moment ago
        raise IrtoolError(f"cannot read llama2.c checkpoint {path}: {exc}") from exc
    if flat.size != n_floats:  # pragma: no cover - file changed under us
        raise IrtoolError(f"{path}: truncated checkpoint (file changed while reading)")
    flat = flat.astype(np.float32, copy=False)

    stacked: dict[str, np.ndarray] = {}
    offset = 0
    for name, shape in layout:
        size = int(np.prod(shape))
        if name is not None:
            stacked[name] = flat[offset : offset + size].reshape(shape)
        offset += size

    weights: dict[str, np.ndarray] = {"tok_embeddings": stacked["tok_embeddings"]}
    per_layer = ("attention_norm", "wq", "wk", "wv", "wo", "ffn_norm", "w1", "w2", "w3")
    for i in range(cfg.n_layers):
        for name in per_layer:
            weights[f"layers.{i}.{name}"] = stacked[name][i]
    weights["norm"] = stacked["norm"]
    weights["output"] = stacked["tok_embeddings"] if cfg.shared_classifier else stacked["output"]
    return Llama2cCheckpoint(config=cfg, weights=weights)
