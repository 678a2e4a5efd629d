"""Tokenizers for the models irtool runs: llama2.c's BPE files and plain character vocabularies.

Generation drivers need text <-> token ids that match what the model was trained with *exactly*,
or the golden outputs cannot be reproduced.  Two formats are supported:

* :class:`Llama2cTokenizer` reads llama2.c's ``tokenizer.bin`` (e.g. ``tok512.bin``) and
  reproduces llama2.c's ``encode`` (greedy highest-score BPE merges over UTF-8 characters with
  byte fallback) and its streaming ``decode``.
* :class:`CharTokenizer` reads a ``vocab.json`` of the form ``{"chars": [...],
  "end_of_text": "\\u0003"}`` where a token id is the index of its character.
* :class:`HFTokenizer` reads a Hugging Face ``tokenizer.json`` (the file of a checkpoint
  folder) with the ``tokenizers`` package, which implements every model and normaliser in it.

:func:`load_tokenizer` picks one by file extension.  Every problem a user can cause (missing or
corrupt file, unknown character, id out of range) raises :class:`~irtool.errors.IrtoolError`.
"""

from __future__ import annotations

import functools
import heapq
import json
import operator
import os
import re
import struct
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Protocol

from irtool.errors import IrtoolError

__all__ = ["CharTokenizer", "HFTokenizer", "Llama2cTokenizer", "Tokenizer", "check_agreement",
           "load_tokenizer"]


class Tokenizer(Protocol):
    """What generation drivers rely on; both tokenizers below implement it."""

    bos_id: int | None
    eos_id: int | None

    @property
    def vocab_size(self) -> int: ...

    def encode(self, text: str, bos: bool = ..., eos: bool = ...) -> list[int]: ...

    def decode(self, ids: Iterable[int]) -> str: ...


def _check_id(token: object, vocab_size: int) -> int:
    """Return ``token`` as an int in ``[0, vocab_size)`` or raise a message naming both."""
    try:
        value = operator.index(token)  # accepts numpy integers, rejects floats
    except TypeError:
        raise IrtoolError(f"token id {token!r} is not an integer") from None
    if not 0 <= value < vocab_size:
        raise IrtoolError(f"token id {value} is out of range for a vocabulary of size {vocab_size}")
    return value


# ---------------------------------------------------------------------------------------------
# llama2.c BPE tokenizer
# ---------------------------------------------------------------------------------------------

_BYTE_PIECE = re.compile(rb"<0x([0-9A-Fa-f]{2})>")


class Llama2cTokenizer:
    """llama2.c's tokenizer: a scored vocabulary of byte strings and greedy BPE merging.

    File format (little-endian): int32 ``max_token_length``, then for every token a float32 merge
    score, an int32 byte length and that many bytes.  The vocabulary size is not stored; it is
    the number of records up to the end of the file.  Ids 0, 1, 2 are ``<unk>``, BOS and EOS, and
    ids 3..258 are the raw byte tokens ``<0x00>``..``<0xFF>`` (llama2.c hard-codes byte + 3).
    """

    BOS = 1
    EOS = 2
    #: llama2.c maps a raw byte b to token b + BYTE_OFFSET when its character is not in the vocab.
    BYTE_OFFSET = 3

    def __init__(self, pieces: Sequence[bytes], scores: Sequence[float], max_token_length: int):
        if len(pieces) != len(scores):
            raise ValueError("pieces and scores must have the same length")
        self.pieces: list[bytes] = list(pieces)
        self.scores: list[float] = [float(s) for s in scores]
        self.max_token_length = max_token_length
        self.bos_id: int | None = self.BOS
        self.eos_id: int | None = self.EOS
        # First id wins for duplicate strings, so lookups are deterministic.
        self._ids: dict[bytes, int] = {}
        for i, piece in enumerate(self.pieces):
            self._ids.setdefault(piece, i)
        # Pieces as decode emits them: byte tokens become their single raw byte.
        self._emit: list[bytes] = [
            bytes([int(m.group(1), 16)]) if (m := _BYTE_PIECE.fullmatch(p)) else p
            for p in self.pieces
        ]

    # -- loading ------------------------------------------------------------------------------

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> Llama2cTokenizer:
        """Parse a llama2.c ``tokenizer.bin``; corrupt or foreign files raise IrtoolError."""
        path = Path(path)
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise IrtoolError(f"cannot read tokenizer {path}: {exc.strerror or exc}") from exc

        def bad(why: str) -> IrtoolError:
            return IrtoolError(f"{path}: not a llama2.c tokenizer file ({why})")

        if len(data) < 4:
            raise bad(f"file is {len(data)} bytes, too short for the header")
        (max_len,) = struct.unpack_from("<i", data, 0)
        if not 0 < max_len <= 1 << 16:
            raise bad(f"implausible max_token_length {max_len}")
        pieces: list[bytes] = []
        scores: list[float] = []
        record = struct.Struct("<fi")
        pos = 4
        while pos < len(data):
            if pos + record.size > len(data):
                raise bad(f"token {len(pieces)} record cut off at byte {pos}")
            score, length = record.unpack_from(data, pos)
            pos += record.size
            if not 0 <= length <= max_len:
                raise bad(
                    f"token {len(pieces)} has length {length}, outside 0..{max_len} "
                    "(max_token_length)"
                )
            if pos + length > len(data):
                raise bad(f"token {len(pieces)} text cut off at byte {pos}")
            if score != score:  # NaN
                raise bad(f"token {len(pieces)} has a NaN score")
            pieces.append(data[pos : pos + length])
            scores.append(score)
            pos += length
        if len(pieces) < 3:
            raise bad(f"only {len(pieces)} tokens; need at least <unk>, BOS and EOS")
        return cls(pieces, scores, max_len)

    @property
    def vocab_size(self) -> int:
        """Number of tokens in the vocabulary."""
        return len(self.pieces)

    # -- encoding -----------------------------------------------------------------------------

    def _initial_tokens(self, text: str) -> list[int]:
        """One token per UTF-8 character; byte tokens for characters missing from the vocab."""
        ids: list[int] = []
        for ch in text:
            try:
                utf8 = ch.encode("utf-8")
            except UnicodeEncodeError:
                raise IrtoolError(
                    f"cannot encode character U+{ord(ch):04X}: it is not valid Unicode text"
                ) from None
            tok = self._ids.get(utf8)
            if tok is not None:
                ids.append(tok)
                continue
            for b in utf8:
                tok = b + self.BYTE_OFFSET
                if tok >= self.vocab_size:
                    raise IrtoolError(
                        f"cannot encode character {ch!r} (U+{ord(ch):04X}): it is not in the "
                        f"vocabulary and byte-fallback token {tok} is out of range for a "
                        f"vocabulary of size {self.vocab_size}"
                    )
                ids.append(tok)
        return ids

    def _merge(self, ids: list[int]) -> list[int]:
        """Apply llama2.c's greedy merges: best-scoring adjacent pair first, leftmost on ties.

        llama2.c rescans the whole sequence after every merge (quadratic in the text length).
        The same order is obtained with a heap keyed on (-score, position of the left symbol):
        merging never reorders symbols, so the original start index of a symbol gives its current
        left-to-right rank.  Heap entries whose symbols have since changed are skipped.
        """
        n = len(ids)
        if n < 2:
            return ids
        tok = list(ids)
        nxt = list(range(1, n + 1))  # n means "no next"
        prv = list(range(-1, n - 1))
        alive = [True] * n
        heap: list[tuple[float, int, int, int, int, int]] = []

        def push(i: int, j: int) -> None:
            merged = self._ids.get(self.pieces[tok[i]] + self.pieces[tok[j]])
            if merged is not None:
                heap.append((-self.scores[merged], i, j, tok[i], tok[j], merged))

        for i in range(n - 1):
            push(i, i + 1)
        heapq.heapify(heap)
        push_heap = heapq.heappush
        while heap:
            _, i, j, ti, tj, merged = heapq.heappop(heap)
            if not (alive[i] and alive[j] and nxt[i] == j and tok[i] == ti and tok[j] == tj):
                continue  # stale: one of the two symbols was merged away or changed
            tok[i] = merged
            alive[j] = False
            nxt[i] = nxt[j]
            if nxt[j] < n:
                prv[nxt[j]] = i
            for a, b in ((prv[i], i), (i, nxt[i])):
                if 0 <= a and b < n:
                    m = self._ids.get(self.pieces[tok[a]] + self.pieces[tok[b]])
                    if m is not None:
                        push_heap(heap, (-self.scores[m], a, b, tok[a], tok[b], m))
        return [t for t, keep in zip(tok, alive, strict=True) if keep]

    def encode(self, text: str, bos: bool = True, eos: bool = False) -> list[int]:
        """Token ids for ``text`` exactly as llama2.c's ``encode`` produces them.

        A non-empty text gets SentencePiece's dummy-prefix space, so "Once" is encoded like
        " Once" (which is how words appear mid-sentence in the training data).
        """
        if not isinstance(text, str):
            raise TypeError(f"encode expects str, got {type(text).__name__}")
        ids = self._merge(self._initial_tokens(" " + text)) if text else []
        return ([self.BOS] if bos else []) + ids + ([self.EOS] if eos else [])

    # -- decoding -----------------------------------------------------------------------------

    def decode_token(self, prev: int | None, tok: int) -> bytes:
        """The bytes llama2.c prints for ``tok`` following ``prev`` (for streaming output).

        Byte tokens ``<0xHH>`` give that raw byte, a token right after BOS loses its leading space
        (the dummy prefix), and BOS/EOS themselves give nothing.  Unlike llama2.c's
        ``safe_printf`` no bytes are filtered, so multi-byte UTF-8 characters survive; join the
        pieces before decoding them as UTF-8, since one character may span several tokens.
        """
        tok = _check_id(tok, self.vocab_size)
        if tok in (self.BOS, self.EOS):
            return b""
        piece = self._emit[tok]
        # Tested on the vocab string, so a byte token <0x20> after BOS still yields its space.
        if prev is not None and self.pieces[tok].startswith(b" "):
            if _check_id(prev, self.vocab_size) == self.BOS:
                piece = piece[1:]
        return piece

    def decode(self, ids: Iterable[int]) -> str:
        """Text of a whole id list, as llama2.c would print it token by token.

        BOS and EOS are dropped; invalid UTF-8 (e.g. a cut-off multi-byte character) becomes
        U+FFFD rather than an error, because generated sequences can end anywhere.
        """
        out: list[bytes] = []
        prev: int | None = None
        for tok in ids:
            out.append(self.decode_token(prev, tok))
            prev = operator.index(tok)
        return b"".join(out).decode("utf-8", errors="replace")


# ---------------------------------------------------------------------------------------------
# Character-level tokenizer
# ---------------------------------------------------------------------------------------------


class CharTokenizer:
    """A character vocabulary: token id = index of the character in ``chars``.

    ``end_of_text`` (if given) separates documents in the training corpus, so it doubles as the
    BOS and EOS token when ``encode`` is asked for them.
    """

    def __init__(self, chars: Sequence[str], end_of_text: str | None = None):
        self.chars: list[str] = list(chars)
        self._ids: dict[str, int] = {c: i for i, c in enumerate(self.chars)}
        self.end_of_text = end_of_text
        eot = self._ids.get(end_of_text) if end_of_text is not None else None
        self.bos_id: int | None = eot
        self.eos_id: int | None = eot

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> CharTokenizer:
        """Load ``{"chars": [...], "end_of_text": ...}``; malformed files raise IrtoolError."""
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise IrtoolError(f"cannot read tokenizer {path}: {exc.strerror or exc}") from exc
        except UnicodeDecodeError:
            raise IrtoolError(f"{path}: not a character vocabulary (not UTF-8 JSON)") from None
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise IrtoolError(f"{path}: not a character vocabulary (invalid JSON: {exc})") from None

        def bad(why: str) -> IrtoolError:
            return IrtoolError(f"{path}: not a character vocabulary ({why})")

        if not isinstance(data, dict) or not isinstance(data.get("chars"), list):
            raise bad('expected an object with a "chars" list')
        chars = data["chars"]
        if not chars:
            raise bad('"chars" is empty')
        for i, c in enumerate(chars):
            if not isinstance(c, str) or len(c) != 1:
                raise bad(f"entry {i} is {c!r}, not a single character")
        if len(set(chars)) != len(chars):
            dup = next(c for i, c in enumerate(chars) if c in chars[:i])
            raise bad(f"character {dup!r} appears more than once")
        eot = data.get("end_of_text")
        if eot is not None and eot not in chars:
            raise bad(f"end_of_text {eot!r} is not one of the chars")
        return cls(chars, eot)

    @property
    def vocab_size(self) -> int:
        """Number of characters in the vocabulary."""
        return len(self.chars)

    def encode(self, text: str, bos: bool = False, eos: bool = False) -> list[int]:
        """Ids of the characters of ``text``; ``bos``/``eos`` add the end-of-text separator."""
        if (bos or eos) and self.bos_id is None:
            raise IrtoolError("this character vocabulary has no end_of_text token for BOS/EOS")
        ids: list[int] = [self.bos_id] if bos else []  # type: ignore[list-item]
        for pos, ch in enumerate(text):
            tok = self._ids.get(ch)
            if tok is None:
                raise IrtoolError(
                    f"character {ch!r} (U+{ord(ch):04X}) at position {pos} is not in the "
                    f"vocabulary of {self.vocab_size} characters"
                )
            ids.append(tok)
        if eos:
            ids.append(self.eos_id)  # type: ignore[arg-type]
        return ids

    def decode(self, ids: Iterable[int]) -> str:
        """The characters of ``ids`` joined; the end-of-text character is kept as is."""
        return "".join(self.chars[_check_id(t, self.vocab_size)] for t in ids)


class HFTokenizer:
    """A Hugging Face ``tokenizer.json``, run by the ``tokenizers`` package.

    ``encode`` adds the special tokens the file's post-processor adds (e.g. Llama's BOS) when
    ``bos`` is true. BOS/EOS ids come from the folder's config.json when present.
    ``end_ids`` are every token that ends a text, as transformers' generate takes them
    (see `_end_ids`); ``eos_id`` is the first.
    """

    HF_NAME = "tokenizer.json"

    def __init__(self, tokenizer, bos_id: int | None = None, eos_id: int | None = None,
                 end_ids: tuple[int, ...] | None = None):
        self._tok = tokenizer
        self.bos_id = bos_id
        self.end_ids = end_ids if end_ids is not None else \
            (() if eos_id is None else (eos_id,))
        self.eos_id = eos_id if eos_id is not None else next(iter(self.end_ids), None)

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> HFTokenizer:
        from tokenizers import Tokenizer as _Tokenizer

        path = Path(path)
        try:
            tok = _Tokenizer.from_file(os.fspath(path))
        except Exception as exc:  # tokenizers raises a bare Exception for a bad file
            raise IrtoolError(f"{path}: not a Hugging Face tokenizer.json ({exc})") from None
        config = _json_or_empty(path.parent / "config.json")
        # An id the tokenizer does not have is not its BOS/EOS: GPT-2 configs keep the
        # default 50256 over a small vocabulary of their own (transformers warns, and the
        # model never emits it); kept, `--stop eos` was refused as outside the vocabulary.
        size = tok.get_vocab_size(with_added_tokens=True)

        def known(i: int | None) -> int | None:
            return i if i is not None and i < size else None

        ends = tuple(i for i in _end_ids(path.parent) or () if i < size)
        return cls(tok, known(_special_id(tok, config, "bos")),
                   known(_special_id(tok, config, "eos")), ends)

    @property
    def vocab_size(self) -> int:
        return self._tok.get_vocab_size(with_added_tokens=True)

    def encode(self, text: str, bos: bool = True, eos: bool = False) -> list[int]:
        ids = list(self._tok.encode(text, add_special_tokens=bos).ids)
        if eos and self.eos_id is not None:
            ids.append(self.eos_id)
        return ids

    def decode(self, ids: Iterable[int]) -> str:
        """The text of `ids`; an id the file does not define (a model's embedding table is
        often padded past its tokenizer) is shown as `<id>`. One id decodes to its text as it
        appears after other text (decoders such as Metaspace drop a leading space at the
        start of a text): what a program printing token by token needs."""
        ids = list(ids)
        if len(ids) == 1 and 0 <= ids[0] < self.vocab_size:
            return self._piece(ids[0])
        return self._decode(ids)

    def _piece(self, token: int) -> str:
        anchor = self._anchor
        if anchor is None:
            return self._decode([token])
        before = self._decode([anchor])
        both = self._decode([anchor, token])
        return both[len(before):] if both.startswith(before) else self._decode([token])

    @functools.cached_property
    def _anchor(self) -> int | None:
        """An ordinary token with some text, to decode single tokens after."""
        special = {i for i in (self.bos_id, self.eos_id) if i is not None} | {
            i for i, t in self._tok.get_added_tokens_decoder().items() if t.special}
        return next((i for i in range(self.vocab_size)
                     if i not in special and self._decode([i]).strip()), None)

    def _decode(self, ids: list[int]) -> str:
        out: list[str] = []
        run: list[int] = []
        for t in ids:
            t = _check_id(t, 1 << 31)
            if t < self.vocab_size:
                run.append(t)
                continue
            out += [self._tok.decode(run, skip_special_tokens=False), f"<{t}>"]
            run = []
        out.append(self._tok.decode(run, skip_special_tokens=False))
        return "".join(out)


def _json_or_empty(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def _special_id(tok, config: dict, which: str) -> int | None:
    """`{which}_token_id` of config.json if it is an int, else the id of the token named in
    tokenizer_config.json (e.g. `"bos_token": "<s>"`)."""
    value = config.get(f"{which}_token_id")
    if isinstance(value, int) and value >= 0:
        return value
    name = config.get(f"{which}_token")
    return tok.token_to_id(name) if isinstance(name, str) else None


def _end_ids(folder: Path) -> tuple[int, ...] | None:
    """The ids that end generation: eos_token_id of generation_config.json, which
    transformers' generate reads before config.json's, else of config.json; an int or a list
    (instruction-tuned models end a turn with another token than the text's EOS, e.g. Llama 3:
    [128001, 128008, 128009]). None when neither file gives one."""
    for name in ("generation_config.json", "config.json"):
        value = _json_or_empty(folder / name).get("eos_token_id")
        values = value if isinstance(value, list) else [value]
        ids = tuple(v for v in values if isinstance(v, int) and not isinstance(v, bool)
                    and v >= 0)
        if ids:
            return ids
    return None


def check_agreement(tok: Tokenizer, tok_path: str | os.PathLike[str], vocab: int | None,
                    model_path: str | os.PathLike[str]) -> None:
    """A tokenizer and a model must share one vocabulary: the same number of ids (a 512-token
    tokenizer on a 600-token model cannot print ids 512..599; a truncated tok512.bin loses
    ids), and a llama2.c file named `tok<N>.bin` must hold N tokens."""
    size = tok.vocab_size
    if isinstance(tok, HFTokenizer) and vocab is not None and size <= vocab:
        return  # embedding tables are often padded past tokenizer.json: those ids print <id>
    m = re.fullmatch(r"tok(\d+)\.bin", Path(tok_path).name)
    if m and int(m.group(1)) != size:
        raise IrtoolError(f"tokenizer '{tok_path}' holds {size} tokens but its name says "
                          f"{m.group(1)}: the file is truncated or not what its name says")
    if vocab is not None and size != vocab:
        raise IrtoolError(f"tokenizer '{tok_path}' has {size} tokens but model '{model_path}' "
                          f"has a vocabulary of {vocab}: they do not belong together; pass the "
                          "model's own tokenizer with --tokenizer")


def load_tokenizer(path: str | os.PathLike[str]
                   ) -> Llama2cTokenizer | CharTokenizer | HFTokenizer:
    """Pick the tokenizer by name: a directory or ``tokenizer.json`` is a Hugging Face
    tokenizer, another ``.json`` a character vocabulary, anything else llama2.c's format."""
    from irtool.output_safety import note_input

    path = Path(path)
    if path.is_dir():
        path = path / HFTokenizer.HF_NAME
        if not path.is_file():
            raise IrtoolError(f"no {HFTokenizer.HF_NAME} in '{path.parent}': pass --tokenizer "
                              "FILE")
    note_input(path, "tokenizer")
    if path.name == HFTokenizer.HF_NAME:
        return HFTokenizer.from_file(path)
    if path.suffix.lower() == ".json":
        return CharTokenizer.from_file(path)
    return Llama2cTokenizer.from_file(path)
