"""The program, main.c's token table and the planned weights fit riscv-ulp's Flash together,
or `irtool compile` says so (targets/c/program_fit.py), instead of the linker's "region
`flash' overflowed" at `make` after irtool had said to run the project.

References: the linker's own layout of the built program (the `.flash` arena's address, the
table's symbol sizes) and the fp32 interpreter's tokens for the same prompt.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest

from irtool import cli
from tests.requirements import need
from tests.test_llama2c_reader import _n_floats

PROMPT, STEPS = [1, 2, 3], 4
DESCRIPTION = Path(__file__).resolve().parents[1] / "targets" / "riscv_ulp" / "description.json"


def compile_main(*args) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            cli.main([str(a) for a in args])
            code = 0
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else 1
    return code, err.getvalue()


def checkpoint(path: Path, dim: int, layers: int, vocab: int) -> Path:
    """A llama2.c checkpoint with random weights (standard deviation 0.3, so that the
    greedy tokens vary), heads of 8, an MLP of 64, context 64."""
    header = (dim, 64, layers, dim // 8, dim // 8, vocab, 64)
    data = np.random.default_rng(0).standard_normal(_n_floats(*header)) * 0.3
    path.write_bytes(struct.pack("<7i", *header) + data.astype("<f4").tobytes())
    return path


def compile_args(model: Path, out: Path) -> list:
    return ["compile", model, "--target", "riscv-ulp", "--capacity", 32, "--steps", STEPS,
            "--prompt-tokens", ",".join(map(str, PROMPT)), "-o", out, "--quiet"]


def test_a_vocabulary_that_overflows_the_flash_is_refused_at_compile(tmp_path):
    """14,700 tokens of dim 32: the weights (1.92 MB) fit the plannable Flash, but with the
    program and the token table the 2 MiB overflow (the linker said so by 195,244 bytes)."""
    model = checkpoint(tmp_path / "m.bin", 32, 1, 14700)
    out = tmp_path / "out"
    code, err = compile_main(*compile_args(model, out))
    assert code == 1, err
    assert err.startswith("error: the model does not fit target 'riscv-ulp': flash "
                          "(2,097,152 bytes)"), err
    assert "main.c's token table (14,700 tokens)" in err and "bytes over" in err
    assert "Traceback" not in err and not out.exists()


def test_an_8192_token_model_links_and_prints_the_interpreters_tokens(tmp_path):
    """8,192 tokens of dim 48 in 4 layers: with one piece_t and a string literal per token
    the table took 164 KB and the link failed; the compact table fits beside the weights.
    The linker's layout bounds what program_fit assumes: the table's symbols take what
    table_bytes says (within its alignment), the program before the weights no more than
    toolchain.program plus the table."""
    need("riscv", "qemu")
    from irtool.frontend.load import import_model
    from irtool.interpreter.runner import ModelRunner
    from irtool.targets.c.emit import TokenTable
    from irtool.targets.c.token_table import table_bytes

    model = checkpoint(tmp_path / "m.bin", 48, 4, 8192)
    out = tmp_path / "out"
    code, err = compile_main(*compile_args(model, out))
    assert code == 0, err
    run = subprocess.run(["make", "-s", "run"], cwd=out, capture_output=True, text=True,
                         timeout=600)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    tokens = re.search(r"^tokens: ([0-9,]+)$", run.stdout + run.stderr, re.MULTILINE).group(1)
    want = ModelRunner(*import_model(model)).generate(PROMPT, STEPS)
    assert [int(t) for t in tokens.split(",")] == want

    expected = table_bytes(TokenTable.for_ids(8192))
    nm = subprocess.run(["riscv64-unknown-elf-nm", "-S", "model.elf"], cwd=out, check=True,
                        capture_output=True, text=True).stdout
    sizes = {name: int(size, 16) for size, name in re.findall(
        r"^[0-9a-f]+ ([0-9a-f]+) \w (piece_bytes|piece_at|piece_strip)$", nm, re.MULTILINE)}
    assert set(sizes) == {"piece_bytes", "piece_at", "piece_strip"}, nm[-2000:]
    assert expected - 6 <= sum(sizes.values()) <= expected
    objdump = subprocess.run(["riscv64-unknown-elf-objdump", "-h", "model.elf"], cwd=out,
                             check=True, capture_output=True, text=True).stdout
    arena = int(re.search(r"^\s*\d+\s+\.flash\s+[0-9a-f]+\s+([0-9a-f]+)", objdump,
                          re.MULTILINE).group(1), 16)
    description = json.loads(DESCRIPTION.read_text())
    flash_origin = description["toolchain"]["base"]
    program = description["toolchain"]["program"]
    assert arena - flash_origin <= program + expected


@pytest.mark.parametrize("vocab", [512, 8192])
def test_table_bytes_is_the_c_arrays_size(vocab):
    """table_bytes against the arrays main.c declares (their lengths read from the C)."""
    from irtool.targets.c.emit import TokenTable
    from irtool.targets.c.token_table import table_bytes, table_c

    table = TokenTable.for_ids(vocab)
    text = table_c(table)
    text_len = int(re.search(r"piece_bytes\[(\d+)\]", text).group(1))
    assert text_len == sum(len(f"<{i}>") for i in range(vocab)) + 1
    assert table_bytes(table) == -(-text_len // 4) * 4 + 4 * (vocab + 1) + -(-vocab // 4) * 4
