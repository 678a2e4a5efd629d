"""A firmware engineer's audit of the generated C projects: each test reproduces one defect
found by using a project as its README says, and checks the fix against an independent
reference (the golden tokens of llama2.c, the Python sampler's own refusals).

* The library's irt_feed() took any token id: an id past the vocabulary indexed past the
  embedding table (a segmentation fault under ASan), a negative one read whatever lay before
  it. It now returns IRT_ERR_TOKEN before decoding anything.
* irt_generator_init() took any sampling options: a temperature of 1e-40 (whose float32
  reciprocal is inf) made every token alike and always drew the last index, where the
  interpreter refuses the option. Both irt_generator_init() and irt_generate() now return
  IRT_ERR_OPTIONS for what irtool/sampling.py refuses.
* siracusa's per-step NPU and DMA figures averaged the batched prefill call into the decode
  steps.
* The tests below them name their defect in their docstrings: PROFILE=1 on matrix8x8,
  cortex-m7-256k and siracusa, the host build's counts, ADAPTER and CORES out of range, and
  --prefill-tokens where it cannot apply.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from irtool.errors import IrtoolError
from irtool.sampling import SamplingOptions
from tests.requirements import need
from tests.test_library import GOLDEN, ROOT, irtool, make

SAN = ["-g", "-fsanitize=address,undefined", "-fno-sanitize-recover=all"]


@pytest.fixture(scope="module")
def san_library(tmp_path_factory) -> Path:
    """stories260K for the host target, its library built with ASan/UBSan."""
    need("cc")
    project = tmp_path_factory.mktemp("audit") / "lib"
    irtool("compile", "--target", "host", "-o", project, "--capacity", 96, "--steps", 8)
    make(project, "lib-host", "SAN=1")
    return project


def run_c(project: Path, name: str, source: str) -> str:
    """Builds `source` against the sanitized library and returns what it prints."""
    (project / f"{name}.c").write_text(source)
    subprocess.run(["cc", "-std=c99", "-Wall", "-Wextra", "-Werror", *SAN, "-Iinclude", "-o",
                    name, f"{name}.c", "lib/host/libirtmodel.a", "-lm"], cwd=project,
                   check=True, capture_output=True, text=True)
    proc = subprocess.run([str(project / name)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


FEED_LOOP = r"""
#include <stdio.h>
#include "model.h"
static int print(int32_t token, void *user) { (void)user; printf(" %ld", (long)token); return 0; }
int main(void)
{
    static const int32_t prompt[] = {1, 403, 407, 261, 378};
    static const int32_t past_vocab[] = {1, 403, IRT_VOCAB}, negative[] = {1, -1};
    static irt_generator_t g;
    if (irt_generator_init(&g, NULL, NULL, 0) != IRT_OK) return 1;
    printf("%d %d", irt_feed(&g, past_vocab, 3), irt_feed(&g, negative, 2));
    printf(" %ld", (long)g.pos);
    if (irt_feed(&g, prompt, 5) != IRT_OK) return 1;
    return irt_generate(&g, 64, print, NULL) != 64;
}
"""


def test_feed_refuses_a_token_outside_the_vocabulary(san_library):
    out = run_c(san_library, "feed", FEED_LOOP).split()
    assert out[:3] == ["-4", "-4", "0"]  # IRT_ERR_TOKEN twice, nothing decoded
    assert [int(t) for t in out[3:]] == GOLDEN["new_ids"]


OPTIONS_LOOP = r"""
#include <stdio.h>
#include "model.h"
int main(void)
{
    static const int32_t prompt[] = {1, 403, 407, 261, 378};
    static const irt_sampling_t options[] = {
        {1e-40f, 0, 1.0f, 3u}, {2e30f, 0, 1.0f, 3u}, {0.8f, -1, 1.0f, 3u},
        {0.8f, 0, 0.0f, 3u}, {0.8f, 0, -0.5f, 3u}, {1e-30f, 0, 1.0f, 3u}, {0.8f, 40, 0.9f, 3u},
        {0.0f, 0, 1.0f, 0u}};
    static irt_generator_t g;
    for (unsigned i = 0; i < sizeof options / sizeof options[0]; i++) {
        int init = irt_generator_init(&g, &options[i], NULL, 0);
        irt_feed(&g, prompt, 5);
        printf("%d %ld\n", init, (long)irt_generate(&g, 3, NULL, NULL));
    }
    return 0;
}
"""


def test_sampling_options_out_of_range_are_refused(san_library):
    lines = run_c(san_library, "options", OPTIONS_LOOP).splitlines()
    python = []  # what the interpreter's sampler accepts, option for option
    for t, k, p in [(1e-40, 0, 1.0), (2e30, 0, 1.0), (0.8, -1, 1.0), (0.8, 0, 0.0),
                    (0.8, 0, -0.5), (1e-30, 0, 1.0), (0.8, 40, 0.9), (0.0, 0, 1.0)]:
        try:
            SamplingOptions(t, top_k=k, top_p=p, seed=3)
            python.append("0 3")
        except IrtoolError:
            python.append("-5 -5")  # IRT_ERR_OPTIONS from init and from generate
    assert lines == python
    assert python.count("0 3") == 3



def siracusa_w8a8(project: Path, steps: int) -> Path:
    """The README's siracusa project: stories260K W8A8 (calibrated) with an int8 KV cache."""
    models = ROOT.parent / "shared" / "models" / "stories260K"
    irtool("compile", models / "stories260K.bin", "--target", "siracusa", "--quant", "w8a8",
           "--calibration", models / "eval_tokens.json", "--kv", "int8", "--capacity", 64,
           "--steps", steps, "-o", project)
    return project

def test_siracusa_per_step_figures_leave_the_batched_prefill_out(tmp_path):
    """siracusa's default batched prefill: `npu: ... per step` and `dma l2->l1: ... per step`
    divided the whole run's counters (the prefill call's work included) by every position,
    so a decode step showed 31 NPU jobs where it runs 35, 8,382 NPU cycles for 9,160, and
    1 transfer of 112,867 B for the lm_head's 2 of 131,072 B. Now they are the decode steps'
    and the prefill call's share is printed beside them."""
    need("riscv", "qemu", "cc")
    from tests.test_siracusa import _make, _tokens

    steps = 8
    project = siracusa_w8a8(tmp_path / "s", steps)
    out = _make(project, "run")
    assert len(_tokens(out)) == steps
    assert "batched prefill: 1 calls of 5 tokens" in out
    m = re.search(r"^npu: jobs (\d+) blocks \d+ macs \d+ cycles (\d+); per step: jobs (\d+) "
                  r"cycles (\d+); batched prefill: jobs (\d+) cycles (\d+)$", out, re.M)
    assert m, out[-3000:]
    jobs, cycles, step_jobs, step_cycles, pre_jobs, pre_cycles = map(int, m.groups())
    # 7 W8A8 projections x 5 layers; 32x32 blocks per layer (K, N): wq, wo 64x64 -> 4 each,
    # wk, wv 64x32 -> 2 each, w1, w3 64x172 and w2 172x64 -> 12 each; 200 + 9 per block/token
    blocks = 5 * (4 + 4 + 2 + 2 + 12 + 12 + 12)
    assert (step_jobs, step_cycles) == (35, 35 * 200 + 9 * blocks)
    assert (pre_jobs, pre_cycles) == (35, 35 * 200 + 9 * blocks * 5)  # one call of 5 tokens
    decode_steps = steps - 1  # the last token is printed, never decoded
    assert jobs == pre_jobs + decode_steps * step_jobs
    assert cycles == pre_cycles + decode_steps * step_cycles
    m = re.search(r"^dma l2->l1: transfers (\d+) bytes (\d+) link cycles \d+; per step: "
                  r"transfers (\d+) bytes (\d+) link cycles \d+$", out, re.M)
    assert m, out[-3000:]
    transfers, nbytes, step_transfers, step_bytes = map(int, m.groups())
    # only the float lm_head (512 x 64) streams, in the decode steps; the prefill reads L2
    model_c = (project / "model.c").read_text()
    decode_c = model_c[model_c.index("*irt_decode("):model_c.index("*irt_prefill(")]
    lm_tiles = decode_c.count("  sir_linear_f32(")
    assert lm_tiles >= 1 and model_c.count("  sir_linear_f32(") == lm_tiles + 1
    assert (step_transfers, step_bytes) == (lm_tiles, 512 * 64 * 4)
    assert (transfers, nbytes) == (decode_steps * lm_tiles, decode_steps * 512 * 64 * 4)
    # main.c's instruction lines are minstret: every hart's and the device models' (3 M a
    # token beside hartcount's 0.1 M per step): the run says so, where it counts them
    assert "instructions per token above: minstret, one counter for every hart" in out
    assert "minstret" not in _make(project, "host")


def test_matrix8x8_profile_counts_the_unit_kernel(tmp_path):
    """matrix8x8 `make run PROFILE=1` listed every host kernel but not mxu_linear_w8a8, the
    unit's driver (and the C model qemu runs behind it): the per-kernel lines summed to 1% of
    the instructions the program printed. Now its 35 calls per forward (7 W8A8 projections x
    5 layers) are counted and the lines add up to the total; the run says that the total
    includes the unit's C model."""
    need("riscv", "qemu")
    models = ROOT.parent / "shared" / "models" / "stories260K"
    project = tmp_path / "m"
    steps = 3
    irtool("compile", models / "stories260K.bin", "--target", "matrix8x8", "--quant", "w8a8",
           "--capacity", 16, "--steps", steps, "-o", project)
    out = make(project, "run", "PROFILE=1")
    kernels = {name: (int(calls), int(instr)) for name, calls, instr in
               re.findall(r"^irt-profile (\S+) (\d+) (\d+)$", out, re.M)}
    forwards = len(GOLDEN["prompt_ids"]) + steps - 1
    assert kernels["mxu_linear_w8a8"][0] == 35 * forwards
    prompt = int(re.search(r"^instructions per prompt token: (\d+)$", out, re.M).group(1))
    generated = int(re.search(r"^instructions per generated token: (\d+)$", out, re.M).group(1))
    total = prompt * len(GOLDEN["prompt_ids"]) + generated * (steps - 1)
    profiled = sum(instr for _, instr in kernels.values())
    assert profiled == pytest.approx(total, rel=0.01)
    assert "include the unit's C model" in out
    native = make(project, "host")  # counts no instructions: says nothing about them
    assert "instructions per" not in native and "include the unit's C model" not in native


def test_cortex_m7_host_build_prints_no_instruction_counts(tmp_path):
    """cortex-m7-256k's `make host` printed `instructions per generated token: 0`: SysTick
    exists on the M7 only, and the native build read a stub. Like riscv-ulp's host build it
    now prints no count it does not have, and still the golden tokens."""
    need("cc")
    project = tmp_path / "m7"
    irtool("compile", "--target", "cortex-m7-256k", "-o", project, "--capacity", 64,
           "--steps", 8)
    out = make(project, "host")
    assert [int(t) for t in re.search(r"^tokens: ([0-9,]+)$", out, re.M).group(1)
            .split(",")] == GOLDEN["new_ids"][:8]
    assert "instructions per" not in out


def test_adapter_variable_on_a_program_without_adapters_is_refused(tmp_path):
    """`make host ADAPTER=1` (or run) on a program compiled without --lora ran the base model
    and said nothing; now it stops with an error naming the fix, and ADAPTER=-1 (the base
    model, which every program has) still prints the golden tokens."""
    need("cc")
    project = tmp_path / "base"
    irtool("compile", "--target", "host", "-o", project, "--capacity", 32, "--steps", 8)
    proc = subprocess.run(["make", "-s", "-C", str(project), "host", "ADAPTER=1"],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode != 0
    assert "error: ADAPTER=1: this program has no task adapters" in proc.stderr
    out = make(project, "host", "ADAPTER=-1")
    assert [int(t) for t in re.search(r"^tokens: ([0-9,]+)$", out, re.M).group(1)
            .split(",")] == GOLDEN["new_ids"][:8]


@pytest.mark.parametrize("cores", ["0", "9", "two"])
def test_siracusa_cores_outside_the_cluster_are_refused(tmp_path, cores):
    """`make run CORES=9` ran a ninth hart the 8-core cluster has not (its figures for a chip
    that does not exist) and CORES=0 ran one core; now any size but 1..8 (the description's
    cluster) stops make with one line naming the range, before anything is built."""
    need("cc")
    project = tmp_path / "s"
    irtool("compile", "--target", "siracusa", "-o", project, "--capacity", 16, "--steps", 2)
    proc = subprocess.run(["make", "-s", "-C", str(project), "run", f"CORES={cores}"],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode != 0 and not (project / "model.elf").exists()
    assert f"error: CORES={cores}: the cluster has 1 to 8 cores" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_cortex_m7_profile_counts_with_systick(tmp_path):
    """cortex-m7-256k `make run PROFILE=1` printed 0 instructions for every kernel: the
    profile read minstret, which the M7 has not. It now reads SysTick (as the program's own
    figures do): every kernel gets a count, together no more than the program's total; a
    native build, which has no counter, says so in one line instead of printing zeros."""
    need("arm", "qemu-arm", "cc")
    project = tmp_path / "m7"
    steps = 4
    irtool("compile", "--target", "cortex-m7-256k", "-o", project, "--capacity", 16,
           "--steps", steps)
    out = make(project, "run", "PROFILE=1")
    kernels = {name: (int(calls), int(instr)) for name, calls, instr in
               re.findall(r"^irt-profile (\S+) (\d+) (\d+)$", out, re.M)}
    forwards = len(GOLDEN["prompt_ids"]) + steps - 1
    assert kernels["cached_attention_f32"][0] == 5 * forwards  # one per layer and position
    assert all(instr > 0 for _, instr in kernels.values()), kernels
    prompt = int(re.search(r"^instructions per prompt token: (\d+)$", out, re.M).group(1))
    generated = int(re.search(r"^instructions per generated token: (\d+)$", out, re.M).group(1))
    total = prompt * len(GOLDEN["prompt_ids"]) + generated * (steps - 1)
    assert sum(instr for _, instr in kernels.values()) < total
    native = make(project, "host", "PROFILE=1")
    assert "irt-profile: no instruction counter in this build" in native
    assert not re.search(r"^irt-profile \S+ \d+ \d+$", native, re.M)


def test_siracusa_profile_counts_the_cluster_and_npu_kernels(tmp_path):
    """siracusa `make run PROFILE=1` listed none of its own kernels (sir_*, npu_linear_w8a8:
    most of the work) and counted the portable kernels the cores run inside them once per
    core (irt silu_f32: 8 calls per SiLU). Now each call from the model is counted once, by
    the name model.c calls."""
    need("riscv", "qemu", "cc")
    steps = 4
    project = siracusa_w8a8(tmp_path / "s", steps)
    out = make(project, "run", "PROFILE=1")
    kernels = {name: (int(calls), int(instr)) for name, calls, instr in
               re.findall(r"^irt-profile (\S+) (\d+) (\d+)$", out, re.M)}
    calls = 1 + (steps - 1)  # the batched prefill of the prompt, then one decode per token
    assert kernels["npu_linear_w8a8"][0] == 35 * calls  # 7 W8A8 projections x 5 layers
    assert kernels["sir_silu_f32"][0] == 5 * calls and "silu_f32" not in kernels
    assert kernels["sir_cached_attention_i8"][0] == 5 * calls
    assert all(instr > 0 for _, instr in kernels.values()), kernels


@pytest.mark.parametrize("extra, says", [
    (("--prefill-tokens", "4"), "error: --prefill-tokens 4: the prompt goes in token by token "
     "(the default of target riscv-ulp); add --prefill batched"),
    (("--prefill", "token", "--prefill-tokens", "4"), "error: --prefill-tokens 4: the prompt "
     "goes in token by token (--prefill token)"),
    (("--prefill", "batched", "--prefill-tokens", "32"), "error: --prefill-tokens 32: a call's "
     "tokens must fit the KV cache of 16 positions; give at most --prefill-tokens 16"),
])
def test_prefill_tokens_that_cannot_apply_are_refused(tmp_path, extra, says):
    """`--prefill-tokens 4` on riscv-ulp (whose prompt goes in token by token) was ignored:
    the program had no batched prefill and nothing said so; over the KV cache the error named
    the pass's `tokens=`. Both are one line naming the CLI option, exit 1, nothing written."""
    out = tmp_path / "p"
    proc = subprocess.run([str(Path(sys.executable).parent / "irtool"), "compile", "--target",
                           "riscv-ulp", "-o", str(out), "--capacity", "16", "--steps", "4",
                           *extra], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 1 and not out.exists()
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()]
    assert proc.stderr.startswith(says), proc.stderr
    irtool("compile", "--target", "riscv-ulp", "-o", out, "--capacity", 16, "--steps", 4,
           "--prefill", "batched", "--prefill-tokens", 4)
    assert "#define IRT_PREFILL_TOKENS 4" in (out / "model.h").read_text()
