"""Importing a Hugging Face checkpoint folder: config.json + model.safetensors, no ONNX needed.

The folder is what `model.save_pretrained(DIR)` writes (and what the Hub serves). The weights
are read with the `safetensors` package, the architecture from `config.json`: each supported
`model_type` has a mapping in `hf_families` that names its tensors and its choices (norm,
MLP, residual, positions), `hf_checkpoint` hands the tensors out checked (float, finite, of
the shapes config.json implies), and `decoder.build_decoder` emits the transformer ops. RoPE
tables are computed the way transformers computes them (float32 angles) for every scaling
that is a fixed table over the context (`hf_rope`); other scalings are refused by name.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from xdsl.dialects.builtin import ModuleOp

from irtool.errors import IrtoolError
from irtool.weights import WeightStore

CONFIG = "config.json"
SINGLE = "model.safetensors"
INDEX = "model.safetensors.index.json"


def is_checkpoint_folder(path: str | os.PathLike[str]) -> bool:
    return Path(path).is_dir() and (Path(path) / CONFIG).is_file()


def import_hf_folder(path: str | os.PathLike[str]) -> tuple[ModuleOp, WeightStore]:
    """The `transformer` module and weights of the Hugging Face checkpoint folder `path`."""
    from irtool.frontend.decoder import build_decoder
    from irtool.frontend.hf_checkpoint import Checkpoint
    from irtool.frontend.hf_families import decoder_for

    folder = Path(path)
    config = read_config(folder)
    tensors = read_safetensors(folder)
    return build_decoder(decoder_for(Checkpoint(config, tensors, folder)))


def read_config(folder: Path) -> dict:
    p = folder / CONFIG
    if not p.is_file() and (folder / "adapter_config.json").is_file():
        raise IrtoolError(f"'{folder}' is a PEFT adapter (adapter_config.json), not a model: "
                          "import its base model, and give the adapter to irtool compile "
                          f"--lora NAME={folder / 'adapter_model.safetensors'}")
    if not p.is_file():
        raise IrtoolError(f"'{folder}' has no {CONFIG}: a Hugging Face checkpoint folder holds "
                          "config.json and model.safetensors (model.save_pretrained(DIR))")
    try:
        config = json.loads(p.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise IrtoolError(f"'{p}' is not readable JSON ({e})") from None
    if not isinstance(config, dict):
        raise IrtoolError(f"'{p}' is not a JSON object")
    return config


def _shard_files(folder: Path) -> list[Path]:
    if (folder / SINGLE).is_file():
        return [folder / SINGLE]
    index = folder / INDEX
    if index.is_file():
        try:
            weight_map = json.loads(index.read_text())["weight_map"]
        except (OSError, KeyError, TypeError, json.JSONDecodeError) as e:
            raise IrtoolError(f"'{index}' is not a safetensors index ({e})") from None
        return [folder / name for name in sorted(set(weight_map.values()))]
    onnx = sorted(folder.glob("*.onnx"))
    if onnx:  # optimum's export folder: config.json beside model.onnx, no safetensors
        raise IrtoolError(f"'{folder}' holds an ONNX export but no {SINGLE}: give the ONNX "
                          f"file (irtool import {onnx[0]})")
    if any(folder.glob("*.bin")) or any(folder.glob("*.pt")):
        raise IrtoolError(f"'{folder}' holds PyTorch pickles but no {SINGLE}: irtool reads "
                          "safetensors only; save with model.save_pretrained(DIR, "
                          "safe_serialization=True)")
    raise IrtoolError(f"'{folder}' has no {SINGLE} (nor {INDEX}): save the model with "
                      "model.save_pretrained(DIR)")


@dataclass(frozen=True)
class Stored:
    """One tensor as its safetensors file stores it: the file (for messages), the dtype as
    safetensors names it ("F32", "BF16", "I32", ...) and, for a float dtype, the array
    (bfloat16 already widened to float32). Other dtypes are not read: a checkpoint may carry
    integer or bool buffers the model never uses (old GPT-2/GPT-J/GPT-NeoX causal masks),
    and where a weight is expected `hf_checkpoint` refuses them by name."""

    file: Path
    dtype: str
    array: np.ndarray | None


FLOAT_DTYPES = ("F32", "F16", "BF16", "F64")  # read; F64 is rounded to float32 on use


def read_safetensors(folder: Path) -> dict[str, Stored]:
    """Every tensor of the folder's safetensors file(s) (see `Stored`)."""
    from safetensors import SafetensorError, safe_open

    tensors: dict[str, Stored] = {}
    for f in _shard_files(folder):
        if not f.is_file():
            raise IrtoolError(f"safetensors shard '{f}' is missing")
        try:
            with safe_open(os.fspath(f), framework="numpy") as st:
                dtypes = {n: st.get_slice(n).get_dtype() for n in st.keys()}
                for name, dtype in dtypes.items():
                    array = st.get_tensor(name) if dtype in FLOAT_DTYPES and dtype != "BF16" \
                        else None
                    tensors[name] = Stored(f, dtype, array)
            bf16 = {n for n, dtype in dtypes.items() if dtype == "BF16"}
            if bf16:
                tensors.update({n: Stored(f, "BF16", a)
                                for n, a in read_bf16_as_f32(f, bf16).items()})
        except (SafetensorError, OSError) as e:
            raise IrtoolError(f"'{f}' is not a readable safetensors file ({e})") from None
    return tensors


def read_bf16_as_f32(path: Path, names: set[str]) -> dict[str, np.ndarray]:
    """The bfloat16 tensors `names` of the safetensors file `path`, widened to float32.

    numpy has no bfloat16, so they are read from the file's layout (a little-endian u64
    header length, a JSON header of dtype/shape/data_offsets per tensor, then the data, as
    the safetensors format documents it): a bfloat16 is the upper half of the float32 with
    the same value, so shifting its 16 bits up is exact."""
    with open(path, "rb") as fh:
        header_len = int.from_bytes(fh.read(8), "little")
        header = json.loads(fh.read(header_len))
    data = np.memmap(path, dtype=np.uint8, mode="r", offset=8 + header_len)
    out = {}
    for name in names:
        entry = header[name]
        start, end = entry["data_offsets"]
        halves = data[start:end].view("<u2").astype(np.uint32) << 16
        out[name] = halves.view(np.float32).reshape(entry["shape"])
    return out
