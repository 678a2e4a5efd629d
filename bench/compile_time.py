"""Compile time: `irtool compile` wall/CPU time and peak memory, and gcc's for the project.

    .venv/bin/python bench/compile_time.py [--sizes 15M,42M] [--keep DIR] [--target host]

For stories260K (the shipped model) and random llama2.c checkpoints of the shapes of
karpathy's stories15M / 42M / 110M (written by this bench into a temporary folder, seeded, so
every run compiles the same bytes), runs `irtool compile MODEL --target T -o DIR` as a child
process and then the project's own build (`make model.elf`: the target's compiler on every
source, the weights linked in from binary files). Each row: wall seconds, CPU seconds (user +
system of the child and everything it ran) and peak resident memory (the largest process), from
`os.wait4`. stories260K compiles for riscv-ulp (best of `--repeat` runs: the figure is not the
first run's byte-compilation or cold file cache); the random models (60 MB and more of fp32
weights, more than riscv-ulp's Flash) for the host target by default, once each.

Peak memory: Linux carries a process's high-water mark across fork and exec, so a child forked
straight from this bench (which holds numpy and the checkpoint writer) would report at least
the bench's own size. Each command is therefore started by a small launcher process (`python
-S`, about 10 MB) that forks it and reports its `wait4` figures: the floor of a peak is the
launcher's size, not the bench's.
"""

from __future__ import annotations

import argparse
import json
import shutil
import struct
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT.parent / "shared" / "models"
IRTOOL = Path(sys.executable).with_name("irtool")

# karpathy/llama2.c's TinyStories models: dim, hidden, layers, heads, kv_heads, vocab, seq_len
CONFIGS = {
    "15M": (288, 768, 6, 6, 6, 32000, 256),
    "42M": (512, 1376, 8, 8, 8, 32000, 1024),
    "110M": (768, 2048, 12, 12, 12, 32000, 1024),
}


def write_random_checkpoint(path: Path, config: tuple[int, ...], seed: int = 0) -> int:
    """A llama2.c (version 0) checkpoint with random weights of the given shape, written in
    chunks so that even 110M stays small in memory; returns the number of parameters."""
    dim, hidden, layers, heads, kv_heads, vocab, seq_len = config
    head_dim = dim // heads
    kv_dim = kv_heads * head_dim
    shapes = [(vocab, dim), (layers, dim), (layers, dim, dim), (layers, kv_dim, dim),
              (layers, kv_dim, dim), (layers, dim, dim), (layers, dim), (layers, hidden, dim),
              (layers, dim, hidden), (layers, hidden, dim), (dim,), (seq_len, head_dim // 2),
              (seq_len, head_dim // 2)]
    rng = np.random.default_rng(seed)
    params = 0
    with open(path, "wb") as f:
        f.write(struct.pack("<7i", *config))
        for shape in shapes:
            n = int(np.prod(shape))
            params += n
            scale = 1.0 if len(shape) == 2 and shape[0] == layers else 0.02
            for start in range(0, n, 1 << 22):
                m = min(1 << 22, n - start)
                f.write((rng.standard_normal(m) * scale).astype("<f4").tobytes())
    return params


@dataclass
class Usage:
    wall: float
    cpu: float
    peak_mb: float
    ok: bool
    tail: str = ""


LAUNCHER = """
import json, os, sys, time
report, cmd = sys.argv[1], sys.argv[2:]
t0 = time.perf_counter()
pid = os.fork()
if pid == 0:
    os.execvp(cmd[0], cmd)
_, status, ru = os.wait4(pid, 0)
with open(report, "w") as f:
    json.dump([time.perf_counter() - t0, ru.ru_utime + ru.ru_stime, ru.ru_maxrss,
               os.waitstatus_to_exitcode(status)], f)
"""


def measure(cmd: list[str], cwd: Path | None = None) -> Usage:
    """Run `cmd` through the launcher (module docstring): its wall time, CPU time and peak RSS
    (including what it ran)."""
    with tempfile.NamedTemporaryFile(suffix=".json") as report:
        proc = subprocess.run([sys.executable, "-S", "-c", LAUNCHER, report.name,
                               *(str(c) for c in cmd)], cwd=cwd, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, check=False)
        try:
            wall, cpu, maxrss_kb, code = json.loads(Path(report.name).read_text())
        except (OSError, ValueError):
            wall, cpu, maxrss_kb, code = 0.0, 0.0, 0, proc.returncode or 1
    return Usage(wall, cpu, maxrss_kb / 1024, code == 0,
                 proc.stdout.decode(errors="replace")[-2000:])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="15M", help="random checkpoints to add, e.g. 15M,42M,110M")
    ap.add_argument("--target", default="host", help="target for the random checkpoints")
    ap.add_argument("--keep", type=Path, help="keep the checkpoints and projects here")
    ap.add_argument("--no-gcc", action="store_true", help="skip building the projects")
    ap.add_argument("--repeat", type=int, default=3,
                    help="stories260K's compile: best of this many runs")
    args = ap.parse_args(argv)
    work_ctx = None
    if args.keep:
        args.keep.mkdir(parents=True, exist_ok=True)
        work = args.keep
    else:
        work_ctx = tempfile.TemporaryDirectory(prefix="irtool-compile-time-")
        work = Path(work_ctx.name)
    s = MODELS / "stories260K"
    cases = [("stories260K", s / "stories260K.bin", "riscv-ulp",
              ["--tokenizer", str(s / "tok512.bin"), "--capacity", "128"])]
    for size in filter(None, args.sizes.split(",")):
        if size not in CONFIGS:
            print(f"error: unknown size {size} (known: {', '.join(CONFIGS)})", file=sys.stderr)
            return 1
        ckpt = work / f"random{size}.bin"
        if not ckpt.exists():
            n = write_random_checkpoint(ckpt, CONFIGS[size])
            print(f"wrote {ckpt.name}: {n / 1e6:.1f}M parameters, "
                  f"{ckpt.stat().st_size / 1e6:.0f} MB", file=sys.stderr)
        cases.append((f"random {size}", ckpt, args.target, ["--capacity", "64"]))
    print(f"{'model':14} {'target':10} {'step':16} {'wall s':>8} {'CPU s':>8} {'peak MB':>9}")
    try:
        for label, model, target, extra in cases:
            out = work / label.replace(" ", "_")
            steps = ["--prompt-tokens", "1,403,407", "--steps", "8"]
            cmd = [IRTOOL, "compile", model, "--target", target, "-o", out, *steps, *extra,
                   "--force"]
            runs = [measure(cmd) for _ in range(args.repeat if label == "stories260K" else 1)]
            u = min(runs, key=lambda r: (not r.ok, r.cpu))
            print(f"{label:14} {target:10} {'irtool compile':16} {u.wall:8.2f} {u.cpu:8.2f} "
                  f"{u.peak_mb:9.0f}" + ("" if u.ok else "  FAILED"))
            if not u.ok:
                print(u.tail, file=sys.stderr)
                continue
            if args.no_gcc or shutil.which("make") is None:
                continue
            u = measure(["make", "-s", "-C", out, "model.elf"])
            print(f"{label:14} {target:10} {'build (make)':16} {u.wall:8.2f} {u.cpu:8.2f} "
                  f"{u.peak_mb:9.0f}" + ("" if u.ok else "  FAILED"))
            if not u.ok:
                print(u.tail, file=sys.stderr)
    finally:
        if work_ctx is not None:
            work_ctx.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
