"""Progress on a terminal: `irtool compile` and `irtool generate` name their running steps on
stderr when it is a terminal (a pseudo-terminal here), and print nothing of the kind with
`--quiet` or when stderr is a pipe; the results are the same either way."""

from __future__ import annotations

import os
import pty
import re
import subprocess
import sys
from pathlib import Path

BIN = Path(sys.executable).parent
STEPS = ("importing stories260K.bin", "compiling for host (bufferize, allocate, lower-to-hw)",
         "writing the project to")


def run_on_terminal(*args) -> tuple[int, str, str]:
    """stdout through a pipe, stderr on a pseudo-terminal (returned without colours)."""
    leader, follower = pty.openpty()
    proc = subprocess.Popen([str(BIN / "irtool"), *map(str, args)], stdin=follower,
                            stdout=subprocess.PIPE, stderr=follower, close_fds=True)
    os.close(follower)
    err = b""
    while True:
        try:
            chunk = os.read(leader, 4096)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        err += chunk
    os.close(leader)
    out = proc.stdout.read().decode()
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", err.decode(errors="replace"))  # colours
    return proc.wait(timeout=600), out, text


def compile_args(out: Path):
    return ("compile", "--target", "host", "-o", out, "--capacity", 16, "--steps", 4)


def test_compile_shows_its_steps_on_a_terminal_only(tmp_path):
    rc, out, err = run_on_terminal(*compile_args(tmp_path / "a"))
    assert rc == 0, err
    for step in STEPS:
        assert step in err, (step, err[-2000:])
    rc, quiet_out, quiet_err = run_on_terminal(*compile_args(tmp_path / "b"), "--quiet")
    assert rc == 0 and not any(s in quiet_err for s in STEPS), quiet_err[-2000:]
    piped = subprocess.run([str(BIN / "irtool"), *map(str, compile_args(tmp_path / "c"))],
                           capture_output=True, text=True, timeout=600)
    assert piped.returncode == 0 and piped.stderr == ""
    assert (tmp_path / "a" / "model.c").read_text() == (tmp_path / "c" / "model.c").read_text()


def test_generate_shows_a_token_bar_on_a_terminal(tmp_path):
    rc, out, err = run_on_terminal("generate", "--steps", 6)
    assert rc == 0, err
    assert "generating" in err and re.search(r"\b\d/6\b", err), err[-2000:]
    assert "tokens: 1,403,407,261,378,432,383,286,261,376,298" in out  # greedy, unchanged
    piped = subprocess.run([str(BIN / "irtool"), "generate", "--steps", "6"],
                           capture_output=True, text=True, timeout=600)
    assert piped.stderr == "" and piped.stdout.splitlines()[:2] == out.splitlines()[:2]
