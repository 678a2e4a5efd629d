"""Sampling: the interpreter's sampler (irtool/sampling.py) against the definition in float64,
and the C runtime's irt_sample against the interpreter's, bit for bit.

* xorshift32 gives Marsaglia's published first number (2463534242 -> 723471715).
* Over many draws the frequencies are those of softmax(logits / T) restricted to the top k and
  to the nucleus of mass p, computed here in float64 (an independent reference).
* The C sampler, built with fused multiply-adds allowed (-mfma -ffp-contract=fast where the
  CPU has FMA), chooses exactly the tokens of the interpreter's for every option set, seed and
  logit row (ties, -inf, vocabularies of 5, 70 and 512, top-k on both C paths).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

from irtool.errors import IrtoolError
from irtool.sampling import Sampler, SamplingOptions, parse_stop, xorshift32
from tests.requirements import need

RUNTIME = Path(__file__).resolve().parents[1] / "targets" / "c" / "runtime"


def test_xorshift32_is_marsaglias():
    assert xorshift32(2463534242) == 723471715


def _reference_distribution(logits: np.ndarray, o: SamplingOptions) -> np.ndarray:
    """float64: softmax(l / T) over the top k, then the smallest prefix of mass >= p."""
    order = sorted(range(logits.size), key=lambda i: (-logits[i], i))
    if o.top_k:
        order = order[:o.top_k]
    w = np.exp((logits[order].astype(np.float64) - logits.max()) / o.temperature)
    c = np.cumsum(w) / w.sum()
    n = int(np.searchsorted(c, o.top_p - 1e-12)) + 1 if o.top_p < 1 else len(order)
    probs = np.zeros(logits.size)
    probs[order[:n]] = w[:n] / w[:n].sum()
    return probs


@pytest.mark.parametrize("options", [SamplingOptions(1.0, seed=3),
                                     SamplingOptions(0.7, top_k=3, seed=4),
                                     SamplingOptions(1.5, top_p=0.8, seed=5),
                                     SamplingOptions(0.9, top_k=5, top_p=0.9, seed=6)])
def test_frequencies_follow_the_definition(options):
    logits = np.array([1.0, 2.5, 0.3, 2.4, -1.0, 1.7, 0.0, 2.0], dtype=np.float32)
    sampler, n = Sampler(options), 20_000
    counts = np.bincount([sampler(logits) for _ in range(n)], minlength=logits.size)
    want = _reference_distribution(logits, options)
    assert np.all(counts[want == 0] == 0), (counts, want)
    assert np.abs(counts / n - want).max() < 0.012, (counts / n, want)


def test_greedy_is_argmax_and_draws_nothing():
    logits = np.array([0.5, 3.0, 3.0, -1.0], dtype=np.float32)
    s = Sampler(SamplingOptions(0.0, seed=9))
    assert [s(logits) for _ in range(3)] == [1, 1, 1]
    assert s.state == Sampler(SamplingOptions(0.0, seed=9)).state
    assert Sampler(SamplingOptions(2.0, top_k=1))(logits) == 1


def test_bad_options_and_stop_are_one_line_errors():
    with pytest.raises(IrtoolError, match="--top-p"):
        SamplingOptions(0.8, top_p=0.0)
    with pytest.raises(IrtoolError, match="--temperature"):
        SamplingOptions(-1.0)
    with pytest.raises(IrtoolError, match="--stop"):
        parse_stop("2,x", None)
    # a temperature whose float32 reciprocal overflows made every token look alike (the
    # interpreter and the C program both returned token 511 over and over), inf did not
    # build; a top-k past C's int wrapped to 1 in C only (greedy there, sampling here)
    for bad in (1e-40, 1e39, float("inf"), float("nan")):
        with pytest.raises(IrtoolError, match=r"--temperature .*: must be 0 \(greedy\) or "
                                              r"between 1e-30 and 1e\+30"):
            SamplingOptions(bad)
    with pytest.raises(IrtoolError, match=r"--top-k 4294967297: must be in 0\.\.2147483647"):
        SamplingOptions(1.5, top_k=4294967297)
    assert SamplingOptions(1e-30).temperature == 1e-30  # the bounds themselves are fine
    assert SamplingOptions(1e30, top_k=2**31 - 1).top_k == 2**31 - 1


def test_token_ids_are_separated_never_joined():
    """`--tokens "1 2"` was the one id 12 (spaces removed before splitting on commas), and
    `1_2` and full-width digits were ids too: a different prompt without a word."""
    from irtool.run import parse_token_list
    from irtool.token_ids import parse_ids

    assert parse_ids("1 2", "--tokens") == (1, 2)
    assert parse_ids(" 1, 403 ,407\t261 ", "--tokens") == (1, 403, 407, 261)
    assert parse_token_list("1,403") == [1, 403]
    assert parse_stop("2 13", None) == (2, 13)
    for bad, what in (("1_2", "'1_2'"), ("\uff11", "'\uff11'"), ("1,,2", "an empty item"),
                      ("1,2,", "an empty item"), ("-3", "'-3'"), ("1,x", "'x'")):
        with pytest.raises(IrtoolError, match=f"^--prompt-tokens expects token ids .*has {what}$"):
            parse_token_list(bad, "--prompt-tokens")
    for empty in ("", "  "):
        with pytest.raises(IrtoolError, match="^--tokens is empty: give at least one token id$"):
            parse_token_list(empty)
    with pytest.raises(IrtoolError, match="outside the vocabulary"):
        SamplingOptions(stop=(600,)).check_stop(512)


DRIVER = r"""
#include <stdio.h>
#include <stdlib.h>
#include "irt_sample.h"
/* argv: vocab rows temperature top_k top_p seed; stdin: rows x vocab float32.
 * Prints the work size, then per row the token and the running sums left in the work area. */
static int k_of(const irt_sampling_t *o, int vocab)
{
    return o->top_k > 0 && o->top_k < vocab ? o->top_k : vocab;
}

int main(int argc, char **argv)
{
    int vocab = atoi(argv[1]), rows = atoi(argv[2]);
    if (argc != 7) return 2;
    irt_sampling_t o = {strtof(argv[3], NULL), atoi(argv[4]), strtof(argv[5], NULL),
                        (uint32_t)strtoul(argv[6], NULL, 10)};
    float *logits = malloc(sizeof(float) * (size_t)vocab * (size_t)rows);
    int32_t need = irt_sample_work_size(&o, vocab);
    irt_candidate_t *work = malloc(sizeof(irt_candidate_t) * (size_t)(need ? need : 1));
    irt_sampler_t s;
    if (fread(logits, sizeof(float), (size_t)vocab * (size_t)rows, stdin)
        != (size_t)vocab * (size_t)rows)
        return 2;
    irt_sampler_init(&s, &o, work, need);
    printf("%d\n", (int)need);
    for (int r = 0; r < rows; r++) {
        printf("%d", (int)irt_sample(&s, logits + (size_t)r * (size_t)vocab, vocab));
        for (int i = 0; i < need && i < k_of(&o, vocab); i++) { /* the running sums, bits */
            union { float f; uint32_t u; } v = {work[i].value};
            printf(" %08x", (unsigned)v.u);
        }
        printf("\n");
    }
    return 0;
}
"""

CASES = [SamplingOptions(0.8, seed=1), SamplingOptions(0.8, top_k=40, seed=2),
         SamplingOptions(1.0, top_p=0.9, seed=3), SamplingOptions(0.7, 40, 0.9, seed=4),
         SamplingOptions(1.3, top_k=100, top_p=0.95, seed=5),  # k > 64: the qsort path
         SamplingOptions(0.5, top_k=5, seed=0), SamplingOptions(2.0, top_k=3, seed=4294967295),
         SamplingOptions(0.0), SamplingOptions(1.0, top_k=1, seed=8)]


@pytest.fixture(scope="module")
def c_sampler(tmp_path_factory) -> Path:
    need("cc")
    d = tmp_path_factory.mktemp("sampler")
    (d / "driver.c").write_text(DRIVER)
    fma = ["-mfma", "-ffp-contract=fast"] if " fma " in Path("/proc/cpuinfo").read_text() \
        else []
    exe = d / "driver"
    subprocess.run(["gcc", "-O2", "-std=gnu11", "-Wall", "-Wextra", "-Werror", *fma,
                    f"-I{RUNTIME}", str(d / "driver.c"), str(RUNTIME / "irt_sample.c"),
                    "-o", str(exe)], check=True)
    return exe


def _logit_rows(vocab: int, rows: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 3, size=(rows, vocab)).astype(np.float32)
    x[::3] = np.round(x[::3] * 4) / 4  # ties between candidates
    x[1::5, :: 7] = -np.inf            # masked tokens
    return x


@pytest.mark.parametrize("vocab", [5, 70, 512])
@pytest.mark.parametrize("options", CASES, ids=str)
def test_c_sampler_chooses_exactly_the_interpreters_tokens(c_sampler, vocab, options):
    rows = _logit_rows(vocab, 300, seed=vocab)
    proc = subprocess.run([str(c_sampler), str(vocab), str(len(rows)),
                           repr(float(np.float32(options.temperature))), str(options.top_k),
                           repr(float(np.float32(options.top_p))), str(options.seed)],
                          input=rows.tobytes(), capture_output=True, check=True)
    work, *lines = proc.stdout.decode().splitlines()
    sampler = Sampler(options)
    want = []
    for row, line in zip(rows, lines, strict=True):
        token, *sums = line.split()
        want.append(sampler(row))
        assert int(token) == want[-1]
        if sums:  # the float32 running sums agree bit for bit, not just the choice
            assert [int(b, 16) for b in sums] == sampler.cumulative.view(np.uint32).tolist()
    assert int(work) == options.work_size(vocab) and len(lines) == len(rows)
    if not options.greedy and vocab > 5:
        assert len(set(want)) > 10  # really sampled, not one token


def test_default_stop_tokens_come_from_the_tokenizer(shared_models):
    from irtool.tokenizer import load_tokenizer

    llama = load_tokenizer(shared_models / "stories260K" / "tok512.bin")
    chars = load_tokenizer(shared_models / "nanogpt-tiny" / "vocab.json")
    assert parse_stop("eos", llama) == (1, 2)  # EOS, and BOS between TinyStories texts
    assert parse_stop(None, chars) == (0,)     # vocab.json's end_of_text is character 0
    assert parse_stop("none", llama) == () and parse_stop("7, 9", llama) == (7, 9)
