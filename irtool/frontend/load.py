"""One entry point for every model format irtool reads.

`.mlir` is an irtool module with its weight store; `.onnx` goes through the ONNX raiser; a
directory with a config.json is a Hugging Face checkpoint folder; anything else is tried as a
llama2.c checkpoint (whose reader checks the header and size).
"""

from __future__ import annotations

import os
from pathlib import Path

from xdsl.dialects.builtin import ModuleOp

from irtool.errors import IrtoolError
from irtool.weights import WeightStore, check_store

PACKAGE_DATA = Path(__file__).resolve().parent.parent / "data"
DEFAULT_MODEL = PACKAGE_DATA / "stories260K.bin"
DEFAULT_TOKENIZER = PACKAGE_DATA / "tok512.bin"


def import_llama2c(path: str | os.PathLike[str]) -> tuple[ModuleOp, WeightStore]:
    from irtool.frontend.llama import LlamaShape, build_llama
    from irtool.frontend.llama2c import read_llama2c_checkpoint

    ckpt = read_llama2c_checkpoint(path)
    c = ckpt.config
    shape = LlamaShape(dim=c.dim, hidden_dim=c.hidden_dim, n_layers=c.n_layers,
                       n_heads=c.n_heads, n_kv_heads=c.n_kv_heads, vocab_size=c.vocab_size,
                       seq_len=c.seq_len, norm_eps=c.norm_eps, rope_theta=c.rope_theta)
    return build_llama(shape, ckpt.weights)


def import_model(path: str | os.PathLike[str]) -> tuple[ModuleOp, WeightStore]:
    """The `transformer`-level module (and its store) of a model file of any known format.

    The store is checked against the IR (names, shapes, dtypes) and for finite values here,
    where every driver gets its model (see irtool.weights.check_store)."""
    from irtool.output_safety import note_input

    p = Path(path)
    if p.is_dir():
        from irtool.frontend.hf_folder import import_hf_folder

        return import_hf_folder(p)
    if not p.is_file():
        raise IrtoolError(f"model file '{path}' not found")
    note_input(p, "model")
    if p.suffix == ".mlir":
        from irtool.module_io import load_module

        return load_module(p)
    if p.suffix == ".onnx":
        from irtool.frontend.onnx_import import import_onnx

        module, store = import_onnx(p)
    else:
        _refuse_known_non_models(p)
        module, store = import_llama2c(p)
    check_store(module, store, str(p))
    return module, store


def _refuse_known_non_models(p: Path) -> None:
    """Files that sit beside models but are not one: said by name, instead of "not a llama2.c
    checkpoint (bad header: dim = ...)", the reading of whatever else is not .mlir/.onnx."""
    name = p.name
    if name.endswith(".weights.npz"):
        raise IrtoolError(f"'{p}' is a weight store, not a model: give the .mlir module that "
                          "refers to it")
    if name == "config.json" or name.endswith(".safetensors"):
        raise IrtoolError(f"'{p}' is one file of a Hugging Face checkpoint: give its folder "
                          f"('{p.parent}')")
    if p.suffix in (".json", ".txt"):
        raise IrtoolError(f"'{p}' is not a model (irtool reads .onnx, .mlir, llama2.c .bin "
                          "checkpoints and Hugging Face folders)")
    with open(p, "rb") as fh:
        head = fh.read(4)
    # The magics below read as a llama2.c dim of 65536 or more, which its reader refuses as
    # "implausibly large": no llama2.c checkpoint is taken for one of these.
    if head == b"GGUF":
        raise IrtoolError(f"'{p}' is a GGUF file (llama.cpp), which irtool does not read: give "
                          "the model's Hugging Face checkpoint folder (safetensors) or an ONNX "
                          "export")
    if head.startswith(b"PK\x03\x04") or (len(head) == 4 and head[0] == 0x80
                                          and head[1] in (2, 3, 4, 5) and head[2]):
        raise IrtoolError(f"'{p}' is a PyTorch pickle (torch.save, pytorch_model.bin), which "
                          "irtool does not read: save the model with "
                          "model.save_pretrained(DIR) (safetensors) and give DIR")
