"""`irtool report` and `irtool compile --report`: the HTML page and its SVG pictures carry the
plan exactly.

The reference is the placed module itself, read here without irtool/report.py: every
`memory.global` and `memory.alloc` with its memory space, offset and byte size, and the
`irtool.memory_plan` peaks. The page's memory map must hold one rectangle per buffer at
`x = offset * width / memory size` with `width = size * width / memory size`, the
buffers-over-time chart the same buffers with no two overlapping in both time and bytes, the
summary table the plan's peaks, and the options and per-layer costs must be there.
"""

from __future__ import annotations

import math
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

import pytest

from irtool.dialects import memory
from irtool.targets.registry import load_target

BIN = Path(sys.executable).parent
SVG = "{http://www.w3.org/2000/svg}"


def irtool(*args) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "irtool"), *map(str, args)], capture_output=True,
                          text=True, timeout=600)


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    from irtool.compile import CompileOptions, compile_to_c
    from irtool.frontend.load import DEFAULT_MODEL, import_model

    out = tmp_path_factory.mktemp("report") / "proj"
    module, store = import_model(DEFAULT_MODEL)
    compile_to_c(module, store, out, prompt=[1, 403, 407], steps=8, tokenizer=None,
                 opts=CompileOptions(target="riscv-ulp", capacity=64))
    return out, module


def _nbytes(t) -> int:
    from irtool.weights import numpy_dtype

    return math.prod(t.get_shape()) * numpy_dtype(t).itemsize


def reference_placements(module) -> Counter:
    """(space, offset, size) of every buffer, from the ops."""
    found = Counter()
    for op in module.walk():
        if isinstance(op, (memory.GlobalOp, memory.AllocOp)):
            space, offset = op.placement
            t = op.type if isinstance(op, memory.GlobalOp) else op.results[0].type
            found[(space, offset, _nbytes(t))] += 1
    return found


def svgs(page: str) -> list[ET.Element]:
    return [ET.fromstring(s) for s in re.findall(r"<svg .*?</svg>", page, re.S)]


def rects(svg: ET.Element) -> list[ET.Element]:
    return [r for r in svg.iter(f"{SVG}rect") if r.get("class") == "buffer"]


def key(r: ET.Element) -> tuple[str, int, int]:
    return r.get("data-space"), int(r.get("data-offset")), int(r.get("data-size"))


def test_report_pictures_are_the_plan(compiled, tmp_path):
    out, module = compiled
    proc = irtool("report", out, "-o", tmp_path / "r.html")
    assert proc.returncode == 0, proc.stderr
    page = (tmp_path / "r.html").read_text()
    assert not re.search(r'(src|href)="(https?:)?//', page)  # self-contained
    pictures = svgs(page)
    memory_map = next(s for s in pictures if s.get("class") == "memory-map")
    sizes = {m.name: m.size for m in load_target("riscv-ulp").description.memories}
    want = reference_placements(module)
    assert Counter(key(r) for r in rects(memory_map)) == want
    for r in rects(memory_map):
        space, offset, size = key(r)
        scale = 900 / sizes[space]
        assert float(r.get("x")) == pytest.approx(10 + offset * scale)
        assert float(r.get("width")) == pytest.approx(max(size * scale, 0.5))
    names = {r.get("data-buffer") for r in rects(memory_map)}
    assert {"@" + op.sym_name.data for op in module.ops if isinstance(op, memory.GlobalOp)} <= names

    timelines = [s for s in pictures if s.get("class") == "timeline"]
    assert {t.get("data-memory") for t in timelines} == {k[0] for k in want}
    spans = [(key(r), int(r.get("data-start")), int(r.get("data-end")))
             for t in timelines for r in rects(t)]
    assert Counter(k for k, _, _ in spans) == want
    for i, ((sa, oa, na), a0, a1) in enumerate(spans):  # the plan holds: no double booking
        for (sb, ob, nb), b0, b1 in spans[i + 1:]:
            if sa == sb and a0 < b1 and b0 < a1 and na and nb:
                assert oa + na <= ob or ob + nb <= oa, (sa, oa, na, ob, nb)

    plan = module.attributes["irtool.memory_plan"].data
    table = re.search(r'<table class="plan">(.*?)</table>', page, re.S).group(1)
    for space in sizes:
        peak = plan[space].data["peak"].value.data
        assert re.search(rf"<td>{space}</td>(<td>[^<]*</td>){{3}}<td>{peak:,}</td>", table)
    options = re.search(r'<table class="options">(.*?)</table>', page, re.S).group(1)
    assert "<td>capacity</td><td>64</td>" in options and "riscv-ulp" in options
    costs = re.search(r'<table class="costs">(.*?)</table>', page, re.S).group(1)
    assert "<td>layers.0</td>" in costs and "<td>head</td>" in costs


def test_compile_report_flag_and_errors(tmp_path):
    out = tmp_path / "p"
    proc = irtool("compile", "--target", "host", "-o", out, "--capacity", 32, "--steps", 4,
                  "--report")
    assert proc.returncode == 0, proc.stderr
    page = (out / "report.html").read_text()
    memory_map = next(s for s in svgs(page) if s.get("class") == "memory-map")
    assert {key(r)[0] for r in rects(memory_map)} == {"ram"}
    bad = irtool("report", tmp_path / "nothing", "-o", tmp_path / "x.html")
    assert bad.returncode == 1 and bad.stderr.startswith("error: ") and \
        len(bad.stderr.strip().splitlines()) == 1
    from irtool.frontend.load import DEFAULT_MODEL

    plain = tmp_path / "m.mlir"  # imported, never allocated: no plan to draw
    assert irtool("import", DEFAULT_MODEL, "-o", plain).returncode == 0
    unplaced = irtool("report", plain, "-o", tmp_path / "y.html")
    assert unplaced.returncode == 1 and "irtool.memory_plan" in unplaced.stderr
    assert unplaced.stderr.startswith("error: ")


def test_report_renders_in_headless_chromium(compiled, tmp_path):
    """Looked at once in a real browser when one is installed (the page needs no script and
    no network). Skipped without Chromium even under CI: the issue asks that the report's
    tests not need a browser; the structural checks above are the proof."""
    import shutil

    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("no Chromium here (Debian's chromium package); the report needs none")
    out, _ = compiled
    page = tmp_path / "report.html"
    proc = irtool("report", out, "-o", page)
    assert proc.returncode == 0, proc.stderr
    shot = tmp_path / "report.png"
    subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu",
                    "--disable-background-networking", "--disable-component-update",
                    "--disable-sync", "--no-first-run", f"--user-data-dir={tmp_path / 'ud'}",
                    "--window-size=1280,1600", f"--screenshot={shot}", page.as_uri()],
                   capture_output=True, text=True, timeout=120)
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert (width, height) == (1280, 1600)
    print(f"screenshot of the report: {shot} ({len(data)} bytes)")
