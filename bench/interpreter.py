"""Interpreter speed: full-sequence greedy generation, irtool vs onnxruntime, same machine.

    .venv/bin/python bench/interpreter.py [--steps 64]

Both engines recompute the whole sequence for every new token (no KV cache), from the golden
prompt of each model, so the figures compare like with like. Prints tokens/s side by side and
checks that both produced the same tokens.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from irtool.frontend.load import import_model
from irtool.interpreter.runner import ModelRunner

MODELS = Path(__file__).resolve().parents[2] / "shared" / "models"
CASES = [("stories260K", "stories260K/stories260K.onnx", "stories260K/golden.json"),
         ("nanogpt-tiny", "nanogpt-tiny/nanogpt.onnx", "nanogpt-tiny/golden.json")]


def ort_generate(onnx_path: Path, prompt: list[int], steps: int) -> list[int]:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    sess = ort.InferenceSession(str(onnx_path), opts, providers=["CPUExecutionProvider"])
    ids = list(prompt)
    for _ in range(steps):
        (logits,) = sess.run(None, {"input_ids": np.array([ids], np.int64)})
        ids.append(int(np.argmax(logits[0, -1])))
    return ids[len(prompt):]


def timed(fn, *args):
    start = time.perf_counter()
    result = fn(*args)
    return result, time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--steps", type=int, default=64)
    args = ap.parse_args()
    print(f"{'model':14} {'engine':22} {'tokens/s':>9} {'seconds':>8}  same tokens")
    for name, onnx_rel, golden_rel in CASES:
        golden = json.loads((MODELS / golden_rel).read_text())
        prompt = golden["prompt_ids"]
        runner = ModelRunner(*import_model(MODELS / onnx_rel))
        ours, t_ours = timed(runner.generate, prompt, args.steps)
        ref, t_ref = timed(ort_generate, MODELS / onnx_rel, prompt, args.steps)
        same = "yes" if ours == ref else "NO"
        print(f"{name:14} {'irtool interpreter':22} {args.steps / t_ours:9.1f} {t_ours:8.2f}  "
              f"{same}")
        print(f"{name:14} {'onnxruntime (1 thread)':22} {args.steps / t_ref:9.1f} {t_ref:8.2f}")


if __name__ == "__main__":
    main()
