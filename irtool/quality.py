"""Quality of a (quantized) model against its float32 original: perplexity and agreement.

Definitions (those of `eval_tokens.json`):
* teacher forcing: a story of ids `s` is run once as inputs `s[:-1]`, its targets are `s[1:]`;
* perplexity = `exp(mean NLL over all targets of all stories)` (NLL from a float64
  log-softmax of the float32 logits);
* top-1 agreement = share of all positions whose argmax equals the float32 model's argmax;
* greedy match = number of leading tokens of a greedy continuation of the golden prompt that
  equal the float32 model's (64 steps).

Also here: reading token sequences (evaluation or calibration sets) from the formats irtool
accepts: `eval_tokens.json` (its `eval` or `calib` list), a JSON list of id lists, a plain
token-id file (one sequence per line, ids separated by commas and/or spaces), or a text file
plus a tokenizer (one sequence per paragraph, i.e. blocks separated by blank lines, each with
the tokenizer's BOS).
"""

from __future__ import annotations

import json
import math
import os
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from xdsl.dialects.builtin import ModuleOp

from irtool.errors import IrtoolError
from irtool.output_safety import note_input
from irtool.weights import WeightStore

EVAL_FILE = "eval_tokens.json"
GOLDEN_FILE = "golden.json"
GREEDY_STEPS = 64


# Token sequences ------------------------------------------------------------------------------

def _check_sequences(seqs: object, where: str) -> list[list[int]]:
    if not isinstance(seqs, list) or not seqs:
        raise IrtoolError(f"{where}: expected a non-empty list of token-id sequences")
    out = []
    for i, s in enumerate(seqs):
        if (not isinstance(s, list) or not s
                or not all(isinstance(t, int) and not isinstance(t, bool) for t in s)):
            raise IrtoolError(f"{where}: sequence #{i} is not a non-empty list of integer "
                              "token ids")
        out.append(s)
    return out


_ID_LINE = re.compile(r"^\s*-?\d+(\s*[,\s]\s*-?\d+)*\s*,?\s*$")


def load_sequences(path: str | os.PathLike[str], key: str = "eval",
                   tokenizer: str | os.PathLike[str] | None = None,
                   what: str = "token") -> list[list[int]]:
    """Token-id sequences from `path` (see the module docstring for the formats).

    `key` picks the list of an `eval_tokens.json`-style object (`eval` or `calib`); `what`
    names the file in error messages ("calibration", "evaluation").
    """
    p = Path(path)
    note_input(p, f"{what} file")  # never an output of this command (a project file's name)
    try:
        text = p.read_text()
    except FileNotFoundError:
        raise IrtoolError(f"{what} file '{path}' not found") from None
    except (OSError, UnicodeDecodeError) as e:
        raise IrtoolError(f"cannot read {what} file '{path}': {e}") from None
    if p.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise IrtoolError(f"'{path}' is not valid JSON ({e})") from None
        if isinstance(data, dict):
            if key not in data:
                raise IrtoolError(f"'{path}' has no \"{key}\" list of token-id sequences (keys: "
                                  f"{', '.join(map(str, data)) or 'none'})")
            data = data[key]
        return _check_sequences(data, f"'{path}' ({key})")
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if not lines:
        raise IrtoolError(f"{what} file '{path}' is empty")
    if all(_ID_LINE.match(ln) for ln in lines):
        return [[int(t) for t in re.split(r"[,\s]+", ln.strip()) if t] for ln in lines]
    if tokenizer is None:
        raise IrtoolError(f"{what} file '{path}' is neither JSON nor lines of token ids (one "
                          "sequence per line, ids separated by commas or spaces); if it is "
                          "text, give a tokenizer to encode it (--tokenizer FILE, or "
                          "tokenizer=FILE)")
    from irtool.tokenizer import load_tokenizer

    tok = load_tokenizer(tokenizer)
    paragraphs = [b.strip() for b in re.split(r"\n\s*\n", text) if b.strip()]
    bos = getattr(tok, "bos_id", None) is not None or hasattr(tok, "BOS")
    seqs = [tok.encode(para, bos=bos) for para in paragraphs]
    return _check_sequences([s for s in seqs if s], f"'{path}' (encoded with '{tokenizer}')")


def check_sequences(seqs: list[list[int]], vocab_size: int | None, max_len: int | None,
                    where: str, min_len: int = 1) -> list[list[int]]:
    """Ids inside the vocabulary; sequences cut to `max_len` tokens; too short ones fail."""
    out = []
    for i, s in enumerate(seqs):
        if vocab_size is not None:
            bad = [t for t in s if not 0 <= t < vocab_size]
            if bad:
                raise IrtoolError(f"{where}: sequence #{i} has token id {bad[0]}, outside the "
                                  f"model's vocabulary (0..{vocab_size - 1})")
        if len(s) < min_len:
            raise IrtoolError(f"{where}: sequence #{i} has {len(s)} token(s), at least "
                              f"{min_len} are needed")
        out.append(s[:max_len] if max_len else s)
    return out


# Evaluation ----------------------------------------------------------------------------------

@dataclass
class Evaluation:
    """Per-target NLLs and per-position argmaxes of one model over one evaluation set."""

    nll: np.ndarray
    argmax: np.ndarray
    seconds: float = 0.0

    @property
    def perplexity(self) -> float:
        return float(math.exp(float(np.mean(self.nll))))

    @property
    def targets(self) -> int:
        return int(self.nll.size)


def log_softmax(logits: np.ndarray) -> np.ndarray:
    z = logits.astype(np.float64)
    z = z - z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def evaluate(runner, stories: Sequence[Sequence[int]]) -> Evaluation:
    """Teacher-forced NLL and argmax, one full-sequence forward per story."""
    start = time.perf_counter()
    nll, arg = [], []
    for story in stories:
        if len(story) < 2:
            continue
        logits = runner.forward(story[:-1])
        targets = np.asarray(story[1:])
        nll.append(-log_softmax(logits)[np.arange(targets.size), targets])
        arg.append(np.argmax(logits, axis=-1))
    if not nll:
        raise IrtoolError("the evaluation set has no story of 2 or more tokens")
    return Evaluation(np.concatenate(nll), np.concatenate(arg), time.perf_counter() - start)


def agreement(reference: Evaluation, other: Evaluation) -> float:
    """Share of positions whose argmax equals the reference's."""
    if reference.argmax.shape != other.argmax.shape:
        raise IrtoolError("the two evaluations cover different positions")
    return float(np.mean(reference.argmax == other.argmax))


def leading_equal(a: Sequence[int], b: Sequence[int]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


# Sizes ----------------------------------------------------------------------------------------

def linear_weight_names(module: ModuleOp) -> set[str]:
    """Names of the store entries that feed linear layers (float, or quantized with scales)."""
    from irtool.dialects import quant as q
    from irtool.dialects import transformer as tf

    names: set[str] = set()
    for op in module.walk():
        if isinstance(op, tf.LinearOp | q.WLinearOp | q.QLinearOp):
            for v in op.operands[1:]:
                owner = v.owner
                if isinstance(owner, tf.WeightOp):
                    names.add(owner.weight_name.data)
    return names


def weight_bytes(module: ModuleOp, store: WeightStore) -> tuple[int, int]:
    """(bytes of every store entry the module uses, bytes of those feeding linear layers)."""
    from irtool.weights import weight_ops

    used = {op.weight_name.data for op in weight_ops(module)}
    linear = linear_weight_names(module)
    total = sum(store[n].nbytes for n in used if n in store)
    return total, sum(store[n].nbytes for n in linear if n in store)


# The report -----------------------------------------------------------------------------------

@dataclass
class QualityReport:
    label: str
    reference: Evaluation
    quantized: Evaluation
    greedy_reference: list[int]
    greedy_quantized: list[int]
    bytes_before: tuple[int, int]
    bytes_after: tuple[int, int]
    notes: list[str] = field(default_factory=list)

    @property
    def perplexity_change(self) -> float:
        """Relative change of perplexity vs float32 (0.01 = +1%)."""
        return self.quantized.perplexity / self.reference.perplexity - 1.0

    @property
    def agreement(self) -> float:
        return agreement(self.reference, self.quantized)

    @property
    def greedy_equal(self) -> int:
        return leading_equal(self.greedy_reference, self.greedy_quantized)

    def format(self) -> str:
        ref, qz = self.reference, self.quantized
        b0, b1 = self.bytes_before, self.bytes_after
        n = len(self.greedy_reference)
        lines = [
            f"quality of {self.label} against float32",
            f"  perplexity ({ref.targets} targets): {ref.perplexity:.4f} -> {qz.perplexity:.4f}"
            f" ({100 * self.perplexity_change:+.2f}%)",
            f"  top-1 agreement with float32: {100 * self.agreement:.2f}%",
            f"  greedy {n} tokens from the golden prompt: {self.greedy_equal}/{n} leading "
            "tokens equal to float32",
            f"  weight bytes: {b0[0]:,} -> {b1[0]:,} (linear layers {b0[1]:,} -> {b1[1]:,})",
            f"  interpreter time: float32 {ref.seconds:.1f} s, quantized {qz.seconds:.1f} s",
        ]
        return "\n".join(lines + [f"  note: {note}" for note in self.notes])


def golden_prompt(model_dir: Path, stories: Sequence[Sequence[int]]) -> list[int]:
    """The golden prompt ids beside the model, else the first 5 ids of the first story."""
    golden = model_dir / GOLDEN_FILE
    if golden.is_file():
        try:
            ids = json.loads(golden.read_text()).get("prompt_ids")
            if isinstance(ids, list) and ids:
                return [int(t) for t in ids]
        except (json.JSONDecodeError, ValueError, TypeError):
            pass
    return list(stories[0][:5])


# Speed: blas_threads lives in irtool.blas (small, so the drivers import it cheaply) ----------

from irtool.blas import blas_threads  # noqa: F401, E402  (re-exported)
