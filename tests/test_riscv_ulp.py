"""The riscv-ulp target end to end: models compiled to C, cross-built for rv32imafc, run on
qemu (bare metal, semihosting) and natively with ASan/UBSan, checked against the goldens, the
interpreter one IR level up, onnxruntime, the allocator's plan and the target description.

Every project is compiled and built once per module (fixtures); qemu and host runs are cached
on the project. Each test needs only what it runs (tests/requirements.py): the host builds
(`make host SAN=1`) need the system C compiler alone, the ELF and qemu runs the RISC-V
toolchain and qemu (scripts/setup.sh installs them; under CI a missing one fails the test).
"""

from __future__ import annotations

import functools
import json
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from tests.requirements import need

ROOT = Path(__file__).resolve().parents[1]
TARGET_JSON = ROOT / "targets" / "riscv_ulp" / "description.json"
RV_CC = "riscv64-unknown-elf-gcc"
RV_SIZE = "riscv64-unknown-elf-size"
RV_READELF = "riscv64-unknown-elf-readelf"
QEMU = "qemu-system-riscv32"
RUN_TIMEOUT = 600


# --- projects ----------------------------------------------------------------------------------

def _make(project_dir: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    """`make -s ARGS` in the project; stderr merged (qemu 7.2 prints the program's output
    there)."""
    proc = subprocess.run(["make", "-s", *args], cwd=project_dir, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=RUN_TIMEOUT)
    if check:
        assert proc.returncode == 0, f"make {' '.join(args)} failed:\n{proc.stdout[-6000:]}"
    return proc


@dataclass
class Run:
    """What main.c printed: the text, the generated ids and the instruction counts."""

    output: str
    text: str
    tokens: list[int]
    instr_prompt: int | None
    instr_generated: int | None

    @classmethod
    def parse(cls, output: str) -> Run:
        m = re.search(r"^tokens: ([0-9,]*)$", output, re.M)
        assert m, f"no 'tokens:' line in the output:\n{output[-3000:]}"
        text = output[:m.start()]
        assert text.endswith("\n")

        def count(what: str) -> int | None:
            c = re.search(rf"^instructions per {what} token: (\d+)$", output, re.M)
            return int(c.group(1)) if c else None

        return cls(output, text[:-1], [int(t) for t in m.group(1).split(",") if t],
                   count("prompt"), count("generated"))


@dataclass
class Project:
    dir: Path
    prompt: list[int]
    steps: int
    plan: dict[str, int] | None = None  # peak bytes per memory space (irtool.memory_plan)
    golden: dict | None = None
    extra: dict = field(default_factory=dict)

    @functools.cached_property
    def elf(self) -> Path:
        """The cross-built model.elf (needs the RISC-V toolchain)."""
        need("riscv")
        _make(self.dir, "model.elf")
        return self.dir / "model.elf"

    @functools.cached_property
    def qemu(self) -> Run:
        need("qemu")
        assert self.elf.is_file()
        return Run.parse(_make(self.dir, "run").stdout)

    def host(self, *args: str) -> subprocess.CompletedProcess:
        """`make host ARGS` (needs the host C compiler only)."""
        need("cc")
        return _make(self.dir, "host", *args, check=False)


def _plan_peaks(module) -> dict[str, int]:
    from xdsl.dialects.builtin import DictionaryAttr

    from irtool.ir_names import MEMORY_PLAN_ATTR

    plan = module.attributes[MEMORY_PLAN_ATTR]
    return {space: entry.data["peak"].value.data for space, entry in plan.data.items()
            if isinstance(entry, DictionaryAttr) and "peak" in entry.data}


def _compile(model: Path, out: Path, prompt: list[int], steps: int, tokenizer,
             **options) -> Project:
    """What `irtool compile` does, in process, so the placed module (its plan) stays at hand."""
    from irtool.compile import CompileOptions, compile_to_c
    from irtool.frontend.load import import_model

    module, store = import_model(model)
    compile_to_c(module, store, out, prompt=prompt, steps=steps, tokenizer=tokenizer,
                 opts=CompileOptions(target="riscv-ulp", **options))
    return Project(out, prompt, steps, plan=_plan_peaks(module),
                   extra={"module": module, "store": store})


def _golden(shared_models: Path, name: str) -> dict:
    return json.loads((shared_models / name / "golden.json").read_text())


def _irtool(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "irtool.cli", *map(str, args)],
                          capture_output=True, text=True, timeout=RUN_TIMEOUT)


@pytest.fixture(scope="module")
def stories(shared_models, tmp_path_factory) -> Project:
    from irtool.tokenizer import load_tokenizer

    d = shared_models / "stories260K"
    golden = _golden(shared_models, "stories260K")
    p = _compile(d / "stories260K.bin", tmp_path_factory.mktemp("stories"), golden["prompt_ids"],
                 golden["n_new"], load_tokenizer(d / "tok512.bin"), capacity=128)
    p.golden = golden
    return p


@pytest.fixture(scope="module")
def nanogpt(shared_models, tmp_path_factory) -> Project:
    from irtool.tokenizer import load_tokenizer

    d = shared_models / "nanogpt-tiny"
    golden = _golden(shared_models, "nanogpt-tiny")
    tok = load_tokenizer(d / "vocab.json")
    prompt = tok.encode(golden["prompt"])
    assert prompt == golden["prompt_ids"]
    # The model's 128 positions do not fit the SRAM (see test_model_that_does_not_fit): the
    # prompt and the 64 new tokens need 80.
    p = _compile(d / "nanogpt.onnx", tmp_path_factory.mktemp("nanogpt"), prompt,
                 golden["n_new"], tok, capacity=len(prompt) + golden["n_new"])
    p.golden = golden
    return p


PHI_STEPS = 1


@pytest.fixture(scope="module")
def phi(shared_models, tmp_path_factory) -> Project:
    """phi-tiny (random weights, no tokenizer) through `irtool import`, `irtool-opt` to the
    placed hw level and `irtool-opt -t c-project` (tokens print as <id>)."""
    out = tmp_path_factory.mktemp("phi")
    golden = np.load(shared_models / "phi-tiny" / "golden_logits.npz")
    ids = [int(t) for t in golden["input_ids"][0]]
    bin_dir = Path(sys.executable).parent
    steps = [[bin_dir / "irtool", "import", shared_models / "phi-tiny" / "phi.onnx",
              "-o", out / "phi.mlir"],
             [bin_dir / "irtool-opt", out / "phi.mlir", "-p",
              "extract-kv-cache{prefill=token-by-token},bufferize,"
              "allocate{target=riscv-ulp copy_weights=false},lower-to-hw{target=riscv-ulp}",
              "-o", out / "hw.mlir"],
             [bin_dir / "irtool-opt", out / "hw.mlir", "-t",
              f'c-project{{dir="{out / "c"}" prompt={",".join(map(str, ids))} '
              f'steps={PHI_STEPS}}}']]
    for cmd in steps:
        proc = subprocess.run(list(map(str, cmd)), capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
    from irtool.module_io import load_module

    module, _ = load_module(out / "hw.mlir")
    p = Project(out / "c", ids, PHI_STEPS, plan=_plan_peaks(module))
    p.extra["mlir"] = out / "phi.mlir"
    return p


@pytest.fixture(scope="module", params=["stories260K", "nanogpt-tiny"])
def golden_project(request) -> Project:
    return request.getfixturevalue({"stories260K": "stories", "nanogpt-tiny": "nanogpt"}
                                   [request.param])


# --- greedy generation on qemu and on the host -------------------------------------------------

def test_qemu_prints_the_golden_tokens_and_text(golden_project):
    run = golden_project.qemu
    golden = golden_project.golden
    assert run.tokens == golden["new_ids"]
    assert run.text == golden["text"]
    # minstret counts are exact under -icount shift=0: both averages are there and plausible
    assert run.instr_prompt and run.instr_prompt > 10_000
    assert run.instr_generated and run.instr_generated > 10_000


def test_host_build_with_sanitizers_gives_the_same_tokens(golden_project):
    """Needs the host C compiler only: the golden is the reference (qemu is checked against
    the same golden above)."""
    proc = golden_project.host("SAN=1")
    assert proc.returncode == 0, f"the ASan/UBSan build failed or reported:\n{proc.stdout[-6000:]}"
    nm = subprocess.run(["nm", str(golden_project.dir / "model_host")], capture_output=True,
                        text=True).stdout
    assert "__asan_init" in nm and "__ubsan_handle" in nm, "SAN=1 did not instrument the build"
    run = Run.parse(proc.stdout)
    assert run.tokens == golden_project.golden["new_ids"]
    assert run.text == golden_project.golden["text"]


# --- numerics: C logits == interpreter one level up == onnxruntime -----------------------------

def test_phi_logits_match_interpreter_and_onnxruntime(phi, shared_models):
    need("onnxruntime")
    from xdsl.passes import PassPipeline

    from irtool.context import make_context
    from irtool.interpreter.runner import ModelRunner
    from irtool.module_io import load_module
    from irtool.passes import get_all_passes

    out = phi.dir / "logits.bin"
    proc = phi.host("SAN=1", f"LOGITS={out}")
    assert proc.returncode == 0, proc.stdout[-6000:]
    run = Run.parse(proc.stdout)
    # every position is decoded but the last generated token's (its logits are unused)
    ids = (phi.prompt + run.tokens)[:-1]
    vocab = 256
    c_logits = np.fromfile(out, dtype=np.float32).reshape(-1, vocab)
    assert c_logits.shape == (len(ids), vocab)
    # greedy: the generated token is the argmax of the last prompt position's logits
    assert run.tokens == [int(np.argmax(c_logits[len(phi.prompt) - 1]))]

    # the previous IR level: the decode step (token-by-token prefill), interpreted
    module, store = load_module(phi.extra["mlir"])
    PassPipeline.parse_spec(get_all_passes(), "extract-kv-cache{prefill=token-by-token}").apply(
        make_context(), module)
    interp = ModelRunner(module, store).forward(ids)
    np.testing.assert_allclose(c_logits, interp, rtol=0, atol=1e-4)

    import onnxruntime as ort

    sess = ort.InferenceSession(str(shared_models / "phi-tiny" / "phi.onnx"),
                                providers=["CPUExecutionProvider"])
    (ref,) = sess.run(["logits"], {"input_ids": np.asarray([ids], dtype=np.int64)})
    np.testing.assert_allclose(c_logits, ref[0], rtol=0, atol=1e-4)
    golden = np.load(shared_models / "phi-tiny" / "golden_logits.npz")["logits"][0]
    np.testing.assert_allclose(c_logits[:len(phi.prompt)], golden, rtol=0, atol=1e-4)


def test_phi_on_qemu_generates_what_the_host_build_does(phi):
    run = phi.qemu
    host = Run.parse(phi.host().stdout)
    assert run.tokens == host.tokens and len(run.tokens) == PHI_STEPS
    assert run.text == host.text == "".join(f"<{t}>" for t in phi.prompt + run.tokens)


# --- memory: the ELF is the plan, and the plan fits the chip -----------------------------------

def _sections(elf: Path) -> dict[str, tuple[int, int]]:
    """name -> (size, address) from `size -A`."""
    out = subprocess.run([RV_SIZE, "-A", str(elf)], capture_output=True, text=True,
                         check=True).stdout
    secs = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0].startswith(".") and parts[1].isdigit():
            secs[parts[0]] = (int(parts[1]), int(parts[2]))
    return secs


def _flash_image_end(elf: Path, flash_start: int, flash_size: int) -> int:
    """Highest byte loaded into Flash (code, constants, the initial .data copy)."""
    out = subprocess.run([RV_READELF, "-lW", str(elf)], capture_output=True, text=True,
                         check=True).stdout
    end = flash_start
    for line in out.splitlines():
        parts = line.split()
        if parts and parts[0] == "LOAD":
            phys, filesz = int(parts[3], 16), int(parts[4], 16)
            if flash_start <= phys < flash_start + flash_size and filesz:
                end = max(end, phys + filesz)
    return end


@pytest.mark.parametrize("name", ["stories", "nanogpt", "phi"])
def test_elf_sections_are_the_plan_and_fit_the_target(name, request):
    project: Project = request.getfixturevalue(name)
    memories = {m["name"]: m for m in json.loads(TARGET_JSON.read_text())["memories"]}
    secs = _sections(project.elf)
    for space, mem in memories.items():
        # the emitter sizes each arena to its highest placed byte, rounded up to 32-bit words;
        # a space the plan leaves empty gets no arena
        want = (project.plan[space] + 3) // 4 * 4
        got = secs.get(f".{space}", (0, 0))[0]
        assert got == want, f".{space}: {got} bytes in the ELF, the plan's peak is {want}"
        assert got <= mem["size"] - mem.get("reserved", 0), f".{space} exceeds {space}"

    sram, flash = memories["sram"], memories["flash"]
    if ".sram" in secs:
        # the C library's RAM (.data, .bss, stack) lies in the reserved top of the SRAM,
        # above everything the allocator planned
        origin = secs[".sram"][1]
        top = origin + sram["size"]
        for sec in (".data", ".bss", ".stack"):
            size, addr = secs[sec]
            assert origin + sram["size"] - sram["reserved"] <= addr and addr + size <= top, sec
    # code, constants, weights and the .data image fit the Flash
    base = secs[".init"][1]
    end = _flash_image_end(project.elf, base, flash["size"])
    assert secs[".flash"][1] >= base and end - base <= flash["size"]
    assert project.plan["flash"] <= end - base


# --- sliding window ------------------------------------------------------------------------------

WINDOW = 16


@pytest.fixture(scope="module")
def window(shared_models, tmp_path_factory) -> Project:
    """`irtool compile --window 16` from the command line."""
    golden = _golden(shared_models, "stories260K")
    out = tmp_path_factory.mktemp("window")
    proc = _irtool("compile", shared_models / "stories260K" / "stories260K.bin", "--target",
                   "riscv-ulp", "-o", out, "--prompt-tokens",
                   ",".join(map(str, golden["prompt_ids"])), "--steps", golden["n_new"],
                   "--window", WINDOW)
    assert proc.returncode == 0, proc.stderr
    p = Project(out, golden["prompt_ids"], golden["n_new"])
    p.golden = golden
    return p


def test_window_mode_on_qemu_matches_the_interpreter(window, shared_models):
    from xdsl.passes import PassPipeline

    from irtool.context import make_context
    from irtool.frontend.load import import_model
    from irtool.interpreter.runner import ModelRunner
    from irtool.passes import get_all_passes

    assert len(window.prompt) + window.steps > WINDOW  # the ring wraps
    assert "#define IRT_RING 1" in (window.dir / "model.h").read_text()
    module, store = import_model(shared_models / "stories260K" / "stories260K.bin")
    PassPipeline.parse_spec(get_all_passes(),
                            f"extract-kv-cache{{window={WINDOW} prefill=token-by-token}}").apply(
        make_context(), module)
    want = ModelRunner(module, store).generate(window.prompt, window.steps)
    run = window.qemu
    assert run.tokens == want
    assert len(run.tokens) == window.steps
    # the window is real: with 16 positions the story departs from the full-context golden
    assert run.tokens != window.golden["new_ids"]
    # and the cache is 16 positions: 5 layers x 4 KV heads x 16 x 8 floats, K and V
    secs = _sections(window.elf)
    kv_bytes = 2 * 5 * 4 * WINDOW * 8 * 4
    assert sum(secs.get(s, (0, 0))[0] for s in (".sram", ".dtim")) < kv_bytes + 8192


# --- a model that does not fit -------------------------------------------------------------------

def test_model_that_does_not_fit_is_explained(shared_models, tmp_path):
    from irtool.compile import CompileOptions, lower_for_target
    from irtool.errors import IrtoolError
    from irtool.frontend.load import import_model

    model = shared_models / "stories260K" / "stories260K.bin"
    out = tmp_path / "proj"
    proc = _irtool("compile", model, "--target", "riscv-ulp", "-o", out, "--prompt-tokens",
                   "1,403,407,261,378", "--steps", "64", "--capacity", "512")
    assert proc.returncode == 1
    err = proc.stderr
    assert err.startswith("error: the model does not fit target 'riscv-ulp'"), err
    assert "Traceback" not in err
    for name in ("@state.kcache", "@state.vcache"):
        assert name in err
    assert re.search(r"\d+ bytes over", err), err
    m = re.search(r"capacity=(\d+)", err)
    assert m, f"no capacity suggested:\n{err}"
    suggested = int(m.group(1))
    assert 64 <= suggested < 512
    assert not (out / "Makefile").exists()
    # the advice is exact: the suggested capacity fits and one more position does not
    module, _ = import_model(model)
    lower_for_target(module, CompileOptions(capacity=suggested, time_limit=5))
    module, _ = import_model(model)
    with pytest.raises(IrtoolError, match="does not fit"):
        lower_for_target(module, CompileOptions(capacity=suggested + 1, time_limit=5))


# --- Flash: room for the program beside the weights --------------------------------------------

MID_WEIGHTS = 2_054_144
"""The int8 weights of `mid_checkpoint(8 layers, hidden 344)` with an int8 classifier."""


def mid_checkpoint(path: Path, layers: int, hidden: int) -> Path:
    """A random llama2.c checkpoint: dim 128, 8 heads (4 KV heads), vocabulary 4096, whose
    token table (about 80 KB) is a large part of the program's Flash."""
    from bench.compile_time import write_random_checkpoint

    write_random_checkpoint(path, (128, hidden, layers, 8, 4, 4096, 256))
    return path


def check_flash_reserve(target: str, description: Path, tmp_path: Path, fits_hidden: int):
    """Weights that fill the Flash (2 MiB less the description's reserve for the program) are
    refused at compile time with the bytes over (they once compiled, and the link failed:
    "region `flash' overflowed"); a model of the same kind whose weights fill the planned
    Flash to within 1 KiB links and runs."""
    flash = next(m for m in json.loads(description.read_text())["memories"]
                 if m["name"] == "flash")
    capacity = flash["size"] - flash.get("reserved", 0)
    common = ("--target", target, "--capacity", 64, "--steps", 2, "--prompt-tokens", "1,2,3",
              "--quant", "w8", "--quantize-lm-head")
    over = tmp_path / "over"
    proc = _irtool("compile", mid_checkpoint(tmp_path / "mid.bin", 8, 344), "-o", over, *common)
    assert proc.returncode == 1, proc.stderr[-3000:]
    err = proc.stderr
    assert err.startswith(f"error: the model does not fit target '{target}'"), err
    assert "Traceback" not in err
    assert (f"weights that must stay in read-only memory ({MID_WEIGHTS} bytes): "
            f"flash holds {capacity} bytes ({flash['size']} less {flash['reserved']} reserved "
            f"for the program: code, C library, constants): {MID_WEIGHTS - capacity} bytes "
            "over") in err, err
    assert "KV cache of at most" not in err  # fewer positions would not help
    assert not (over / "Makefile").exists()

    fits = tmp_path / "fits"
    proc = _irtool("compile", mid_checkpoint(tmp_path / "fits.bin", 7, fits_hidden), "-o",
                   fits, *common)
    assert proc.returncode == 0, proc.stderr[-3000:]
    weights = (fits / "weights_flash.bin").stat().st_size
    assert capacity - 1024 <= weights <= capacity
    run = Run.parse(_make(fits, "run").stdout)  # links (code and token table beside them)
    assert len(run.tokens) == 2


def test_weights_over_the_planned_flash_are_refused_at_compile_time(tmp_path):
    need("riscv", "qemu")
    check_flash_reserve("riscv-ulp", TARGET_JSON, tmp_path, fits_hidden=368)


def test_target_given_as_the_path_of_a_description(tmp_path, shared_models):
    """`--target` takes a shipped name or the path of a description (a path with '/', '.' and
    a space once broke the pass pipeline that `irtool compile` builds)."""
    desc = json.loads(TARGET_JSON.read_text())
    desc["name"] = "my-ulp"
    path = tmp_path / "my targets" / "my-ulp.json"
    path.parent.mkdir()
    path.write_text(json.dumps(desc))
    golden = _golden(shared_models, "stories260K")
    out = tmp_path / "proj"
    proc = _irtool("compile", "--target", path, "-o", out, "--capacity", 32, "--steps", 8,
                   "--prompt-tokens", ",".join(map(str, golden["prompt_ids"])))
    assert proc.returncode == 0, proc.stderr
    assert "for target my-ulp" in (out / "Makefile").read_text()
    assert Project(out, golden["prompt_ids"], 8).qemu.tokens == golden["new_ids"][:8]


# --- weights as binary, in the layout their kernels read ---------------------------------------

def test_weights_are_linked_as_binary_in_their_kernels_layout(stories):
    """weights.S includes weights_flash.bin; every weight global sits in it at its planned
    offset, row-major or packed in row panels when lower-to-hw marked it so (the linears and
    the embedding table tied to the classifier), as `numpy` packs it from the store."""
    from irtool.dialects import memory
    from irtool.targets.panel_layout import LAYOUT_ATTR, pack_row_panels

    module, store = stories.extra["module"], stories.extra["store"]
    assert '.incbin "weights_flash.bin"' in (stories.dir / "weights.S").read_text()
    assert "0x" not in (stories.dir / "weights.c").read_text()
    blob = (stories.dir / "weights_flash.bin").read_bytes()
    packed = 0
    for g in module.ops:
        if not isinstance(g, memory.GlobalOp) or g.weight is None:
            continue
        space, offset = g.placement
        assert space == "flash"
        want = np.asarray(store[g.weight.data], dtype=np.float32)
        if LAYOUT_ATTR in g.attributes:
            assert g.attributes[LAYOUT_ATTR].data == "row_panels24"
            want = pack_row_panels(want)
            packed += 1
        got = np.frombuffer(blob, dtype=np.float32, count=want.size, offset=offset)
        assert np.array_equal(got, want.reshape(-1)), g.sym_name.data
    assert packed == 5 * 7 + 1  # seven linears per layer, and the tied embedding/classifier


def test_per_kernel_profile_adds_up_to_the_decode_count(stories, tmp_path):
    """A PROFILE=1 build counts every kernel call; its totals account for the instructions
    main.c counts per token (the rest is irt_decode's own argument set-up) and the program
    still prints the same tokens."""
    need("riscv")
    need("qemu")
    import shutil

    project = tmp_path / "profiled"
    shutil.copytree(stories.dir, project)
    out = _make(project, "run", "PROFILE=1").stdout  # rebuilt: PROFILE changed
    run = Run.parse(out)
    assert run.tokens == stories.qemu.tokens
    kernels = {m.group(1): (int(m.group(2)), int(m.group(3)))
               for m in re.finditer(r"^irt-profile (\S+) (\d+) (\d+)$", out, re.M)}
    n_prompt = len(stories.prompt)
    positions = n_prompt + stories.steps - 1
    assert kernels["embedding_packed_f32"][0] == positions
    # 7 per layer + the classifier; wo and w2 take the residual add after them (fused), wv
    # writes the value cache itself
    assert kernels["linear_packed_f32"][0] == positions * (4 * 5 + 1)
    assert kernels["linear_packed_residual_f32"][0] == positions * 5 * 2
    assert kernels["linear_packed_kv_f32"][0] == positions * 5
    assert "kv_write_f32" not in kernels  # no copy into the caches
    assert kernels["silu_mul_f32"][0] == positions * 5  # SiLU and the product: one call
    assert "silu_f32" not in kernels and "mul_f32" not in kernels and "add_f32" not in kernels
    assert kernels["rope_hd8_f32"][0] == positions * 5  # the queries'
    assert kernels["rope_hd8_kv_f32"][0] == positions * 5  # the keys', into the key cache
    assert kernels["cached_attention_hd8_f32"][0] == positions * 5
    # the counters' own cost is measured and subtracted; main.c's figures are per token
    clean = stories.qemu
    total = clean.instr_prompt * n_prompt + clean.instr_generated * (positions - n_prompt)
    counted = sum(instr for _, instr in kernels.values())
    assert 0.98 * total <= counted <= 1.001 * total, (counted, total)
