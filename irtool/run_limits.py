"""One set of checks for what a run asks of a model: prompts, steps and KV cache sizes.

`irtool compile`, `-t c-project`, `irtool generate`, `irtool-run` and extract-kv-cache all ask
the same questions, so they share these answers instead of each checking a little:

* token ids must be in the vocabulary (the message names the offending id and its position);
* a step count must be `0 <= steps < 2**31` (the C program counts in `int32_t`);
* a prompt must fit the model's context (`irtool.max_seq_len`, the rows of its position
  tables) and, with a linear KV cache, its capacity; with room for no new token the run would
  print nothing, so that is an error too; so must the prompt and the steps together, with a
  ring cache too (it bounds the memory, not the positions);
* a KV cache capacity or window must be `1..max_seq_len` (positions past the context have no
  RoPE/position-embedding row) and below 2**31.

Bounds from C: `int32_t` positions and counts, `N_PROMPT + STEPS` computed in `int`.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Sequence

from irtool.errors import IrtoolError

C_INT_MAX = 2**31 - 1
"""Largest value of the C program's `int`/`int32_t` positions, ids and counts."""


def check_steps(steps: object, what: str = "--steps") -> int:
    """A number of tokens to generate: an integer in `[0, 2**31)`."""
    try:
        n = operator.index(steps)  # type: ignore[arg-type]
    except TypeError:
        raise IrtoolError(f"{what} must be an integer, got {steps!r}") from None
    if not 0 <= n <= C_INT_MAX:
        raise IrtoolError(f"{what} must be between 0 and {C_INT_MAX} (2**31 - 1), got {n}")
    return n


def check_token_ids(ids: Sequence[object], vocab: int | None, what: str = "prompt") -> list[int]:
    """Integer ids in `[0, vocab)`; the error names the first offending id and where it is."""
    out = []
    for i, t in enumerate(ids):
        try:
            v = operator.index(t)  # type: ignore[arg-type]
        except TypeError:
            raise IrtoolError(f"{what}: token {i} is {t!r}, not an integer id") from None
        if v < 0 or v > C_INT_MAX or (vocab is not None and v >= vocab):
            top = f"{vocab - 1}" if vocab is not None else str(C_INT_MAX)
            raise IrtoolError(f"{what}: token id {v} (position {i}) is outside the vocabulary "
                              f"0..{top}")
        out.append(v)
    if not out:
        raise IrtoolError(f"{what} is empty: give at least one token")
    return out


def check_prompt_fits(n_prompt: int, context: int | None, what: str = "the prompt",
                      capacity: int | None = None) -> None:
    """The prompt fits the model's context and a linear cache; then at least one new token
    does too (it is chosen from the logits of the prompt's last position)."""
    for limit, of in ((context, "the model's context (irtool.max_seq_len)"),
                      (capacity, "the KV cache capacity")):
        if limit is not None and n_prompt > limit:
            raise IrtoolError(f"{what} has {n_prompt} tokens but {of} is {limit} positions: "
                              f"shorten it to at most {limit} tokens")


def check_generation(prompt: Sequence[object], steps: object, vocab: int | None,
                     context: int | None, capacity: int | None = None,
                     what: str = "the prompt") -> tuple[list[int], int]:
    """All of the above for one generation request, and the steps fit too: the last new token
    is chosen from the logits of position `prompt + steps - 2`, so the run needs `prompt +
    steps - 1` positions of the model's context (the rows of its RoPE or position tables,
    also with a ring cache, which bounds the memory, not the positions) and, with a linear KV
    cache (`capacity`), of the cache. Asking for more is an error before any work: a run that
    stopped early would print fewer tokens than asked, and a compiled program would read past
    its position tables. Returns (ids, steps)."""
    ids = check_token_ids(prompt, vocab, what)
    n = check_steps(steps)
    check_prompt_fits(len(ids), context, what, capacity)
    if len(ids) + n > C_INT_MAX:
        raise IrtoolError(f"{len(ids)} prompt tokens + {n} steps exceed {C_INT_MAX} positions "
                          "(the C program counts positions in int32_t)")
    need = len(ids) + n - 1
    for limit, of, more in ((capacity, "the KV cache holds", ", a larger --capacity, or a "
                             "--window"), (context, "the model's context (irtool.max_seq_len) "
                                           "is", "")):
        if limit is not None and need > limit:
            raise IrtoolError(f"{len(ids)} prompt tokens + {n} steps need {need} positions but "
                              f"{of} {limit}: give at most {limit - len(ids) + 1} steps{more}")
    return ids, n


def check_c_generation(prompt: Sequence[object], steps: object, vocab: int | None,
                       context: int | None, capacity: int | None, ring: bool,
                       what: str = "the prompt") -> tuple[list[int], int]:
    """A generation the C program runs: `check_generation`, with the capacity of a linear KV
    cache (a ring cache holds the last positions: no bound but the context's)."""
    return check_generation(prompt, steps, vocab, context, None if ring else capacity, what)


def check_c_program_inputs(module, prompt: Sequence[object], steps: object,
                           vocab: int | None = None,
                           tokenizer: str | None = None) -> tuple[list[int], int]:
    """`check_c_generation` with the context, the cache and (unless given) the vocabulary read
    from a decode-level module, and the tokenizer (a path) checked to agree with the model."""
    from xdsl.dialects.builtin import IntegerAttr

    if vocab is None:
        a = module.attributes.get("irtool.vocab_size")
        vocab = a.value.data if isinstance(a, IntegerAttr) else None

    if tokenizer is not None:
        from irtool.tokenizer import check_agreement, load_tokenizer

        check_agreement(load_tokenizer(tokenizer), tokenizer, vocab, "the module")

    def attr(name: str) -> int | None:
        a = module.attributes.get(name)
        return a.value.data if isinstance(a, IntegerAttr) else None

    return check_c_generation(prompt, steps, vocab, attr("irtool.max_seq_len"),
                              attr("irtool.kv_capacity"), attr("irtool.kv_window") is not None)


def linear_cache_capacity(module) -> int | None:
    """The positions a decode-level module's linear KV cache holds, or None (no cache, or a
    ring cache: `irtool.kv_window`)."""
    from xdsl.dialects.builtin import IntegerAttr

    if module.attributes.get("irtool.kv_window") is not None:
        return None
    a = module.attributes.get("irtool.kv_capacity")
    return a.value.data if isinstance(a, IntegerAttr) else None


def check_cache_positions(value: object, what: str, context: int | None) -> int:
    """A KV cache capacity or window: `1..context` (and below 2**31)."""
    try:
        n = operator.index(value)  # type: ignore[arg-type]
    except TypeError:
        raise IrtoolError(f"{what} must be an integer, got {value!r}") from None
    top = min(context, C_INT_MAX) if context is not None else C_INT_MAX
    if not 1 <= n <= top:
        why = (f"the model's context (irtool.max_seq_len) is {context} positions"
               if context is not None and context < C_INT_MAX else "positions are int32_t")
        raise IrtoolError(f"{what} must be between 1 and {top}, got {n}: {why}")
    return n


def check_time_limit(seconds: float, what: str = "--time-limit") -> float:
    if not (isinstance(seconds, (int, float)) and math.isfinite(seconds) and seconds > 0):
        raise IrtoolError(f"{what} must be a positive number of seconds, got {seconds}")
    return float(seconds)
