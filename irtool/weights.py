"""The weight store: model tensors kept beside the IR text, referenced by name.

A module names its store in the `irtool.weights` module attribute: a path to an `.npz` file,
relative to the directory of the `.mlir` file (or absolute). `transformer.weight "name"` ops
read entries of it. Keeping weights out of the text keeps the printed IR small and diffable,
and lets every pass and driver move the module around without copying megabytes of hex.
"""

from __future__ import annotations

import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from xdsl.dialects.builtin import ModuleOp, StringAttr, TensorType

from irtool.errors import IrtoolError
from irtool.ir_names import WEIGHTS_ATTR

STORE_SUFFIX = ".weights.npz"


@dataclass
class WeightStore:
    """Named numpy arrays; the single source of every weight value."""

    arrays: dict[str, np.ndarray] = field(default_factory=dict)

    def __getitem__(self, name: str) -> np.ndarray:
        return self.arrays[name]

    def __contains__(self, name: str) -> bool:
        return name in self.arrays

    def add(self, name: str, array: np.ndarray) -> None:
        if name in self.arrays:
            raise ValueError(f"weight '{name}' is already in the store")
        self.arrays[name] = np.ascontiguousarray(array)

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in self.arrays.values())

    def save(self, path: str | os.PathLike[str]) -> None:
        with open(path, "wb") as f:
            np.savez(f, **self.arrays)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> WeightStore:
        try:
            with np.load(path, allow_pickle=False) as data:
                return cls({name: data[name] for name in data.files})
        except FileNotFoundError:
            raise IrtoolError(f"weight store '{path}' not found: it is written beside the "
                              "module by 'irtool import'; keep the two files together or set "
                              f"the module attribute {WEIGHTS_ATTR} to its path") from None
        except (OSError, ValueError, zipfile.BadZipFile) as e:
            raise IrtoolError(f"weight store '{path}' is not a readable .npz file ({e})") from None


def store_path_for(mlir_path: str | os.PathLike[str]) -> Path:
    """`out/model.mlir` -> `out/model.weights.npz`."""
    p = Path(mlir_path)
    return p.with_name(p.name.removesuffix(".mlir") + STORE_SUFFIX)


def store_reference(module: ModuleOp) -> str | None:
    attr = module.attributes.get(WEIGHTS_ATTR)
    return attr.data if isinstance(attr, StringAttr) else None


def set_store_reference(module: ModuleOp, path: str) -> None:
    module.attributes[WEIGHTS_ATTR] = StringAttr(path)


def absolutize_store_reference(module: ModuleOp, base_dir: str | os.PathLike[str]) -> None:
    """Make a relative store path absolute, so the module can be written anywhere."""
    ref = store_reference(module)
    if ref is not None and not os.path.isabs(ref):
        set_store_reference(module, os.path.normpath(os.path.join(os.path.abspath(base_dir), ref)))


def relativize_store_reference(module: ModuleOp, out_dir: str | os.PathLike[str]) -> None:
    """Point the store path from the directory the module is being written to."""
    ref = store_reference(module)
    if ref is not None and os.path.isabs(ref):
        set_store_reference(module, os.path.relpath(ref, os.path.abspath(out_dir)))


def weight_ops(module: ModuleOp):
    from irtool.dialects.transformer import WeightOp

    return [op for op in module.walk() if isinstance(op, WeightOp)]


def check_store(module: ModuleOp, store: WeightStore, where: str) -> None:
    """Every weight the IR names must exist in the store with its declared shape and type."""
    for op in weight_ops(module):
        name = op.weight_name.data
        if name not in store:
            raise IrtoolError(f"weight store '{where}' has no weight \"{name}\" that the module "
                              "names: the store does not belong to this module (re-run "
                              "'irtool import')")
        want = op.result.type
        assert isinstance(want, TensorType)
        have = store[name]
        if tuple(have.shape) != tuple(want.get_shape()) or have.dtype != numpy_dtype(want):
            raise IrtoolError(f"weight \"{name}\" in '{where}' is {have.dtype}{list(have.shape)}"
                              f" but the module declares {want}: the store does not belong to "
                              "this module")


_DTYPES = {"f32": np.float32, "f64": np.float64, "f16": np.float16, "i8": np.int8,
           "i16": np.int16, "i32": np.int32, "i64": np.int64, "ui8": np.uint8}


def numpy_dtype(t: TensorType) -> np.dtype:
    key = str(t.element_type)
    if key not in _DTYPES:
        raise IrtoolError(f"no numpy type for element type {key}")
    return np.dtype(_DTYPES[key])
