"""Interpreter speed: greedy generation, irtool vs onnxruntime, same machine.

    .venv/bin/python bench/interpreter.py [--steps 64]

From the golden prompt of each model: onnxruntime (one thread) recomputes the whole sequence
for every new token (the ONNX files have no KV cache); irtool's interpreter does the same on
the imported module ("full recompute", like for like), and runs the module after
extract-kv-cache ("KV cache": one decode step per token, as `irtool generate --level decode`).
Every engine is warmed up with one step first (sessions, lazy imports), then timed
`--repeat` times in turn (onnxruntime, full, cached, onnxruntime, ...) and its best time is
kept: on a shared machine a single run measures the other processes as much as the engine.
The ratio to onnxruntime is printed for wall time and for CPU time (the process's, all
threads: it leaves out the time other processes held the cores).
Both irtool rows pin OpenBLAS to one thread, as `irtool generate` does (the matrices are tiny;
threads only cost). The first line names the kernels numpy's OpenBLAS runs: an environment's
OPENBLAS_CORETYPE chooses them (kept, as irtool keeps every user setting), and on a CPU with
AVX-512 `Haswell` (AVX2) makes the products about 1.8x slower while onnxruntime's own kernels
still use AVX-512. When OPENBLAS_CORETYPE or OPENBLAS_L2_SIZE is set, the second line says
so and gives the command that measures OpenBLAS's own choice (both unset for that command).
Prints tokens/s side by side, the ratio to onnxruntime, and whether the tokens agree.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

from irtool.blas import blas_threads, openblas_corename
from irtool.context import make_context
from irtool.frontend.load import import_model
from irtool.interpreter.runner import ModelRunner
from irtool.passes.extract_kv_cache import ExtractKVCachePass

BLAS_OVERRIDES = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
"""Variables that make OpenBLAS run other kernels (or block sizes) than it picks for the CPU:
some machines set them because older OpenBLAS builds compute wrong results or crash there;
a current numpy's own choice is what a user of this CPU gets without them."""
MODELS = Path(__file__).resolve().parents[2] / "shared" / "models"
CASES = [("stories260K", "stories260K/stories260K.onnx", "stories260K/golden.json"),
         ("nanogpt-tiny", "nanogpt-tiny/nanogpt.onnx", "nanogpt-tiny/golden.json")]


def ort_session(onnx_path: Path):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    return ort.InferenceSession(str(onnx_path), opts, providers=["CPUExecutionProvider"])


def ort_generate(sess, prompt: list[int], steps: int) -> list[int]:
    ids = list(prompt)
    for _ in range(steps):
        (logits,) = sess.run(None, {"input_ids": np.array([ids], np.int64)})
        ids.append(int(np.argmax(logits[0, -1])))
    return ids[len(prompt):]


def timed(fn, *args):
    """The result, wall seconds and CPU seconds of this process (all its threads): on a shared
    machine the CPU time leaves out the time other processes held the cores."""
    start, cpu = time.perf_counter(), time.process_time()
    result = fn(*args)
    return result, time.perf_counter() - start, time.process_time() - cpu


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--steps", type=int, default=64)
    ap.add_argument("--repeat", type=int, default=3, help="timed runs per engine (best kept)")
    args = ap.parse_args()
    # numpy's products run on these kernels (OPENBLAS_CORETYPE, if set, chooses them; else
    # OpenBLAS picks them for this CPU), onnxruntime's on its own (MLAS picks them itself)
    print(f"numpy's OpenBLAS kernels: {openblas_corename() or 'not OpenBLAS'}"
          f" (OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', 'unset')})")
    forced = [name for name in BLAS_OVERRIDES if name in os.environ]
    if forced:
        print(f"  {' and '.join(forced)} set: OpenBLAS runs forced kernels, not its"
              f" own choice for this CPU; for that, run `env {' '.join('-u ' + n for n in forced)}"
              f" python bench/interpreter.py`")
    print(f"{'model':14} {'engine':26} {'tokens/s':>9} {'seconds':>8} {'x ort':>6} "
          f"{'(CPU)':>6}  same tokens")
    for name, onnx_rel, golden_rel in CASES:
        golden = json.loads((MODELS / golden_rel).read_text())
        prompt = golden["prompt_ids"]
        sess = ort_session(MODELS / onnx_rel)
        ort_generate(sess, prompt, 1)  # warm-up, as for irtool below
        full = ModelRunner(*import_model(MODELS / onnx_rel))
        module, store = import_model(MODELS / onnx_rel)
        ExtractKVCachePass(capacity=len(prompt) + args.steps).apply(make_context(), module)
        cached = ModelRunner(module, store)
        engines = (("irtool full recompute", full), ("irtool KV cache", cached))
        inf = (float("inf"), float("inf"))
        best = {label: inf for label, _ in engines}
        t_ref, same = inf, {}
        with blas_threads(1):
            for _, runner in engines:
                runner.generate(prompt, 1)  # warm-up: first-call set-up and lazy imports
            for _ in range(max(1, args.repeat)):
                ref, *t = timed(lambda s=sess, p=prompt: ort_generate(s, p, args.steps))
                t_ref = tuple(map(min, t_ref, t))
                for label, runner in engines:
                    ours, *t = timed(lambda r=runner, p=prompt: r.generate(p, args.steps))
                    best[label] = tuple(map(min, best[label], t))
                    same[label] = "yes" if ours == ref else "NO"
        for label, _ in engines:
            (wall, cpu), same_tokens = best[label], same[label]
            print(f"{name:14} {label:26} {args.steps / wall:9.1f} {wall:8.2f} "
                  f"{wall / t_ref[0]:6.2f} {cpu / t_ref[1]:6.2f}  {same_tokens}")
        print(f"{name:14} {'onnxruntime (1 thread)':26} {args.steps / t_ref[0]:9.1f} "
              f"{t_ref[0]:8.2f}")


if __name__ == "__main__":
    main()
