"""Weights stored in a layout (row panels): which kernels read them so, and the guard that no
kernel reads a packed weight row by row."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from xdsl.dialects.builtin import StringAttr

from irtool.context import make_context
from irtool.errors import IrtoolError
from irtool.module_io import parse_module
from irtool.passes.lower_to_hw import LowerToHwPass, check_layouts
from irtool.targets.panel_layout import LAYOUT_ATTR, panel_widths, unpack_row_panels

ROOT = Path(__file__).resolve().parents[1]
LOWER_TO_HW = ROOT / "filecheck" / "passes" / "lower-to-hw.mlir"


def lowered(target: str):
    text = LOWER_TO_HW.read_text()
    if target == "host":  # placed in riscv-ulp's memories, which lower-to-hw{target=host} refuses
        text = re.sub(r"#memory\.space<\w+>", "#memory.space<ram>", text)
    module = parse_module(text, str(LOWER_TO_HW))
    LowerToHwPass(target=target).apply(make_context(), module)
    return module


def globals_of(module) -> dict:
    return {op.sym_name.data: op for op in module.ops if op.name == "memory.global"}


def test_riscv_ulp_marks_the_weights_its_packed_linears_read():
    g = globals_of(lowered("riscv-ulp"))
    assert g["wq"].attributes[LAYOUT_ATTR].data == "row_panels24"
    assert g["wk"].attributes[LAYOUT_ATTR].data == "row_panels24"
    for name in ("g", "bk", "cos", "sin"):  # read by row-major kernels (and a bias)
        assert LAYOUT_ATTR not in g[name].attributes, name
    assert all(LAYOUT_ATTR not in op.attributes for op in globals_of(lowered("host")).values())


def test_a_packed_weight_read_row_by_row_is_refused():
    module = lowered("riscv-ulp")
    globals_of(module)["g"].attributes[LAYOUT_ATTR] = StringAttr("row_panels24")
    with pytest.raises(IrtoolError, match=r"weight @g is stored in layout row_panels24 but "
                                          r"@irt_rms_norm_f32 reads its 'g' as row-major"):
        check_layouts(module)


@pytest.mark.parametrize("n,widths", [(64, [24, 24, 16]), (172, [24] * 7 + [4]),
                                      (7, [4, 2, 1]), (0, []), (16, [16]), (24, [24]),
                                      (47, [24, 16, 4, 2, 1])])
def test_panel_widths(n, widths):
    assert panel_widths(n) == widths
    assert sum(widths) == n


def test_unpack_refuses_a_wrong_size():
    with pytest.raises(ValueError, match="hold 10 values, not 3 x 4"):
        unpack_row_panels(np.zeros(10, np.float32), 3, 4)
