"""The row-panel weight layout that `irt_linear_packed_f32` reads (irt_kernels.h).

Why: on a single-issue core without indexed addressing a linear layer is cheapest when the
rows it computes together are interleaved, so that one pointer with immediate offsets reaches
all of them and one activation load feeds a whole panel of multiply-adds.  The compiler packs
the weights once, at compile time, with `pack_row_panels`; the numpy reference of the packed
kernel reads them back with `unpack_row_panels`.

Layout of w [N][K]: the rows are cut, in order, into panels of `width` rows while that many
remain, then at most one panel each of the powers of two below it (the binary digits of
N % width: 16, 8, 4, 2, 1 for width 24, as many accumulators as fit in 32 float registers
beside the loads); a panel of P rows starting at row n0 is stored as [K][P] (element [k][r] is
w[n0 + r][k]) and the panels follow each other: N * K values, no padding.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from irtool.errors import IrtoolError

PANEL_ROWS = 24
"""The panel width of irt_linear_packed_f32 (24 accumulators in registers)."""


def panel_widths(n: int, width: int = PANEL_ROWS) -> list[int]:
    """The widths of the panels that cover n rows, in order."""
    if width <= 0:
        raise ValueError(f"panel width {width} is not positive")
    widths = [width] * (n // width)
    rest = n % width
    p = 1 << (rest.bit_length() - 1) if rest else 0
    while p:
        if rest & p:
            widths.append(p)
        p //= 2
    return widths


def pack_row_panels(w: np.ndarray, width: int = PANEL_ROWS) -> np.ndarray:
    """w [N][K] in the packed layout, as a flat array of N * K values (same dtype)."""
    w = np.asarray(w)
    if w.ndim != 2:
        raise ValueError(f"pack_row_panels wants a [N][K] matrix, got shape {w.shape}")
    parts, n0 = [], 0
    for p in panel_widths(w.shape[0], width):
        parts.append(w[n0:n0 + p].T.reshape(-1))
        n0 += p
    return np.concatenate(parts) if parts else w.reshape(-1).copy()


def unpack_row_panels(packed: np.ndarray, n: int, k: int, width: int = PANEL_ROWS) -> np.ndarray:
    """The [N][K] matrix back from its packed layout."""
    packed = np.asarray(packed).reshape(-1)
    if packed.size != n * k:
        raise ValueError(f"packed weights hold {packed.size} values, not {n} x {k}")
    rows, offset = [], 0
    for p in panel_widths(n, width):
        rows.append(packed[offset:offset + p * k].reshape(k, p).T)
        offset += p * k
    return np.concatenate(rows) if rows else packed.reshape(n, k).copy()


PANEL_ROWS_Q = 16
"""The panel width of the quantized panel kernels (irt_linear_packed_q.h): 16 accumulators
and the converted weights fit the registers without spills. The same layout, applied to
int8 weights, to the bytes of int4 weights and to per-group scales."""


def pack_row_panels16(w: np.ndarray) -> np.ndarray:
    """`pack_row_panels` with panels of 16 rows (`PANEL_ROWS_Q`)."""
    return pack_row_panels(w, PANEL_ROWS_Q)


LAYOUTS: dict[str, Callable[[np.ndarray], np.ndarray]] = {"row_panels24": pack_row_panels,
                                                          "row_panels16": pack_row_panels16}
"""Storage layouts a kernel signature may ask for (`KernelSignature.layouts`), by name."""

LAYOUT_ATTR = "irtool.layout"
"""The attribute of a `memory.global` weight stored in a layout (set by lower-to-hw)."""


def stored(array: np.ndarray, layout: str | None) -> np.ndarray:
    """A weight as it is stored: row-major (`layout` None), or packed in the named layout."""
    if layout is None:
        return array
    pack = LAYOUTS.get(layout)
    if pack is None:
        raise IrtoolError(f"unknown weight layout '{layout}' (known: {', '.join(LAYOUTS)})")
    return pack(array)
