"""A Hugging Face checkpoint folder's config.json and tensors, handed out checked.

Each family mapping (`hf_families`) asks for what it needs by name and says what config.json
makes of it: sizes that must be positive integers, tensors of the shape transformers' own
modules would have for that config. Everything is checked as it is handed out, so a folder
whose tensors and config.json disagree is refused naming both (the tensor, its file and
shape, the config fields) before any IR exists, where the IR verifier could only say that a
linear's 64 features do not fit a [32, 60] weight, and a config larger than its tensors (a
vocabulary of 200 over a 128-row table) cannot import silently. Only what the model uses is
checked: old checkpoints carry integer or bool buffers (causal masks) that nothing reads.

A weight must be stored as a float (float32, float16, bfloat16; float64 is rounded) and hold
finite values below `irtool.weights.LARGEST_WEIGHT`: the same `check_finite` the .mlir, ONNX
and llama2.c routes apply to their stores, naming the tensor and the first bad index.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from irtool.errors import IrtoolError
from irtool.frontend.decoder import Linear, Named, Norm
from irtool.frontend.hf_folder import CONFIG, Stored
from irtool.weights import check_finite

DTYPE_NAMES = {"F64": "float64", "F32": "float32", "F16": "float16", "BF16": "bfloat16",
               "I64": "int64", "I32": "int32", "I16": "int16", "I8": "int8", "U8": "uint8",
               "BOOL": "bool"}


@dataclass(frozen=True)
class Dim:
    """A size config.json implies, with the fields it comes from (for messages):
    `heads * head_dim` is Dim(64, "num_attention_heads*head_dim")."""

    size: int
    label: str

    def __mul__(self, other: Dim | int) -> Dim:
        size, label = (other.size, other.factor()) if isinstance(other, Dim) else (other, other)
        return Dim(self.size * size, f"{self.factor()}*{label}")

    def __rmul__(self, other: int) -> Dim:
        return Dim(other * self.size, f"{other}*{self.factor()}")

    def factor(self) -> str:
        """The label as a factor of a product: a sum or a quotient in parentheses."""
        outside = re.sub(r"\([^()]*\)", "", self.label)  # what no parentheses enclose
        return f"({self.label})" if "+" in outside or "/" in outside else self.label

    def __add__(self, other: Dim | int) -> Dim:
        size, label = (other.size, other.label) if isinstance(other, Dim) else (other, other)
        return Dim(self.size + size, f"{self.label}+{label}")


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

    def dim(self, key: str, *alternatives: str, default: Dim | None = None) -> Dim:
        """A size config.json gives (the first key set), which must be a positive integer;
        `default` when none is set and there is one."""
        k = next((k for k in (key, *alternatives) if self.config.get(k) is not None), None)
        if k is None:
            if default is not None:
                return default
            self.need(key)  # raises: config.json sets none of them
        value = self.config[k]
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise IrtoolError(f"{CONFIG} in '{self.folder}' sets {k} to {value!r}, which is "
                              "not a positive integer: fix it in the config")
        return Dim(value, k)

    def head_dim(self, hidden: Dim, heads: Dim) -> Dim:
        """hidden / heads, for the families whose modules require that it divides."""
        if hidden.size % heads.size:
            raise IrtoolError(f"{CONFIG} in '{self.folder}': {hidden.label} {hidden.size} is "
                              f"not a multiple of {heads.label} {heads.size}, so the heads do "
                              "not split the features: fix it in the config")
        return Dim(hidden.size // heads.size, f"{hidden.label}/{heads.label}")

    def layers(self, prefix: str, key: str, *alternatives: str) -> Dim:
        """The layer count config.json gives; tensors of further layers (`prefix` + index)
        mean the config drops layers the checkpoint has, which would import silently."""
        n = self.dim(key, *alternatives)
        pattern = re.compile(re.escape(prefix) + r"(\d+)\.")
        extra = [(int(m.group(1)), name) for name in self.tensors
                 if (m := pattern.match(name)) and int(m.group(1)) >= n.size]
        if extra:
            index, name = min(extra)
            raise IrtoolError(f"{CONFIG} in '{self.folder}' sets {n.label} to {n.size}, but "
                              f"the checkpoint holds layer {index} too (tensor '{name}' in "
                              f"'{self.tensors[name].file}'): the config and the tensors "
                              "disagree; fix the config")
        return n

    # -- tensors -------------------------------------------------------------------------

    def has(self, name: str) -> bool:
        return name in self.tensors

    def get(self, name: str, shape: tuple[Dim, ...]) -> Named:
        """The float32 weight `name`, which must be a finite float tensor of `shape`."""
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
        want = tuple(d.size for d in shape)
        if stored.array.shape != want:
            raise IrtoolError(
                f"tensor '{name}' in {where} has shape {list(stored.array.shape)}, but "
                f"{CONFIG} in '{self.folder}' makes it {list(want)} "
                f"([{', '.join(d.label for d in shape)}]): the tensors and the config "
                "disagree; fix the config or save the folder again "
                "(model.save_pretrained(DIR))")
        check_finite(name, stored.array, str(stored.file))
        return Named(name, np.asarray(stored.array, dtype=np.float32))

    def opt(self, name: str, shape: tuple[Dim, ...]) -> Named | None:
        return self.get(name, shape) if self.has(name) else None

    def linear(self, prefix: str, out: Dim, inp: Dim) -> Linear:
        """`prefix`.weight [out, in] and, if the checkpoint has it, `prefix`.bias [out]."""
        return Linear(self.get(prefix + ".weight", (out, inp)),
                      self.opt(prefix + ".bias", (out,)))

    def norm(self, prefix: str, layer_norm: bool, features: Dim) -> Norm:
        return Norm(self.get(prefix + ".weight", (features,)),
                    self.get(prefix + ".bias", (features,)) if layer_norm else None)
