"""Running a module: the forward function over a token sequence, and greedy generation.

This is what `irtool-run`, `irtool generate` and the tests call. It registers the stock xDSL
implementations the modules use (func, arith) next to irtool's own dialects.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from xdsl.dialects.builtin import ModuleOp
from xdsl.interpreter import Interpreter
from xdsl.interpreters.arith import ArithFunctions
from xdsl.interpreters.func import FuncFunctions

from irtool.errors import IrtoolError
from irtool.frontend.builder import FORWARD, MAX_SEQ_LEN_ATTR, VOCAB_ATTR
from irtool.interpreter.transformer import TransformerFunctions
from irtool.weights import WeightStore


class ModelRunner:
    """Executes one module with its weight store."""

    def __init__(self, module: ModuleOp, store: WeightStore):
        self.module = module
        self.interpreter = Interpreter(module)
        for functions in (FuncFunctions(), ArithFunctions(), TransformerFunctions(store)):
            self.interpreter.register_implementations(functions)

    def _int_attr(self, name: str) -> int | None:
        attr = self.module.attributes.get(name)
        return None if attr is None else attr.value.data

    @property
    def max_seq_len(self) -> int | None:
        return self._int_attr(MAX_SEQ_LEN_ATTR)

    @property
    def vocab_size(self) -> int | None:
        return self._int_attr(VOCAB_ATTR)

    def check_tokens(self, tokens: Sequence[int]) -> np.ndarray:
        ids = np.asarray(tokens, dtype=np.int32).reshape(-1)
        if ids.size == 0:
            raise IrtoolError("no tokens given: pass at least one token id")
        vocab = self.vocab_size
        if vocab is not None:
            bad = [int(t) for t in ids if not 0 <= t < vocab]
            if bad:
                raise IrtoolError(f"token id {bad[0]} is outside the vocabulary (0..{vocab - 1})")
        if self.max_seq_len is not None and ids.size > self.max_seq_len:
            raise IrtoolError(f"{ids.size} tokens exceed the model's maximum sequence length "
                              f"of {self.max_seq_len}")
        return ids

    def forward(self, tokens: Sequence[int]) -> np.ndarray:
        """Logits `[T, vocab]` (float32) of every position."""
        ids = self.check_tokens(tokens)
        (logits,) = self.interpreter.call_op(FORWARD, (ids,))
        return np.asarray(logits, dtype=np.float32)

    def generate(self, tokens: Sequence[int], steps: int) -> list[int]:
        """Greedy continuation: `steps` new ids, recomputing the whole sequence each step."""
        ids = list(int(t) for t in tokens)
        new: list[int] = []
        for _ in range(steps):
            if self.max_seq_len is not None and len(ids) >= self.max_seq_len:
                break
            nxt = int(np.argmax(self.forward(ids)[-1]))
            ids.append(nxt)
            new.append(nxt)
        return new
