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
