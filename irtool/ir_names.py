"""The names irtool modules carry: entry-point functions and `irtool.*` attributes.

Frontends write these names, passes read and rewrite them, the interpreter, the emitters and
the drivers look them up. They are spelled here once, so that every layer can import them
without importing the layer that happens to write them (this module imports only xDSL).

Entry points (see `irtool.interpreter.runner` for their calling conventions):
* `@forward(tokens) -> logits`, written by the frontends;
* `@decode(tok, pos, *state) -> (logits, *state)` and the optional
  `@prefill(tokens, *state) -> (logits, *state)` (or, static, `@prefill(tokens, pos, *state)`
  when the module has `irtool.prefill_tokens`), written by extract-kv-cache (which removes
  `@forward`).
"""

from __future__ import annotations

from xdsl.dialects import func
from xdsl.dialects.builtin import ModuleOp

# Entry points -------------------------------------------------------------------------------

FORWARD = "forward"
DECODE = "decode"
PREFILL = "prefill"

# Module attributes --------------------------------------------------------------------------

MAX_SEQ_LEN_ATTR = "irtool.max_seq_len"
"""Longest sequence the model was trained for (frontends; sizes the default KV cache)."""
VOCAB_ATTR = "irtool.vocab_size"
"""Vocabulary size: token ids are 0..vocab-1 (frontends)."""
WEIGHTS_ATTR = "irtool.weights"
"""Path of the module's weight store (`irtool.weights`)."""
PREFILL_ATTR = "irtool.prefill"
"""How the prompt goes in: one of PREFILL_MODES (extract-kv-cache)."""
PREFILL_TOKENS_ATTR = "irtool.prefill_tokens"
"""Present when `@prefill(tokens, pos, *state)` is static: the `T` tokens it takes per call
(extract-kv-cache tokens=T; the prompt goes in chunks of T, the rest through `@decode`)."""
KV_CAPACITY_ATTR = "irtool.kv_capacity"
"""Positions the KV caches hold (extract-kv-cache)."""
KV_WINDOW_ATTR = "irtool.kv_window"
"""Present when the caches are rings of the last W positions (extract-kv-cache window=W)."""
QUANT_ATTR = "irtool.quant"
"""The quantization scheme the module was quantized with (quantize)."""
CALIBRATED_ATTR = "irtool.calibrated_sequences"
"""Number of calibration sequences the activation ranges were recorded on (calibrate)."""
MEMORY_PLAN_ATTR = "irtool.memory_plan"
"""The allocator's report: peak bytes per memory space (allocate)."""
STREAM_ATTR = "irtool.stream"
"""The streaming report (tile): window bytes and placement, tiles and bytes streamed per
call, and the tile plan's CP-SAT status, modelled cycles and lower bound."""

# Operation attributes -----------------------------------------------------------------------

ACT_RANGE_ATTR = "irtool.act_range"
"""`[lo, hi]` of a linear's input over the calibration data (calibrate; read by quantize)."""

# Attribute values ---------------------------------------------------------------------------

PREFILL_BATCHED = "batched"
"""PREFILL_ATTR value: `@prefill` takes the whole prompt in one call."""
PREFILL_TOKEN_BY_TOKEN = "token-by-token"
"""PREFILL_ATTR value: no `@prefill`; the prompt goes through `@decode` one token at a time."""
PREFILL_MODES = (PREFILL_BATCHED, PREFILL_TOKEN_BY_TOKEN)


def entry_points(module: ModuleOp) -> dict[str, func.FuncOp]:
    """The module's top-level functions by name."""
    return {op.sym_name.data: op for op in module.body.block.ops if isinstance(op, func.FuncOp)}


def has_decode(module: ModuleOp) -> bool:
    """extract-kv-cache was applied already: the module runs by `@decode` steps."""
    return DECODE in entry_points(module)
