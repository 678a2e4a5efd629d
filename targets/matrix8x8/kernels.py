"""The unit's tiled W8A8 linear as a kernel signature, with a numpy reference of the tiling.

The reference computes what the unit does: 8x8 tiles of (xq - zx) and w^T, zero-padded at the
edges, multiplied and accumulated tile by tile in 32-bit wrap-around integers, then the host's
float32 requantization (one multiply, one add). The interpreter runs it for `hw.accel`, so the
hw level is checked against the quant level.
"""

from __future__ import annotations

import numpy as np

from irtool.kernels import KernelSignature

TILE = 8
F32 = np.float32


def _wrap32(a: np.ndarray) -> np.ndarray:
    return a.astype(np.int64).astype(np.uint32).astype(np.int32)


def tiled_accumulate(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """`a [T, K] @ b [K, N]` as the unit computes it: padded 8x8 tiles, int32 wrap-around."""
    t, k = a.shape
    n = b.shape[1]
    pt, pk, pn = (-t) % TILE, (-k) % TILE, (-n) % TILE
    a = np.pad(np.asarray(a, np.int64), ((0, pt), (0, pk)))
    b = np.pad(np.asarray(b, np.int64), ((0, pk), (0, pn)))
    acc = np.zeros((a.shape[0], b.shape[1]), np.int32)
    for k0 in range(0, a.shape[1], TILE):
        part = _wrap32(a[:, k0:k0 + TILE] @ b[k0:k0 + TILE, :])
        acc = _wrap32(acc.astype(np.int64) + part)
    return acc[:t, :n]


def _mxu_linear(o, p):
    zx = int(np.asarray(o["zx"]).reshape(-1)[0])
    a = np.asarray(o["xq"]).reshape(p["T"], p["K"]).astype(np.int64) - zx
    acc = tiled_accumulate(a, np.asarray(o["w"]).astype(np.int64).T)
    y = acc.astype(F32) * np.asarray(o["m"], F32).reshape(-1)
    if "b" in o:
        y = (y + np.asarray(o["b"], F32)).astype(F32)
    o["y"][...] = y.astype(F32).reshape(o["y"].shape)


MXU_LINEAR = KernelSignature("mxu_linear_w8a8", ("xq", "zx", "w", "m", "y"), ("T", "K", "N"),
                             ("y",), _mxu_linear)
MXU_LINEAR_BIAS = KernelSignature("mxu_linear_w8a8_bias", ("xq", "zx", "w", "m", "b", "y"),
                                  ("T", "K", "N"), ("y",), _mxu_linear)
KERNELS = (MXU_LINEAR, MXU_LINEAR_BIAS)
