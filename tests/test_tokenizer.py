"""Tests for the llama2.c BPE tokenizer and the character tokenizer.

The golden files of the reference models pin the exact ids; a naive re-implementation of
llama2.c's quadratic merge loop checks the heap-based encoder on varied text.
"""

from __future__ import annotations

import json
import struct
from itertools import pairwise
from pathlib import Path

import pytest

from irtool.errors import IrtoolError
from irtool.tokenizer import CharTokenizer, Llama2cTokenizer, load_tokenizer
from tests.requirements import need

MODELS = Path(__file__).resolve().parents[1].parent / "shared" / "models"
TOK512 = MODELS / "stories260K" / "tok512.bin"
STORIES_GOLDEN = MODELS / "stories260K" / "golden.json"
CHAR_VOCAB = MODELS / "nanogpt-tiny" / "vocab.json"
CHAR_GOLDEN = MODELS / "nanogpt-tiny" / "golden.json"

ROUND_TRIP = [
    "Once upon a time",
    "Hello, world! How are you? I'm fine; thanks.",
    "There were 3 cats and 42 dogs: 1, 2, 3...",
    "line one\nline two\n\n  indented\ttab",
    "  leading spaces and trailing  ",
    # non-ASCII: byte fallback and multi-byte vocab entries
    "café naïve – “quoted” ™ 日本語 🙂",
    "x",
    "",
]


def _need(path: Path) -> Path:
    need("models")
    assert path.exists(), f"reference data not found: {path}"
    return path


@pytest.fixture(scope="module")
def tok() -> Llama2cTokenizer:
    return Llama2cTokenizer.from_file(_need(TOK512))


@pytest.fixture(scope="module")
def chars() -> CharTokenizer:
    return CharTokenizer.from_file(_need(CHAR_VOCAB))


def _naive_encode(tok: Llama2cTokenizer, text: str) -> list[int]:
    """llama2.c's merge loop written plainly: rescan, merge the best pair, repeat."""
    ids = []
    for ch in (" " + text) if text else "":
        b = ch.encode()
        if b in tok.pieces:
            ids.append(tok.pieces.index(b))
        else:
            ids.extend(x + 3 for x in b)
    while True:
        best, best_i, best_id = float("-inf"), -1, -1
        for i in range(len(ids) - 1):
            merged = tok.pieces[ids[i]] + tok.pieces[ids[i + 1]]
            if merged in tok.pieces:
                j = tok.pieces.index(merged)
                if tok.scores[j] > best:
                    best, best_i, best_id = tok.scores[j], i, j
        if best_i < 0:
            return [1] + ids
        ids[best_i : best_i + 2] = [best_id]


# --------------------------------------------------------------------------- llama2.c


def test_vocab(tok):
    assert tok.vocab_size == 512
    assert tok.pieces[1] == b"\n<s>\n" and tok.pieces[2] == b"\n</s>\n"
    assert tok.pieces[3] == b"<0x00>" and tok.pieces[258] == b"<0xFF>"


def test_encode_golden_prompt(tok):
    golden = json.loads(_need(STORIES_GOLDEN).read_text())
    assert tok.encode("Once upon a time") == [1, 403, 407, 261, 378]
    assert tok.encode(golden["prompt"]) == golden["prompt_ids"]


def test_encode_flags(tok):
    assert tok.encode("Once upon a time", bos=False) == [403, 407, 261, 378]
    assert tok.encode("Once upon a time", eos=True)[-1] == 2
    assert tok.encode("") == [1]
    assert tok.encode("", bos=False) == []


def test_decode_golden(tok):
    golden = json.loads(_need(STORIES_GOLDEN).read_text())
    assert tok.decode(golden["all_ids"]) == golden["text"]
    assert tok.decode(golden["prompt_ids"]) == "Once upon a time"


@pytest.mark.parametrize("text", ROUND_TRIP)
def test_round_trip(tok, text):
    ids = tok.encode(text)
    assert tok.decode(ids) == text
    assert ids == _naive_encode(tok, text)


def test_byte_fallback(tok):
    ids = tok.encode("日")  # not in the vocab: dummy-prefix space + its three UTF-8 bytes
    assert ids[-3:] == [b + 3 for b in "日".encode()]
    assert tok.decode(ids) == "日"


def test_decode_streaming_pieces(tok):
    ids = tok.encode("Once upon a time")
    pieces = [tok.decode_token(prev, t) for prev, t in pairwise(ids)]
    assert pieces == [b"Once", b" upon", b" a", b" time"]
    assert tok.decode_token(None, 1) == b""
    # A cut-off multi-byte character decodes to U+FFFD instead of raising.
    assert tok.decode([1] + [b + 3 for b in "日".encode()][:2]) == "\ufffd"


def test_decode_id_out_of_range(tok):
    with pytest.raises(IrtoolError, match=r"token id 512 .*vocabulary of size 512"):
        tok.decode([1, 403, 512])
    with pytest.raises(IrtoolError, match=r"token id -1 "):
        tok.decode([-1])


def test_corrupt_tokenizer_files(tmp_path):
    empty = tmp_path / "empty.bin"
    empty.write_bytes(b"")
    with pytest.raises(IrtoolError, match="not a llama2.c tokenizer") as exc:
        Llama2cTokenizer.from_file(empty)
    assert str(empty) in str(exc.value)

    cut = tmp_path / "cut.bin"
    records = b"".join(struct.pack("<fi", 0.0, len(p)) + p for p in (b"<unk>", b"<s>", b"</s>"))
    cut.write_bytes(struct.pack("<i", 5) + records[:-2])
    with pytest.raises(IrtoolError, match="cut off"):
        Llama2cTokenizer.from_file(cut)

    garbage = tmp_path / "garbage.bin"
    garbage.write_bytes(struct.pack("<i", 7) + struct.pack("<fi", 0.0, 1_000_000) + b"abc")
    with pytest.raises(IrtoolError, match="length 1000000"):
        Llama2cTokenizer.from_file(garbage)

    with pytest.raises(IrtoolError, match="cannot read tokenizer"):
        load_tokenizer(tmp_path / "missing.bin")


def test_tie_break_prefers_leftmost(tmp_path):
    # "aaa": both pairs make "aa" with the same score; llama2.c merges the leftmost first.
    pieces = [b"<unk>", b"<s>", b"</s>"] + [b"<0x%02X>" % i for i in range(256)]
    pieces += [b" ", b"a", b"aa", b" aa", b" a"]
    scores = [0.0] * 259 + [-1.0, -2.0, -3.0, -4.0, -10.0]
    path = tmp_path / "tiny.bin"
    path.write_bytes(
        struct.pack("<i", 6)
        + b"".join(struct.pack("<fi", s, len(p)) + p for p, s in zip(pieces, scores, strict=True))
    )
    t = load_tokenizer(path)
    assert isinstance(t, Llama2cTokenizer)
    ids = t.encode("aaa")
    # Leftmost: " a a a" -> " aa a" -> " aa"+"a"; rightmost first would end as " a"+"aa".
    assert [t.pieces[i] for i in ids[1:]] == [b" aa", b"a"]
    assert ids == _naive_encode(t, "aaa")
    assert t.decode(ids) == "aaa"


# --------------------------------------------------------------------------- characters


def test_char_tokenizer_golden(chars):
    golden = json.loads(_need(CHAR_GOLDEN).read_text())
    assert chars.vocab_size == 70
    assert chars.encode(golden["prompt"]) == golden["prompt_ids"]
    assert chars.decode(golden["all_ids"]) == golden["text"]
    assert chars.encode(golden["text"]) == golden["all_ids"]
    assert chars.bos_id == chars.eos_id == 0
    assert chars.encode("Hi", bos=True, eos=True) == [0, 21, 48, 0]


def test_char_tokenizer_unknown_char(chars):
    with pytest.raises(IrtoolError, match=r"character '#' \(U\+0023\) at position 3"):
        chars.encode("abc#")


def test_char_tokenizer_id_out_of_range(chars):
    with pytest.raises(IrtoolError, match=r"token id 70 .*vocabulary of size 70"):
        chars.decode([1, 70])


def test_load_tokenizer_dispatch(chars, tmp_path):
    assert isinstance(load_tokenizer(CHAR_VOCAB), CharTokenizer)
    assert isinstance(load_tokenizer(_need(TOK512)), Llama2cTokenizer)
    bad = tmp_path / "vocab.json"
    bad.write_text('{"chars": ["a", "bc"]}')
    with pytest.raises(IrtoolError, match="not a character vocabulary") as exc:
        load_tokenizer(bad)
    assert str(bad) in str(exc.value)
    bad.write_text("not json")
    with pytest.raises(IrtoolError, match="invalid JSON"):
        load_tokenizer(bad)
