"""siracusa: modelled cycles per token beside Deeploy's published GVSoC figures for MicroLlama,
and (with --qemu) stories260K W8A8 + int8 KV measured on qemu -smp 8.

    .venv/bin/python bench/siracusa.py [--qemu]

MicroLlama as in Deeploy's tests (dim 64, 8 layers, 16 heads of 4; the MLP width of 256 and a
one-entry vocabulary, as the test graph has no classifier, are assumptions here) through
`irtool estimate`'s siracusa cost model (targets/siracusa/cost.py): decode with a 64-entry
cache and 64-token prefill, on 1 core, 8 cores and 8 cores + NPU, at L1 64 KB and 8 KB (the
L1 size sets the tile size: two windows of half of it each), and the KV cache against
recomputing the whole sequence over 256 steps. Deeploy's figures are GVSoC cycles of their
integer kernels on XPULP cores with polynomial softmax/RMSNorm; ours are modelled from RV32IMF
instruction counts (no hardware loops or SIMD, an upper bound for a PULP core) and stated NPU
and DMA formulas: compare the shape, not the last digit.

With --qemu-prefill: MicroLlama's shape (random int8 weights, tests/test_siracusa.py) compiled
with a batched prefill of 64 tokens (one `irt_prefill` call) and run on qemu: the plugin's
modelled instructions of that call (hart 0's serial work + the slowest core of each phase) per
prompt token, on 1 core, 8 cores and 8 cores + NPU (+ the NPU model's cycles), at L1 64 KB and
8 KB, beside Deeploy's 64-token prefill; and the KV cache against recomputation over 256
steps from the measured costs: a decode step at cache 64 x 256 against 256 prefills of
1..256 tokens at the measured cost per prompt token.

With --qemu: stories260K compiled for siracusa with and without its NPU and run on 1 and 8
harts; the hart-count plugin's modelled instructions per decode step (hart 0's serial work +
the slowest core of every fork/join phase), the NPU model's cycles and the DMA link cycles.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from irtool.estimate import estimate, workload_from_config
from irtool.targets.registry import load_target
from irtool.targets.siracusa.cost import SiracusaCostModel

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT.parent / "shared" / "models" / "stories260K"
MICROLLAMA = {"hidden_size": 64, "intermediate_size": 256, "num_hidden_layers": 8,
              "num_attention_heads": 16, "num_key_value_heads": 16, "head_dim": 4,
              "vocab_size": 1, "model_type": "llama", "hidden_act": "silu"}
DEEPLOY = {  # GVSoC cycles, Deeploy docs/tutorials (../shared/anchors/TARGETS.md)
    "decode, cache 64, 8 cores + NPU": 857e3,
    "decode, cache 64, 8 cores + NPU + weight memory": 780e3,
    "prefill 64 tokens, 8 cores, L1 8 KB": 47.5e6,
    "prefill 64 tokens, 8 cores, L1 64 KB": 35.3e6,
    "prefill 64 tokens, 8 cores + NPU, L1 64 KB": 28.6e6,
    "microLlama128 untiled, 1 core": 16.1e6,
    "microLlama128 untiled, 8 cores": 3.1e6,
}
PAPER_KV_SPEEDUP = 17.6 / 0.75  # arXiv 2408.04413: 256 steps, 17.6 s -> 0.75 s


def with_l1(description, size: int):
    mems = tuple(dataclasses.replace(m, size=size) if m.name == "l1" else m
                 for m in description.memories)
    return dataclasses.replace(description, memories=mems)


def cycles(work, description, schedule: str, prefill: int, positions: int) -> dict:
    phases = estimate(work, SiracusaCostModel(description, schedule), prefill, positions)
    return {name: ph.cycles for name, ph in phases.items()}


def modelled() -> None:
    desc = load_target("siracusa").description
    work = workload_from_config(MICROLLAMA, "MicroLlama", quantized=True)
    print("MicroLlama (dim 64, 8 layers, 16 heads x 4), W8A8, modelled by irtool estimate:")
    print(f"  {'figure':<48}{'irtool':>14}{'Deeploy':>14}")
    rows = []
    for l1 in (64_000, 8_000):
        d = with_l1(desc, l1)
        for sched, who in (("single", "1 core"), ("cluster", "8 cores"),
                           ("npu", "8 cores + NPU")):
            c = cycles(work, d, sched, 64, 64)
            rows.append((f"decode, cache 64, {who}, L1 {l1 // 1000} KB", c["decode"]))
            rows.append((f"prefill 64 tokens, {who}, L1 {l1 // 1000} KB", c["prefill"]))
    for name, value in rows:
        key = re.sub(r", L1 64 KB$", "", name) if name.startswith("decode") else name
        ref = DEEPLOY.get(key + (" + weight memory" if key.endswith("+ NPU") else ""))
        print(f"  {name:<48}{value:>14,.0f}{'' if ref is None else f'{ref:>14,.0f}'}")
    print("  (irtool's NPU rows keep the NPU's weights in its weight memory: Deeploy's figure "
          "beside them is the one with NMS; without it: 857,000)")
    for key in ("microLlama128 untiled, 1 core", "microLlama128 untiled, 8 cores"):
        print(f"  {key:<48}{'(not modelled)':>14}{DEEPLOY[key]:>14,.0f}")
    print("  decode at cache 128 (irtool's tiled plan, L1 64 KB): "
          + ", ".join(f"{who} {cycles(work, with_l1(desc, 64_000), s, 1, 128)['decode']:,.0f}"
                      for s, who in (("single", "1 core"), ("cluster", "8 cores"))))
    # KV cache vs recomputation: 256 generated tokens
    d = with_l1(desc, 64_000)
    model = SiracusaCostModel(d, "npu")
    cached = sum(estimate(work, model, 1, p)["decode"].cycles for p in range(256))
    recompute = sum(estimate(work, model, p + 1, 0)["prefill"].cycles for p in range(256))
    print(f"  256 steps, 8 cores + NPU: KV cache {cached:,.0f} cycles, recomputation "
          f"{recompute:,.0f}: {recompute / cached:.1f}x (the paper: {PAPER_KV_SPEEDUP:.1f}x)")


def qemu() -> None:
    from irtool.targets.siracusa.target import FOLDER

    with tempfile.TemporaryDirectory() as tmp:
        cluster = Path(tmp) / "siracusa_cluster"
        shutil.copytree(FOLDER, cluster, ignore=shutil.ignore_patterns("__pycache__"))
        desc = json.loads((cluster / "description.json").read_text())
        desc["engines"] = [e for e in desc["engines"] if e["name"] != "npu"]
        (cluster / "description.json").write_text(json.dumps(desc))
        print("stories260K W8A8 + int8 KV on qemu-system-riscv32 -M virt (golden prompt, 32 "
              "steps), per decode step:")
        for target, cores, label in ((cluster, 1, "1 core"), (cluster, 8, "8 cores"),
                                     ("siracusa", 8, "8 cores + NPU")):
            out_dir = Path(tmp) / f"{label.replace(' ', '_')}"
            subprocess.run([sys.executable, "-m", "irtool.cli", "compile",
                            str(MODEL / "stories260K.bin"), "--target", str(target),
                            "--quant", "w8a8", "--calibration", str(MODEL / "eval_tokens.json"),
                            "--kv", "int8", "--capacity", "64", "--steps", "32", "-o",
                            str(out_dir)], check=True, capture_output=True)
            out = subprocess.run(["make", "-s", "run", f"CORES={cores}"], cwd=out_dir,
                                 check=True, capture_output=True, text=True)
            text = out.stdout + out.stderr
            m = re.search(r"steps (\d+) phases (\d+) serial (\d+) parallel-slowest (\d+) "
                          r"parallel-sum (\d+) device (\d+) per-step (\d+)", text)
            npu = re.search(r"npu: .*per step: jobs (\d+) cycles (\d+)", text)
            dma = re.search(r"dma l2->l1: .*per step: transfers (\d+) bytes (\d+) link "
                            r"cycles (\d+)", text)
            steps, serial, slowest, per_step = (int(m.group(i)) for i in (1, 3, 4, 7))
            npu_cycles = int(npu.group(2)) if npu else 0
            print(f"  {label:<16} cluster {per_step:>10,} (serial {serial // steps:,}, "
                  f"parallel {slowest // steps:,}) + NPU {npu_cycles:,} cycles; DMA "
                  f"{int(dma.group(2)):,} B in {int(dma.group(1))} transfers, link "
                  f"{int(dma.group(3)):,} cycles (overlapped); tokens "
                  f"{re.search(r'tokens: (.*)', text).group(1)[:40]}...")


def target_copy(folder: Path, l1: int, npu: bool) -> Path:
    """The siracusa folder with another L1 size, and without its NPU unless `npu`."""
    from irtool.targets.siracusa.target import FOLDER

    shutil.copytree(FOLDER, folder, ignore=shutil.ignore_patterns("__pycache__"))
    desc = json.loads((folder / "description.json").read_text())
    desc["engines"] = [e for e in desc["engines"] if npu or e["name"] != "npu"]
    for m in desc["memories"]:
        m["size"] = l1 if m["name"] == "l1" else m["size"]
    (folder / "description.json").write_text(json.dumps(desc))
    return folder


def prefill_on_qemu(tokens: int = 64) -> None:
    import numpy as np

    sys.path.insert(0, str(ROOT))
    import tests.test_siracusa as shapes

    MICRO = shapes.MICRO = {**shapes.MICRO, "seq": 128}  # room for decode steps after 64
    rng = np.random.default_rng(1)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        model = shapes.write_microllama(tmp / "micro.bin")
        calib = tmp / "calib.json"
        calib.write_text(json.dumps([rng.integers(0, MICRO["vocab"], 64).tolist()
                                     for _ in range(4)]))
        prompt = ",".join(str(t) for t in rng.integers(0, MICRO["vocab"], tokens))
        print(f"MicroLlama's shape W8A8 + int8 KV on qemu, batched prefill of {tokens} tokens "
              "(one call), modelled cycles per prompt token (RV32IMF instructions at CPI 1):")
        print(f"  {'run':<34}{'per token':>12}{'whole call':>14}{'decode/step':>13}"
              f"{'Deeploy (call)':>16}")
        per_token, per_step = {}, {}
        for l1 in (64_000, 8_000):
            for npu, cores, who in ((False, 1, "1 core"), (False, 8, "8 cores"),
                                    (True, 8, "8 cores + NPU")):
                name = f"{who}, L1 {l1 // 1000} KB"
                folder = tmp / f"t{l1}{int(npu)}"
                if not folder.exists():
                    target_copy(folder, l1, npu)
                out_dir = tmp / f"p{l1}{int(npu)}"
                if not out_dir.exists():
                    proc = subprocess.run(
                        [sys.executable, "-m", "irtool.cli", "compile", str(model), "--target",
                         str(folder), "--quant", "w8a8", "--calibration", str(calib), "--kv",
                         "int8", "--capacity", "128", "--steps", "4", "--prompt-tokens",
                         prompt, "--prefill", "batched", "-o", str(out_dir), "--quiet"],
                        capture_output=True, text=True)
                    if proc.returncode:
                        print(f"  {name:<34}{proc.stderr.strip().splitlines()[-1]}")
                        continue
                out = subprocess.run(["make", "-s", "run", f"CORES={cores}"], cwd=out_dir,
                                     check=True, capture_output=True, text=True)
                text = out.stdout + out.stderr
                call = int(re.search(r"prefill-calls 1 .* per-call (\d+)", text).group(1))
                step = int(re.search(r"^hartcount: steps .* per-step (\d+)", text,
                                     re.MULTILINE).group(1))
                npu_cycles = re.search(r"npu: jobs \d+ blocks \d+ macs \d+ cycles (\d+)", text)
                extra = int(npu_cycles.group(1)) if npu_cycles else 0  # NPU time, whole run
                per_token[name], per_step[name] = (call + extra) / tokens, step
                key = f"prefill 64 tokens, {who}, L1 {l1 // 1000} KB"
                ref = DEEPLOY.get(key)
                print(f"  {name:<34}{per_token[name]:>12,.0f}{call + extra:>14,}{step:>13,}"
                      f"{'' if ref is None else f'{ref:>16,.0f}'}")
        print("  (NPU rows add the NPU model's cycles of the whole run, prefill and the decode "
              "steps, so they are an upper bound; Deeploy's untiled 128 tokens: 16.1 M cycles "
              "on 1 core, 3.1 M on 8)")
        best = per_token.get("8 cores + NPU, L1 64 KB")
        if best:
            decode = per_step["8 cores + NPU, L1 64 KB"]
            recompute = sum(best * n for n in range(1, 257))
            print(f"  256 steps from these (8 cores + NPU): KV cache {decode * 256:,.0f} "
                  f"cycles (a step at cache 64), recomputation {recompute:,.0f} (prefills "
                  f"of 1..256 tokens at {best:,.0f} per token): {recompute / (decode * 256):.0f}x "
                  f"(the paper: {PAPER_KV_SPEEDUP:.1f}x; both sides leave out "
                  "attention's growth with the length)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--qemu", action="store_true", help="also run stories260K on qemu")
    ap.add_argument("--qemu-prefill", action="store_true",
                    help="also run MicroLlama's batched prefill on qemu")
    args = ap.parse_args()
    modelled()
    if args.qemu_prefill:
        prefill_on_qemu()
    if args.qemu:
        qemu()


if __name__ == "__main__":
    main()
