"""The u280-hls project folder follows the rules of the C targets' (irtool/output_safety.py).

* A folder that holds an input of the command is refused (the project writes weights.bin: it
  overwrote a model of that name), with --force too, and nothing in it changes.
* The project is written atomically with a `.irtool-manifest` of the files irtool wrote, so
  compiling again into the same folder works; files of a previous irtool project (a riscv-ulp
  one: main.c, model.c, runtime/, weights_flash.bin, model.hw.mlir) go, a user's files stay.
* `--report` is refused before any work (the pipeline has no memory plan for `irtool report`
  to draw), and nothing claims a report.html that was not written.
* The compile message names the commands of the project's Makefile (`csim`, `run_hw`).

The drivers run in-process, as in tests/test_bad_inputs.py.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import re
import shutil
import subprocess
import sys
from pathlib import Path

from irtool import cli

U280 = ("--target", "u280-hls", "--capacity", "64", "--steps", "8", "--quiet")


def call(*args) -> tuple[int, str, str]:
    """`irtool ARGS` in-process: (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    code = 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            cli.main([str(a) for a in args])
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else 1
    return code, out.getvalue(), err.getvalue()


def one_line_error(result) -> str:
    code, _, err = result
    assert code == 1, err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err and "this is a bug" not in err, err
    return err.rstrip("\n")


def tree(d: Path) -> dict[str, str]:
    return {str(p.relative_to(d)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(d.rglob("*")) if p.is_file()}


def manifest(d: Path) -> set[str]:
    lines = (d / ".irtool-manifest").read_text().splitlines()
    return {ln for ln in lines if ln and not ln.startswith("#")}


def riscv_project(d: Path) -> None:
    code, _, err = call("compile", "--target", "riscv-ulp", "-o", d, "--capacity", "64",
                        "--steps", "8", "--quiet")
    assert code == 0, err
    assert {"main.c", "model.c", "weights_flash.bin", "model.hw.mlir"} <= manifest(d)


def test_a_folder_holding_the_input_is_refused(shared_models, tmp_path):
    model = shared_models / "stories260K" / "stories260K.bin"
    rv = tmp_path / "rv" / "a"
    riscv_project(rv)
    shutil.copyfile(model, rv / "weights.bin")  # the u280 project writes a weights.bin
    before = tree(rv)
    first = one_line_error(call("compile", rv / "weights.bin", *U280, "-o", rv))
    assert first == (f"error: refusing to write the project directory '{rv}': it holds the "
                     f"input '{rv / 'weights.bin'}'; choose another directory")
    assert tree(rv) == before
    assert (rv / "weights.bin").read_bytes() == model.read_bytes()
    # --force does not make it writable: a fresh folder with only the model in it
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    shutil.copyfile(model, fresh / "weights.bin")
    first = one_line_error(call("compile", fresh / "weights.bin", *U280, "-o", fresh, "--force"))
    assert first.startswith(f"error: refusing to write the project directory '{fresh}': it "
                            "holds the input"), first
    assert tree(fresh) == {"weights.bin": hashlib.sha256(model.read_bytes()).hexdigest()}
    # nothing half-written beside them (the project is built in a temporary folder)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fresh", "rv"]
    assert sorted(p.name for p in rv.parent.iterdir()) == ["a"]


def test_compiling_again_into_the_project_replaces_irtools_files_only(shared_models, tmp_path):
    d = shared_models / "stories260K"
    u = tmp_path / "u"
    args = ("compile", d / "stories260K.bin", "--target", "u280-hls", "-o", u, "--capacity",
            "64", "--quant", "w8a8", "--steps", "16", "--quiet")
    code, out, err = call(*args)
    assert code == 0, err
    assert f"calibrating w8a8 on the 'calib' stories of {d / 'eval_tokens.json'}" in out
    written = tree(u)
    assert manifest(u) == set(written) - {".irtool-manifest"}  # every file, and only those
    assert {"Makefile", "kernels.cpp", "kernels.h", "main.cpp", "model.cpp", "weights.bin",
            "connectivity.cfg", "bank_map.json", "irt_hls.h", "accel_csim.cpp"} <= manifest(u)
    (u / "notes.txt").write_text("mine\n")
    (u / "csim.bin").write_bytes(b"built by make\n")  # a build product: not irtool's
    code, _, err = call(*args)
    assert code == 0, err  # was: not written by irtool (no .irtool-manifest)
    assert tree(u) == {**written, "notes.txt": tree(u)["notes.txt"],
                       "csim.bin": tree(u)["csim.bin"]}
    assert (u / "notes.txt").read_text() == "mine\n"
    assert (u / "csim.bin").read_bytes() == b"built by make\n"


def test_a_u280_project_replaces_a_riscv_ulp_project(tmp_path):
    p = tmp_path / "p"
    riscv_project(p)
    old = manifest(p)
    (p / "notes.txt").write_text("mine\n")
    code, _, err = call("compile", *U280, "-o", p)
    assert code == 0, err
    files = set(tree(p))
    assert not old & files - manifest(p), sorted(old & files - manifest(p))  # none left over
    for stale in ("main.c", "model.c", "weights_flash.bin", "model.hw.mlir", "estimate.json"):
        assert not (p / stale).exists(), stale
    assert not (p / "runtime").exists()  # it held only irtool's files
    assert files == manifest(p) | {".irtool-manifest", "notes.txt"}
    assert (p / "notes.txt").read_text() == "mine\n"
    assert "# u280-hls project" in (p / "Makefile").read_text()
    # irtool report no longer draws the riscv-ulp plan for the u280 project
    first = one_line_error(call("report", p, "-o", tmp_path / "x.html"))
    assert "model.hw.mlir" in first
    assert not (tmp_path / "x.html").exists()


def test_emptied_folders_of_a_previous_project_go_and_a_users_file_keeps_its_folder(tmp_path):
    from irtool.output_safety import project_directory

    d = tmp_path / "d"
    with project_directory(d) as tmp:
        for rel in ("a/x.c", "b/y.c", "b/c/z.c", "keep.txt"):
            (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
            (tmp / rel).write_text(rel)
    (d / "b" / "mine.txt").write_text("mine\n")
    (d / "e").mkdir()  # an empty folder of the user's
    with project_directory(d) as tmp:
        (tmp / "keep.txt").write_text("new\n")
    assert tree(d) == {".irtool-manifest": tree(d)[".irtool-manifest"],
                       "b/mine.txt": tree(d)["b/mine.txt"], "keep.txt": tree(d)["keep.txt"]}
    assert sorted(p.name for p in d.iterdir()) == [".irtool-manifest", "b", "e", "keep.txt"]
    assert sorted(p.name for p in (d / "b").iterdir()) == ["mine.txt"]
    assert manifest(d) == {"keep.txt"}


def test_report_is_refused_before_any_work(tmp_path, monkeypatch):
    def no_import(*_args, **_kwargs):
        raise AssertionError("the model was imported before --report was refused")

    monkeypatch.setattr("irtool.frontend.load.import_model", no_import)
    ur = tmp_path / "ur"
    code, out, err = call("compile", *U280, "-o", ur, "--report")
    first = one_line_error((code, out, err))
    assert first == ("error: --report: target 'u280-hls' has no memory plan for irtool report "
                     "to draw (its buffers are bound to HBM channels: see bank_map.md and "
                     "resources.md in the project); drop --report")
    assert out == ""  # no `wrote .../report.html`
    assert not ur.exists()


def test_the_message_names_the_makefiles_commands(tmp_path):
    u = tmp_path / "u"
    code, out, err = call("compile", *U280, "-o", u)
    assert code == 0, err
    assert out.splitlines()[-1] == (
        f"wrote the project for u280-hls to {u}: run its C simulation with 'make -C {u} csim' "
        f"(./csim.bin), or on the card with 'make -C {u} run_hw' (./host_xrt model.xclbin; "
        "needs Vitis and XRT)")
    assert "model.elf" not in out
    makefile = (u / "Makefile").read_text()
    for target, runs in (("csim", "./csim.bin"), ("run_hw", "./host_xrt model.xclbin")):
        rule = re.search(rf"^{target}:.*\n\t(.*)$", makefile, re.MULTILINE)
        assert rule and rule.group(1) == runs, (target, rule and rule.group(0))


def test_a_batched_prefill_is_refused_not_ignored(tmp_path):
    """u280-hls accepted --prefill batched and emitted no prefill: the host feeds the prompt
    through the decode kernels."""
    proc = subprocess.run([str(Path(sys.executable).parent / "irtool"), "compile", "--target",
                           "u280-hls", "--prefill", "batched", "--capacity", "16", "--steps",
                           "4", "-o", str(tmp_path / "p")], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 1 and not (tmp_path / "p").exists()
    assert proc.stderr.strip() == ("error: --prefill batched: target 'u280-hls' feeds the "
                                   "prompt through its decode kernels one token at a time; "
                                   "drop --prefill")
