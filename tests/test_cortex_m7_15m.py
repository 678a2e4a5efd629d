"""A 15M-parameter model on cortex-m7-256k: the stories15M shape (dim 288, hidden 768, 6 layers,
6 heads, vocabulary 32,000, classifier tied to the token embedding) with random weights written
here in llama2.c format. Its float weights (61 MB) are four times the 16 MiB external Flash;
with `--quant w4g32 --quantize-lm-head` the classifier is 4-bit too and the token embedding
reads the classifier's packed rows (`quant.wembedding`), 9.5 MB in all. The first 8 generated
tokens on qemu equal the quant-level interpreter's.

Needs the ARM toolchain and qemu-system-arm (scripts/setup.sh installs them).
"""

from __future__ import annotations

import re
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.requirements import need

BIN = Path(sys.executable).parent
MODELS = Path(__file__).resolve().parents[2] / "shared" / "models"
DIM, HIDDEN, LAYERS, HEADS, VOCAB, SEQ = 288, 768, 6, 6, 32000, 64
PROMPT, STEPS, CAPACITY = [1, 200, 300], 8, 16


def write_checkpoint(path: Path) -> None:
    """llama2.c's layout (shared classifier): the header, then each tensor stacked over
    layers; linears scaled so that the layers, not the tied embedding, choose the tokens."""
    rng = np.random.default_rng(0)

    def normal(*shape, std):
        return rng.standard_normal(shape, dtype=np.float32) * np.float32(std)

    d, h, n = DIM, HIDDEN, LAYERS
    gain = 2 / np.sqrt(d)
    tensors = [normal(VOCAB, d, std=0.1), np.ones((n, d), np.float32),
               *(normal(n, d, d, std=gain) for _ in range(4)),  # wq wk wv wo
               np.ones((n, d), np.float32), normal(n, h, d, std=gain),
               normal(n, d, h, std=2 / np.sqrt(h)), normal(n, h, d, std=gain),
               np.ones(d, np.float32), np.zeros((2, SEQ, d // HEADS // 2), np.float32)]
    with path.open("wb") as f:
        f.write(struct.pack("<7i", d, h, n, HEADS, HEADS, VOCAB, SEQ))
        for t in tensors:
            f.write(np.ascontiguousarray(t, np.float32).tobytes())


def interpreter_tokens(model: Path) -> list[int]:
    from irtool.compile import CompileOptions, prepare_for_target
    from irtool.frontend.load import import_model
    from irtool.interpreter.runner import ModelRunner

    module, store = import_model(model)
    module, store = prepare_for_target(module, store, CompileOptions(
        target="cortex-m7-256k", capacity=CAPACITY, quant="w4g32", kv="int8",
        quantize_lm_head=True))
    return ModelRunner(module, store).generate(PROMPT, STEPS)


def test_stories15m_shape_w4g32_with_its_classifier_prints_the_interpreter_tokens(tmp_path):
    need("arm", "qemu-arm")
    model = tmp_path / "stories15m-random.bin"
    write_checkpoint(model)
    out = tmp_path / "m15"
    proc = subprocess.run([str(BIN / "irtool"), "compile", str(model), "--target",
                           "cortex-m7-256k", "-o", str(out), "--capacity", str(CAPACITY),
                           "--steps", str(STEPS), "--prompt-tokens", ",".join(map(str, PROMPT)),
                           "--quant", "w4g32", "--quantize-lm-head", "--kv", "int8",
                           "--stop", "none"], capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr
    model_c = (out / "model.c").read_text()
    assert "irt_embedding_w4g(" in model_c and "irt_linear_f32(" not in model_c
    run = subprocess.run(["make", "-s", "-C", str(out), "run"], stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True, timeout=900)
    assert run.returncode == 0, run.stdout[-3000:]
    tokens = re.search(r"^tokens: ([0-9,]*)$", run.stdout, re.M)
    assert tokens, run.stdout[-3000:]
    want = interpreter_tokens(model)
    assert len(set(want)) > 4  # the layers choose the tokens, not an echo of the prompt
    assert [int(t) for t in tokens.group(1).split(",")] == want
    # the linker's own figures: every region within its size, xflash under 16 MiB
    used = dict(re.findall(r"^\s+(\w+):\s+(\d+ [KM]?B)\s", run.stdout, re.M))
    assert set(used) >= {"irt_sram", "irt_xflash", "flash", "ram"}, run.stdout[-3000:]
    assert not re.search(r"overflowed|will not fit", run.stdout)
    xflash = int(used["irt_xflash"].split()[0]) * {"B": 1, "KB": 1024, "MB": 1 << 20}[
        used["irt_xflash"].split()[1]]
    assert 8 << 20 < xflash < 16 << 20  # 15M parameters at 4 bits + scales + token table


@pytest.mark.parametrize("quant", ["w8", "w1a4"])
def test_tied_embedding_kernels_natively_print_the_interpreter_tokens(quant, tmp_path):
    """The 8-bit and 1-bit tied-embedding kernels (w4g32's runs on qemu above), on stories260K
    built natively (`make host`: the same C runtime) against the quant-level interpreter."""
    need("models")
    from irtool.compile import CompileOptions, prepare_for_target
    from irtool.frontend.load import import_model
    from irtool.interpreter.runner import ModelRunner

    model = MODELS / "stories260K" / "stories260K.bin"
    ids = [1, 403, 407, 261, 378]
    out = tmp_path / quant
    proc = subprocess.run([str(BIN / "irtool"), "compile", str(model), "--target",
                           "cortex-m7-256k", "-o", str(out), "--capacity", "32", "--steps",
                           "8", "--prompt-tokens", ",".join(map(str, ids)), "--quant", quant,
                           "--quantize-lm-head", "--stop", "none"],
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr
    kernel = {"w8": "irt_embedding_w8(", "w1a4": "irt_embedding_w1("}[quant]
    assert kernel in (out / "model.c").read_text()
    run = subprocess.run(["make", "-s", "-C", str(out), "host"], stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True, timeout=900)
    assert run.returncode == 0, run.stdout[-3000:]
    module, store = import_model(model)
    module, store = prepare_for_target(module, store, CompileOptions(
        target="cortex-m7-256k", capacity=32, quant=quant, quantize_lm_head=True))
    want = ModelRunner(module, store).generate(ids, 8)
    tokens = re.search(r"^tokens: ([0-9,]*)$", run.stdout, re.M)
    assert tokens and [int(t) for t in tokens.group(1).split(",")] == want
