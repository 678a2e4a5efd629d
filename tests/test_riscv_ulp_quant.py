"""Quantized models on the riscv-ulp target: `irtool compile --quant ... [--kv int8]` builds
stories260K with the kernels of irt_quant.h, runs it on qemu (and natively), and prints the
tokens the quant-level interpreter generates from the same quantized module.

The chain checked is interpreter (quant level, after extract-kv-cache{prefill=token-by-token})
== C on qemu: for w8 and w8 + int8 KV cache these are also the golden float32 tokens (64/64,
as the README's quality figures say); w8a8 (calibrated on eval_tokens.json `calib`) differs
from float32 but its integer path is bit-exact, so all 64 ids equal the interpreter's. For
w4g32, w1 and w1a4 the native build's logits of every position are compared with the
interpreter's (the integer parts of w8a8 / w1a4 are exact; what remains is float32 rounding
of the float kernels, about 1e-5 on logits of magnitude ~20). Flash shrinks with the weights.

Every project is built once (fixtures); each test needs only what it runs (tests/requirements.py):
the host builds the system C compiler, the ELF and qemu runs the RISC-V toolchain and qemu.
"""

from __future__ import annotations

import dataclasses
import json
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from tests.test_riscv_ulp import RUN_TIMEOUT, Project, Run, _plan_peaks, _sections

CAPACITY = 128  # the model's 512 positions do not fit riscv-ulp's SRAM in float32
CONFIGS = {  # label: (quant, kv)
    "w8": ("w8", "none"),
    "w8+kv8": ("w8", "int8"),
    "w8a8": ("w8a8", "none"),
    "w4g32": ("w4g32", "none"),
    "w1": ("w1", "none"),
    "w1a4": ("w1a4", "none"),
}
LOGITS_ATOL = 1e-4


@dataclass
class QuantBuild:
    project: Project
    interp_tokens: list[int]
    reference: object  # the quant-level module (after extract-kv-cache), for the interpreter
    store: object


def _stories(shared_models: Path) -> Path:
    return shared_models / "stories260K"


@pytest.fixture(scope="module")
def golden(shared_models) -> dict:
    return json.loads((_stories(shared_models) / "golden.json").read_text())


@pytest.fixture(scope="module")
def build(shared_models, golden, tmp_path_factory):
    """label -> QuantBuild, each built once: the quantized module is made with the compiler's
    own first half (prepare_for_target), run by the interpreter, then compiled to C."""
    from irtool.compile import CompileOptions, compile_to_c, prepare_for_target
    from irtool.frontend.load import import_model
    from irtool.interpreter.runner import ModelRunner
    from irtool.tokenizer import load_tokenizer

    d = _stories(shared_models)
    tok = load_tokenizer(d / "tok512.bin")
    cache: dict[str, QuantBuild] = {}

    def get(label: str) -> QuantBuild:
        if label in cache:
            return cache[label]
        quant, kv = CONFIGS[label]
        opts = CompileOptions(target="riscv-ulp", capacity=CAPACITY, quant=quant, kv=kv,
                              calibration=str(d / "eval_tokens.json") if quant == "w8a8"
                              else None)
        module, store = import_model(d / "stories260K.bin")
        module, store = prepare_for_target(module, store, opts)
        reference = module.clone()
        want = ModelRunner(reference.clone(), store).generate(golden["prompt_ids"],
                                                              golden["n_new"])
        out = tmp_path_factory.mktemp(label.replace("+", "_"))
        # the module is quantized and has @decode already: the rest of the pipeline
        compile_to_c(module, store, out, prompt=golden["prompt_ids"], steps=golden["n_new"],
                     tokenizer=tok, opts=dataclasses.replace(opts, quant="none", kv="none",
                                                             calibration=None))
        project = Project(out, golden["prompt_ids"], golden["n_new"], plan=_plan_peaks(module))
        project.golden = golden
        cache[label] = QuantBuild(project, want, reference, store)
        return cache[label]

    return get


# --- tokens on qemu == the quant-level interpreter ------------------------------------------

@pytest.mark.parametrize("label", ["w8", "w8+kv8"])
def test_w8_on_qemu_prints_the_interpreter_and_golden_tokens(build, label, golden):
    b = build(label)
    run = b.project.qemu
    assert run.tokens == b.interp_tokens
    assert run.tokens == golden["new_ids"]  # 64/64 equal to float32 (README)
    assert run.text == golden["text"]
    assert run.instr_generated and run.instr_generated > 10_000
    model_c = (b.project.dir / "model.c").read_text()
    # the int8 linears run on 16-row panels, lm_head stays float (on 24-row panels)
    assert "irt_linear_w8_packed(" in model_c and "irt_linear_packed_f32(" in model_c
    assert "irt_linear_w8(" not in model_c
    if label == "w8+kv8":
        # 8-wide heads: riscv-ulp's attention over the int8 cache for head_dim 8
        assert "irt_kv_write_i8(" in model_c and "irt_cached_attention_i8_hd8(" in model_c
        assert "irt_cached_attention_i8(" not in model_c
        assert "irt_kv_write_f32(" not in model_c
        # the state globals (K, V int8 and their scales, per layer: 5 x 4) are cleared by
        # irt_init
        assert len(re.findall(r"memset\(.*/\* @state\.", model_c)) == 5 * 4


def test_w8a8_on_qemu_equals_the_interpreter_bit_exact_path(build, golden):
    b = build("w8a8")
    run = b.project.qemu
    assert len(run.tokens) == golden["n_new"]
    assert run.tokens == b.interp_tokens  # all 64 ids
    model_c = (b.project.dir / "model.c").read_text()
    # the activation scale and zero point are passed by value from their one-element buffers
    assert re.search(r"irt_quantize_act_i8\([^;]*\)\[0\], \(\(int32_t \*\)[^;]*\)\[0\]\);",
                     model_c), model_c[:3000]
    assert "irt_linear_w8a8_packed(" in model_c and "irt_linear_w8a8(" not in model_c


@pytest.mark.parametrize("label", ["w4g32", "w1", "w1a4"])
def test_low_bit_logits_match_the_interpreter(build, label, golden):
    """The native build (host C compiler only) against the quant-level interpreter."""
    from irtool.interpreter.runner import ModelRunner

    b = build(label)
    out = b.project.dir / "logits.bin"
    proc = b.project.host(f"LOGITS={out}")
    assert proc.returncode == 0, proc.stdout[-6000:]
    host = Run.parse(proc.stdout)
    # every position is decoded but the last generated token's (its logits are unused)
    ids = (golden["prompt_ids"] + host.tokens)[:-1]
    c_logits = np.fromfile(out, dtype=np.float32).reshape(len(ids), -1)
    want = ModelRunner(b.reference.clone(), b.store).forward(ids)
    np.testing.assert_allclose(c_logits, want, rtol=0, atol=LOGITS_ATOL)
    assert host.tokens == b.interp_tokens


@pytest.mark.parametrize("label", ["w4g32", "w1", "w1a4"])
def test_low_bit_on_qemu_prints_the_interpreter_tokens(build, label, golden):
    """The target runs it: the same tokens on qemu as the interpreter's greedy continuation."""
    run = build(label).project.qemu
    assert len(run.tokens) == golden["n_new"]
    assert run.tokens == build(label).interp_tokens
    if label == "w1a4":  # riscv-ulp's rule chose the shared partial-sum table for every linear
        model_c = (build(label).project.dir / "model.c").read_text()
        calls = set(re.findall(r"\b(irt_linear_w1a4\w*)\(", model_c))
        assert calls == {"irt_linear_w1a4_table"}, calls


# --- memory: Flash holds the quantized weights ------------------------------------------------

@pytest.mark.parametrize("label", list(CONFIGS))
def test_elf_sections_are_the_plan(build, label):
    b = build(label)
    secs = _sections(b.project.elf)
    for space, peak in b.project.plan.items():
        assert secs.get(f".{space}", (0, 0))[0] == (peak + 3) // 4 * 4, space


def test_flash_shrinks_with_the_weights(build, shared_models):
    """The .flash arena holds exactly the weights the module uses; int8 linear weights take a
    quarter of float32's (plus a float scale per output channel), 4-bit an eighth, 1-bit a
    32nd; the float parts (embedding = lm_head, norms, rope tables) stay."""
    from irtool.frontend.load import import_model

    _, fp32 = import_model(_stories(shared_models) / "stories260K.bin")
    flash = {label: _sections(build(label).project.elf)[".flash"][0]
             for label in ("w8", "w4g32", "w1")}
    for label, suffix, bits in (("w8", ".q8", 8), ("w4g32", ".q4", 4), ("w1", ".q1", 1)):
        store = build(label).store
        quantized = [n.removesuffix(suffix) for n in store.arrays if n.endswith(suffix)]
        assert quantized
        before = sum(fp32[n].nbytes for n in quantized)
        packed = sum(store[n + suffix].nbytes for n in quantized)
        # N rows of ceil(K * bits / 8) bytes (a row is padded to a whole byte)
        assert packed == sum(fp32[n].shape[0] * -(-fp32[n].shape[1] * bits // 8)
                             for n in quantized)
        assert packed <= before * bits // 32 * 1.03
        assert flash[label] == sum(a.nbytes for a in store.arrays.values())
        assert flash[label] < fp32.nbytes - before + packed + before // 16  # scales are small
    assert flash["w8"] < 0.4 * fp32.nbytes
    assert flash["w1"] < flash["w4g32"] < flash["w8"]
    # i8 weights, i32 zero points and f32 scales/multipliers of w8a8: sized exactly as well
    w8a8 = build("w8a8")
    assert (_sections(w8a8.project.elf)[".flash"][0]
            == sum(a.nbytes for a in w8a8.store.arrays.values()))


# --- the command line ---------------------------------------------------------------------------

def _irtool(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "irtool.cli", *map(str, args)],
                          capture_output=True, text=True, timeout=RUN_TIMEOUT)


def test_cli_w8a8_with_int8_kv_cache_calibrates_on_eval_tokens_by_default(
        shared_models, golden, tmp_path):
    from irtool.compile import CompileOptions, prepare_for_target
    from irtool.frontend.load import import_model
    from irtool.interpreter.runner import ModelRunner

    d = _stories(shared_models)
    out = tmp_path / "w8a8kv8"
    proc = _irtool("compile", d / "stories260K.bin", "-o", out, "--capacity", CAPACITY,
                   "--quant", "w8a8", "--kv", "int8", "--steps", 16, "--prompt-tokens",
                   ",".join(map(str, golden["prompt_ids"])))
    assert proc.returncode == 0, proc.stderr
    assert "eval_tokens.json" in proc.stdout and "(w8a8, int8 KV cache)" in proc.stdout
    module, store = import_model(d / "stories260K.bin")
    module, store = prepare_for_target(module, store, CompileOptions(
        capacity=CAPACITY, quant="w8a8", kv="int8", calibration=str(d / "eval_tokens.json")))
    want = ModelRunner(module, store).generate(golden["prompt_ids"], 16)
    assert Project(out, golden["prompt_ids"], 16).qemu.tokens == want


def test_cli_w8a8_without_calibration_data_is_explained(tmp_path):
    from irtool.frontend.load import DEFAULT_MODEL

    model = tmp_path / "m.bin"  # no eval_tokens.json beside it
    model.write_bytes(DEFAULT_MODEL.read_bytes())
    proc = _irtool("compile", model, "-o", tmp_path / "out", "--capacity", 16, "--steps", 8,
                   "--quant",
                   "w8a8")
    assert proc.returncode == 1
    assert proc.stderr.startswith("error: --quant w8a8 needs calibration data"), proc.stderr
    assert "--calibration FILE" in proc.stderr and "Traceback" not in proc.stderr
    proc = _irtool("compile", model, "-o", tmp_path / "out", "--quant", "w8", "--calibration",
                   "x.json")
    assert proc.returncode == 1 and "--calibration is used by --quant w8a8 only" in proc.stderr
