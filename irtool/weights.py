"""The weight store: model tensors kept beside the IR text, referenced by name.

A module names its store in the `irtool.weights` module attribute: a path to an `.npz` file,
relative to the directory of the `.mlir` file (or absolute). `transformer.weight "name"` ops
read entries of it. Keeping weights out of the text keeps the printed IR small and diffable,
and lets every pass and driver move the module around without copying megabytes of hex.
"""

from __future__ import annotations

import hashlib
import os
import zipfile
import zlib
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from xdsl.dialects.builtin import MemRefType, ModuleOp, StringAttr, TensorType

from irtool.errors import IrtoolError
from irtool.ir_names import WEIGHTS_ATTR
from irtool.output_safety import STORE_SUFFIX


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
    def load(cls, path: str | os.PathLike[str],
             wanted: Mapping[str, TensorType | MemRefType] | None = None) -> WeightStore:
        """The store at `path`; with `wanted` (entry name -> the type the IR declares) only
        those entries are read, each checked against its type from the `.npy` header before
        its data is read (an unused or mis-shaped giant entry costs nothing)."""
        from irtool.output_safety import note_input, readable

        note_input(path, "weight store")
        try:
            with zipfile.ZipFile(readable(path)) as z:
                members = {n.removesuffix(".npy"): n for n in z.namelist() if n.endswith(".npy")}
                names = list(members) if wanted is None else [n for n in wanted if n in members]
                arrays = {}
                for name in names:
                    want = None if wanted is None else wanted[name]
                    arrays[name] = _read_entry(z, members[name], name, want, str(path))
                return cls(arrays)
        except FileNotFoundError:
            raise IrtoolError(f"weight store '{path}' not found: it is written beside the "
                              "module by 'irtool import'; keep the two files together or set "
                              f"the module attribute {WEIGHTS_ATTR} to its path") from None
        except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as e:
            raise IrtoolError(f"weight store '{path}' is not a readable .npz file ({e})") from None


def _read_entry(z: zipfile.ZipFile, member: str, name: str,
                want: TensorType | MemRefType | None, where: str) -> np.ndarray:
    if want is not None:
        with z.open(member) as f:
            version = np.lib.format.read_magic(f)
            read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                           else np.lib.format.read_array_header_2_0)
            shape, _, dtype = read_header(f)
        _check_entry(name, tuple(shape), np.dtype(dtype), want, where)
    with z.open(member) as f:
        return np.lib.format.read_array(f, allow_pickle=False)


def store_path_for(mlir_path: str | os.PathLike[str]) -> Path:
    """`out/model.mlir` -> `out/model.weights.npz`."""
    p = Path(mlir_path)
    return p.with_name(p.name.removesuffix(".mlir") + STORE_SUFFIX)


CONTENT_DIGITS = 12
"""Hex digits of the sha256 in a store named by its content (48 bits: no collision among the
stores of one directory; a different store of the same name is refused, never replaced)."""


def store_digest(path: str | os.PathLike[str]) -> str:
    """The sha256 of a store's entries (each name, size and .npy bytes, in name order), so the
    same weights give the same digest whatever the zip's timestamps."""
    h = hashlib.sha256()
    try:
        with zipfile.ZipFile(path) as z:
            for info in sorted(z.infolist(), key=lambda i: i.filename):
                h.update(f"{info.filename}\0{info.file_size}\0".encode())
                with z.open(info) as f:
                    for chunk in iter(lambda: f.read(1 << 20), b""):
                        h.update(chunk)
    except (OSError, zipfile.BadZipFile, zlib.error) as e:
        raise IrtoolError(f"weight store '{path}' is not a readable .npz file ({e})") from None
    return h.hexdigest()


def content_named(store_path: str | os.PathLike[str], digest: str) -> Path:
    """`dir/s.w8a8.weights.npz` -> `dir/s.w8a8.<first CONTENT_DIGITS of digest>.weights.npz`."""
    p = Path(store_path)
    return p.with_name(f"{p.name.removesuffix(STORE_SUFFIX)}.{digest[:CONTENT_DIGITS]}"
                       f"{STORE_SUFFIX}")


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


def used_weights(module: ModuleOp) -> dict[str, TensorType | MemRefType]:
    """Every store entry the module reads, with the type the IR declares for it: the
    `transformer.weight` ops (transformer and quant levels) and the weight `memory.global`s
    (memory and hw levels)."""
    from irtool.dialects.memory import GlobalOp

    out: dict[str, TensorType | MemRefType] = {}
    for op in module.walk():
        if isinstance(op, GlobalOp) and op.weight is not None:
            out.setdefault(op.weight.data, op.type)
    for op in weight_ops(module):
        out.setdefault(op.weight_name.data, op.result.type)
    return out


def check_store(module: ModuleOp, store: WeightStore, where: str) -> None:
    """Every weight the IR names must exist in the store with its declared shape and type,
    and hold finite values (unless `nonfinite_allowed`)."""
    for name, want in used_weights(module).items():
        if name not in store:
            raise IrtoolError(f"weight store '{where}' has no weight \"{name}\" that the module "
                              "names: the store does not belong to this module (re-run "
                              "'irtool import')")
        have = store[name]
        _check_entry(name, tuple(have.shape), have.dtype, want, where)
        check_finite(name, have, where)


def _check_entry(name: str, shape: tuple[int, ...], dtype: np.dtype,
                 want: TensorType | MemRefType, where: str) -> None:
    if shape != tuple(want.get_shape()) or dtype != numpy_dtype(want):
        raise IrtoolError(f"weight \"{name}\" in '{where}' is {dtype}{list(shape)} but the "
                          f"module declares {want}: the store does not belong to this module")


LARGEST_WEIGHT = 2.0 ** 64
"""Magnitudes from here on are refused like NaN/Inf: the square of one overflows float32, so
the logits would come out Inf/NaN and greedy decoding would silently pick token 0."""

_ALLOW_NONFINITE: ContextVar[bool] = ContextVar("irtool_allow_nonfinite", default=False)


@contextmanager
def nonfinite_allowed(allow: bool = True) -> Iterator[None]:
    """`--allow-nonfinite`: accept NaN, Inf and overflowing weights while the block runs."""
    token = _ALLOW_NONFINITE.set(allow)
    try:
        yield
    finally:
        _ALLOW_NONFINITE.reset(token)


def nonfinite_is_allowed() -> bool:
    return _ALLOW_NONFINITE.get()


def check_finite(name: str, array: np.ndarray, where: str) -> None:
    """A float weight must be finite and below LARGEST_WEIGHT; the error names the first bad
    element."""
    if _ALLOW_NONFINITE.get() or array.dtype.kind != "f" or array.size == 0:
        return
    with np.errstate(invalid="ignore", over="ignore"):
        bad = ~(np.abs(array.astype(np.float64)) < LARGEST_WEIGHT)
    if not bad.any():
        return
    index = [int(i) for i in np.unravel_index(int(np.argmax(bad)), array.shape)]
    value = array[tuple(index)]
    raise IrtoolError(f"weight \"{name}\" in '{where}' holds {value} at index {index} "
                      f"({int(bad.sum())} bad value(s)): NaN, Inf or magnitudes >= 2**64 make "
                      "the logits NaN/Inf and the output meaningless; fix the model, or pass "
                      "--allow-nonfinite to use it anyway")


_DTYPES = {"f32": np.float32, "f64": np.float64, "f16": np.float16, "i8": np.int8,
           "i16": np.int16, "i32": np.int32, "i64": np.int64, "ui8": np.uint8}


def numpy_dtype(t: TensorType) -> np.dtype:
    key = str(t.element_type)
    if key not in _DTYPES:
        raise IrtoolError(f"no numpy type for element type {key}")
    return np.dtype(_DTYPES[key])
