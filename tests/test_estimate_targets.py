"""`irtool estimate` on the targets without a cost model of their own: the core model, which
on cortex-m7-256k must see that the weights stream from external Flash over the DMA link.

Reference, computed here from the shape of stories260K (dim 64, hidden 172, 5 layers, 4 KV
heads of 8, vocab 512, fp32): the bytes of every linear weight per generated token over the
link's bytes per cycle is a floor no decode step can beat; with compute hidden behind the
stream (double buffering) the estimate must sit just above it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

BIN = Path(sys.executable).parent
MODEL = Path(__file__).resolve().parents[1] / "irtool" / "data" / "stories260K.bin"


def estimate(target: str) -> dict:
    proc = subprocess.run([str(BIN / "irtool"), "estimate", str(MODEL), "--target", target,
                           "--json"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    (sched,) = json.loads(proc.stdout)["schedules"].values()
    return sched["decode"] if "decode" in sched else sched["phases"]["decode"]


def test_cortex_m7_decode_is_bound_by_the_external_flash_stream():
    dim, hidden, layers, kv_dim, vocab = 64, 172, 5, 32, 512
    per_layer = 2 * dim * dim + 2 * kv_dim * dim + 3 * hidden * dim
    weight_bytes = 4 * (layers * per_layer + vocab * dim)
    assert weight_bytes == 1_037_312  # the README's "linear bytes" of stories260K fp32
    desc = json.loads((Path(__file__).resolve().parents[1] / "targets" / "cortex_m7_256k"
                       / "description.json").read_text())
    (link,) = [k for k in desc["links"] if k["from"] == "xflash"]
    floor = weight_bytes / link["bytes_per_cycle"]
    cycles = estimate("cortex-m7-256k")["cycles_per_token"]
    assert floor <= cycles <= 1.1 * floor


def test_riscv_ulp_reads_weights_in_place_and_is_compute_bound():
    cycles = estimate("riscv-ulp")["cycles_per_token"]
    # 341,888 MACs per token at no fewer than 2 instructions each (flw + fmadd.s), CPI 1
    assert cycles >= 2 * 341_888


def _estimate_error(*args) -> str:
    proc = subprocess.run([str(BIN / "irtool"), "estimate", *map(str, args)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    return proc.stderr.strip()


def test_impossible_models_and_positions_are_refused(tmp_path):
    """A config with hidden_size 0 was a ZeroDivisionError on siracusa (and figures on the
    other targets); --positions 100000 on a 512-position model was modelled without a word;
    a 128-position model's default (128) was past its last position."""
    zero = tmp_path / "config.json"
    zero.write_text(json.dumps({"hidden_size": 0, "num_hidden_layers": 2,
                                "num_attention_heads": 2, "vocab_size": 32}))
    for target in ("siracusa", "riscv-ulp"):
        assert _estimate_error(zero, "--target", target) == (
            f"error: config '{zero.name}': hidden_size is 0, not a positive size")
    assert _estimate_error(MODEL, "--positions", "100000") == (
        "error: 'stories260K.bin' has 512 positions: --prefill (here 8) can be at most 512 and "
        "--positions (here 100000; the decode step is at that position) at most 511")
    nano = Path(__file__).resolve().parents[2] / "shared" / "models" / "nanogpt-tiny"
    proc = subprocess.run([str(BIN / "irtool"), "estimate", str(nano / "nanogpt.onnx"),
                           "--json"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    (sched,) = json.loads(proc.stdout)["schedules"].values()
    assert sched["decode"]["start"] == 127  # the default 128 capped at its last position


def _estimate_text(target: str) -> str:
    proc = subprocess.run([str(BIN / "irtool"), "estimate", str(MODEL), "--target", target],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_a_target_without_a_clock_reports_cycles_and_no_time():
    """host's description states no clock: the estimate gave 682 million ms a token and 0
    tokens/s (a clock of 1 Hz assumed silently); now cycles only, and null times in JSON."""
    desc = json.loads((Path(__file__).resolve().parents[1] / "targets" / "host"
                       / "description.json").read_text())
    assert desc.get("clock_hz") is None
    decode = estimate("host")
    assert decode["tokens_per_s"] is None and decode["seconds_per_token"] is None
    assert decode["cycles_per_token"] >= 2 * 341_888  # flw + fmadd.s per MAC at the least
    text = _estimate_text("host")
    assert "core 'cpu' no clock stated" in text and "ms/token" not in text
    (line,) = [x for x in text.splitlines() if x.startswith("  decode (1 token")]
    assert "no time (the description states no clock)" in line
    # a target with a clock still gives both: 32 MHz over the cycles
    ulp = estimate("riscv-ulp")
    assert abs(ulp["tokens_per_s"] - 32e6 / ulp["cycles_per_token"]) < 1e-9 * ulp["tokens_per_s"]


def test_the_per_op_table_lines_up_under_its_header():
    """Every numeric column ends where its name ends, and `bound` starts where its name does
    (siracusa's alternative_cycles, longer than the column, ran into 'bound')."""
    for target in ("siracusa", "riscv-ulp", "matrix8x8"):
        lines = _estimate_text(target).splitlines()
        at = next(i for i, x in enumerate(lines) if x.startswith("  layer "))
        head, rows = lines[at], lines[at + 1:at + 6]
        names = head.split()
        assert names[:3] == ["layer", "op", "engine"] and names[-1] == "bytes", head
        bound = head.index(" bound ") + 1
        for row in rows:
            assert row[bound - 1] == " " and row[bound:bound + 7] in ("compute", "data mo"), \
                (head, row)
        for name in [n for n in names[3:-1] if n != "bound"]:
            end = head.index(f" {name}") + 1 + len(name)
            for row in rows:
                assert row[end - 1].isdigit() and row[end] == " ", (target, name, head, row)


def test_siracusa_reads_activations_from_l1_and_only_npu_weights_from_its_memory():
    """The NPU's weight memory holds the weights of the linears the NPU runs, nothing the
    cluster reads (its engine `reads` says so); norms, attention and the rest were counted as
    reading it (the largest writable memory) and are L1's now, at the same cycles."""
    desc = json.loads((Path(__file__).resolve().parents[1] / "targets" / "siracusa"
                       / "description.json").read_text())
    (cluster,) = [e for e in desc["engines"] if e["kind"] == "cluster"]
    assert "wmem" not in cluster["reads"]
    proc = subprocess.run([str(BIN / "irtool"), "estimate", str(MODEL), "--target", "siracusa",
                           "--schedule", "npu", "--json"], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    ops = json.loads(proc.stdout)["schedules"]["npu"]["decode"]["ops"]
    for o in ops:
        if o["engine"] == "npu":
            assert set(o["bytes"]) == {"wmem", "l1"}, o
        else:
            assert "wmem" not in o["bytes"] and set(o["bytes"]) <= set(cluster["reads"]), o
    # an elementwise op is counted as its 64 values read and written: 2 x 64 floats
    norm = next(o for o in ops if o["op"] == "rms_norm")
    assert norm["bytes"] == {"l1": 2 * 64 * 4}
