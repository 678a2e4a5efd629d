"""The mutation check: plant known bugs one at a time in a copy of the project and see which
ones the tests catch.

    .venv/bin/python -m tests.tools.mutate            # every mutation
    .venv/bin/python -m tests.tools.mutate rope kv    # those whose name contains a word
    .venv/bin/python -m tests.tools.mutate --list

Each mutation is a small textual edit (file, old text, new text) with the test files that
guard that code. For each one the project is copied to a temporary directory (beside a link to
../shared, so the reference models are found), the edit applied, and pytest run on those files
only; the mutation is CAUGHT when pytest fails. A SURVIVED line is a gap in the tests: close
it with a test against an independent reference, then keep the mutation in the list. It runs
for minutes, so it is not part of the normal suite; tests/test_mutations.py only checks that
every old text still exists, so the list follows the code. Add a mutation per new target
(a wrong DMA tile offset, a wrong core split, a wrong HBM bank binding) as those land.

The copy is imported instead of the checkout by a `sitecustomize` on PYTHONPATH that points
the editable install's finder (and so every subprocess the tests start) at the copy.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Mutation:
    name: str
    description: str
    file: str
    edits: tuple[tuple[str, str], ...]  # (old text, new text), each old text exactly once
    tests: tuple[str, ...]  # pytest arguments: test files, and -k expressions if needed


MUTATIONS = [
    Mutation("calibrate-last-sequence",
             "calibrate keeps the last sequence's activation range, not the running min/max",
             "passes/calibrate.py",
             (("self.lo[key] = min(lo, self.lo.get(key, lo))", "self.lo[key] = lo"),
              ("self.hi[key] = max(hi, self.hi.get(key, hi))", "self.hi[key] = hi")),
             ("tests/test_calibrate.py",)),
    Mutation("round-half-up",
             "quantization rounds half up instead of half to even",
             "irtool/numerics/quant.py",
             (("r = np.clip(np.rint(v), lo - zp, hi - zp)",
               "r = np.clip(np.floor(v + np.float32(0.5)), lo - zp, hi - zp)"),),
             ("tests/test_quant_reference.py",)),
    Mutation("checker-touching-ranges",
             "the plan checker treats live ranges that touch at one op as disjoint",
             "tests/plan_checker.py",
             (("self.first <= other.last and other.first <= self.last",
               "self.first < other.last and other.first < self.last"),),
             ("tests/test_plan_checker.py",)),
    Mutation("weights-transposed",
             "the weight images (weights_*.bin) are serialised transposed",
             "targets/c/emit.py",
             (("array = stored(self.store[g.weight.data],",
               "array = stored(np.asarray(self.store[g.weight.data]).T,"),),
             ("tests/test_riscv_ulp.py", "-k", "host_build")),
    Mutation("no-poisoning",
             "the memory interpreter stops poisoning an out buffer that overlaps another in",
             "irtool/interpreter/memory.py",
             (("        poison_overlapping_outs(zip(op.outs, outs, strict=True),\n"
               "                                zip(op.ins, args[:n_ins], strict=True))\n",
               ""),),
             ("tests/test_memory_interpreter.py", "tests/test_plan_poisoning.py")),
    Mutation("liveness-end",
             "liveness ends a buffer's range at its last use, exclusive (an output may land "
             "on the input its kernel is still reading)",
             "irtool/liveness.py",
             (("end=base + min(last + 1, length)", "end=base + min(last, length)"),),
             ("tests/test_plan_poisoning.py", "tests/test_allocate.py")),
    Mutation("ring-first-slot",
             "the C cached attention starts reading a ring cache at slot 0",
             "targets/c/runtime/irt_attention.c",
             (("const int slot0 = ring ? first % capacity : first;",
               "const int slot0 = ring ? 0 : first;"),),
             ("tests/test_c_runtime.py",)),
    Mutation("rope-sign",
             "RoPE (interleaved) turns the pairs the wrong way",
             "irtool/numerics/transformer.py",
             (("out[..., 0::2] = a * c - b * s", "out[..., 0::2] = a * c + b * s"),
              ("out[..., 1::2] = a * s + b * c", "out[..., 1::2] = -a * s + b * c")),
             ("tests/test_transformer_interpreter.py", "tests/test_llama2c_model.py")),
    Mutation("c-rms-norm",
             "the C RMSNorm leaves the last element out of the mean square",
             "targets/c/runtime/irt_norm.c",
             (("const float ms = irt__sum_squares(xr, D) / (float)D;",
               "const float ms = irt__sum_squares(xr, D - 1) / (float)D;"),),
             ("tests/test_c_runtime.py",)),
    Mutation("kv-write-slot",
             "the KV cache writes new rows one slot too far",
             "irtool/numerics/transformer.py",
             (("return rows, (pos + np.arange(rows.shape[1])) % capacity",
               "return rows, (pos + 1 + np.arange(rows.shape[1])) % capacity"),),
             ("tests/test_extract_kv_cache.py",)),
    Mutation("c-round-half-away",
             "the C quantized kernels round half away from zero",
             "targets/c/runtime/irt_internal.h",
             (("        float r = v + magic;\n        r = r - magic;\n        return (int32_t)r;",
               "        (void)magic;\n        return (int32_t)(v + (v >= 0 ? 0.5f : -0.5f));"),),
             ("tests/test_c_quant_kernels.py",)),
    Mutation("c-sample-fma",
             "the C sampler lets the compiler fuse a*b+c (its sums then differ from numpy's)",
             "targets/c/runtime/irt_sample.c",
             (('#pragma GCC optimize("fp-contract=off")', "/* contraction allowed */"),),
             ("tests/test_sampling.py",)),
    Mutation("c-sample-ties",
             "the C sampler puts the larger index first among equal logits",
             "targets/c/runtime/irt_sample.c",
             (("(a->value == b->value && a->index < b->index)",
               "(a->value == b->value && a->index > b->index)"),),
             ("tests/test_sampling.py",)),
    Mutation("siracusa-team-share",
             "siracusa's fork/join drops the extra row blocks when they do not divide evenly "
             "among the cores",
             "targets/siracusa/runtime/irt_team.c",
             (("int b1 = b0 + per + (core < extra ? 1 : 0);", "int b1 = b0 + per;"),),
             ("tests/test_siracusa.py", "-k", "native_build")),
]

IGNORE = shutil.ignore_patterns(".git", ".venv", "__pycache__", ".pytest_cache", ".ruff_cache",
                                "*.egg-info", "build", "dist")


def apply(mutation: Mutation, root: Path) -> None:
    """Apply the edits of `mutation` to the project at `root` (each old text exactly once)."""
    path = root / mutation.file
    text = path.read_text()
    for old, new in mutation.edits:
        if text.count(old) != 1:
            raise SystemExit(f"error: mutation {mutation.name}: {mutation.file} contains the old "
                             f"text {text.count(old)} times (want 1): {old!r}; update "
                             "tests/tools/mutate.py")
        text = text.replace(old, new)
    path.write_text(text)


def stale(root: Path = ROOT) -> list[str]:
    """Mutations whose old texts or test files are no longer in the tree at `root`."""
    problems = []
    for m in MUTATIONS:
        path = root / m.file
        text = path.read_text() if path.is_file() else ""
        problems += [f"{m.name}: {m.file} has {text.count(old)} copies of {old!r}"
                     for old, _ in m.edits if text.count(old) != 1]
        problems += [f"{m.name}: no test file {t}" for t in m.tests
                     if t.startswith("tests/") and not (root / t).is_file()]
    return problems


SITECUSTOMIZE = '''"""Point irtool's editable install at this copy (written by
tests/tools/mutate.py)."""
import sys

for _name, _mod in list(sys.modules.items()):
    if _name.startswith("__editable__") and hasattr(_mod, "MAPPING"):
        for _k, _v in _mod.MAPPING.items():
            _mod.MAPPING[_k] = _v.replace({src!r}, {dst!r}, 1)
        for _k, _v in getattr(_mod, "NAMESPACES", {{}}).items():
            _mod.NAMESPACES[_k] = [p.replace({src!r}, {dst!r}, 1) for p in _v]
'''


def run(mutation: Mutation, work: Path, python: str, baseline: bool = False
        ) -> tuple[bool, float, str]:
    """(caught, seconds, last lines of pytest's output) for one mutation; with `baseline`,
    the same tests on the unchanged copy (which must pass)."""
    copy = work / (mutation.name + ("-baseline" if baseline else "")) / "project"
    shutil.copytree(ROOT, copy, ignore=IGNORE)
    (copy.parent / "shared").symlink_to(ROOT.parent / "shared")
    site = copy.parent / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(SITECUSTOMIZE.format(src=str(ROOT), dst=str(copy)))
    if not baseline:
        apply(mutation, copy)
    env = dict(os.environ, PYTHONPATH=f"{site}{os.pathsep}{copy}", PYTHONDONTWRITEBYTECODE="1")
    where = subprocess.run([python, "-c", "import irtool.passes; print(irtool.passes.__file__)"],
                           cwd=copy, env=env, capture_output=True, text=True, check=True).stdout
    if not Path(where.strip()).is_relative_to(copy):
        raise SystemExit(f"error: the copy imports irtool from {where.strip()}, not {copy}")
    start = time.perf_counter()
    proc = subprocess.run([python, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider",
                           *mutation.tests], cwd=copy, env=env, capture_output=True, text=True,
                          check=False)
    seconds = time.perf_counter() - start
    tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-3:])
    if proc.returncode not in (0, 1):  # interrupted, usage error, nothing collected
        raise SystemExit(f"error: pytest exited with {proc.returncode} on mutation "
                         f"{mutation.name}:\n{proc.stdout[-3000:]}{proc.stderr[-3000:]}")
    return proc.returncode == 1, seconds, tail


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", help="run the mutations whose name contains one")
    parser.add_argument("--list", action="store_true", help="list the mutations and stop")
    parser.add_argument("--python", default=sys.executable, help="the Python with irtool")
    parser.add_argument("--baseline", action="store_true",
                        help="first run each mutation's tests on the unchanged copy")
    args = parser.parse_args(argv)
    chosen = [m for m in MUTATIONS if not args.names or any(n in m.name for n in args.names)]
    if args.list:
        for m in chosen:
            print(f"{m.name:26} {m.description}  [{' '.join(m.tests)}]")
        return 0
    problems = stale()
    if problems:
        print("error: stale mutations:\n  " + "\n  ".join(problems), file=sys.stderr)
        return 1
    survived = 0
    with tempfile.TemporaryDirectory(prefix="irtool-mutate-") as tmp:
        for m in chosen:
            if args.baseline:
                failed, _, tail = run(m, Path(tmp), args.python, baseline=True)
                if failed:
                    print(f"error: the tests of {m.name} fail without the mutation:\n{tail}",
                          file=sys.stderr)
                    return 1
            caught, seconds, tail = run(m, Path(tmp), args.python)
            survived += not caught
            print(f"{'caught  ' if caught else 'SURVIVED'} {m.name:26} {seconds:6.0f} s  "
                  f"{m.description}  [{' '.join(m.tests)}]", flush=True)
            if not caught:
                print("         " + tail.replace("\n", "\n         "), flush=True)
    print(f"{len(chosen) - survived} of {len(chosen)} mutations caught")
    return 1 if survived else 0


if __name__ == "__main__":
    sys.exit(main())
