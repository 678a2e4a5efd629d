"""`irtool estimate`: modelled cost of a model on a target, per layer and op, without running it.

The workload (what a forward pass computes) comes from a model file (its @forward, walked op
by op) or from an architecture config alone (Hugging Face config.json keys), so models whose
weights are not at hand (Llama-2-7B, TinyLlama, Phi-2) can be estimated. A target's cost
model (`target.cost_model()`, else the core model below built from the description) turns
each op into MACs, bytes moved per memory and modelled cycles, and says whether compute or
data movement bounds it. Prefill runs `prefill` tokens at once from an empty cache; decode is
one token with `positions` tokens already cached.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from irtool.errors import IrtoolError
from irtool.targets.cost_model import (  # noqa: F401  (re-exported for callers)
    ATTENTION_INSTRUCTIONS_PER_MAC,
    ELEMENTWISE_INSTRUCTIONS,
    INSTRUCTIONS_PER_MAC,
    SOFTMAX_INSTRUCTIONS_PER_SCORE,
    CoreCostModel,
    OpCost,
    WorkOp,
)

# -- the workload ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Workload:
    name: str
    ops: tuple[WorkOp, ...]
    context: int | None = None
    """The model's positions (max_position_embeddings, irtool.max_seq_len), if it says."""


CONFIG_ALIASES = {
    "hidden_size": ("n_embd", "d_model"),
    "num_hidden_layers": ("n_layer",),
    "num_attention_heads": ("n_head",),
    "intermediate_size": ("n_inner", "ffn_dim"),
    "max_position_embeddings": ("n_positions",),
}
"""The older names of the config keys the estimate reads (GPT-2, GPT-J: n_embd, n_layer,
n_head, n_inner, n_positions; OPT: ffn_dim), as transformers' configs map them."""

UNGATED_FAMILIES = ("gpt2", "gptj", "gpt_neox", "opt", "phi")
"""Families whose MLP is one up-projection, an activation and a down-projection; the others
(llama, mistral, qwen2/3, gemma, phi3, ...) multiply a gate in (two up-projections)."""


def canonical_config(cfg: dict) -> dict:
    """`cfg` with every key of CONFIG_ALIASES under its current name."""
    out = dict(cfg)
    for key, older in CONFIG_ALIASES.items():
        found = [cfg[k] for k in older if cfg.get(k) is not None]
        if out.get(key) is None and found:
            out[key] = found[0]
    return out


def _gated(cfg: dict) -> bool:
    family = cfg.get("model_type")
    if family in UNGATED_FAMILIES:
        return False
    if family is not None:
        return True
    return cfg.get("hidden_act", "silu") in ("silu", "swish")  # a config without a family


def workload_from_config(cfg: dict, name: str = "config", quantized: bool = False,
                         quantize_lm_head: bool = False) -> Workload:
    """A decoder from its config's sizes (older key names read as transformers reads them):
    Llama-style (a gated MLP) or, for the families in UNGATED_FAMILIES, one up-projection."""
    cfg = canonical_config(cfg)
    try:
        d = int(cfg["hidden_size"])
        hidden = int(cfg.get("intermediate_size") or 4 * d)
        layers = int(cfg["num_hidden_layers"])
        heads = int(cfg["num_attention_heads"])
        vocab = int(cfg["vocab_size"])
    except (KeyError, TypeError, ValueError) as e:
        raise IrtoolError(f"config '{name}': needs hidden_size, num_hidden_layers, "
                          f"num_attention_heads and vocab_size ({type(e).__name__}: {e})"
                          ) from None
    sizes = {"hidden_size": d, "intermediate_size": hidden, "num_hidden_layers": layers,
             "num_attention_heads": heads, "vocab_size": vocab}
    bad = next((k for k, v in sizes.items() if v < 1), None)
    if bad is not None:  # 0 heads divided by zero below; 0 layers modelled nothing
        raise IrtoolError(f"config '{name}': {bad} is {sizes[bad]}, not a positive size")
    kv = int(cfg.get("num_key_value_heads") or heads)
    hd = int(cfg.get("head_dim") or d // heads)
    if kv < 1 or heads % kv or hd < 1:
        raise IrtoolError(f"config '{name}': {heads} attention heads over {kv} key/value heads "
                          f"of {hd} dimensions is not a decoder's attention")
    context = cfg.get("max_position_embeddings")
    gated = _gated(cfg)
    ops: list[WorkOp] = [WorkOp("embed", "embedding", "elementwise", elements=d)]
    for i in range(layers):
        lay = f"layers.{i}"
        lin = [("wq", d, heads * hd), ("wk", d, kv * hd), ("wv", d, kv * hd)]
        ops += [WorkOp(lay, "attention_norm", "elementwise", elements=d)]
        ops += [WorkOp(lay, n, "linear", K=k, N=o, quantized=quantized) for n, k, o in lin]
        ops += [WorkOp(lay, "rope", "elementwise", elements=(heads + kv) * hd),
                WorkOp(lay, "attention", "attention", heads=heads, kv_heads=kv, head_dim=hd),
                WorkOp(lay, "wo", "linear", K=heads * hd, N=d, quantized=quantized),
                WorkOp(lay, "add", "elementwise", elements=d),
                WorkOp(lay, "ffn_norm", "elementwise", elements=d)]
        mlp = [("w1", d, hidden), ("w3", d, hidden)] if gated else [("fc1", d, hidden)]
        ops += [WorkOp(lay, n, "linear", K=k, N=o, quantized=quantized) for n, k, o in mlp]
        ops += [WorkOp(lay, "activation", "elementwise", elements=hidden * (2 if gated else 1)),
                WorkOp(lay, "w2", "linear", K=hidden, N=d, quantized=quantized),
                WorkOp(lay, "add", "elementwise", elements=d)]
    ops += [WorkOp("head", "norm", "elementwise", elements=d),
            WorkOp("head", "lm_head", "linear", K=d, N=vocab,
                   quantized=quantized and quantize_lm_head)]
    return Workload(name, tuple(ops), int(context) if isinstance(context, int) and context > 0
                    else None)


def workload_from_module(module, name: str, quantized: bool = False,
                         quantize_lm_head: bool = False) -> Workload:
    """The ops of an imported model's @forward, named by the weights they read."""
    from xdsl.dialects import func

    from irtool.dialects import transformer as tf

    fn = next((op for op in module.body.block.ops
               if isinstance(op, func.FuncOp) and op.sym_name.data == "forward"), None)
    if fn is None:
        raise IrtoolError(f"'{name}': no @forward function to estimate (give the imported "
                          "model, not a lowered one)")
    returned = set(fn.body.block.last_op.operands)
    ops, layer = [], "embed"
    for op in fn.body.block.ops:
        if isinstance(op, tf.WeightOp):
            parts = op.weight_name.data.split(".")
            if parts[0] == "layers" and len(parts) > 2:
                layer = ".".join(parts[:2])
            elif op.weight_name.data not in ("tok_embeddings",) and \
                    not op.weight_name.data.startswith("rope"):
                layer = "head"
            continue
        if isinstance(op, tf.LinearOp):
            n, k = op.weight.type.get_shape()
            w = op.weight.owner
            wname = w.weight_name.data.split(".")[-1] if isinstance(w, tf.WeightOp) else "linear"
            is_head = op.result in returned
            ops.append(WorkOp("head" if is_head else layer, "lm_head" if is_head else wname,
                              "linear", K=k, N=n,
                              quantized=quantized and (quantize_lm_head or not is_head)))
        elif isinstance(op, tf.AttentionOp):
            ops.append(WorkOp(layer, "attention", "attention", heads=op.heads.value.data,
                              kv_heads=op.kv_heads.value.data,
                              head_dim=op.head_dim.value.data))
        elif op.results and not isinstance(op, func.ReturnOp):
            shape = op.results[0].type.get_shape() if hasattr(op.results[0].type,
                                                              "get_shape") else ()
            per_token = math.prod(s for s in shape[1:] if s > 0) if len(shape) > 1 else 1
            ops.append(WorkOp(layer, op.name.split(".")[-1], "elementwise",
                              elements=per_token))
    from irtool.ir_names import MAX_SEQ_LEN_ATTR

    context = module.attributes.get(MAX_SEQ_LEN_ATTR)
    return Workload(name, tuple(ops), getattr(getattr(context, "value", None), "data", None))


def load_workload(path: str, quantized: bool, quantize_lm_head: bool = False) -> Workload:
    """A Hugging Face config.json (shape only) or a model file irtool imports."""
    p = Path(path)
    if not p.exists():
        raise IrtoolError(f"'{path}' not found: give a model file or a config.json")
    if p.is_dir() and (p / "config.json").is_file() and not any(p.glob("*.safetensors")):
        p = p / "config.json"
    if p.suffix == ".json":
        try:
            cfg = json.loads(p.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise IrtoolError(f"config '{p}' is not valid JSON: {e}") from None
        if not isinstance(cfg, dict) or "hidden_size" not in canonical_config(cfg):
            raise IrtoolError(f"config '{p}' has no hidden_size: give a Hugging Face "
                              "config.json (or a model file)")
        return workload_from_config(cfg, p.name, quantized, quantize_lm_head)
    from irtool.frontend.load import import_model

    module, _ = import_model(p)
    return workload_from_module(module, p.name, quantized, quantize_lm_head)


# -- costs -----------------------------------------------------------------------------------


def cost_model_of(target, schedule: str | None = None):
    """The target's own cost model if it has one (`cost_model(schedule)`), else the core's."""
    make = getattr(target, "cost_model", None)
    if make is not None:
        return make(schedule)
    if schedule not in (None, "core"):
        raise IrtoolError(f"target '{target.name}' has one schedule (its core); --schedule "
                          f"{schedule} applies to targets with an accelerator")
    return CoreCostModel(target.description)


# -- the estimate ----------------------------------------------------------------------------


@dataclass
class Phase:
    """Prefill of `tokens` tokens from position `start`, or a decode step (tokens = 1)."""

    name: str
    tokens: int
    start: int
    ops: list[OpCost]
    clock_hz: int | None
    """None when the target's description states no clock: cycles only, no time."""

    @property
    def cycles(self) -> float:
        return sum(o.cycles for o in self.ops)

    @property
    def cycles_per_token(self) -> float:
        return self.cycles / self.tokens

    @property
    def tokens_per_s(self) -> float | None:
        if self.clock_hz is None:
            return None
        return self.clock_hz / self.cycles_per_token if self.cycles else math.inf

    @property
    def seconds_per_token(self) -> float | None:
        return None if self.clock_hz is None else self.cycles_per_token / self.clock_hz

    def totals(self) -> dict:
        keys = set().union(*(o.extra for o in self.ops)) if self.ops else set()
        extra = {k: sum(o.extra.get(k, 0) for o in self.ops) for k in sorted(keys)}
        mem: dict[str, int] = {}
        for o in self.ops:
            for m, n in o.bytes.items():
                mem[m] = mem.get(m, 0) + n
        if extra.get("mac_cycles"):  # an accelerator: its share of MAC slots used
            extra["utilisation"] = extra.get("unit_macs", 0) / extra["mac_cycles"]
        if "energy_pj" in extra:
            extra["energy_uj_per_token"] = extra["energy_pj"] / 1e6 / self.tokens
        if "axi_cycles" in extra and self.cycles:
            extra["axi_share"] = extra["axi_cycles"] / self.cycles
        return {"tokens": self.tokens, "start": self.start, "cycles": self.cycles,
                "cycles_per_token": self.cycles_per_token, "tokens_per_s": self.tokens_per_s,
                "seconds_per_token": self.seconds_per_token,
                "macs": sum(o.macs for o in self.ops), "bytes": mem, **extra}


def estimate(workload: Workload, model, prefill: int, positions: int) -> dict[str, Phase]:
    if prefill < 1 or positions < 0:
        raise IrtoolError("--prefill must be at least 1 and --positions at least 0")
    limit = workload.context
    if limit is not None and (prefill > limit or positions + 1 > limit):
        raise IrtoolError(f"'{workload.name}' has {limit} positions: --prefill (here {prefill}) "
                          f"can be at most {limit} and --positions (here {positions}; the "
                          f"decode step is at that position) at most {limit - 1}")
    phases = {}
    for name, tokens, start in (("prefill", prefill, 0), ("decode", 1, positions)):
        phases[name] = Phase(name, tokens, start,
                             [model.op_cost(op, tokens, start) for op in workload.ops],
                             model.clock_hz)
    return phases


def report_json(workload: Workload, target_name: str, models: dict, phases_by: dict) -> dict:
    out = {"model": workload.name, "target": target_name, "schedules": {}}
    for sched, phases in phases_by.items():
        out["schedules"][sched] = {
            "assumptions": models[sched].assumptions(),
            **{name: {**ph.totals(), "ops": [{**asdict(o), "bound": o.bound}
                                              for o in ph.ops]}
               for name, ph in phases.items()}}
    return out


def _fmt(x: float) -> str:
    return f"{x:,.0f}"


def report_table(workload: Workload, target_name: str, models: dict, phases_by: dict,
                 per_op: bool = True) -> str:
    lines = [f"estimate: {workload.name} on {target_name}"]
    first = next(iter(phases_by))
    for sched, phases in phases_by.items():
        lines.append(f"schedule {sched}:")
        lines += [f"  assumes: {a}" for a in models[sched].assumptions()]
        if per_op and sched == first:
            dec = phases["decode"]
            extra_keys = sorted(set().union(*(o.extra for o in dec.ops)))
            lines.append(f"  decode at position {dec.start}, per layer and op:")
            width = {k: max(14, len(k) + 2) for k in extra_keys}
            head = (f"  {'layer':<12}{'op':<16}{'engine':<8}{'MACs':>14}{'cycles':>16}  "
                    f"{'bound':<14}")
            lines.append(head + "".join(f"{k:>{width[k]}}" for k in extra_keys) + "  bytes")
            for o in dec.ops:
                mem = " ".join(f"{m}={n:,}" for m, n in o.bytes.items())
                lines.append(f"  {o.layer:<12}{o.op:<16}{o.engine:<8}{_fmt(o.macs):>14}"
                             f"{_fmt(o.cycles):>16}  {o.bound:<14}"
                             + "".join(f"{_fmt(o.extra.get(k, 0)):>{width[k]}}"
                                       for k in extra_keys)
                             + f"  {mem}")
        for name, ph in phases.items():
            t = ph.totals()
            what = (f"{ph.tokens} tokens" if name == "prefill"
                    else f"1 token at position {ph.start}")
            extras = ", ".join(f"{k} {v:.1%}" if k in ("utilisation", "axi_share")
                               else f"{k} {v:,.3f}" if k == "energy_uj_per_token"
                               else f"{k} {_fmt(v)}" for k, v in t.items()
                               if k not in ("tokens", "start", "cycles", "cycles_per_token",
                                            "tokens_per_s", "seconds_per_token", "macs",
                                            "bytes"))
            time = ("no time (the description states no clock)" if ph.clock_hz is None
                    else f"{t['seconds_per_token'] * 1e3:,.3f} ms/token, "
                         f"{ph.tokens_per_s:,.3f} tokens/s")
            lines.append(f"  {name} ({what}): {_fmt(ph.cycles_per_token)} cycles/token, "
                         f"{time}; MACs/token {_fmt(t['macs'] / ph.tokens)}"
                         + (f"; whole pass: {extras}" if extras else ""))
    return "\n".join(lines)


def plot_format(path: str) -> str:
    """The image format of `--plot PATH` (its extension, png without one), checked before the
    estimate runs: an empty path or a format matplotlib cannot write would otherwise end the
    command after its work (or write nothing)."""
    from irtool.output_safety import check_destination

    check_destination(path, "plot (--plot)")
    fmt = Path(path).suffix.lstrip(".").lower() or "png"
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    formats = FigureCanvasAgg.get_supported_filetypes()
    if fmt not in formats:
        raise IrtoolError(f"--plot '{path}': matplotlib writes no '{fmt}' images; end the name "
                          f"in .png, .svg or .pdf (the formats it writes: "
                          f"{', '.join(sorted(formats))})")
    return fmt


def plot(phases: dict[str, Phase], path: str, title: str) -> None:
    """A bar per layer: decode cycles, split by engine."""
    fmt = plot_format(path)
    import matplotlib.pyplot as plt

    dec = phases["decode"]
    layers = list(dict.fromkeys(o.layer for o in dec.ops))
    engines = list(dict.fromkeys(o.engine for o in dec.ops))
    fig, ax = plt.subplots(figsize=(max(6, 0.3 * len(layers)), 4))
    bottom = [0.0] * len(layers)
    for e in engines:
        vals = [sum(o.cycles for o in dec.ops if o.layer == lay and o.engine == e)
                for lay in layers]
        ax.bar(range(len(layers)), vals, bottom=bottom, label=e)
        bottom = [b + v for b, v in zip(bottom, vals, strict=True)]
    ax.set_xticks(range(len(layers)), layers, rotation=90, fontsize=6)
    ax.set_ylabel("cycles per decode token")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    from irtool.output_safety import output_file

    with output_file(path, "plot") as tmp:  # renamed into place when the command succeeds
        fig.savefig(tmp, format=fmt)
    plt.close(fig)


DEFAULT_POSITIONS = 128


def run(model_path: str, target_name: str, prefill: int, positions: int | None,
        schedules: Sequence[str] | None, as_json: bool, plot_path: str | None,
        quant: str | None, quantize_lm_head: bool) -> str:
    from irtool.targets.registry import load_target

    if plot_path is not None:
        plot_format(plot_path)
    target = load_target(target_name)
    probe = cost_model_of(target)
    quant = quant or getattr(probe, "default_quant", "none")
    if quant not in ("none", "w8a8"):
        raise IrtoolError(f"--quant {quant}: the estimate models none (float32) and w8a8")
    workload = load_workload(model_path, quant == "w8a8", quantize_lm_head)
    if positions is None:  # 128, within the model's positions (nanogpt-tiny has 128)
        limit = workload.context
        positions = DEFAULT_POSITIONS if limit is None else min(DEFAULT_POSITIONS, limit - 1)
    names = list(schedules or getattr(probe, "schedules", ("core",)))
    models = {s: cost_model_of(target, s) for s in names}
    phases_by = {s: estimate(workload, m, prefill, positions) for s, m in models.items()}
    if plot_path is not None:
        plot(phases_by[names[0]], plot_path, f"{workload.name} on {target.name} "
             f"({names[0]} schedule)")
    if as_json:
        return json.dumps(report_json(workload, target.name, models, phases_by), indent=1)
    return report_table(workload, target.name, models, phases_by)
