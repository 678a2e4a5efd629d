"""Rows cut along the reduction dimension on qemu-system-arm (cortex-m7-256k): stories260K
with SRAM windows smaller than its longest weight row.

The target's own pipeline with the window capped (the `window` option of `tile`, and of
`allocate{tile=true}` for the plan solved with the allocation): fp32 under a 192-byte cap
(every row of stories260K is 256 or 688 bytes) streams FFN down-projection rows in pieces
and prints the golden tokens; w4g32 with the int8 KV cache under a 48-byte cap (its 86-byte
rows in pieces of 48 and 38 bytes, cut on the 32-input groups) prints the quant-level
interpreter's tokens. Each piece after a row's first is an accumulating kernel call.
"""

from __future__ import annotations

import re

import pytest

from tests.test_cortex_m7 import (
    GOLDEN,
    MODELS,
    QUANT_STEPS,
    arm_toolchain,  # noqa: F401  (skipped without the ARM toolchain and qemu)
    generated_tokens,
    golden_prefix,
    interpreter_tokens,
    make,
)

TARGET = "cortex-m7-256k"
STEPS = 12


def build(out, quant: str, kv: str, cap: int, joint: bool):
    """The project of the target's pipeline with the windows capped at `cap` bytes: the
    joint plan (allocate{tile=true}) or, without it, the tile pass's own plan."""
    from irtool.compile import CompileOptions, _run, prepare_for_target
    from irtool.frontend.load import import_model

    opts = CompileOptions(target=TARGET, capacity=128, quant=quant, kv=kv)
    target = opts.load_target()
    lower = target.stages(opts.pipeline_options())["lower"]
    assert lower.count("tile=true}") == 1 and lower.count("tile{") == 1
    if joint:
        lower = lower.replace("tile=true}", f"tile=true window={cap}}}")
    else:
        lower = re.sub(r"(tile\{[^}]*)\}", rf"\1 window={cap}}}",
                       lower.replace(" tile=true}", "}"))
    module, store = import_model(MODELS / "stories260K" / "stories260K.bin")
    module, store = prepare_for_target(module, store, opts)
    _run(lower, module)
    target.write_project(module, store, out, prompt=GOLDEN["prompt_ids"],
                         steps=STEPS if quant == "none" else QUANT_STEPS, tokenizer=None)
    return (out / "model.c").read_text(), make(out, "run").stdout


def transfers(model_c: str) -> list[int]:
    """Bytes of every transfer into a window, in program order."""
    return [int(n) for n in re.findall(r"irt_dma_start\([^;]*, (\d+)u\);", model_c)]


@pytest.mark.parametrize("quant,kv,cap,joint,kernel", [
    ("none", "none", 192, False, "irt_linear_acc_f32("),
    ("w4g32", "int8", 48, True, "irt_linear_w4g_acc("),
])
def test_rows_streamed_in_pieces_give_the_reference_tokens(tmp_path, quant, kv, cap, joint,
                                                            kernel):
    model_c, output = build(tmp_path / quant, quant, kv, cap, joint)
    sizes = transfers(model_c)
    assert sizes and max(sizes) <= cap
    # each row of a down-projection (64 rows of 172 inputs, longer than the window) is
    # cut into pieces; every piece after a row's first adds to it
    assert model_c.count(kernel) >= 64
    if quant == "none":
        assert generated_tokens(output) == golden_prefix(STEPS)
    else:
        assert generated_tokens(output) == interpreter_tokens(quant, kv)
