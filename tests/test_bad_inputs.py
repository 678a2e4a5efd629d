"""Issue 15: nothing lost, nothing silently wrong, no internal error on any bad input.

Every case of the issue is one test here. The drivers run in-process (their `main(argv)`), as a
user runs them: a bad input must end with exit code 1 and a first line `error: ...` naming the
culprit, never "this is a bug in irtool", and must leave every input file as it was.
"""

from __future__ import annotations

import hashlib
import io
import re
import shutil
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest

from irtool import cli, opt, run
from irtool.output_safety import looks_like_ir
from irtool.weights import store_digest

STORIES = "stories260K"


def call(main, *args) -> tuple[int, str, str]:
    """Run a driver's main in-process: (exit code, stdout, stderr)."""
    import contextlib

    out, err = io.StringIO(), io.StringIO()
    code = 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main([str(a) for a in args])
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else 1
    return code, out.getvalue(), err.getvalue()


def assert_bad_input(result, *expected: str) -> str:
    """Exit 1, a first line `error: ...` (with the expected words), no internal error."""
    code, _, err = result
    assert code == 1, err
    assert err.startswith("error: "), err
    assert "this is a bug" not in err and "Traceback" not in err, err
    first = err.splitlines()[0]
    for word in expected:
        assert word in err, f"{word!r} not in {err!r}"
    return first


def digest(*paths: Path) -> dict[str, str]:
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in paths}


def tree(d: Path) -> dict[str, str]:
    return {str(p.relative_to(d)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(d.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def imported(shared_models, tmp_path_factory) -> Path:
    """stories260K imported once: m.mlir + m.weights.npz."""
    d = tmp_path_factory.mktemp("imported")
    code, _, err = call(cli.main, "import", shared_models / STORIES / "stories260K.bin",
                        "-o", d / "m.mlir")
    assert code == 0, err
    return d / "m.mlir"


@pytest.fixture(scope="module")
def placed(imported, tmp_path_factory) -> Path:
    """The hw-level stories260K (riscv-ulp, a 32-position cache), with its store beside it."""
    d = tmp_path_factory.mktemp("placed")
    shutil.copy(imported.with_name("m.weights.npz"), d / "m.weights.npz")
    shutil.copy(imported, d / "m.mlir")
    code, _, err = call(opt.main, d / "m.mlir", "--pipeline=riscv-ulp{capacity=32}",
                        "-o", d / "hw.mlir")
    assert code == 0, err
    return d / "hw.mlir"


def copy_module(src: Path, d: Path, name: str = "m.mlir") -> Path:
    """A copy of a module with its own copy of its store, in `d`."""
    d.mkdir(parents=True, exist_ok=True)
    text = src.read_text()
    ref = re.search(r'irtool.weights = "([^"]+)"', text).group(1)
    store = (src.parent / ref)
    shutil.copy(store, d / "m.weights.npz")
    (d / name).write_text(text.replace(f'irtool.weights = "{ref}"',
                                       'irtool.weights = "m.weights.npz"'))
    return d / name


def edit_store(path: Path, edit) -> None:
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    edit(arrays)
    np.savez(path, **arrays)


# --- data lost ------------------------------------------------------------------------------

def test_opt_in_place_is_refused_and_the_input_kept(imported, tmp_path):
    m = copy_module(imported, tmp_path)
    before = digest(m, tmp_path / "m.weights.npz")
    first = assert_bad_input(call(opt.main, m, "-p", "extract-kv-cache{capacity=9999}",
                                  "-o", m), "refusing to write", "m.mlir")
    assert "input" in first
    (tmp_path / "link.mlir").symlink_to(m)
    assert_bad_input(call(opt.main, tmp_path / "link.mlir", "-o", m), "refusing")
    assert digest(m, tmp_path / "m.weights.npz") == before


def test_a_failing_run_leaves_the_old_output_and_no_partial_file(imported, tmp_path):
    m = copy_module(imported, tmp_path)
    out = tmp_path / "out.mlir"
    previous = "// the previous result\nbuiltin.module {\n}\n"
    out.write_text(previous)
    assert_bad_input(call(opt.main, m, "-p", "extract-kv-cache{capacity=9999}", "-o", out),
                     "capacity")
    assert out.read_text() == previous
    assert_bad_input(call(opt.main, m, "-p", "extract-kv-cache{capacity=9999}",
                          "-o", tmp_path / "new" / "x.mlir"))
    assert not (tmp_path / "new" / "x.mlir").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.mlir", "m.weights.npz", "new",
                                                          "out.mlir"]


def test_opt_refuses_to_write_over_the_modules_own_weight_store(imported, tmp_path):
    m = copy_module(imported, tmp_path)
    before = digest(tmp_path / "m.weights.npz")
    assert_bad_input(call(opt.main, m, "-o", tmp_path / "m.weights.npz"), "weight store")
    assert digest(tmp_path / "m.weights.npz") == before


def test_import_refuses_to_replace_the_model(shared_models, tmp_path):
    for name in ("stories260K.bin", "stories260K.onnx"):
        model = tmp_path / name
        shutil.copy(shared_models / STORIES / name, model)
        before = digest(model)
        assert_bad_input(call(cli.main, "import", model, "-o", model), "refusing", name)
        assert digest(model) == before


def test_quantize_pass_writes_its_store_beside_the_output(imported, tmp_path, monkeypatch):
    m = copy_module(imported, tmp_path / "in", "s.mlir")
    before = tree(tmp_path / "in")
    code, _, err = call(opt.main, m, "-p", "quantize{scheme=w8}", "-o", tmp_path / "out" / "q.mlir")
    assert code == 0, err
    assert tree(tmp_path / "in") == before  # nothing written beside the input
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["q.mlir", "q.weights.npz"]
    assert 'irtool.weights = "q.weights.npz"' in (tmp_path / "out" / "q.mlir").read_text()
    # printing to stdout: the new store goes to the current directory, named by its content
    # (the same weights as q.weights.npz), the input stays as it was
    monkeypatch.chdir(tmp_path / "out")
    code, printed, err = call(opt.main, m, "-p", "quantize{scheme=w8}")
    assert code == 0, err
    assert tree(tmp_path / "in") == before
    (store,) = (tmp_path / "out").glob("m.w8.*.weights.npz")
    assert store.name == f"m.w8.{store_digest(tmp_path / 'out' / 'q.weights.npz')[:12]}.weights.npz"
    assert f'irtool.weights = "{store}"' in printed
    # and the written module runs with it: the same logits as the -o one
    code, first, err = call(run.main, tmp_path / "out" / "q.mlir", "--tokens", "1,403")
    assert code == 0, err
    (tmp_path / "out" / "p.mlir").write_text(printed)
    assert call(run.main, tmp_path / "out" / "p.mlir", "--tokens", "1,403")[1] == first


def test_compile_never_destroys_a_users_directory(tmp_path):
    user = tmp_path / "user"
    (user / "runtime").mkdir(parents=True)
    (user / "Makefile").write_text("my makefile\n")
    (user / "runtime" / "notes.txt").write_text("mine\n")
    before = tree(user)
    args = ("compile", "--steps", "4", "--capacity", "16", "--time-limit", "2")
    assert_bad_input(call(cli.main, *args, "-o", user), "refusing", "--force")
    assert tree(user) == before
    # an empty or new directory is fine; a second run replaces irtool's own files only
    code, _, err = call(cli.main, *args, "-o", tmp_path / "new")
    assert code == 0, err
    written = tree(tmp_path / "new")
    manifest = (tmp_path / "new" / ".irtool-manifest").read_text().splitlines()
    assert {"Makefile", "main.c", "model.c", "weights.c", "runtime/irt_kernels.h"} <= set(manifest)
    (tmp_path / "new" / "runtime" / "notes.txt").write_text("mine\n")
    (tmp_path / "new" / "stale.c").write_text("written by an older irtool\n")
    with (tmp_path / "new" / ".irtool-manifest").open("a") as f:
        f.write("stale.c\n../outside.txt\n")
    (tmp_path / "outside.txt").write_text("not irtool's\n")
    code, _, err = call(cli.main, *args, "-o", tmp_path / "new")
    assert code == 0, err
    assert (tmp_path / "new" / "runtime" / "notes.txt").read_text() == "mine\n"
    assert not (tmp_path / "new" / "stale.c").exists()  # listed in the manifest: irtool's
    assert (tmp_path / "outside.txt").read_text() == "not irtool's\n"
    assert {k: v for k, v in tree(tmp_path / "new").items()
            if k not in ("runtime/notes.txt", ".irtool-manifest")} == \
        {k: v for k, v in written.items() if k != ".irtool-manifest"}
    # --force writes the project's files into the user's directory and keeps the others
    code, _, err = call(cli.main, *args, "-o", user, "--force")
    assert code == 0, err
    assert (user / "runtime" / "notes.txt").read_text() == "mine\n"
    assert (user / "Makefile").read_text() != "my makefile\n"


def test_compile_never_writes_over_its_calibration_or_adapter_files(shared_models, tmp_path):
    """Only the model was protected: with --force, calibration data saved as the project's
    `estimate.json` was replaced by the project's own, and so could a --lora file be."""
    user = tmp_path / "user"
    user.mkdir()
    calib = user / "estimate.json"
    shutil.copy(shared_models / "stories260K" / "eval_tokens.json", calib)
    before = tree(user)
    first = assert_bad_input(call(cli.main, "compile", "--quant", "w8a8", "--calibration", calib,
                                  "--target", "riscv-ulp", "-o", user, "--capacity", "16",
                                  "--steps", "4", "--force"))
    assert first == (f"error: refusing to write the project directory '{user}': it holds the "
                     f"input '{calib}'; choose another directory")
    assert tree(user) == before
    adapter = user / "weights.bin"  # a LoRA file under the name of a project's file
    adapter.write_bytes(b"not read")
    first = assert_bad_input(call(cli.main, "compile", "--target", "host", "-o", user,
                                  "--capacity", "16", "--steps", "4", "--force", "--lora",
                                  f"story={adapter}"))
    assert first == (f"error: refusing to write the project directory '{user}': it holds the "
                     f"input '{adapter}'; choose another directory")
    assert adapter.read_bytes() == b"not read"


def test_c_project_target_never_destroys_a_users_directory(placed, tmp_path):
    user = tmp_path / "user"
    user.mkdir()
    (user / "main.c").write_text("int main(void) { return 0; }\n")
    before = tree(user)
    assert_bad_input(call(opt.main, placed, "-t", f'c-project{{dir="{user}" steps=2}}'),
                     "refusing", str(user))
    assert tree(user) == before
    code, _, err = call(opt.main, placed, "-t", f'c-project{{dir="{user}" steps=2}}', "--force")
    assert code == 0, err
    assert (user / "weights.c").is_file()


# --- wrong results with exit 0 --------------------------------------------------------------

@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # the run asked to go on with them
@pytest.mark.parametrize("value", [np.nan, np.inf, 3e38])
def test_nonfinite_weights_are_refused_where_consumed(imported, tmp_path, value):
    m = copy_module(imported, tmp_path)
    edit_store(tmp_path / "m.weights.npz",
               lambda a: a["layers.1.w2"].__setitem__((5, 7), value))
    for main, args in ((run.main, (m, "--tokens", "1,403")),
                       (cli.main, ("generate", m, "--steps", "2")),
                       (opt.main, (m, "-p", "quantize{scheme=w8}", "-o", tmp_path / "q.mlir"))):
        assert_bad_input(call(main, *args), '"layers.1.w2"', "[5, 7]", "--allow-nonfinite")
    code, _, err = call(run.main, m, "--tokens", "1,403", "--allow-nonfinite")
    assert code == 0, err  # asked for explicitly


def test_an_overlapping_plan_is_refused_naming_both_buffers(placed, tmp_path):
    text = placed.read_text()
    allocs = re.findall(r"(%\d+) = memory.alloc \{offset = (\d+) : i64", text)
    (a, off_a), (b, off_b) = allocs[0], allocs[1]
    bad = copy_module(placed, tmp_path, "bad.mlir")
    bad.write_text(bad.read_text().replace(f"{b} = memory.alloc {{offset = {off_b} ",
                                           f"{b} = memory.alloc {{offset = {off_a} ", 1))
    for main, args in ((opt.main, (bad,)), (run.main, (bad, "--tokens", "1,403")),
                       (opt.main, (bad, "--no-verify-plan", "-t", "c"))):
        first = assert_bad_input(call(main, *args), "share bytes while both are live")
        assert f"memory.alloc {a} in @decode" in first and f"memory.alloc {b} in @decode" in first
    code, _, err = call(opt.main, bad, "--no-verify-plan", "-o", tmp_path / "out.mlir")
    assert code == 0, err


def test_plan_beyond_capacity_and_writes_into_flash_are_refused(placed, tmp_path):
    m = copy_module(placed, tmp_path)
    text = m.read_text()
    # the KV caches (state, written by every decode step) moved into the read-only Flash
    cache = re.search(r'memory.global @\S+ \{kind = "state".*? : (memref<[^,]+), '
                      r'#memory.space<(\w+)>>', text)
    m.write_text(text.replace(f"{cache.group(1)}, #memory.space<{cache.group(2)}>>",
                              f"{cache.group(1)}, #memory.space<flash>>"))
    assert_bad_input(call(opt.main, m), "read-only memory flash", "writes")
    off = re.search(r"memory.alloc \{offset = (\d+) : i64", text)
    m.write_text(text.replace(off.group(0), "memory.alloc {offset = 65532 : i64", 1))
    assert_bad_input(call(opt.main, m), "ends beyond the 65536 bytes of dtim")


def test_a_transposed_store_entry_of_the_same_size_is_refused(placed, tmp_path):
    m = copy_module(placed, tmp_path)
    edit_store(tmp_path / "m.weights.npz",
               lambda a: a.__setitem__("layers.0.w1", np.ascontiguousarray(a["layers.0.w1"].T)))
    for main, args in ((run.main, (m, "--tokens", "1,403")),
                       (opt.main, (m, "-t", f'c-project{{dir="{tmp_path / "p"}"}}'))):
        assert_bad_input(call(main, *args), '"layers.0.w1"', "float32[64, 172]", "172x64")
    assert not (tmp_path / "p").exists()


def test_tokenizer_and_model_must_agree(shared_models, tmp_path):
    nano = shared_models / "nanogpt-tiny" / "nanogpt.onnx"
    tok = shared_models / STORIES / "tok512.bin"
    assert_bad_input(call(cli.main, "generate", nano, "--tokenizer", tok, "--steps", "1"),
                     str(tok), str(nano), "512", "70")
    cut = tmp_path / "tok512.bin"
    data = tok.read_bytes()
    pos, n = 4, 0
    while n < 300:  # cut at a record boundary: a well-formed file of 300 tokens
        (length,) = struct.unpack_from("<i", data, pos + 4)
        pos += 8 + length
        n += 1
    cut.write_bytes(data[:pos])
    assert_bad_input(call(cli.main, "generate", "--tokenizer", cut, "--steps", "1"),
                     str(cut), "300")


def test_prompt_steps_and_capacities_are_checked_everywhere(placed, tmp_path):
    assert_bad_input(call(opt.main, placed, "-t",
                          f'c-project{{dir="{tmp_path / "a"}" prompt=1,600 steps=3}}'),
                     "token id 600", "0..511")
    assert_bad_input(call(opt.main, placed, "-t",
                          f'c-project{{dir="{tmp_path / "a"}" prompt=1 steps=-3}}'), "-3")
    assert not (tmp_path / "a").exists()
    for steps in ("1000000000", "2147483648"):
        assert_bad_input(call(cli.main, "compile", "-o", tmp_path / "b", "--steps", steps,
                              "--capacity", "16"), steps)
    assert_bad_input(call(cli.main, "compile", "-o", tmp_path / "b", "--prompt-tokens",
                          "1,600"), "token id 600", "position 1")
    assert_bad_input(call(cli.main, "generate", "--steps", "-5"), "-5")
    assert_bad_input(call(cli.main, "generate", "--prompt", "Once upon a time " * 200,
                          "--steps", "2"), "context", "512")
    assert_bad_input(call(opt.main, placed.with_name("m.mlir"), "-p",
                          f"extract-kv-cache{{capacity={2**40}}}"), str(2**40), "512")


# --- internal errors --------------------------------------------------------------------------

def test_output_paths_that_are_files_directories_or_symlinks(imported, tmp_path):
    m = copy_module(imported, tmp_path / "in")
    (tmp_path / "file").write_text("x")
    (tmp_path / "dir").mkdir()
    assert_bad_input(call(opt.main, m, "-o", tmp_path / "file" / "x.mlir"), "file")
    assert_bad_input(call(opt.main, m, "-o", tmp_path / "dir"), "directory")
    assert_bad_input(call(cli.main, "import", m, "-o", tmp_path / "dir"), "directory")
    assert_bad_input(call(run.main, m, "--tokens", "1", "--dump-logits", tmp_path / "dir"),
                     "directory")
    assert_bad_input(call(cli.main, "compile", "-o", tmp_path / "file"), "not a directory")
    assert (tmp_path / "file").read_text() == "x"
    # a symlink to a directory: the project goes into the directory it points to
    (tmp_path / "link").symlink_to(tmp_path / "dir")
    code, _, err = call(cli.main, "compile", "-o", tmp_path / "link", "--steps", "2",
                        "--capacity", "8", "--time-limit", "2")
    assert code == 0, err
    assert (tmp_path / "link").is_symlink() and (tmp_path / "dir" / "main.c").is_file()


def test_run_dump_logits_is_written_only_on_success(imported, tmp_path):
    out = tmp_path / "l.npy"
    code, _, err = call(run.main, imported, "--tokens", "1,403", "--dump-logits", out)
    assert code == 0, err
    assert np.load(out).shape == (2, 512)
    assert_bad_input(call(run.main, imported, "--tokens", "1,9999", "--dump-logits",
                          tmp_path / "m.npy"), "9999")
    assert not (tmp_path / "m.npy").exists()
    assert_bad_input(call(run.main, imported, "--tokens", "1", "--dump-logits", imported),
                     "refusing")


def test_missing_files_and_pass_order(imported, tmp_path):
    assert_bad_input(call(opt.main, tmp_path / "nope.mlir"), "nope.mlir")
    assert_bad_input(call(opt.main, imported, "-p", "extract-kv-cache{capacity=32},allocate"),
                     "bufferize first")


def test_c_project_with_a_renamed_or_missing_weight(placed, tmp_path):
    for edit in (lambda a: a.__setitem__("renamed", a.pop("layers.0.wq")),
                 lambda a: a.pop("layers.0.wq")):
        m = copy_module(placed, tmp_path / "x")
        edit_store(tmp_path / "x" / "m.weights.npz", edit)
        assert_bad_input(call(opt.main, m, "-t", f'c-project{{dir="{tmp_path / "p"}"}}'),
                         '"layers.0.wq"')


def test_deep_nesting(tmp_path):
    deep = tmp_path / "deep.mlir"
    deep.write_text("builtin.module {" * 3000 + "}" * 3000 + "\n")
    assert_bad_input(call(opt.main, deep), "nests too deeply")
    assert_bad_input(call(run.main, deep, "--tokens", "1"), "nests too deeply")


def test_token_ids_beyond_int32_and_bad_numbers(imported, tmp_path):
    assert_bad_input(call(run.main, imported, "--tokens", f"1,{2**32}"), str(2**32))
    assert_bad_input(call(run.main, imported, "--tokens", "1", "--generate", str(2**31)),
                     "--generate")
    assert_bad_input(call(cli.main, "compile", "-o", tmp_path / "t", "--time-limit", "nan"),
                     "--time-limit")


def test_broken_onnx_graphs(shared_models, tmp_path):
    import onnx

    src = shared_models / "nanogpt-tiny" / "nanogpt.onnx"
    m = onnx.load(src)
    del m.graph.initializer[3]
    onnx.save(m, tmp_path / "noinit.onnx")
    m = onnx.load(src)
    m.graph.output[0].name = "dangling"
    onnx.save(m, tmp_path / "dangle.onnx")
    assert_bad_input(call(cli.main, "import", tmp_path / "noinit.onnx", "-o", tmp_path / "a.mlir"),
                     "no node, initializer or graph input")
    assert_bad_input(call(cli.main, "import", tmp_path / "dangle.onnx", "-o", tmp_path / "b.mlir"),
                     "'dangling'")


def test_an_unsupported_op_is_named_where_it_is(shared_models, tmp_path):
    """nanogpt-tiny with its first Erf renamed Sin: the error names Sin and its node, not
    the GELU's Mul where matching stopped."""
    import onnx

    m = onnx.load(shared_models / "nanogpt-tiny" / "nanogpt.onnx")
    erf = next(n for n in m.graph.node if n.op_type == "Erf")
    erf.op_type = "Sin"
    onnx.save(m, tmp_path / "sin.onnx")
    first = assert_bad_input(call(run.main, tmp_path / "sin.onnx", "--tokens", "28,53,42"))
    assert first.startswith("error: unsupported ONNX op 'Sin' (node '/h.0/Erf', "), first


def test_an_unused_huge_store_entry_is_never_read(imported, tmp_path):
    m = copy_module(imported, tmp_path)
    header = {"descr": "<f4", "fortran_order": False, "shape": (2**40,)}
    buf = io.BytesIO()
    np.lib.format.write_array_header_2_0(buf, header)
    with zipfile.ZipFile(tmp_path / "m.weights.npz", "a") as z:
        z.writestr("huge.npy", buf.getvalue())  # 4 TiB by its header, no data at all
    code, out, err = call(run.main, m, "--tokens", "1,403")
    assert code == 0, err
    assert "next token" in out
    # a used entry whose header disagrees with the IR is refused before its data is read
    with np.load(tmp_path / "m.weights.npz") as z:
        arrays = {k: z[k] for k in z.files if k != "huge"}
    with zipfile.ZipFile(tmp_path / "m.weights.npz", "w") as z:
        for k, v in arrays.items():
            if k == "layers.0.wq":
                continue
            b = io.BytesIO()
            np.save(b, v)
            z.writestr(f"{k}.npy", b.getvalue())
        z.writestr("layers.0.wq.npy", buf.getvalue())
    assert_bad_input(call(run.main, m, "--tokens", "1"), '"layers.0.wq"', "1099511627776")


def test_unknown_choices_exit_1(imported, tmp_path):
    assert_bad_input(call(cli.main, "compile", "--quant", "bogus", "-o", tmp_path / "q"),
                     "--quant", "bogus")
    assert_bad_input(call(opt.main, "-t", "bogus", imported), "bogus")
    assert_bad_input(call(cli.main, "bogus"), "bogus")
    assert_bad_input(call(run.main, imported), "--tokens")



def test_integer_only_without_quantization_is_refused(tmp_path):
    """`--integer-only` alone compiled a plain fp32 project without a word."""
    first = assert_bad_input(call(cli.main, "compile", "--integer-only", "--target", "riscv-ulp",
                                  "-o", tmp_path / "p", "--capacity", "16", "--steps", "4"))
    assert first.startswith("error: --integer-only replaces the non-linear ops of --quant w8a8")
    assert not (tmp_path / "p").exists()


# --- the output audit: stores, kinds of outputs, empty paths, xDSL's printers -------------------

def calibration_files(shared_models, d: Path) -> tuple[Path, Path]:
    """Two calibration sets of two stories each, from stories260K's eval_tokens.json."""
    import json

    calib = json.loads((shared_models / STORIES / "eval_tokens.json").read_text())["calib"]
    one, two = d / "c1.json", d / "c2.json"
    one.write_text(json.dumps({"calib": calib[:2]}))
    two.write_text(json.dumps({"calib": calib[2:4]}))
    return one, two


def printed_store(printed: str) -> Path:
    return Path(re.search(r'irtool.weights = "([^"]+)"', printed).group(1))


def logits_of(module: Path, out: Path) -> np.ndarray:
    code, _, err = call(run.main, module, "--tokens", "1,403,407", "--dump-logits", out)
    assert code == 0, err
    return np.load(out)


def test_a_text_output_named_like_a_weight_store_is_refused(imported, shared_models, tmp_path):
    m = copy_module(imported, tmp_path, "s.mlir")
    store = tmp_path / "m.weights.npz"
    other = tmp_path / "other.weights.npz"
    shutil.copy(store, other)
    before = digest(store, other)
    model = shared_models / STORIES / "stories260K.bin"
    first = assert_bad_input(call(cli.main, "import", model, "-o", other),
                             "refusing to write the module", "other.weights.npz", ".mlir")
    assert "weight store" in first
    assert_bad_input(call(cli.main, "import", model, "-o", tmp_path / "new.weights.npz"),
                     "new.weights.npz", "weight store")
    assert_bad_input(call(opt.main, m, "-o", other), "other.weights.npz", "weight store")
    assert_bad_input(call(cli.main, "quantize", m, "--scheme", "w8", "-o", other),
                     "other.weights.npz", "weight store")
    assert digest(store, other) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.weights.npz",
                                                          "other.weights.npz", "s.mlir"]


def test_an_ir_output_replaces_only_ir_text(imported, shared_models, tmp_path):
    """-o may replace a previous module (or an empty file), never a file of another kind."""
    m = copy_module(imported, tmp_path / "in")
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes\n")
    model = shared_models / STORIES / "stories260K.bin"
    for argv in ((cli.main, "import", model, "-o", notes), (opt.main, m, "-o", notes),
                 (cli.main, "quantize", m, "--scheme", "w8", "-o", notes)):
        assert_bad_input(call(*argv), "refusing to replace", "notes.txt", "not IR text")
    assert notes.read_text() == "my notes\n"
    assert not (tmp_path / "notes.txt.weights.npz").exists()
    out = tmp_path / "out.mlir"
    out.write_text("")
    for _ in range(2):  # an empty file, then the previous output
        code, _, err = call(opt.main, m, "-p", "cse", "-o", out)
        assert code == 0, err
        assert out.read_text().startswith("builtin.module")
    generic = tmp_path / "generic.mlir"
    assert call(opt.main, m, "--print-op-generic", "-o", generic)[0] == 0
    code, _, err = call(cli.main, "import", model, "-o", generic)
    assert code == 0, err


@pytest.mark.parametrize("head, ir", [
    (b"builtin.module attributes {irtool.weights = \"m.weights.npz\"} {", True),
    (b'// -----\n\n"builtin.module"() ({', True), (b"#map = affine_map<(d0) -> (d0)>\n", True),
    (b"\x1b[33mbuiltin.module\x1b[0m {", True), (b"%0 = arith.constant 1 : i32", True),
    (b"#!/bin/sh\nmake\n", False), (b"my notes\n", False), (b"// model.c\nint x;\n", False),
    (b"PK\x03\x04\x14\x00", False), (b"builtin.module\0", False),
])
def test_what_an_ir_output_may_replace(head, ir):
    assert looks_like_ir(head) is ir


def test_a_fifo_or_device_output_is_written_into_never_replaced(imported, tmp_path):
    """`-o /dev/null` (here a FIFO, which a test may make): the rename that makes outputs
    atomic would put a regular file in place of the device, for every program on the machine
    (it did, running filecheck/passes/allocate.mlir as root)."""
    import os
    import stat
    import threading

    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    got = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_text()), daemon=True)
    reader.start()
    code, _, err = call(opt.main, imported, "-p", "cse", "-o", fifo)
    assert code == 0, err
    reader.join(timeout=60)
    assert stat.S_ISFIFO(fifo.stat().st_mode)
    assert got and got[0].startswith("builtin.module"), got
    assert [p.name for p in tmp_path.iterdir()] == ["fifo"]


def test_report_replaces_only_a_previous_report(placed, tmp_path):
    main_c = tmp_path / "main.c"
    main_c.write_text("int main(void) { return 0; }\n")
    assert_bad_input(call(cli.main, "report", placed, "-o", main_c), "refusing to replace",
                     "main.c", "irtool report")
    assert main_c.read_text() == "int main(void) { return 0; }\n"
    page = tmp_path / "r.html"
    for _ in range(2):
        code, out, err = call(cli.main, "report", placed, "-o", page)
        assert code == 0 and out == f"wrote {page}\n", err
    assert "<h1>Memory plan:" in page.read_text()


def test_a_printed_modules_store_is_never_replaced_by_another(imported, shared_models,
                                                               tmp_path, monkeypatch):
    """`irtool-opt s.mlir -p calibrate,quantize > a.mlir` twice with other calibration data:
    each printed module keeps its own store (named by its content), so a.mlir still computes
    what it did; the same content gives the same name."""
    m = copy_module(imported, tmp_path, "s.mlir")
    c1, c2 = calibration_files(shared_models, tmp_path)
    monkeypatch.chdir(tmp_path)
    pipeline = 'calibrate{{calibration="{}"}},quantize{{scheme=w8a8}}'
    code, a, err = call(opt.main, m, "-p", pipeline.format(c1))
    assert code == 0, err
    (tmp_path / "a.mlir").write_text(a)
    a_logits = logits_of(tmp_path / "a.mlir", tmp_path / "a.npy")
    a_store = printed_store(a)
    assert re.fullmatch(r"m\.w8a8\.[0-9a-f]{12}\.weights\.npz", a_store.name), a_store
    assert a_store.parent == tmp_path and a_store.is_file()
    before = digest(a_store)
    code, b, err = call(opt.main, m, "-p", pipeline.format(c2))
    assert code == 0, err
    (tmp_path / "b.mlir").write_text(b)
    b_store = printed_store(b)
    assert b_store != a_store and b_store.is_file()
    assert digest(a_store) == before
    assert np.array_equal(logits_of(tmp_path / "a.mlir", tmp_path / "a2.npy"), a_logits)
    assert not np.array_equal(logits_of(tmp_path / "b.mlir", tmp_path / "b.npy"), a_logits)
    code, again, err = call(opt.main, m, "-p", pipeline.format(c1))
    assert code == 0 and printed_store(again) == a_store and digest(a_store) == before, err
    assert sorted(p.name for p in tmp_path.glob("m.w8a8*")) == sorted([a_store.name,
                                                                        b_store.name])
    # a different file under the name the content gives is refused, never replaced
    shutil.copy(b_store, a_store)
    assert_bad_input(call(opt.main, m, "-p", pipeline.format(c1)), "refusing to replace",
                     a_store.name)
    assert a_store.read_bytes() == b_store.read_bytes()


def test_split_input_file_with_o_gives_each_module_its_own_store(imported, tmp_path):
    """`irtool-opt two.mlir --split-input-file -p quantize -o out.mlir`: the first module's
    store is out.weights.npz, a later one's is named by its content beside it (it was refused
    as writing out.weights.npz twice); each printed module computes what the same module
    quantized alone does."""
    a = copy_module(imported, tmp_path / "a")
    b = copy_module(imported, tmp_path / "b")
    edit_store(b.with_name("m.weights.npz"),
               lambda arrays: arrays.update({k: v * np.float32(0.5) for k, v in arrays.items()
                                             if k.endswith(".w1")}))
    texts = [m.read_text().replace('"m.weights.npz"', f'"{m.with_name("m.weights.npz")}"')
             for m in (a, b)]
    two = tmp_path / "two.mlir"
    two.write_text(texts[0] + "\n// -----\n" + texts[1])
    out = tmp_path / "out" / "out.mlir"
    code, _, err = call(opt.main, two, "--split-input-file", "-p", "quantize{scheme=w8}",
                        "-o", out)
    assert code == 0, err
    printed = out.read_text().split("// -----")
    assert len(printed) == 2
    stores = [printed_store(t) for t in printed]
    assert stores[0] == Path("out.weights.npz"), stores
    assert re.fullmatch(r"m\.w8\.[0-9a-f]{12}\.weights\.npz", stores[1].name), stores
    assert stores[1].parent == Path(".")
    for i, (text, m) in enumerate(zip(printed, (a, b), strict=True)):
        alone = tmp_path / f"alone{i}" / "q.mlir"
        code, _, err = call(opt.main, m, "-p", "quantize{scheme=w8}", "-o", alone)
        assert code == 0, err
        split = out.with_name(f"split{i}.mlir")
        split.write_text(text)
        assert np.array_equal(logits_of(split, tmp_path / f"s{i}.npy"),
                              logits_of(alone, tmp_path / f"a{i}.npy"))
    assert not np.array_equal(np.load(tmp_path / "s0.npy"), np.load(tmp_path / "s1.npy"))


def test_empty_output_paths_are_errors(imported, tmp_path, monkeypatch):
    m = copy_module(imported, tmp_path / "in")
    monkeypatch.chdir(tmp_path)
    assert_bad_input(call(cli.main, "import", m, "-o", ""), "path of the module is empty")
    assert_bad_input(call(cli.main, "quantize", m, "--scheme", "w8", "-o", ""), "empty")
    assert_bad_input(call(opt.main, m, "-o", ""), "empty", "-o")
    assert_bad_input(call(cli.main, "estimate", m, "--target", "riscv-ulp", "--plot", ""),
                     "empty", "--plot")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in"]


def test_a_plot_format_matplotlib_cannot_write(imported, tmp_path):
    result = call(cli.main, "estimate", imported, "--target", "riscv-ulp", "--plot",
                  tmp_path / "p.txt")
    assert_bad_input(result, "p.txt", "'txt'", ".png", "svg")
    assert result[1] == "" and not (tmp_path / "p.txt").exists()  # refused before the work
    code, _, err = call(cli.main, "estimate", imported, "--target", "riscv-ulp", "--plot",
                        tmp_path / "P.SVG")
    assert code == 0 and (tmp_path / "P.SVG").read_text().startswith("<?xml"), err


def test_target_options_are_checked_before_any_work(placed, tmp_path):
    project = tmp_path / "p"
    first = assert_bad_input(call(opt.main, placed, "-t", f'c-project{{dir="{project}" '
                                  'force=true}'), '["force"] not found', '"tokenizer"',
                             "--force")
    assert first.startswith("error: bad target options")
    assert not project.exists()


@pytest.mark.parametrize("target, dialect", [("llvm", "llvm"), ("riscv-asm", "riscv"),
                                             ("wat", "wasm"), ("x86-asm", "x86")])
def test_xdsls_printers_of_other_dialects_are_refused(imported, tmp_path, target, dialect):
    """irtool-opt neither parses nor produces xDSL's riscv/llvm/wasm/... dialects, so their
    printers could only fail (an assertion, a missing llvmlite) or print nothing."""
    out = tmp_path / "out.txt"
    first = assert_bad_input(call(opt.main, imported, "-t", target, "-o", out), target,
                             f"{dialect} dialect", "c-project")
    assert "\n" not in first and len(first) < 400
    assert not out.exists()


def test_shrink_says_why_it_fails(imported):
    code, _, err = call(opt.main, imported, "--shrink")
    assert code == 1
    assert err.startswith("error: --shrink: no pass raised xDSL's ShrinkException"), err


def test_quantize_checks_its_inputs_first_and_says_wrote_only_when_written(imported, tmp_path):
    m = copy_module(imported, tmp_path / "in")
    out = tmp_path / "qq.mlir"
    code, printed, err = call(cli.main, "quantize", m, "--scheme", "w8", "-o", out, "--report",
                              "--eval", tmp_path / "nofile.json")
    assert_bad_input((code, printed, err), "nofile.json", "--eval")
    assert "wrote" not in printed and printed == ""
    assert_bad_input(call(cli.main, "quantize", m, "--scheme", "w8", "-o", out,
                          "--calibration", tmp_path / "nocalib.json"), "nocalib.json")
    assert_bad_input(call(cli.main, "quantize", m, "--scheme", "w8", "-o", out,
                          "--eval", tmp_path / "e.json"), "--eval", "--report")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in"]
    code, printed, err = call(cli.main, "quantize", m, "--scheme", "w8", "-o", out)
    assert code == 0, err
    assert printed.startswith(f"wrote {out} (") and out.is_file()
    assert (tmp_path / "qq.weights.npz").is_file()


@pytest.mark.parametrize("name, says", [
    ("s.weights.npz", "is a weight store, not a model: give the .mlir module that refers to it"),
    ("config.json", "is one file of a Hugging Face checkpoint: give its folder"),
    ("notes.txt", "is not a model (irtool reads .onnx, .mlir, llama2.c .bin checkpoints"),
])
def test_files_beside_models_are_named_for_what_they_are(tmp_path, name, says):
    """They were read as llama2.c checkpoints: "not a llama2.c checkpoint (bad header: dim =
    ...)"."""
    f = tmp_path / name
    f.write_bytes(b"\x00" * 64)
    first = assert_bad_input(call(run.main, f, "--tokens", "1"))
    assert first.startswith(f"error: '{f}' {says}")


def test_lora_folder_and_non_finite_scale_are_said(tmp_path):
    """`--lora a=DIR` said "no such file", `a=FILE:nan` went on to blame the weight store."""
    from irtool.errors import IrtoolError
    from irtool.frontend.lora import load_adapter, parse_spec

    folder = tmp_path / "story"
    folder.mkdir()
    with pytest.raises(IrtoolError, match=r"^--lora a=.*story: a folder; give its adapter "
                                          r"file \(.*story/adapter_model\.safetensors\)$"):
        load_adapter(f"a={folder}")
    for bad in ("nan", "inf", "-inf"):
        with pytest.raises(IrtoolError, match=f"^--lora a=x.safetensors:{bad}: the scale {bad} "
                                              "is not a finite number$"):
            parse_spec(f"a=x.safetensors:{bad}")
    assert parse_spec("a=x.safetensors:1.5") == ("a", "x.safetensors", 1.5)


def test_a_pipeline_option_that_is_not_a_number_is_said_so():
    """`riscv-ulp{capacity=abc}` said the pipeline "does not take the option 'capacity=abc'"."""
    from irtool.errors import IrtoolError
    from irtool.pipelines import expand_pipeline

    with pytest.raises(IrtoolError, match=r"^pipeline 'riscv-ulp': option capacity takes an "
                                          r"integer, got 'abc'$"):
        expand_pipeline("riscv-ulp{capacity=abc}")
    with pytest.raises(IrtoolError, match=r"^pipeline 'riscv-ulp': option time-limit takes a "
                                          r"number of seconds, got 'soon'$"):
        expand_pipeline("riscv-ulp{time-limit=soon}")
    with pytest.raises(IrtoolError, match="does not take the option 'colour=red'"):
        expand_pipeline("riscv-ulp{colour=red}")
