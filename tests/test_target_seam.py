"""The target seam: targets come from the registry, a new target needs no file of the package.

* `host` compiles and runs natively with the system cc, printing stories260K's golden tokens.
* A target written into a temporary folder (a description, one overriding lowering rule with a
  C kernel of its own, a tweak of the emitted main.c) compiles stories260K through
  `irtool compile --target DIR` and `irtool-opt --pipeline=DIR`-style passes; its program
  prints the golden tokens and the tweak, and its own kernel is what runs SiLU.
* An installed package's entry point is found by name.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
GOLDEN = json.loads((Path(__file__).resolve().parents[2] / "shared" / "models" / "stories260K"
                     / "golden.json").read_text())
STEPS = 24

needs_cc = pytest.mark.needs("cc")  # tests/requirements.py: a failure under CI


def irtool(*args) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "irtool"), *map(str, args)], capture_output=True,
                          text=True, timeout=600)


def run_project(out: Path, goal: str = "run") -> str:
    proc = subprocess.run(["make", "-s", "-C", str(out), goal], stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-4000:]
    return proc.stdout


def generated_tokens(output: str) -> list[int]:
    m = re.search(r"^tokens: ([0-9,]*)$", output, re.M)
    assert m, output[-2000:]
    return [int(t) for t in m.group(1).split(",") if t]


def golden_prefix(n: int) -> list[int]:
    return GOLDEN["all_ids"][len(GOLDEN["prompt_ids"]):][:n]


@needs_cc
def test_host_target_runs_natively_with_the_golden_tokens(tmp_path):
    out = tmp_path / "host"
    proc = irtool("compile", "--target", "host", "-o", out, "--capacity", 64, "--steps", STEPS,
                  "--prompt", GOLDEN["prompt"])
    assert proc.returncode == 0, proc.stderr
    assert not (out / "irt_memory.ld").exists()  # a native build keeps the host's own layout
    output = run_project(out)
    assert generated_tokens(output) == golden_prefix(STEPS)
    assert GOLDEN["text"][:40] in output
    assert "instructions per" not in output  # the host names no counter: none is printed


PLUGIN = '''
"""A test chip: the portable C target with its own SiLU kernel and a banner in main.c."""
from irtool.kernels import KERNELS, KernelSignature
from irtool.targets.c.calling import CCall
from irtool.targets.c.target import CTarget
from irtool.targets.c import rules as c_rules
from irtool.dialects import transformer as tf
from irtool.lowering import KernelCall

SILU = KernelSignature("chip_silu_f32", ("x", "y"), ("n",), ("y",),
                       KERNELS["irt_silu_f32"].reference, may_alias=(("y", "x"),))


def silu(op, arg, outs):
    return KernelCall("chip_silu_f32", (arg(op.input), outs[0]), dict(n=c_rules.numel(op.input)))


class Chip(CTarget):
    def main_c(self, prompt, steps, table):
        text = super().main_c(prompt, steps, table)
        start = "int main(int argc, char **argv)\\n{"
        return text.replace(start, start + "\\n    puts(\\"chip says hello\\");", 1)


def make_target(folder):
    base = CTarget.from_folder(folder)
    return Chip(base.description, c_rules.PORTABLE_RULES.extended([(tf.SiluOp, silu)]),
                calls=base.calls.extended({"chip_silu_f32": CCall("chip_silu_f32",
                                                                  ("op:x", "op:y", "p:n"))},
                                          headers=("chip_silu.h",)),
                runtime_dirs=base.runtime_dirs[1:], folder=folder, kernels=(SILU,))
'''

KERNEL_C = '''
#include <math.h>
#include "chip_silu.h"
/* x / (1 + exp(-x)), one element at a time; y may be x. */
void chip_silu_f32(const float *x, float *y, int n)
{
    for (int i = 0; i < n; i++) y[i] = x[i] / (1.0f + expf(-x[i]));
}
'''


def write_plugin(folder: Path) -> Path:
    (folder / "runtime").mkdir(parents=True)
    desc = json.loads((ROOT / "targets" / "host" / "description.json").read_text())
    desc["name"] = "test-chip"
    desc["memories"] = [dict(desc["memories"][0], name="chipram", size=8 << 20)]
    desc["engines"][0]["reads"] = ["chipram"]
    (folder / "description.json").write_text(json.dumps(desc))
    (folder / "target.py").write_text(PLUGIN)
    (folder / "runtime" / "chip_silu.c").write_text(KERNEL_C)
    (folder / "runtime" / "chip_silu.h").write_text(
        "void chip_silu_f32(const float *x, float *y, int n);\n")
    return folder


@needs_cc
def test_a_new_target_from_a_folder_changes_no_package_file(tmp_path):
    before = subprocess.run(["git", "status", "--porcelain"], cwd=ROOT, capture_output=True,
                            text=True).stdout
    chip = write_plugin(tmp_path / "chip")
    out = tmp_path / "out"
    proc = irtool("compile", "--target", chip, "-o", out, "--capacity", 64, "--steps", STEPS,
                  "--prompt", GOLDEN["prompt"])
    assert proc.returncode == 0, proc.stderr
    model_c = (out / "model.c").read_text()
    assert "chip_silu_f32(" in model_c and "irt_silu_f32(" not in model_c
    assert "irt_arena_chipram" in model_c
    assert '#include "chip_silu.h"' in model_c  # the target's runtime is in the project
    assert (out / "runtime" / "chip_silu.c").is_file()
    output = run_project(out)
    assert output.startswith("chip says hello")
    assert generated_tokens(output) == golden_prefix(STEPS)
    after = subprocess.run(["git", "status", "--porcelain"], cwd=ROOT, capture_output=True,
                           text=True).stdout
    assert after == before


def test_plugin_pipeline_through_irtool_opt(tmp_path):
    """The same folder works as a pass option: lower-to-hw{target=DIR} uses its rule."""
    chip = write_plugin(tmp_path / "chip")
    model = tmp_path / "m.mlir"
    assert irtool("import", ROOT / "irtool" / "data" / "stories260K.bin", "-o",
                  model).returncode == 0
    spec = (f'canonicalize,cse,extract-kv-cache{{capacity=16 prefill=token-by-token}},'
            f'bufferize{{target="{chip}"}},allocate{{target="{chip}"}},'
            f'lower-to-hw{{target="{chip}"}}')
    proc = subprocess.run([str(BIN / "irtool-opt"), str(model), "-p", spec],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("hw.call @chip_silu_f32") == 5  # one per layer
    assert "#memory.space<chipram>" in proc.stdout


def test_entry_point_targets_are_found_by_name(monkeypatch, tmp_path):
    from irtool.targets import registry

    chip = write_plugin(tmp_path / "chip")

    class EntryPoint:
        name = "entry-chip"

        def load(self):
            return lambda: registry.load_target(str(chip))

    monkeypatch.setattr(registry, "entry_points",
                        lambda group: [EntryPoint()] if group == registry.ENTRY_POINT_GROUP
                        else [])
    assert "entry-chip" in registry.known_targets()
    assert registry.load_target("entry-chip").description.name == "test-chip"


def test_unknown_target_and_broken_plugin_are_clear_errors(tmp_path):
    proc = irtool("compile", "--target", "nope", "-o", tmp_path / "o")
    assert proc.returncode == 1
    assert "unknown target 'nope'" in proc.stderr and "riscv-ulp" in proc.stderr
    bad = write_plugin(tmp_path / "bad")
    (bad / "target.py").write_text("raise RuntimeError('boom')\n")
    proc = irtool("compile", "--target", bad, "-o", tmp_path / "o2")
    assert proc.returncode == 1
    assert "target plugin" in proc.stderr and "boom" in proc.stderr
    assert "Traceback" not in proc.stderr
