"""Running a module: logits over a token sequence, and greedy generation, at any IR level.

This is what `irtool-run`, `irtool generate` and the tests call. It registers the stock xDSL
implementations the modules use (func, arith) next to irtool's own dialects.

A module is run through the entry points it has:
* `@forward(tokens) -> logits`: the whole sequence is recomputed for every new token;
* `@decode(tok, pos, *state) -> (logits, *state)` (after extract-kv-cache), with an optional
  `@prefill(tokens, *state) -> (logits, *state)`: the prompt goes through prefill (or through
  decode token by token), then each new token through one decode step. `state` is whatever
  decode takes after `pos` (the KV caches at the transformer level, nothing once a lower level
  keeps the state in memory); it starts as zeros of those argument types.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from xdsl.dialects import func
from xdsl.dialects.builtin import DYNAMIC_INDEX, ModuleOp, StringAttr, TensorType
from xdsl.interpreter import Interpreter
from xdsl.interpreters.arith import ArithFunctions
from xdsl.interpreters.func import FuncFunctions

from irtool.dialects import transformer as tf
from irtool.errors import IrtoolError
from irtool.interpreter.hw import HwFunctions
from irtool.interpreter.memory import MemoryFunctions
from irtool.interpreter.quant import QuantFunctions
from irtool.interpreter.straight_line import StraightLine
from irtool.interpreter.transformer import TransformerFunctions
from irtool.ir_names import (
    DECODE,
    FORWARD,
    KV_CAPACITY_ATTR,
    MAX_SEQ_LEN_ATTR,
    PREFILL,
    PREFILL_ATTR,
    PREFILL_TOKEN_BY_TOKEN,
    PREFILL_TOKENS_ATTR,
    VOCAB_ATTR,
    entry_points,
)
from irtool.run_limits import check_token_ids
from irtool.sampling import GREEDY, Sampler, SamplingOptions
from irtool.weights import WeightStore, nonfinite_is_allowed, numpy_dtype

State = tuple[np.ndarray, ...]


def _zeros(t) -> np.ndarray:
    if not isinstance(t, TensorType) or DYNAMIC_INDEX in t.get_shape():
        raise IrtoolError(f"@{DECODE} state argument of type {t}: the runner can only start a "
                          "state of statically shaped tensors")
    return np.zeros(t.get_shape(), numpy_dtype(t))


def _check_signature(fn: func.FuncOp, n_args: int, want: str, at_least: bool = False) -> None:
    """A function the runner calls must take what the runner passes."""
    got = len(fn.function_type.inputs.data)
    if got < n_args if at_least else got != n_args:
        raise IrtoolError(f"@{fn.sym_name.data} takes {got} argument(s) but irtool-run calls it "
                          f"as {want}")


class ModelRunner:
    """Executes one module with its weight store.

    Logits are always copied out: at the memory level the returned buffer is reused by the
    next call.
    """

    def __init__(self, module: ModuleOp, store: WeightStore):
        self.module = module
        self.interpreter = Interpreter(module)
        # Every level: the tensor graph, buffers in memory spaces, runtime kernel calls.
        for functions in (FuncFunctions(), ArithFunctions(), TransformerFunctions(store),
                          QuantFunctions(), MemoryFunctions(store), HwFunctions()):
            self.interpreter.register_implementations(functions)
        funcs = entry_points(module)
        self._funcs = funcs
        self._programs: dict[str, StraightLine] = {}
        self._decode = funcs.get(DECODE)
        self._prefill = funcs.get(PREFILL)
        if self._decode is None and FORWARD not in funcs:
            raise IrtoolError(f"the module has neither @{FORWARD} nor @{DECODE}: nothing to run "
                              f"(functions: {', '.join('@' + n for n in funcs) or 'none'})")
        if self._decode is None:
            _check_signature(funcs[FORWARD], 1, "(tokens: tensor<?xi32>) -> tensor<?xVxf32>")
        else:
            _check_signature(self._decode, 2, "(tok, pos: index, state...) -> (logits, state...)",
                             at_least=True)

    def _call(self, name: str, args: tuple) -> tuple:
        """@name(*args): through its straight-line program when it has that form (read once,
        again after a pass changed its ops; the store's weights are read then, so a runner's
        store is not changed while it is used), else through xDSL's interpreter."""
        program = self._programs.get(name)
        if program is None or not program.is_current():
            program = self._programs[name] = StraightLine.of(
                self._funcs[name], self.interpreter, lambda op: isinstance(op, tf.WeightOp))
        if not program.runs_here:
            return self.interpreter.call_op(name, args)
        return program(self.interpreter, args)

    def _int_attr(self, name: str) -> int | None:
        attr = self.module.attributes.get(name)
        return None if attr is None else attr.value.data

    @property
    def max_seq_len(self) -> int | None:
        return self._int_attr(MAX_SEQ_LEN_ATTR)

    @property
    def vocab_size(self) -> int | None:
        return self._int_attr(VOCAB_ATTR)

    @property
    def uses_cache(self) -> bool:
        """True when the module runs by decode steps (extract-kv-cache was applied)."""
        return self._decode is not None

    @property
    def batched_prefill(self) -> bool:
        """The prompt goes through one @prefill call (else through @decode, token by token)."""
        mode = self.module.attributes.get(PREFILL_ATTR)
        by_token = isinstance(mode, StringAttr) and mode.data == PREFILL_TOKEN_BY_TOKEN
        return self._prefill is not None and not by_token

    def check_tokens(self, tokens: Sequence[int]) -> np.ndarray:
        """The ids as int32, each in the vocabulary, no more than the context (run_limits)."""
        given = [int(t) for t in np.ravel(np.asarray(tokens, dtype=object))]
        ids = np.asarray(check_token_ids(given, self.vocab_size, "tokens"), dtype=np.int32)
        if self.max_seq_len is not None and ids.size > self.max_seq_len:
            raise IrtoolError(f"{ids.size} tokens exceed the model's maximum sequence length "
                              f"of {self.max_seq_len}")
        return ids

    def forward(self, tokens: Sequence[int]) -> np.ndarray:
        """Logits `[T, vocab]` (float32) of every position."""
        return self._forward(self.check_tokens(tokens))

    def _forward(self, ids: np.ndarray) -> np.ndarray:
        """`forward` of ids already checked (int32, in the vocabulary and the context)."""
        if not self.uses_cache:
            (logits,) = self._call(FORWARD, (ids,))
            return np.array(logits, dtype=np.float32)
        logits, _ = self.prefill(ids)
        return logits

    def initial_state(self) -> State:
        """Zeros of the types of @decode's arguments after the token and the position."""
        return tuple(_zeros(arg.type) for arg in self._decode.args[2:])

    @property
    def prefill_tokens(self) -> int:
        """T of a static `@prefill(tokens, pos, *state)` (0: none, or a dynamic one)."""
        return (self._int_attr(PREFILL_TOKENS_ATTR) or 0) if self._prefill is not None else 0

    def prefill(self, ids: np.ndarray) -> tuple[np.ndarray, State]:
        """Logits of every prompt position and the state after the prompt (decode levels).
        A static @prefill of T tokens takes the prompt in chunks of T (_chunked_prefill), the
        rest goes through @decode."""
        state = self.initial_state()
        if self.prefill_tokens:
            return self._chunked_prefill(ids, state)
        if self.batched_prefill:
            logits, *rest = self._call(PREFILL, (ids, *state))
            return np.array(logits, dtype=np.float32), tuple(rest)
        rows = []
        for pos, tok in enumerate(ids):
            row, state = self.decode_step(int(tok), pos, state)
            rows.append(row)
        return np.concatenate(rows), state

    def _chunked_prefill(self, ids: np.ndarray, state: State) -> tuple[np.ndarray, State]:
        """As the C programs do: chunks of T while one fits the cache and is at least half
        full, a shorter one padded with its last token (the padding's cache rows lie past the
        prompt, where @decode writes before it reads)."""
        n, rows, pos = self.prefill_tokens, [], 0
        capacity = self._int_attr(KV_CAPACITY_ATTR) or ids.size + n
        while (left := ids.size - pos) >= 2 and 2 * left >= n and pos + n <= capacity:
            m = min(n, left)
            chunk = np.concatenate([ids[pos:pos + m], np.repeat(ids[pos + m - 1], n - m)])
            logits, *rest = self.interpreter.call_op(PREFILL, (chunk.astype(np.int32), pos,
                                                              *state))
            rows.append(np.array(logits, dtype=np.float32)[:m])
            state, pos = tuple(rest), pos + m
        for p in range(pos, ids.size):
            row, state = self.decode_step(int(ids[p]), p, state)
            rows.append(row)
        return np.concatenate(rows), state

    def decode_step(self, token: int, pos: int, state: State) -> tuple[np.ndarray, State]:
        """One @decode call: logits `[1, vocab]` of `token` at `pos`, and the next state."""
        tok = np.array([token], dtype=np.int32)
        logits, *rest = self._call(DECODE, (tok, pos, *state))
        return np.array(logits, dtype=np.float32), tuple(rest)

    def generate(self, tokens: Sequence[int], steps: int,
                 sampling: SamplingOptions = GREEDY, on_token=None) -> list[int]:
        """`steps` new ids (fewer at a stop token or the model's maximum length), greedy by
        default, else drawn as `sampling` says (irtool/sampling.py: as the C runtime does).
        `on_token(id)` is called with each new id as soon as it is chosen.

        With @forward the whole sequence is recomputed for each token; with @decode the prompt
        is prefilled once and each new token costs one decode step with the state carried.
        """
        # checked once: a new id is an index into the logits, so in the vocabulary, and the
        # loop stops at the context
        ids = [int(t) for t in self.check_tokens(tokens)]
        if not self.uses_cache:
            def last_logits() -> np.ndarray:
                return self._forward(np.asarray(ids, dtype=np.int32))
        else:
            prefilled, state = self.prefill(np.asarray(ids, dtype=np.int32))
            unused = [prefilled]  # the prompt's logits choose the first new id

            def last_logits() -> np.ndarray:
                nonlocal state
                if unused:
                    return unused.pop()
                logits, state = self.decode_step(ids[-1], len(ids) - 1, state)
                return logits
        return self._sample_loop(ids, steps, sampling, last_logits, on_token)

    def _sample_loop(self, ids: list[int], steps: int, sampling: SamplingOptions,
                     last_logits, on_token) -> list[int]:
        """Up to `steps` ids chosen from `last_logits()` (the logits of the sequence `ids` so
        far, full recompute or one decode step) and appended to `ids`."""
        choose, stop = Sampler(sampling), set(sampling.stop)
        limit = self.max_seq_len
        new: list[int] = []
        for _ in range(steps):
            if limit is not None and len(ids) > limit:
                break  # the logits of position limit - 1 are the last there are
            nxt = choose(finite(last_logits()[-1], len(ids) - 1))
            if nxt in stop:
                break
            ids.append(nxt)
            new.append(nxt)
            if on_token is not None:
                on_token(nxt)
        return new


def finite(logits: np.ndarray, pos: int) -> np.ndarray:
    """One row of logits to choose from; NaN/Inf logits are an error, not token 0 (what argmax
    returns for them), unless --allow-nonfinite was given."""
    if not nonfinite_is_allowed() and not np.isfinite(logits).all():
        raise IrtoolError(f"the model computed NaN/Inf logits at position {pos}: its weights "
                          "overflow float32 (values near 3.4e38?), so no token can be chosen; "
                          "pass --allow-nonfinite to pick one anyway")
    return logits


def greedy(logits: np.ndarray, pos: int) -> int:
    """The argmax of one row of finite logits (see `finite`)."""
    return int(np.argmax(finite(logits, pos)))
