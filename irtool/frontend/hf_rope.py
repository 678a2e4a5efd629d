"""RoPE frequencies of a Hugging Face config, for every scaling that is a fixed table.

A checkpoint folder's `rope_parameters` (transformers 5) or `rope_scaling` (older configs)
names a `rope_type`; each type here gives the inverse frequencies per rotary pair and the
factor transformers multiplies cos/sin by ("attention scaling"), in float32 as transformers
computes them (formulas from transformers' `modeling_rope_utils` and the papers it cites:
YaRN, arXiv:2309.00071; Llama 3.1's smoothed interpolation; LongRoPE). irtool's RoPE is a
table over the model's context, so a type is supported only where transformers' frequencies
do not depend on the sequence's length within that context:

* default, linear, llama3, yarn: fixed;
* dynamic (NTK): rescales only past max_position_embeddings, so within the context it is the
  default RoPE;
* longrope: the short factors while the context stays within original_max_position_embeddings;
  past it transformers switches every position to the long factors once a sequence is longer,
  which a table cannot express: refused.

Any other type is refused by name.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from irtool.errors import IrtoolError

F32 = np.float32
SUPPORTED = ("default", "linear", "dynamic", "llama3", "yarn", "longrope")


@dataclass(frozen=True)
class RopeFrequencies:
    inv_freq: np.ndarray  # [rotary_dim / 2] float32
    attention_scaling: float  # cos and sin are multiplied by it


def rope_frequencies(params: dict, rotary_dim: int, max_positions: int, where: str
                     ) -> RopeFrequencies:
    """The frequencies of the RoPE described by `params` (rope_parameters merged with the
    older keys: rope_type or type, rope_theta, factor...) for `rotary_dim` rotated dims over a
    context of `max_positions`; `where` names the config in errors."""
    kind = params.get("rope_type", params.get("type", "default"))
    if kind not in SUPPORTED:
        raise IrtoolError(f"RoPE type '{kind}' of {where} is not supported by the "
                          f"checkpoint-folder import (supported: {', '.join(SUPPORTED)}); an "
                          "ONNX export computes its tables for irtool")
    theta = float(params["rope_theta"])
    inv = _default(theta, rotary_dim)
    if kind == "linear":
        return RopeFrequencies((inv / F32(_need(params, "factor", where))).astype(F32), 1.0)
    if kind == "llama3":
        return RopeFrequencies(_llama3(inv, params, max_positions, where), 1.0)
    if kind == "yarn":
        return _yarn(theta, rotary_dim, params, max_positions, where)
    if kind == "longrope":
        return _longrope(theta, rotary_dim, params, max_positions, where)
    return RopeFrequencies(inv, 1.0)  # default, and dynamic within its context


def _need(params: dict, key: str, where: str):
    if params.get(key) is None:
        raise IrtoolError(f"RoPE type '{params.get('rope_type', params.get('type'))}' of "
                          f"{where} has no '{key}' in its rope parameters")
    return params[key]


def _original_context(params: dict, max_positions: int) -> int:
    return int(params.get("original_max_position_embeddings") or max_positions)


def _exponents(rotary_dim: int) -> np.ndarray:
    return (np.arange(0, rotary_dim, 2, dtype=np.int64).astype(F32) / F32(rotary_dim)).astype(F32)


def _default(theta: float, rotary_dim: int) -> np.ndarray:
    """1 / theta^(2i/d) in float32."""
    return (F32(1.0) / np.power(F32(theta), _exponents(rotary_dim))).astype(F32)


def _llama3(inv: np.ndarray, params: dict, max_positions: int, where: str) -> np.ndarray:
    """Llama 3.1: long wavelengths divided by `factor`, short ones kept, a smooth blend in
    between (bounds from the original context over low/high_freq_factor)."""
    factor = F32(_need(params, "factor", where))
    low, high = float(_need(params, "low_freq_factor", where)), \
        float(_need(params, "high_freq_factor", where))
    old = _original_context(params, max_positions)
    wavelen = (F32(2 * math.pi) / inv).astype(F32)
    scaled = np.where(wavelen > F32(old / low), inv / factor, inv).astype(F32)
    smooth = ((F32(old) / wavelen - F32(low)) / F32(high - low)).astype(F32)
    blended = ((F32(1) - smooth) * scaled / factor + smooth * scaled).astype(F32)
    medium = ~(wavelen < F32(old / high)) & ~(wavelen > F32(old / low))
    return np.where(medium, blended, scaled).astype(F32)


def _yarn_mscale(scale: float, mscale: float = 1.0) -> float:
    return 1.0 if scale <= 1 else 0.1 * mscale * math.log(scale) + 1.0


def _yarn(theta: float, dim: int, params: dict, max_positions: int, where: str
          ) -> RopeFrequencies:
    """YaRN: per pair a blend of the interpolated (1 / factor) and the original frequency,
    ramping between the dims that turn beta_fast and beta_slow times over the original
    context; cos/sin scaled by the attention factor (0.1 ln(factor) + 1 by default)."""
    old = _original_context(params, max_positions)
    factor = params.get("factor")
    factor = float(factor) if factor is not None else max_positions / old
    attention = params.get("attention_factor")
    if attention is None:
        mscale, mscale_all = params.get("mscale"), params.get("mscale_all_dim")
        attention = (_yarn_mscale(factor, mscale) / _yarn_mscale(factor, mscale_all)
                     if mscale and mscale_all else _yarn_mscale(factor))
    beta_fast = params.get("beta_fast") or 32
    beta_slow = params.get("beta_slow") or 1

    def correction_dim(rotations: float) -> float:
        return dim * math.log(old / (rotations * 2 * math.pi)) / (2 * math.log(theta))

    low, high = correction_dim(beta_fast), correction_dim(beta_slow)
    if params.get("truncate", True):
        low, high = math.floor(low), math.ceil(high)
    low, high = max(low, 0), min(high, dim - 1)
    if low == high:
        high += 0.001
    ramp = np.clip((np.arange(dim // 2, dtype=F32) - F32(low)) / F32(high - low), 0, 1)
    extrapolation = (F32(1) - ramp.astype(F32)).astype(F32)
    pos_freqs = np.power(F32(theta), _exponents(dim)).astype(F32)
    inv_extra = (F32(1) / pos_freqs).astype(F32)
    inv_inter = (F32(1) / (F32(factor) * pos_freqs)).astype(F32)
    inv = (inv_inter * (F32(1) - extrapolation) + inv_extra * extrapolation).astype(F32)
    return RopeFrequencies(inv, float(attention))


def _longrope(theta: float, dim: int, params: dict, max_positions: int, where: str
              ) -> RopeFrequencies:
    old = _original_context(params, max_positions)
    if max_positions > old:
        raise IrtoolError(f"RoPE type 'longrope' of {where} with max_position_embeddings "
                          f"({max_positions}) above original_max_position_embeddings ({old}): "
                          "transformers switches every position to the long factors once a "
                          "sequence passes the original context, which one table cannot "
                          f"express; set max_position_embeddings to {old} in config.json to "
                          "import it with the short factors")
    factor = params.get("factor")
    factor = float(factor) if factor is not None else max_positions / old
    attention = params.get("attention_factor")
    if attention is None:
        attention = 1.0 if factor <= 1.0 else math.sqrt(1 + math.log(factor) / math.log(old))
    short = np.asarray(_need(params, "short_factor", where), dtype=F32)
    if short.shape != (dim // 2,):
        raise IrtoolError(f"RoPE type 'longrope' of {where}: short_factor has {short.size} "
                          f"values, expected {dim // 2} (one per rotary pair)")
    inv = (F32(1) / (short * np.power(F32(theta), _exponents(dim)))).astype(F32)
    return RopeFrequencies(inv, float(attention))
