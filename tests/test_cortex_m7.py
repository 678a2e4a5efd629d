"""The cortex-m7-256k target end to end: stories260K compiled for a 480 MHz Cortex-M7 with
256 KiB of SRAM, cross-built with arm-none-eabi-gcc + picolibc, run on qemu-system-arm
-M mps2-an500 and checked against the goldens (fp32) and the quant-level interpreter
(quantized schemes), the ELF's memory use against the 256 KiB budget, and the does-not-fit
error of a smaller part.

Needs the ARM toolchain and qemu-system-arm (scripts/setup.sh installs them): skipped without
them, failed under CI=true (tests/requirements.py).
"""

from __future__ import annotations

import functools
import json
import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from tests.requirements import need

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
TARGET_DIR = ROOT / "targets" / "cortex_m7_256k"
MODELS = ROOT.parent / "shared" / "models"
_GOLDEN_FILE = MODELS / "stories260K" / "golden.json"
GOLDEN = json.loads(_GOLDEN_FILE.read_text()) if _GOLDEN_FILE.is_file() else {}
SIZE = "arm-none-eabi-size"
SRAM_BASE, SRAM_BYTES = 0x20000000, 256 * 1024
STEPS = 24


@pytest.fixture(scope="module", autouse=True)
def arm_toolchain():
    """Every test here builds or runs a Cortex-M program (skipped without the toolchain,
    failed under CI=true)."""
    need("arm", "qemu-arm", "models")


def irtool(*args) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "irtool"), *map(str, args)], capture_output=True,
                          text=True, timeout=900)


def make(project: Path, *goals: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(["make", "-s", "-C", str(project), *goals], stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=900)
    if check:
        assert proc.returncode == 0, proc.stdout[-5000:]
    return proc


def generated_tokens(output: str) -> list[int]:
    m = re.search(r"^tokens: ([0-9,]*)$", output, re.M)
    assert m, output[-3000:]
    return [int(t) for t in m.group(1).split(",") if t]


def golden_prefix(n: int) -> list[int]:
    return GOLDEN["new_ids"][:n]


@functools.cache
def fp32_project(tmp: Path) -> tuple[Path, str]:
    out = tmp / "fp32"
    proc = irtool("compile", "--target", "cortex-m7-256k", "-o", out, "--capacity", 128,
                  "--steps", STEPS, "--prompt", GOLDEN["prompt"])
    assert proc.returncode == 0, proc.stderr
    return out, make(out, "run").stdout


@pytest.fixture(scope="module")
def fp32(tmp_path_factory):
    return fp32_project(tmp_path_factory.mktemp("m7"))


def test_stories260k_fp32_prints_the_golden_tokens_on_qemu(fp32):
    out, output = fp32
    assert generated_tokens(output) == golden_prefix(STEPS)
    assert GOLDEN["text"][:40] in output
    # the weights live in the external Flash (the internal Flash is for code) and reach
    # the linears through the DMA windows
    assert "xflash" in (out / "model.h").read_text()
    model_c = (out / "model.c").read_text()
    assert model_c.count("irt_dma_start(") == model_c.count("irt_dma_wait(") > 20


def test_every_compile_writes_the_same_project(fp32, tmp_path):
    """Several memory plans are equally good for this model (same access cost, same peaks);
    CP-SAT's workers racing each other returned a different one from run to run (3 different
    projects in 4 compiles). Two more compiles must write what the first wrote, byte for
    byte (the first project was built since: only what a compile writes is compared)."""
    first, _ = fp32
    for k in range(2):
        again = tmp_path / f"again{k}"
        proc = irtool("compile", "--target", "cortex-m7-256k", "-o", again, "--capacity", 128,
                      "--steps", STEPS, "--prompt", GOLDEN["prompt"])
        assert proc.returncode == 0, proc.stderr
        written = sorted(p.relative_to(again) for p in again.rglob("*") if p.is_file())
        assert {"model.c", "model.hw.mlir", "weights_xflash.bin"} <= set(map(str, written))
        for rel in written:
            assert (again / rel).read_bytes() == (first / rel).read_bytes(), rel


def sections(elf: Path) -> dict[str, tuple[int, int]]:
    """name -> (size, address) from `arm-none-eabi-size -A`."""
    text = subprocess.run([SIZE, "-A", str(elf)], capture_output=True, text=True,
                          check=True).stdout
    out = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[1].isdigit() and parts[2].isdigit():
            out[parts[0]] = (int(parts[1]), int(parts[2]))
    return out


def test_everything_writable_fits_the_256k_sram(fp32):
    out, _ = fp32
    secs = sections(out / "model.elf")
    in_sram = {n: (s, a) for n, (s, a) in secs.items()
               if SRAM_BASE <= a < SRAM_BASE + 0x1000000 and s}
    assert {".sram", ".bss", ".stack"} <= set(in_sram)
    end = max(a + s for s, a in in_sram.values())
    assert end <= SRAM_BASE + SRAM_BYTES, f"SRAM used up to 0x{end:08x}"
    assert secs[".stack"][0] == 8192  # the description's stack, not picolibc's 2 KiB default
    # the weights are in no writable memory: internal Flash from 0x0, external from 0x60000000
    assert secs[".xflash"][1] == 0x60000000 and secs[".xflash"][0] > 512 * 1024
    assert secs[".init"][1] == 0  # the vector table where the core reads it


def test_the_linker_refuses_an_arena_over_the_sram(fp32, tmp_path):
    """The linker script enforces the budget by itself: the same plan in a smaller SRAM
    region does not link."""
    out, _ = fp32
    shrunk = tmp_path / "shrunk"
    shutil.copytree(out, shrunk, ignore=shutil.ignore_patterns("model.elf", "model.map"))
    ld = shrunk / "irt_memory.ld"
    ld.write_text(re.sub(r"(irt_sram \(rw\) : ORIGIN = 0x20000000, LENGTH = )\d+", r"\g<1>65536",
                         ld.read_text()))
    proc = make(shrunk, "model.elf", check=False)
    assert proc.returncode != 0
    assert "region `irt_sram' overflowed" in proc.stdout


def test_a_smaller_part_gets_the_does_not_fit_error(tmp_path):
    """The same target folder with 128 KiB of SRAM: stories260K's 128-position KV cache no
    longer fits, and the error names the buffers and what would fit."""
    part = tmp_path / "m7-128k"
    shutil.copytree(TARGET_DIR, part, ignore=shutil.ignore_patterns("__pycache__"))
    desc = json.loads((part / "description.json").read_text())
    desc["name"] = "cortex-m7-128k"
    sram = next(m for m in desc["memories"] if m["name"] == "sram")
    sram["size"] = 128 * 1024
    (part / "description.json").write_text(json.dumps(desc))
    proc = irtool("compile", "--target", part, "-o", tmp_path / "out", "--capacity", 128,
                  "--steps", 8)
    assert proc.returncode == 1
    assert proc.stderr.startswith("error: the model does not fit target 'cortex-m7-128k'")
    assert "Traceback" not in proc.stderr
    assert "sram 114688 bytes" in proc.stderr
    # 128 positions x 1280 B of KV cache + 2304 B of activations, 51456 B over 112 KiB
    assert "need 166144 bytes live at once" in proc.stderr and "51456 bytes over" in proc.stderr
    m = re.search(r"at most (\d+) positions", proc.stderr)
    assert m and 0 < int(m.group(1)) < 128


def figure(output: str, pattern: str) -> float:
    m = re.search(pattern, output, re.M)
    assert m, f"no match for {pattern!r} in:\n{output[-3000:]}"
    return float(m.group(1))


def test_the_program_reports_modelled_time_and_the_sram_map(fp32):
    out, output = fp32
    assert "modelled time per generated token" not in output  # the report's model instead
    instr = figure(output, r"^instructions per generated token: (\d+)$")
    copies = figure(output, r"without the (\d+) instructions of qemu's stand-in memcpy")
    assert 5e5 < instr - copies < 2e6  # 0.87 M on riscv-ulp for the same kernels
    # every xflash weight is read once per token (streamed or in place), plus one 64-float
    # row of the embedding table (the classifier reads all of it): the ELF's .xflash + 256 B
    xflash = sections(out / "model.elf")[".xflash"][0]
    in_place = figure(output, r"^external Flash read in place per generated token: (\d+) B")
    streamed = figure(output, r"^external Flash streamed per token: (\d+) B")
    assert streamed + in_place == xflash + 64 * 4
    assert 0 < in_place < 4096  # norms' weights and the embedding row only
    # the link at 38 MB/s (480/38 cycles per byte) plus 200 cycles per transfer
    transfers = figure(output, r"in ([\d.]+) DMA transfers")
    link = figure(output, r"^link busy per token: (\d+) cycles")
    assert link == pytest.approx(streamed * 480 / 38 + 200 * transfers, rel=1e-3)
    stall = figure(output, r"core stalled: (\d+) cycles")
    hidden = figure(output, r"hidden by double buffering: ([\d.]+)%")
    assert hidden == pytest.approx(100 * (1 - stall / link), abs=0.1)
    # fp32 is bound by the Flash: the core waits for all but the compute it overlaps
    assert stall == pytest.approx(link - (instr - copies), rel=0.05)
    cycles = figure(output, r"^modelled cycles per generated token: (\d+) ")
    assert cycles == pytest.approx(instr - copies + stall + in_place * 480 / 38, rel=1e-3)
    assert figure(output, r"^modelled tokens/s at 480 MHz: ([\d.]+)$") == pytest.approx(
        480e6 / cycles, rel=1e-3)
    rows = dict(re.findall(r"^\| (.+?) +\| +(\d+) \| +[\d.]+% \|$", output, re.M))
    # 2 caches x 5 layers x 128 positions x 4 KV heads x 8 dims x 4 B
    assert int(rows["KV cache"]) == 2 * 5 * 128 * 4 * 8 * 4
    assert int(rows["stack"]) == 8192
    assert sum(int(v) for v in rows.values()) == SRAM_BYTES


def test_the_plugin_counts_every_decode_step_exactly(fp32):
    """The shared TCG plugin (targets/c/plugin) counts each decode step between the markers:
    one count per position, the prompt's and the generated steps' means printed as exact
    figures, and SysTick's estimate (one tick = 40 instructions) within 0.1% of them."""
    _, output = fp32
    per_step = [int(n) for n in re.findall(r"^hartcount: step \d+ instructions (\d+)$",
                                           output, re.M)]
    n_prompt = len(GOLDEN["prompt_ids"])
    assert len(per_step) == n_prompt + STEPS - 1
    exact = re.search(r"^hartcount: exact instructions per prompt step (\d+) per generated "
                      r"step (\d+)$", output, re.M)
    assert exact, output[-3000:]
    assert int(exact.group(1)) == sum(per_step[:n_prompt]) // n_prompt
    assert int(exact.group(2)) == sum(per_step[n_prompt:]) // (STEPS - 1)
    total = re.search(r"^hartcount: hart 0 total (\d+) steps (\d+)$", output, re.M)
    assert total and int(total.group(2)) == sum(per_step) < int(total.group(1))
    systick = figure(output, r"^instructions per generated token: (\d+)$")
    assert systick == pytest.approx(int(exact.group(2)), rel=1e-3)


QUANT_STEPS = 16


@functools.cache
def interpreter_tokens(quant: str, kv: str) -> list[int]:
    """The quant-level interpreter's greedy tokens for the module the compiler quantizes
    (its own first half, prepare_for_target, with the same options)."""
    from irtool.compile import CompileOptions, prepare_for_target
    from irtool.frontend.load import import_model
    from irtool.interpreter.runner import ModelRunner

    calibration = str(MODELS / "stories260K" / "eval_tokens.json") if quant == "w8a8" else None
    opts = CompileOptions(target="cortex-m7-256k", capacity=128, quant=quant, kv=kv,
                          calibration=calibration)
    module, store = import_model(MODELS / "stories260K" / "stories260K.bin")
    module, store = prepare_for_target(module, store, opts)
    return ModelRunner(module, store).generate(GOLDEN["prompt_ids"], QUANT_STEPS)


@pytest.mark.parametrize("quant", ["w8", "w4g32", "w1", "w1a4"])
def test_quantized_schemes_with_int8_kv_print_the_interpreter_tokens(quant, tmp_path):
    out = tmp_path / quant
    proc = irtool("compile", "--target", "cortex-m7-256k", "-o", out, "--capacity", 128,
                  "--steps", QUANT_STEPS, "--prompt", GOLDEN["prompt"], "--quant", quant,
                  "--kv", "int8")
    assert proc.returncode == 0, proc.stderr
    output = make(out, "run").stdout
    assert generated_tokens(output) == interpreter_tokens(quant, "int8")
    model_c = (out / "model.c").read_text()
    assert "irt_cached_attention_i8(" in model_c
    assert "irt_dma_start(" in model_c  # the weights left in xflash are streamed
    streamed = figure(output, r"^external Flash streamed per token: (\d+) B")
    in_place = figure(output, r"^external Flash read in place per generated token: (\d+) B")
    assert streamed + in_place == sections(out / "model.elf")[".xflash"][0] + 64 * 4
    kernel = {"w8": "irt_linear_w8(", "w4g32": "irt_linear_w4g(", "w1": "irt_linear_w1(",
              "w1a4": "irt_linear_w1a4_table("}[quant]
    assert_linears_use(model_c, kernel[:-1])
    # int8 K and V (5 layers x 128 positions x 4 KV heads x 8 dims), one float scale per
    # layer, position and KV head each
    rows = dict(re.findall(r"^\| (.+?) +\| +(\d+) \| +[\d.]+% \|$", output, re.M))
    assert int(rows["KV cache"]) == 2 * (5 * 128 * 4 * 8 + 5 * 128 * 4 * 4)
    if quant == "w1a4":  # the shared table kernel (irt_linear_w1a4_table.c) vs the portable
        assert "w1a4 kernel: partial-sum table" in output
        portable = make(out, "-B", "run", "DSP=0").stdout
        assert "w1a4 kernel: portable C" in portable
        assert generated_tokens(portable) == generated_tokens(output)
        count = r"^hartcount: exact instructions per prompt step \d+ per generated step (\d+)$"
        # about 247,000 sign weights per token: a lookup and an add per 4 of them instead
        # of about 9 instructions
        assert figure(portable, count) - figure(output, count) > 300_000


def assert_linears_use(model_c: str, kernel: str) -> None:
    """Every one of the 35 block linears (7 x 5 layers) calls `kernel`, once per weight tile
    the plan streams (so at least 35 calls), and the only other linear is the float
    classifier's `irt_linear_f32`; where the plan cuts rows into pieces along K (a plan the
    solver's time limit ends may, under load), the later pieces call the accumulating form
    of the same kernel (irtool.kernels.ACCUMULATING)."""
    from irtool.kernels import ACCUMULATING

    calls = Counter(re.findall(r"\b(irt_linear\w*)\(", model_c))
    base = kernel.removesuffix("_table")
    allowed = {kernel, "irt_linear_f32", ACCUMULATING["irt_linear_f32"],
               *([ACCUMULATING[base]] if base in ACCUMULATING else [])}  # W8A8 rows stay whole
    assert set(calls) <= allowed, calls
    assert calls[kernel] >= 35, calls


def test_w8a8_with_the_dsp_extension_equals_the_portable_kernel_and_the_interpreter(tmp_path):
    """int8 x int8 linears through SMLAD (runtime/irt_m7_dsp.c, __ARM_FEATURE_DSP): the
    interpreter's tokens, as the portable build (`make DSP=0`) prints them, in fewer exact
    instructions (the TCG plugin's count)."""
    out = tmp_path / "w8a8"
    proc = irtool("compile", MODELS / "stories260K" / "stories260K.bin", "--target",
                  "cortex-m7-256k", "-o", out, "--capacity", 128, "--steps", QUANT_STEPS,
                  "--prompt", GOLDEN["prompt"], "--quant", "w8a8", "--kv", "int8")
    assert proc.returncode == 0, proc.stderr
    assert_linears_use((out / "model.c").read_text(), "irt_linear_w8a8_m7")
    want = interpreter_tokens("w8a8", "int8")
    counts = {}
    for dsp in ("1", "0"):
        output = make(out, "-B", "run", f"DSP={dsp}").stdout
        assert generated_tokens(output) == want
        on = "DSP extension kernels: on (SMLAD" in output
        assert on == (dsp == "1")
        counts[dsp] = figure(output, r"^hartcount: exact instructions per prompt step \d+ per "
                                     r"generated step (\d+)$")
    # 226,560 int8 multiply-accumulates per token: about 2 instructions fewer each
    assert counts["0"] - counts["1"] > 300_000


def test_make_run_dsp_0_after_make_run_rebuilds(tmp_path):
    """The README's `make run DSP=0` as written (no -B): the program is rebuilt with the
    portable kernels, and back with `make run`; the same value again rebuilds nothing."""
    out = tmp_path / "dsp"
    proc = irtool("compile", MODELS / "stories260K" / "stories260K.bin", "--target",
                  "cortex-m7-256k", "-o", out, "--capacity", 32, "--steps", 4, "--quant", "w8a8")
    assert proc.returncode == 0, proc.stderr
    kernels = r"^DSP extension kernels: (on|off)"
    assert re.search(kernels, make(out, "run").stdout, re.M)[1] == "on"
    assert re.search(kernels, make(out, "run", "DSP=0").stdout, re.M)[1] == "off"
    built = (out / "model.elf").stat().st_mtime_ns
    assert re.search(kernels, make(out, "run", "DSP=0").stdout, re.M)[1] == "off"
    assert (out / "model.elf").stat().st_mtime_ns == built
    assert re.search(kernels, make(out, "run").stdout, re.M)[1] == "on"


def test_nanogpt_tiny_prints_its_golden_tokens(tmp_path):
    """A character model from ONNX: 16 prompt + 64 new tokens need 79 cached positions; the
    float KV cache then leaves room for two windows of one row only, and the tile budget
    (256 tiles of straight-line code) streams a part of the weights; the rest is read in
    place."""
    golden = json.loads((MODELS / "nanogpt-tiny" / "golden.json").read_text())
    out = tmp_path / "nanogpt"
    proc = irtool("compile", MODELS / "nanogpt-tiny" / "nanogpt.onnx", "--target",
                  "cortex-m7-256k", "-o", out, "--capacity", 79, "--steps", golden["n_new"])
    assert proc.returncode == 0, proc.stderr
    output = make(out, "run").stdout
    assert generated_tokens(output) == golden["new_ids"]
    assert 0 < (out / "model.c").read_text().count("irt_dma_start(") <= 256


def test_phi_tiny_streams_linears_with_biases(tmp_path):
    """phi-tiny (linears with biases): streamed through the windows, its float logits of
    every position (native build of the same C) equal the golden torch logits, and qemu
    prints the golden next token."""
    import numpy as np

    golden = np.load(MODELS / "phi-tiny" / "golden_logits.npz")
    ids = [int(t) for t in golden["input_ids"][0]]
    out = tmp_path / "phi"
    proc = irtool("compile", MODELS / "phi-tiny" / "phi.onnx", "--target", "cortex-m7-256k",
                  "-o", out, "--prompt-tokens", ",".join(map(str, ids)), "--steps", 1)
    assert proc.returncode == 0, proc.stderr
    model_c = (out / "model.c").read_text()
    assert model_c.count("irt_dma_start(") > 4
    output = make(out, "run").stdout
    want = golden["logits"][0]
    assert generated_tokens(output) == [int(np.argmax(want[-1]))]
    assert figure(output, r"^external Flash read in place per generated token: (\d+) B") < 1024
    make(out, "host", f"LOGITS={out / 'logits.bin'}")
    got = np.fromfile(out / "logits.bin", dtype=np.float32).reshape(len(ids), -1)
    np.testing.assert_allclose(got, want, atol=1e-4, rtol=0)
