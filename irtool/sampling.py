"""Choosing the next token: greedy, or temperature / top-k / top-p sampling from a seeded
xorshift32 generator, bit-identical to the C runtime's `irt_sample` (targets/c/runtime/
irt_sample.h has the definition, step by step).

Why bit-identical: a firmware team checks its device against the interpreter with the same
seed, so the sampler must not add differences of its own. Every step is a float32 operation
in the C order: elementwise numpy float32 operations round like C's, and running sums use
`np.cumsum`, which adds sequentially (`add.accumulate`), as the C loop does. exp is the same
degree-7 polynomial, not numpy's exp (libm's exp differs between machines in the last bit).

Stop tokens end a generation: the stop token itself is neither returned nor printed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from irtool.errors import IrtoolError

F = np.float32
_MASK = 0xFFFFFFFF
INSERTION_MAX = 64  # top_k up to this needs only top_k entries of C work area
TEMPERATURE_MIN, TEMPERATURE_MAX = 1e-30, 1e30
"""A temperature's float32 reciprocal scales the logits: 1/1e-40 overflows to inf (every token
then looked alike: garbage, not greedy), and so does 1e39 itself; within these bounds the
scaled logits stay finite, and the C runtime gets the same float32 value."""
TOP_K_MAX = 2**31 - 1  # the C runtime's int: a larger one wrapped to another number
_EXP_POLY = tuple(F(c) for c in ("1.98412701e-04", "1.38888892e-03", "8.33333377e-03",
                                 "4.16666679e-02", "1.66666672e-01", "0.5", "1.0", "1.0"))


@dataclass(frozen=True)
class SamplingOptions:
    """What the caller chooses; the defaults are greedy with no stop token."""

    temperature: float = 0.0
    top_k: int = 0
    top_p: float = 1.0
    seed: int = 0
    stop: tuple[int, ...] = field(default=())

    def __post_init__(self):
        t = self.temperature
        if not (t == 0 or TEMPERATURE_MIN <= t <= TEMPERATURE_MAX):  # NaN too
            raise IrtoolError(f"--temperature {t}: must be 0 (greedy) or between "
                              f"{TEMPERATURE_MIN:g} and {TEMPERATURE_MAX:g} (the sampler "
                              "divides float32 logits by it)")
        if not 0 <= self.top_k <= TOP_K_MAX:
            raise IrtoolError(f"--top-k {self.top_k}: must be in 0..{TOP_K_MAX} (0 keeps every "
                              "token; more than the vocabulary keeps every token too)")
        if not 0 < self.top_p <= 1:
            raise IrtoolError(f"--top-p {self.top_p}: must be in (0, 1] (1 keeps every token)")
        if not 0 <= self.seed <= _MASK:
            raise IrtoolError(f"--seed {self.seed}: must be in 0..{_MASK} (32 bits)")

    @property
    def greedy(self) -> bool:
        return not F(self.temperature) > 0 or self.top_k == 1

    def sorted_candidates(self, vocab: int) -> bool:
        return 0 < self.top_k < vocab or F(self.top_p) < 1

    def work_size(self, vocab: int) -> int:
        """Entries of the C work area these options need (irt_sample_work_size)."""
        if self.greedy or not self.sorted_candidates(vocab):
            return 0
        if 0 < self.top_k <= INSERTION_MAX and self.top_k < vocab:
            return self.top_k
        return vocab

    def check_stop(self, vocab: int) -> None:
        bad = [t for t in self.stop if not 0 <= t < vocab]
        if bad:
            raise IrtoolError(f"--stop token {bad[0]} is outside the vocabulary (0..{vocab - 1})")


GREEDY = SamplingOptions()


def seed_state(seed: int) -> int:
    """The generator's first state (irt_sampler_init): nearby seeds spread apart, never 0."""
    state = (seed * 0x9E3779B1 + 0x6D2B79F5) & _MASK
    return state or 1


def xorshift32(state: int) -> int:
    state ^= (state << 13) & _MASK
    state ^= state >> 17
    state ^= (state << 5) & _MASK
    return state


def sample_exp(x: np.ndarray) -> np.ndarray:
    """exp(x) for float32 x <= 0 in the C runtime's float32 steps (0 below -87 and for NaN)."""
    x = np.asarray(x, dtype=F)
    ok = x >= F(-87.0)
    x = np.where(ok, x, F(0))  # -inf and NaN become 0 below, without invalid arithmetic
    t = x * F(1.44269504) + F(12582912.0)
    n = t - F(12582912.0)
    r = x - n * F(0.693145751953125)
    r = r - n * F(1.42860677e-06)
    p = np.full_like(x, _EXP_POLY[0])
    for c in _EXP_POLY[1:]:
        p = p * r + c
    ni = n.astype(np.int32)
    scale = ((ni + 127).astype(np.uint32) << np.uint32(23)).view(F)
    return np.where(ok, p * scale, F(0)).astype(F)


class Sampler:
    """Chooses tokens from logits, one draw of the generator per sampled token."""

    def __init__(self, options: SamplingOptions = GREEDY):
        self.options = options
        self.state = seed_state(options.seed)
        self.cumulative: np.ndarray | None = None

    def draw(self) -> np.float32:
        """u in [0, 1): the top 24 bits of the next number, times 2^-24 (exact)."""
        self.state = xorshift32(self.state)
        return F(self.state >> 8) * F(2.0 ** -24)

    def __call__(self, logits: np.ndarray) -> int:
        o = self.options
        logits = np.asarray(logits, dtype=F).reshape(-1)
        vocab = logits.size
        best = int(np.argmax(logits))  # the first largest, as in C (NaNs aside)
        if o.greedy:
            return best
        m, inv_t = logits[best], F(1) / F(o.temperature)
        if not o.sorted_candidates(vocab):
            order = np.arange(vocab)
        else:
            order = np.lexsort((np.arange(vocab), -logits))
            if 0 < o.top_k < vocab:
                order = order[:o.top_k]
        c = np.cumsum(sample_exp((logits[order] - m) * inv_t), dtype=F)
        self.cumulative = c  # the running sums, as C leaves them in its work area
        n = order.size
        if F(o.top_p) < 1:  # the first j with c_j >= top_p * c_last ends the nucleus
            reached = np.flatnonzero(c >= F(o.top_p) * c[-1])
            n = int(reached[0]) + 1 if reached.size else n
        r = self.draw() * c[n - 1]
        hit = np.flatnonzero(r < c[:n])
        return int(order[hit[0]] if hit.size else order[n - 1])


def end_tokens(tokenizer) -> tuple[int, ...]:
    """The tokens that end a text for this tokenizer: its EOS (all of a Hugging Face
    folder's end ids, `HFTokenizer.end_ids`), and for llama2.c's tokenizer also BOS, which
    separates the TinyStories training texts (run.c stops there too)."""
    from irtool.tokenizer import Llama2cTokenizer

    if tokenizer is None:
        return ()
    ids = list(getattr(tokenizer, "end_ids", ())) or [getattr(tokenizer, "eos_id", None)]
    if isinstance(tokenizer, Llama2cTokenizer):
        ids.append(tokenizer.bos_id)
    return tuple(sorted({int(i) for i in ids if i is not None}))


def parse_stop(text: str | None, tokenizer) -> tuple[int, ...]:
    """--stop: `eos` (the tokenizer's end tokens, the default), `none`, or ids `2,13`."""
    if text is None or text == "eos":
        return end_tokens(tokenizer)
    if text == "none":
        return ()
    from irtool.token_ids import parse_ids

    return parse_ids(text, "--stop (eos, none or token ids)")


def add_arguments(p) -> None:
    """--temperature --top-k --top-p --seed --stop on an argparse (sub)parser."""
    p.add_argument("--temperature", type=float, default=0.0,
                   help="sampling temperature (default 0: greedy)")
    p.add_argument("--top-k", type=int, default=0, help="sample among the K most likely tokens "
                   "(default 0: all)")
    p.add_argument("--top-p", type=float, default=1.0, help="sample from the smallest set of "
                   "most likely tokens whose probability reaches P (default 1: all)")
    p.add_argument("--seed", type=int, default=0, help="seed of the xorshift32 generator "
                   "(the same seed gives the same tokens in the interpreter and in C)")
    p.add_argument("--stop", metavar="eos|none|IDS", default="eos",
                   help="tokens that end the generation (not printed): eos (the tokenizer's "
                        "end tokens, the default), none, or token ids (commas or spaces between)")


def options_from_args(args, tokenizer) -> SamplingOptions:
    return SamplingOptions(args.temperature, args.top_k, args.top_p, args.seed,
                           parse_stop(args.stop, tokenizer))
