"""A Hugging Face checkpoint folder's config.json and tensors, handed out checked.

Each family mapping (`hf_families`) asks for the tensors it needs by name; each is checked as
it is handed out, so only what the model uses is checked (old checkpoints carry integer or
bool buffers, causal masks, that nothing reads). A weight must be stored as a float (float32,
float16, bfloat16; float64 is rounded): an int32 tensor would otherwise be converted and
import as garbage. It must hold finite values below `irtool.weights.LARGEST_WEIGHT`: the
same `check_finite` the .mlir, ONNX and llama2.c routes apply to their stores, naming the
tensor, its file and the first bad index, where a run would only report NaN logits.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from irtool.errors import IrtoolError
from irtool.frontend.decoder import Linear, Named, Norm
from irtool.frontend.hf_folder import CONFIG, Stored
from irtool.weights import check_finite

DTYPE_NAMES = {"F64": "float64", "F32": "float32", "F16": "float16", "BF16": "bfloat16",
               "I64": "int64", "I32": "int32", "I16": "int16", "I8": "int8", "U8": "uint8",
               "BOOL": "bool"}


class Checkpoint:
    """The config and tensors of one folder (hf_folder.read_config / read_safetensors)."""

    def __init__(self, config: dict, tensors: dict[str, Stored], folder: Path):
        self.config, self.tensors, self.folder = config, tensors, folder

    # -- config.json ---------------------------------------------------------------------

    def need(self, key: str, *alternatives: str):
        """The value of the first of `key`, `alternatives` that config.json sets."""
        for k in (key, *alternatives):
            if self.config.get(k) is not None:
                return self.config[k]
        raise IrtoolError(f"{CONFIG} in '{self.folder}' has no '{key}'")

    # -- tensors -------------------------------------------------------------------------

    def has(self, name: str) -> bool:
        return name in self.tensors

    def get(self, name: str) -> Named:
        """The float32 weight `name`, which must be a finite float tensor."""
        stored = self.tensors.get(name)
        if stored is None:
            raise IrtoolError(f"tensor '{name}' is missing from the checkpoint in "
                              f"'{self.folder}' (model_type "
                              f"'{self.config.get('model_type')}')")
        where = f"'{stored.file}'"
        if stored.array is None:
            dtype = DTYPE_NAMES.get(stored.dtype, stored.dtype)
            raise IrtoolError(f"tensor '{name}' in {where} is stored as {dtype}, but it is "
                              "a weight: irtool reads weights stored as float32, float16 or "
                              "bfloat16 (float64 is rounded to float32); save the model in "
                              "one of those (model.float().save_pretrained(DIR))")
        check_finite(name, stored.array, str(stored.file))
        return Named(name, np.asarray(stored.array, dtype=np.float32))

    def opt(self, name: str) -> Named | None:
        return self.get(name) if self.has(name) else None

    def linear(self, prefix: str) -> Linear:
        return Linear(self.get(prefix + ".weight"), self.opt(prefix + ".bias"))

    def norm(self, prefix: str, layer_norm: bool) -> Norm:
        return Norm(self.get(prefix + ".weight"),
                    self.get(prefix + ".bias") if layer_norm else None)
