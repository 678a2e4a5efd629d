"""`irtool report PROJECT_OR_MLIR -o report.html`: the memory plan as pictures, on one page.

Why: a plan of a hundred buffers is unreadable as text, and embedded teams think in pictures of
their memories. The page is self-contained (inline SVG and CSS, no script, no network): it
opens from a mail attachment or a CI artifact.

* the memory map: each memory a bar of its size, every planned buffer a rectangle at its
  offset (the reserved top of a memory hatched);
* buffers over time, per memory: x is the program timeline of irtool/liveness.py (op index of
  `@decode`), y the offset; a rectangle per buffer from its first to its last access;
* the plan summary (`irtool.memory_plan`: peak, lower bound, no reuse, capacity), the compile
  options, the quantization quality when the module records it (`irtool.quality`), and the
  per-layer modelled decode cost from `irtool estimate` when the project has it
  (`estimate.json`, written by `irtool compile`).

Every rectangle of a buffer carries `data-buffer`, `data-space`, `data-offset`, `data-size`,
`data-start`, `data-end`, so a test (or a script) reads the plan back from the picture.
A project folder holds `model.hw.mlir` (the placed module `irtool compile` wrote); its weights
are not needed.
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass
from pathlib import Path

from xdsl.dialects.builtin import ArrayAttr, DictionaryAttr, FloatAttr, IntegerAttr, StringAttr

from irtool.errors import IrtoolError

PLAN_ATTR = "irtool.memory_plan"
OPTIONS_ATTR = "irtool.compile_options"
QUALITY_ATTR = "irtool.quality"
PROJECT_MODULE = "model.hw.mlir"
PROJECT_ESTIMATE = "estimate.json"
PROJECT_REPORT = "report.html"
_PAGE_START = "<!DOCTYPE html><html><head><meta charset='utf-8'><title>irtool report: "
"""How every page begins: what `write_report` may replace."""
BAR_WIDTH = 900
BAR_HEIGHT = 36
CHART_HEIGHT = 220
COLOURS = {"weight": "#4e79a7", "state": "#f28e2b", "activation": "#59a14f"}


@dataclass(frozen=True)
class PlacedBuffer:
    name: str
    kind: str
    space: str
    offset: int
    size: int
    start: int
    end: int


def placed_buffers(module) -> tuple[list[PlacedBuffer], int]:
    """Every buffer with its placement and live range, and the timeline's length."""
    from irtool.liveness import analyze

    live = analyze(module)
    out = []
    for b in live.buffers:
        space, offset = b.op.placement
        if space is None or offset is None:
            raise IrtoolError(f"buffer {b.name} has no placement: give a module after the "
                              "allocate pass (e.g. the model.hw.mlir irtool compile writes)")
        out.append(PlacedBuffer(b.name, b.kind, space, offset, b.size, b.start, b.end))
    return out, live.horizon


def _plain(attr):
    """An attribute as plain Python (dicts, lists, numbers, strings)."""
    if isinstance(attr, DictionaryAttr):
        return {k: _plain(v) for k, v in attr.data.items()}
    if isinstance(attr, ArrayAttr):
        return [_plain(v) for v in attr.data]
    if isinstance(attr, (IntegerAttr, FloatAttr)):
        return attr.value.data
    if isinstance(attr, StringAttr):
        return attr.data
    return str(attr)


@dataclass
class ReportData:
    name: str
    buffers: list[PlacedBuffer]
    horizon: int
    plan: dict
    memories: list  # MemorySpec of the target, in its order
    options: dict
    quality: dict | None
    estimate: dict | None


def load_report_data(path: Path) -> ReportData:
    """From a project folder (its model.hw.mlir, estimate.json) or a placed .mlir."""
    from irtool.module_io import read_module

    path = Path(path)
    estimate = None
    if path.is_dir():
        mlir = path / PROJECT_MODULE
        if not mlir.is_file():
            raise IrtoolError(f"'{path}' has no {PROJECT_MODULE}: give a project written by "
                              "irtool compile, or a placed .mlir")
        if (path / PROJECT_ESTIMATE).is_file():
            estimate = json.loads((path / PROJECT_ESTIMATE).read_text())
    elif path.is_file():
        mlir = path
    else:
        raise IrtoolError(f"'{path}' not found: give a project folder or a placed .mlir")
    module = read_module(mlir)
    return report_data(module, str(path), estimate)


def report_data(module, name: str, estimate: dict | None = None) -> ReportData:
    from irtool.targets.registry import load_target

    if PLAN_ATTR not in module.attributes:
        raise IrtoolError(f"'{name}' has no {PLAN_ATTR}: give a module after the allocate pass")
    plan = _plain(module.attributes[PLAN_ATTR])
    target = load_target(plan["target"]).description
    buffers, horizon = placed_buffers(module)
    options = _plain(module.attributes[OPTIONS_ATTR]) if OPTIONS_ATTR in module.attributes \
        else {}
    options = {"target": plan["target"], **options}
    for key in ("irtool.kv_capacity", "irtool.kv_window", "irtool.quant"):
        if key in module.attributes:
            options.setdefault(key.split(".", 1)[1], _plain(module.attributes[key]))
    quality = _plain(module.attributes[QUALITY_ATTR]) if QUALITY_ATTR in module.attributes \
        else None
    return ReportData(name, buffers, horizon, plan, list(target.memories), options, quality,
                      estimate)


# -- the pictures ----------------------------------------------------------------------------

def _attrs(b: PlacedBuffer) -> str:
    return (f'data-buffer="{html.escape(b.name)}" data-kind="{b.kind}" '
            f'data-space="{html.escape(b.space)}" data-offset="{b.offset}" '
            f'data-size="{b.size}" data-start="{b.start}" data-end="{b.end}"')


def _title(b: PlacedBuffer) -> str:
    return (f"<title>{html.escape(b.name)} ({b.kind}): {b.size:,} B at {b.space}+{b.offset:,}, "
            f"live {b.start}..{b.end}</title>")


def memory_map_svg(data: ReportData) -> str:
    """One bar per memory, its full size; the buffers at their offsets."""
    rows = [m for m in data.memories]
    height = len(rows) * (BAR_HEIGHT + 34) + 10
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" class="memory-map" width="{BAR_WIDTH + 20}" '
           f'height="{height}" viewBox="0 0 {BAR_WIDTH + 20} {height}">',
           '<defs><pattern id="hatch" width="6" height="6" patternUnits="userSpaceOnUse">'
           '<path d="M0,6 L6,0" stroke="#999" stroke-width="1"/></pattern></defs>']
    for i, m in enumerate(rows):
        y = 10 + i * (BAR_HEIGHT + 34)
        scale = BAR_WIDTH / m.size
        peak = data.plan.get(m.name, {}).get("peak", 0)
        out.append(f'<g class="memory" data-memory="{html.escape(m.name)}" data-size="{m.size}" '
                   f'data-scale="{scale!r}">')
        out.append(f'<text x="10" y="{y + 12}" font-size="12">{html.escape(m.name)}: '
                   f'{m.size:,} B, peak {peak:,} B ({peak / m.size:.1%})</text>')
        out.append(f'<rect x="10" y="{y + 18}" width="{BAR_WIDTH}" height="{BAR_HEIGHT}" '
                   'fill="#f4f4f4" stroke="#333"/>')
        if m.reserved:
            x = 10 + (m.size - m.reserved) * scale
            out.append(f'<rect class="reserved" x="{x!r}" y="{y + 18}" '
                       f'width="{m.reserved * scale!r}" height="{BAR_HEIGHT}" fill="url(#hatch)">'
                       f"<title>reserved: {m.reserved:,} B (stack, C library)</title></rect>")
        for b in data.buffers:
            if b.space != m.name:
                continue
            out.append(f'<rect class="buffer" {_attrs(b)} x="{10 + b.offset * scale!r}" '
                       f'y="{y + 18}" width="{max(b.size * scale, 0.5)!r}" '
                       f'height="{BAR_HEIGHT}" fill="{COLOURS.get(b.kind, "#999")}" '
                       f'stroke="white" stroke-width="0.3">{_title(b)}</rect>')
        out.append("</g>")
    out.append("</svg>")
    return "\n".join(out)


def timeline_svg(data: ReportData, space: str) -> str:
    """Buffers of one memory over time: x the timeline, y the offset (highest byte on top)."""
    bufs = [b for b in data.buffers if b.space == space]
    top = max((b.offset + b.size for b in bufs), default=1) or 1
    horizon = max(data.horizon, 1)
    sx, sy = BAR_WIDTH / horizon, CHART_HEIGHT / top
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" class="timeline" '
           f'data-memory="{html.escape(space)}" data-horizon="{horizon}" data-top="{top}" '
           f'width="{BAR_WIDTH + 20}" height="{CHART_HEIGHT + 30}" '
           f'viewBox="0 0 {BAR_WIDTH + 20} {CHART_HEIGHT + 30}">',
           f'<rect x="10" y="10" width="{BAR_WIDTH}" height="{CHART_HEIGHT}" fill="#fafafa" '
           'stroke="#333"/>']
    for b in bufs:
        start, end = b.start, max(b.end, b.start + 1)
        y = 10 + CHART_HEIGHT - (b.offset + b.size) * sy
        out.append(f'<rect class="buffer" {_attrs(b)} x="{10 + start * sx!r}" y="{y!r}" '
                   f'width="{(end - start) * sx!r}" height="{max(b.size * sy, 0.5)!r}" '
                   f'fill="{COLOURS.get(b.kind, "#999")}" fill-opacity="0.8" stroke="white" '
                   f'stroke-width="0.3">{_title(b)}</rect>')
    out.append(f'<text x="10" y="{CHART_HEIGHT + 26}" font-size="11">time (op index of the '
               f'program, 0..{horizon}) &#8594;; offset 0..{top:,} B &#8593;</text>')
    out.append("</svg>")
    return "\n".join(out)


# -- the page --------------------------------------------------------------------------------

def _table(head: list[str], rows: list[list], cls: str = "") -> str:
    cells = "".join(f"<th>{html.escape(str(h))}</th>" for h in head)
    body = "\n".join("<tr>" + "".join(f"<td>{html.escape(_fmt(c))}</td>" for c in r) + "</tr>"
                     for r in rows)
    return f'<table class="{cls}"><tr>{cells}</tr>\n{body}</table>'


def _fmt(v) -> str:
    if isinstance(v, bool) or v is None:
        return str(v)
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        return f"{v:,.4g}"
    if isinstance(v, (dict, list)):
        return json.dumps(v)
    return str(v)


def _cost_rows(estimate: dict) -> tuple[str, list[list]] | None:
    """Decode cycles per layer of the first schedule of an `irtool estimate` report."""
    schedules = estimate.get("schedules") or {}
    if not schedules:
        return None
    sched, phases = next(iter(schedules.items()))
    dec = phases.get("decode")
    if not dec:
        return None
    layers: dict[str, list] = {}
    for op in dec["ops"]:
        row = layers.setdefault(op["layer"], [op["layer"], 0, 0.0, set()])
        row[1] += op.get("macs", 0)
        row[2] += op.get("cycles", 0.0)
        row[3].add(op.get("bound", ""))
    total = sum(r[2] for r in layers.values()) or 1.0
    rows = [[name, macs, cycles, cycles / total, ", ".join(sorted(b for b in bounds if b))]
            for name, macs, cycles, bounds in layers.values()]
    rate = dec.get("tokens_per_s")
    caption = (f"schedule {sched}, one decode token at position {dec.get('start', 0)}: "
               f"{dec.get('cycles_per_token', 0):,.0f} cycles, "
               + ("no time modelled (the target states no clock)" if rate is None
                  else f"{rate:,.2f} tokens/s modelled"))
    return caption, rows


CSS = """body{font-family:sans-serif;margin:24px;color:#222}
table{border-collapse:collapse;margin:8px 0 20px}td,th{border:1px solid #ccc;padding:3px 8px;
text-align:right}th{background:#eee}td:first-child{text-align:left}
.legend span{display:inline-block;width:12px;height:12px;margin:0 4px 0 12px}"""


def render_html(data: ReportData) -> str:
    plan = data.plan
    summary = [[m.name, m.size, m.reserved, plan.get(m.name, {}).get("capacity", 0),
                plan.get(m.name, {}).get("peak", 0), plan.get(m.name, {}).get("lower_bound", 0),
                plan.get(m.name, {}).get("no_reuse", 0),
                sum(1 for b in data.buffers if b.space == m.name)] for m in data.memories]
    legend = "".join(f'<span style="background:{c}"></span>{k}' for k, c in COLOURS.items())
    parts = [f"{_PAGE_START}{html.escape(data.name)}</title><style>{CSS}</style></head><body>",
             f"<h1>Memory plan: {html.escape(data.name)}</h1>",
             f"<p>target <b>{html.escape(plan['target'])}</b>, {len(data.buffers)} buffers, "
             f"solver {html.escape(str(plan.get('status')))}, access cost "
             f"{_fmt(plan.get('access_cost', 0.0))}</p>",
             _table(["memory", "size B", "reserved B", "plannable B", "peak B", "lower bound B",
                     "no reuse B", "buffers"], summary, "plan"),
             "<h2>Memory map</h2>", f'<p class="legend">{legend}</p>', memory_map_svg(data),
             "<h2>Buffers over time</h2>"]
    for m in data.memories:
        if any(b.space == m.name for b in data.buffers):
            parts += [f"<h3>{html.escape(m.name)}</h3>", timeline_svg(data, m.name)]
    parts += ["<h2>Compile options</h2>",
              _table(["option", "value"], [[k, v] for k, v in data.options.items()], "options")]
    if data.quality:
        parts += ["<h2>Quantization quality</h2>",
                  _table(["measure", "value"], [[k, v] for k, v in data.quality.items()],
                         "quality")]
    costs = _cost_rows(data.estimate) if data.estimate else None
    if costs:
        caption, rows = costs
        parts += ["<h2>Modelled cost per layer (irtool estimate)</h2>",
                  f"<p>{html.escape(caption)}</p>",
                  _table(["layer", "MACs", "cycles", "share", "bound by"], rows, "costs")]
    parts += ["<h2>Buffers</h2>",
              _table(["buffer", "kind", "memory", "offset", "bytes", "live from", "live to"],
                     [[b.name, b.kind, b.space, b.offset, b.size, b.start, b.end]
                      for b in sorted(data.buffers, key=lambda b: (b.space, b.offset))],
                     "buffers"),
              "</body></html>"]
    return "\n".join(parts) + "\n"


def _is_report(head: bytes) -> bool:
    return head.startswith(_PAGE_START.encode())


def write_report(data: ReportData, out: Path) -> Path:
    """Write the page to `out`, which may replace only an earlier report (or an empty file):
    `-o proj/main.c` must not turn a project's source into HTML."""
    from irtool.output_safety import Kind, write_text

    write_text(out, render_html(data), "report",
               Kind("an irtool report", _is_report, "report.html"))
    return Path(out)


# -- what irtool compile records for the report ------------------------------------------------

def decode_estimate(workload, target, prefill: int, positions: int) -> dict | None:
    """`irtool estimate`'s report (first schedule) for the compiled run, or None when the
    estimate does not model it."""
    from irtool.estimate import cost_model_of, estimate, report_json

    if workload is None:
        return None
    try:
        model = cost_model_of(target)
        name = (getattr(model, "schedules", None) or ("core",))[0]
        phases = estimate(workload, model, max(prefill, 1), max(positions, 0))
    except IrtoolError:
        return None
    return report_json(workload, target.name, {name: model}, {name: phases})


def project_record(module, options: dict, estimate: dict | None, name: str,
                   with_report: bool = False) -> dict[str, str]:
    """The files a project keeps for `irtool report DIR`: model.hw.mlir (the placed module,
    with the compile options), estimate.json, and report.html itself when asked."""
    from irtool.module_io import module_text

    module.attributes[OPTIONS_ATTR] = DictionaryAttr(
        {k: StringAttr(_fmt(v) if not isinstance(v, str) else v) for k, v in options.items()})
    plan = module.attributes.get(PLAN_ATTR)
    if isinstance(plan, DictionaryAttr):  # the same project twice is the same bytes
        module.attributes[PLAN_ATTR] = DictionaryAttr(
            {k: v for k, v in plan.data.items() if k != "solve_time_ms"})
    files = {PROJECT_MODULE: module_text(module)}
    if plan is not None:
        module.attributes[PLAN_ATTR] = plan
    if estimate is not None:
        files[PROJECT_ESTIMATE] = json.dumps(estimate)  # compact: the C encoder, 8x faster
    if with_report:
        files[PROJECT_REPORT] = render_html(report_data(module, name, estimate))
    return files
