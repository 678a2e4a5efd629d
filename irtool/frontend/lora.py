"""Task adapters (LoRA): PEFT-style safetensors files of low-rank deltas for named linears.

`irtool compile --lora NAME=FILE` (repeatable) reads each FILE: pairs of tensors
`<module>.lora_A.weight` `[r, in]` and `<module>.lora_B.weight` `[out, r]` (PEFT's key names,
e.g. `base_model.model.model.layers.3.self_attn.q_proj.lora_A.weight`; an adapter name segment
such as `.lora_A.default.weight` is accepted too), scaled by alpha / r from the
`adapter_config.json` beside the file (`lora_alpha`, `r`) or from `NAME=FILE:SCALE`.

`<module>` names one of the model's linears: its weight's own name (`layers.3.wq`), that name
without `.weight`, or the Hugging Face llama name of a llama2.c weight
(`model.layers.3.self_attn.q_proj` -> `layers.3.wq`, `lm_head` -> `output`).

`attach_adapters` rewrites every `transformer.linear` one adapter or more adapt into the linear
followed by a `transformer.lora` that holds the stacked matrices of all adapters (new store
entries `<weight>.lora_down` `[n, R, in]` and `<weight>.lora_up` `[n, out, R]`, alpha / r
folded into the up matrices, ranks padded with zeros to the largest, zeros for an adapter that
leaves the linear alone), so the program can choose the adapter at run time.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from xdsl.dialects.builtin import ModuleOp
from xdsl.rewriter import InsertPoint, Rewriter

from irtool.dialects import transformer as tf
from irtool.errors import IrtoolError
from irtool.weights import WeightStore

CONFIG = "adapter_config.json"
DOWN, UP = ".lora_down", ".lora_up"
_KEY = re.compile(r"^(?:base_model\.model\.)?(?P<module>.+?)\.lora_(?P<ab>[AB])"
                  r"(?:\.[A-Za-z0-9_-]+)?\.weight$")
_LLAMA2C = {"self_attn.q_proj": "wq", "self_attn.k_proj": "wk", "self_attn.v_proj": "wv",
            "self_attn.o_proj": "wo", "mlp.gate_proj": "w1", "mlp.down_proj": "w2",
            "mlp.up_proj": "w3"}
"""Hugging Face llama module names -> llama2.c weight names (irtool.frontend.llama2c)."""


@dataclass(frozen=True)
class Adapter:
    """One task adapter: per adapted module name, its down `[r, in]` and scaled up `[out, r]`
    matrices."""

    name: str
    path: str
    deltas: dict[str, tuple[np.ndarray, np.ndarray]]


def parse_spec(spec: str) -> tuple[str, str, float | None]:
    """`NAME=FILE` or `NAME=FILE:SCALE` -> (name, file, scale or None)."""
    name, sep, rest = spec.partition("=")
    if not sep or not name or not rest:
        raise IrtoolError(f"--lora {spec}: expected NAME=FILE (a PEFT-style .safetensors file "
                          "of lora_A/lora_B matrices), optionally NAME=FILE:SCALE")
    path, scale = rest, None
    head, colon, tail = rest.rpartition(":")
    if colon and head:
        try:
            path, scale = head, float(tail)
        except ValueError:
            pass
    if scale is not None and not math.isfinite(scale):
        raise IrtoolError(f"--lora {spec}: the scale {tail} is not a finite number")
    return name, path, scale


def _config_scale(path: Path) -> float:
    config = path.parent / CONFIG
    if not config.is_file():
        raise IrtoolError(f"--lora {path}: no {CONFIG} beside it to give the scale alpha / r: "
                          f"write one ({{\"r\": R, \"lora_alpha\": ALPHA}}) or give the scale "
                          f"as NAME={path}:SCALE")
    try:
        cfg = json.loads(config.read_text())
        return float(cfg["lora_alpha"]) / float(cfg["r"])
    except (ValueError, KeyError, TypeError, ZeroDivisionError) as e:
        raise IrtoolError(f"{config}: needs numbers 'r' (> 0) and 'lora_alpha' to give the "
                          f"scale alpha / r ({type(e).__name__}: {e})") from None


def load_adapter(spec: str) -> Adapter:
    """Read one `--lora` spec: the matrices of every module, with the scale folded into B."""
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    name, file, scale = parse_spec(spec)
    path = Path(file)
    if path.is_dir():
        raise IrtoolError(f"--lora {name}={file}: a folder; give its adapter file "
                          f"({path / 'adapter_model.safetensors'})")
    if not path.is_file():
        raise IrtoolError(f"--lora {name}={file}: no such file")
    if scale is None:
        scale = _config_scale(path)
    try:
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as e:
        raise IrtoolError(f"--lora {name}={file}: not a safetensors file ({e})") from None
    pairs: dict[str, dict[str, np.ndarray]] = {}
    for key, value in tensors.items():
        m = _KEY.match(key)
        if m is None:
            raise IrtoolError(f"--lora {name}={file}: tensor '{key}' is not a LoRA matrix "
                              "(expected <module>.lora_A.weight or <module>.lora_B.weight)")
        pairs.setdefault(m["module"], {})[m["ab"]] = value
    deltas = {}
    for module, ab in pairs.items():
        if set(ab) != {"A", "B"}:
            missing = "lora_B" if "A" in ab else "lora_A"
            raise IrtoolError(f"--lora {name}={file}: module '{module}' has no {missing} matrix")
        a, b = ab["A"], ab["B"]
        if a.ndim != 2 or b.ndim != 2 or a.shape[0] != b.shape[1]:
            raise IrtoolError(f"--lora {name}={file}: module '{module}': lora_A {list(a.shape)} "
                              f"and lora_B {list(b.shape)} are not [r, in] and [out, r]")
        deltas[module] = (a.astype(np.float32), (b * scale).astype(np.float32))
    if not deltas:
        raise IrtoolError(f"--lora {name}={file}: no LoRA matrices in the file")
    return Adapter(name, file, deltas)


def _candidates(module: str) -> list[str]:
    """The weight names a PEFT module name may mean, most literal first."""
    names = [module, module.removesuffix(".weight")]
    m = re.match(r"^(?:model\.)?layers\.(\d+)\.(.+)$", module)
    if m and m[2] in _LLAMA2C:
        names.append(f"layers.{m[1]}.{_LLAMA2C[m[2]]}")
    if module in ("lm_head", "output"):
        names.append("output")
    return names


def _linears(module: ModuleOp) -> dict[str, list[tf.LinearOp]]:
    """Weight name -> the linears (in every function) that read it."""
    out: dict[str, list[tf.LinearOp]] = {}
    for op in module.walk():
        if isinstance(op, tf.LinearOp) and isinstance(op.weight.owner, tf.WeightOp):
            out.setdefault(op.weight.owner.weight_name.data, []).append(op)
    return out


def attach_adapters(module: ModuleOp, store: WeightStore, adapters: list[Adapter],
                    selected: int = 0) -> dict[str, int]:
    """Add `transformer.lora` after every adapted linear (in place); returns weight name ->
    rank of its stack. `selected` is the adapter compiled in as the default."""
    if not adapters:
        return {}
    names = [a.name for a in adapters]
    if len(set(names)) != len(names):
        raise IrtoolError(f"--lora: adapter names must differ (got {', '.join(names)})")
    linears = _linears(module)
    per_weight: dict[str, dict[int, tuple[np.ndarray, np.ndarray]]] = {}
    for i, adapter in enumerate(adapters):
        for mod, (a, b) in adapter.deltas.items():
            weight = next((c for c in _candidates(mod) if c in linears), None)
            if weight is None:
                known = ", ".join(sorted(linears)[:8])
                raise IrtoolError(f"--lora {adapter.name}={adapter.path}: module '{mod}' is "
                                  f"none of the model's linears (weights such as {known}, ...; "
                                  "llama names like model.layers.0.self_attn.q_proj map to "
                                  "layers.0.wq)")
            n_out, n_in = store[weight].shape
            if a.shape[1] != n_in or b.shape[0] != n_out:
                raise IrtoolError(f"--lora {adapter.name}={adapter.path}: module '{mod}' "
                                  f"(weight {weight} [{n_out}, {n_in}]) gets lora_A "
                                  f"{list(a.shape)} and lora_B {list(b.shape)}: expected "
                                  f"[r, {n_in}] and [{n_out}, r]")
            per_weight.setdefault(weight, {})[i] = (a, b)
    ranks = {}
    for weight, deltas in per_weight.items():
        n_out, n_in = store[weight].shape
        rank = max(a.shape[0] for a, _ in deltas.values())
        down = np.zeros((len(adapters), rank, n_in), np.float32)
        up = np.zeros((len(adapters), n_out, rank), np.float32)
        for i, (a, b) in deltas.items():
            down[i, :a.shape[0]] = a
            up[i, :, :b.shape[1]] = b
        store.add(weight + DOWN, down)
        store.add(weight + UP, up)
        ranks[weight] = rank
        for lin in linears[weight]:
            _attach(lin, weight, down.shape, up.shape, selected)
    return ranks


def _attach(lin: tf.LinearOp, weight: str, down_shape, up_shape, selected: int) -> None:
    from xdsl.dialects.builtin import Float32Type, TensorType

    f32 = Float32Type()
    down = tf.WeightOp(weight + DOWN, TensorType(f32, down_shape))
    up = tf.WeightOp(weight + UP, TensorType(f32, up_shape))
    lora = tf.LoraOp(lin.input, lin.result, down.result, up.result, selected=selected)
    Rewriter.insert_op([down, up, lora], InsertPoint.after(lin))
    lin.result.replace_uses_with_if(lora.result, lambda use: use.operation is not lora)


def check_selected(adapters: list[Adapter], default: str | None) -> int:
    """The index of the adapter named `default` (the first without one; -1 for 'none')."""
    if default is None:
        return 0
    if default == "none":
        return -1
    names = [a.name for a in adapters]
    if default not in names:
        raise IrtoolError(f"--adapter {default}: no --lora of that name (given: "
                          f"{', '.join(names) or 'none'}; 'none' runs the base model)")
    return names.index(default)

