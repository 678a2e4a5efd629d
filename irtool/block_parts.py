"""Block parts: `@decode` cut into the kernels a dataflow accelerator runs, one per block part.

An FPGA design (or any accelerator with several compute units) does not run op by op: it runs
a few large kernels, each a part of a transformer block, and the host schedules them. This
analysis cuts the op list of a quant- or transformer-level `@decode` into those parts:

* `embed`: everything before the first layer (the token embedding);
* per layer `l`: `attn_in` (the norm and the activation quantizer in front of the attention
  projections), `attn_q`, `attn_k`, `attn_v` (one kernel per projection linear feeding the
  attention: these three read the same input and run at the same time), `attn` (RoPE, the KV
  cache writes, attention over the cache, the output projection and the residual add), `mlp`
  (the rest of the block, up to the residual value the next layer reads);
* `head`: the final norm and the lm_head (the backward slice of the logits back to the
  residual stream).

The residual stream is the values made by `transformer.add` and `transformer.embedding`: the
norm-and-quantize slice of the projections, the residual add after the output projection and
the head all stop there. Every layer must have the same parts with the same ops and shapes
(a kernel is compiled once and run for every layer, with the layer's weights and the layer
index); a layer that differs is refused with the part and layer named. The host runs the parts
in `steps`: parts in one step are independent and run concurrently.

Values that cross parts are activation buffers; weights (`transformer.weight`) and the KV caches
(`@decode`'s state arguments, written in place) are arguments of the parts that read them;
index scalars (`pos`, `pos + 1`) are recomputed in each part from `pos`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from xdsl.dialects import arith, func
from xdsl.dialects.builtin import ModuleOp
from xdsl.ir import BlockArgument, Operation, OpResult, SSAValue

from irtool.errors import IrtoolError
from irtool.ir_names import DECODE

LINEARS = ("transformer.linear", "quant.qlinear", "quant.wlinear")
RESIDUAL = ("transformer.add", "transformer.embedding")
ATTENTION = ("transformer.cached_attention", "quant.cached_attention")
KV_WRITE = ("transformer.kv_write", "quant.kv_write")
"""The float cache ops and their int8-cache forms (which also carry the per-row scales)."""
WEIGHT = "transformer.weight"
PROJECTIONS = ("q", "k", "v")


@dataclass
class Part:
    """One kernel invocation: a block part of one layer (or the embed/head parts)."""

    kind: str
    layer: int | None
    ops: list[Operation]
    inputs: list[SSAValue] = field(default_factory=list)
    """Activations it reads that other parts (or @decode's token argument) make."""
    outputs: list[SSAValue] = field(default_factory=list)
    """Activations it makes that other parts read, or that @decode returns."""
    weights: list[SSAValue] = field(default_factory=list)
    """Results of `transformer.weight` ops, in order of first use."""
    caches: list[BlockArgument] = field(default_factory=list)
    """@decode's KV-cache arguments it reads or writes (in place)."""
    step: int = 0
    copies: dict[SSAValue, int] = field(default_factory=dict)
    """Outputs written to several buffers (one per concurrent reader): value -> how many."""
    copy_of: dict[SSAValue, int] = field(default_factory=dict)
    """Inputs read from one of those copies: value -> which copy (0 is the first)."""

    @property
    def name(self) -> str:
        return self.kind if self.layer is None else f"{self.kind}_{self.layer}"


@dataclass
class BlockParts:
    decode: func.FuncOp
    parts: list[Part]
    layers: int

    @property
    def steps(self) -> list[list[Part]]:
        """Parts grouped by host step, in order; parts of one step run concurrently."""
        out: dict[int, list[Part]] = {}
        for p in self.parts:
            out.setdefault(p.step, []).append(p)
        return [out[k] for k in sorted(out)]

    def kinds(self) -> list[Part]:
        """One representative part per kind (layer 0's for per-layer kinds), in run order."""
        seen: dict[str, Part] = {}
        for p in self.parts:
            seen.setdefault(p.kind, p)
        return list(seen.values())

    @property
    def token(self) -> BlockArgument:
        return self.decode.args[0]

    @property
    def pos(self) -> BlockArgument:
        return self.decode.args[1]

    @property
    def cache_args(self) -> list[BlockArgument]:
        return list(self.decode.args[2:])

    @property
    def logits(self) -> SSAValue:
        ret = self.decode.body.block.last_op
        assert isinstance(ret, func.ReturnOp)
        return ret.arguments[0]


def decode_function(module: ModuleOp) -> func.FuncOp:
    for op in module.body.block.ops:
        if isinstance(op, func.FuncOp) and op.sym_name.data == DECODE:
            return op
    raise IrtoolError(f"the module has no @{DECODE}: run extract-kv-cache first (irtool "
                      "compile does; with irtool-opt: -p 'extract-kv-cache{capacity=N}')")


def _producer(v: SSAValue) -> Operation | None:
    return v.owner if isinstance(v, OpResult) else None


def _is_scalar_or_weight(op: Operation | None) -> bool:
    return op is None or op.name == WEIGHT or isinstance(op, (arith.ConstantOp, arith.AddiOp))


def _cache_root(v: SSAValue) -> BlockArgument:
    """The @decode argument a KV-cache value descends from (through kv_write)."""
    while isinstance(v, OpResult):  # a kv_write's result i is its operand i, updated
        v = v.owner.operands[v.index]
    assert isinstance(v, BlockArgument)
    return v


def split_decode(module: ModuleOp) -> BlockParts:
    """The block parts of `@decode` (see the module docstring)."""
    decode = decode_function(module)
    body = [op for op in decode.body.block.ops if not isinstance(op, func.ReturnOp)]
    compute = [op for op in body if not _is_scalar_or_weight(op)]
    index = {op: i for i, op in enumerate(compute)}
    attentions = [op for op in compute if op.name in ATTENTION]
    if len(attentions) < 2:
        raise IrtoolError(f"block parts: @{DECODE} has {len(attentions)} attention layer(s); "
                          "at least 2 are needed to tell the last layer's MLP from the head")
    owner: dict[Operation, Part] = {}
    parts: list[Part] = []

    def claim(kind: str, layer: int | None, ops) -> Part:
        ops = sorted(set(ops), key=index.__getitem__)
        part = Part(kind, layer, ops)
        for op in ops:
            if op in owner:
                raise IrtoolError(f"block parts: {op.name} would belong to both "
                                  f"{owner[op].name} and {part.name}")
            owner[op] = part
        parts.append(part)
        return part

    layer_parts = []
    for layer, att in enumerate(attentions):
        layer_parts.append(_attention_parts(att, layer, compute, claim))
    layer_parts_first = [min(index[o] for p in lp for o in p.ops) for lp in layer_parts]

    # embed: everything before layer 0; mlp_l: what is left before layer l+1.
    claim("embed", None, [op for op in compute[:layer_parts_first[0]] if op not in owner])
    for layer in range(len(attentions) - 1):
        lo, hi = layer_parts_first[layer], layer_parts_first[layer + 1]
        claim("mlp", layer, [op for op in compute[lo:hi] if op not in owner])
    tail = [op for op in compute[layer_parts_first[-1]:] if op not in owner]
    ret = decode.body.block.last_op
    head_ops = _slice_back(ret.operands[0], set(tail))
    claim("mlp", len(attentions) - 1, [op for op in tail if op not in head_ops])
    claim("head", None, head_ops)
    left = [op for op in compute if op not in owner]
    if left:
        raise IrtoolError(f"block parts: {left[0].name} belongs to no part")
    parts = [p for p in parts if p.ops]
    order = {"embed": 0, "attn_in": 1, "attn_q": 2, "attn_k": 2, "attn_v": 2, "attn": 3,
             "mlp": 4, "head": 5}
    parts.sort(key=lambda p: (-1 if p.layer is None and p.kind == "embed" else
                              (10**9 if p.layer is None else p.layer), order[p.kind]))
    step, last = -1, None
    for p in parts:
        key = (p.layer, order[p.kind])
        if key != last:
            step, last = step + 1, key
        p.step = step
    bp = BlockParts(decode, parts, len(attentions))
    _connect(bp, owner)
    _check_layers_alike(bp)
    _copy_shared_inputs(bp)
    return bp


def _copy_shared_inputs(bp: BlockParts) -> None:
    """Parts of one step run at the same time and must not share a memory channel, not even
    through an input they all read (the quantized vector of attn_q/k/v): the part that makes
    such a value writes one copy per reader, and each reader reads its own."""
    for group in bp.steps:
        readers: dict[SSAValue, list[Part]] = {}
        for part in group:
            for v in part.inputs:
                readers.setdefault(v, []).append(part)
        for v, parts in readers.items():
            if len(parts) < 2:
                continue
            maker = next((p for p in bp.parts if v in p.outputs), None)
            if maker is None:
                raise IrtoolError(f"block parts: {parts[0].name} and {parts[1].name} run at "
                                  "the same time and read a value no part makes (the token?)")
            maker.copies[v] = len(parts)
            for i, part in enumerate(parts):
                part.copy_of[v] = i


def _attention_parts(att: Operation, layer: int, compute, claim) -> list[Part]:
    """attn_in, attn_q/k/v and attn of one layer, from its cached_attention op."""
    core, projections, stack = {att}, [], [att]
    while stack:
        op = stack.pop()
        for i, v in enumerate(op.operands):
            p = _producer(v)
            if _is_scalar_or_weight(p) or p in core or p in projections:
                continue
            if op.name in KV_WRITE and i < len(op.results):
                continue  # the previous layer's cache state (and scales)
            if p.name in LINEARS:
                projections.append(p)
            elif p.name in KV_WRITE or p.name not in RESIDUAL:
                core.add(p)
                stack.append(p)
    roles = {}
    # (q, kcache, vcache, end) or (q, kcache, kscales, vcache, vscales, end)
    kroot = _cache_root(att.operands[1])
    vroot = _cache_root(att.operands[len(att.operands) // 2])
    for proj in projections:
        role = _projection_role(proj, att, kroot, vroot, core)
        if role in roles:
            raise IrtoolError(f"block parts: layer {layer} has two {role} projections")
        roles[role] = proj
    if set(roles) != set(PROJECTIONS):
        raise IrtoolError(f"block parts: layer {layer}'s attention is fed by projections "
                          f"{sorted(roles)}, expected q, k and v")
    pre = set()
    for proj in projections:
        pre |= _slice_back_from_operands(proj, set(compute), stop=set(core))
    # forward: the attention output through the output projection and its residual add
    fwd, frontier, linear_seen = set(), [att], None
    while frontier:
        op = frontier.pop()
        for r in op.results:
            for use in r.uses:
                u = use.operation
                if _is_scalar_or_weight(u) or isinstance(u, func.ReturnOp) or u in fwd:
                    continue
                if linear_seen is not None:
                    continue
                fwd.add(u)
                if u.name in LINEARS:
                    linear_seen = u
                else:
                    frontier.append(u)
    if linear_seen is None:
        raise IrtoolError(f"block parts: layer {layer}'s attention output reaches no "
                          "output projection")
    for use in linear_seen.results[0].uses:
        if use.operation.name == "transformer.add":
            fwd.add(use.operation)
    out = [claim("attn_in", layer, pre)]
    out += [claim(f"attn_{r}", layer, [roles[r]]) for r in PROJECTIONS]
    out.append(claim("attn", layer, core | fwd))
    return [p for p in out if p.ops]


def _projection_role(proj, att, kroot, vroot, core) -> str:
    stack = [proj]
    while stack:
        op = stack.pop()
        for r in op.results:
            for use in r.uses:
                u = use.operation
                if u is att and use.index == 0:
                    return "q"
                if u.name in KV_WRITE and use.index == len(u.results):  # the new rows
                    return "k" if _cache_root(u.operands[0]) is kroot else "v"
                if u in core:
                    stack.append(u)
    raise IrtoolError(f"block parts: projection {proj.name} reaches neither the query nor a "
                      "cache write")


def _slice_back(v: SSAValue, allowed: set[Operation]) -> set[Operation]:
    """Ops of `allowed` that `v` depends on, back to the residual stream (exclusive)."""
    p = _producer(v)
    if p is None or p not in allowed:
        return set()
    return {p} | _slice_back_from_operands(p, allowed, stop=set())


def _slice_back_from_operands(op, allowed, stop) -> set[Operation]:
    out, stack = set(), [op]
    while stack:
        cur = stack.pop()
        for v in cur.operands:
            p = _producer(v)
            if _is_scalar_or_weight(p) or p in out or p in stop or p not in allowed:
                continue
            if p.name in RESIDUAL or p.name in LINEARS or p.name in ATTENTION:
                continue
            out.add(p)
            stack.append(p)
    return out


def _connect(bp: BlockParts, owner: dict[Operation, Part]) -> None:
    """Inputs, outputs, weights and caches of every part."""
    caches = set(bp.cache_args)
    logits = bp.logits
    for part in bp.parts:
        mine = set(part.ops)
        for op in part.ops:
            for v in op.operands:
                p = _producer(v)
                if isinstance(v, BlockArgument):
                    if v in caches:
                        if v not in part.caches:
                            part.caches.append(v)
                    elif v is bp.token and v not in part.inputs:
                        part.inputs.append(v)
                elif p.name == WEIGHT:
                    if v not in part.weights:
                        part.weights.append(v)
                elif p.name in KV_WRITE and p not in mine:
                    root = _cache_root(v)
                    if root not in part.caches:
                        part.caches.append(root)
                elif p not in mine and not _is_scalar_or_weight(p) and v not in part.inputs:
                    part.inputs.append(v)
            for r in op.results:
                if op.name in KV_WRITE:
                    root = _cache_root(r)
                    if root not in part.caches:
                        part.caches.append(root)
                    continue
                used_elsewhere = any(u.operation not in mine and
                                     not isinstance(u.operation, func.ReturnOp)
                                     for u in r.uses)
                if (used_elsewhere or r is logits) and r not in part.outputs:
                    part.outputs.append(r)
    for part in bp.parts:
        part.caches.sort(key=lambda a: a.index)


def signature(part: Part) -> list[str]:
    """What must be equal for two parts to run as one kernel (ops, types, properties)."""
    out = []
    for op in part.ops:
        props = {k: str(v) for k, v in op.properties.items() if k != "layer"}
        out.append(f"{op.name} {[str(t) for t in op.operand_types]} "
                   f"{[str(t) for t in op.result_types]} {sorted(props.items())}")
    out.append(f"in {[str(v.type) for v in part.inputs]} out {[str(v.type) for v in part.outputs]}"
               f" w {[str(v.type) for v in part.weights]} c {[a.index for a in part.caches]}")
    return out


def _check_layers_alike(bp: BlockParts) -> None:
    first: dict[str, Part] = {}
    for p in bp.parts:
        if p.kind not in first:
            first[p.kind] = p
            continue
        a, b = signature(first[p.kind]), signature(p)
        if a != b:
            diff = next((x, y) for x, y in zip(a + [""], b + [""], strict=False) if x != y)
            raise IrtoolError(f"block parts: {p.name} differs from {first[p.kind].name} (one "
                              f"kernel runs every layer): {diff[1][:120]!r} vs {diff[0][:120]!r}")


def weight_name(v: SSAValue) -> str:
    op = _producer(v)
    return op.properties["name"].data


_LAYER_COMPONENT = re.compile(r"(^|\.)[A-Za-z_]+\.\d+(?=\.)|(^|\.)\d+(?=\.)")


def role_name(v: SSAValue) -> str:
    """A C identifier for a weight that is the same in every layer (`layers.3.wq.q8` ->
    `wq_q8`): the layer's index and the component naming the layer list are dropped."""
    name = _LAYER_COMPONENT.sub("", weight_name(v)).lstrip(".")
    ident = re.sub(r"[^A-Za-z0-9_]", "_", name)
    return ident if re.match(r"[A-Za-z_]", ident) else "w_" + ident


@dataclass(frozen=True)
class Port:
    """One argument of a part's kernel: a buffer (m_axi port) or a value passed by value."""

    name: str
    role: str
    """input, output, weight, cache (buffers) or scalar (a one-element weight, by value)."""
    value: SSAValue
    """The value bound to it in this part (the representative's for the kernel's types)."""
    rows: tuple[int, int] | None = None
    """For one stripe of a striped weight matrix: its rows [lo, hi)."""
    copy: int = 0
    """For an activation written once per concurrent reader: which copy."""

    @property
    def key(self) -> tuple:
        """What tells its buffer apart: the value, the stripe's rows, the copy."""
        return (self.value, self.rows, self.copy)

    @property
    def is_buffer(self) -> bool:
        return self.role != "scalar"

    @property
    def nbytes(self) -> int:
        n = numel(self.value)
        if self.rows is not None:
            n = n // self.value.type.get_shape()[0] * (self.rows[1] - self.rows[0])
        return n * _elem_bytes(self.value)


def _elem_bytes(v: SSAValue) -> int:
    t = v.type.element_type
    return max(1, getattr(t, "bitwidth", 32) // 8)


def numel(v: SSAValue) -> int:
    n = 1
    for d in v.type.get_shape():
        n *= d
    return n


def stripe_rows(rows: int, stripes: int) -> list[tuple[int, int]]:
    """[lo, hi) of each of `stripes` (at most `rows`) row blocks, the first ones one longer."""
    s = max(1, min(stripes, rows))
    per = -(-rows // s)
    return [(lo, min(rows, lo + per)) for lo in range(0, rows, per)]


def matrix_weights(part: Part) -> set[SSAValue]:
    """Weights that are the matrix of a linear layer in this part (what gets striped)."""
    return {op.operands[1] for op in part.ops if op.name in LINEARS}


def ports(part: Part, stripes: int = 1) -> list[Port]:
    """The kernel's arguments in order: inputs, weights, caches, outputs (then `pos` and, for
    per-layer parts, `layer`, which are not ports). With `stripes` > 1 the matrix of each
    linear layer is split by rows into that many ports (`<name>_s0`, ...), each its own
    buffer, so that each can sit on its own memory channel and be read in parallel."""
    out: list[Port] = []
    used: set[str] = set()

    def unique(name: str) -> str:
        base, i = name, 1
        while name in used:
            name, i = f"{base}_{i}", i + 1
        used.add(name)
        return name

    matrices = matrix_weights(part) if stripes > 1 else set()
    out += [Port(unique(f"in{i}"), "input", v, copy=part.copy_of.get(v, 0))
            for i, v in enumerate(part.inputs)]
    for w in part.weights:
        if w in matrices:
            base = role_name(w)
            for i, rows in enumerate(stripe_rows(w.type.get_shape()[0], stripes)):
                out.append(Port(unique(f"{base}_s{i}"), "weight", w, rows))
        else:
            out.append(Port(unique(role_name(w)), "scalar" if numel(w) == 1 else "weight", w))
    for c in part.caches:
        out.append(Port(unique(c.name_hint or f"cache{c.index}"), "cache", c))
    for i, v in enumerate(part.outputs):
        out.append(Port(unique(f"out{i}"), "output", v))
        out += [Port(unique(f"out{i}_c{c}"), "output", v, copy=c)
                for c in range(1, part.copies.get(v, 1))]
    return out


def buffer_names(bp: BlockParts, stripes: int = 1) -> dict[tuple, str]:
    """A name for every buffer the host allocates, keyed by `Port.key` (value, stripe rows,
    copy): weights by their store name (`<name>#rows=lo:hi` for a stripe), caches by @decode's
    argument name, activations `act<N>` in order of appearance (`act<N>#copy=<c>` for the
    copies of one read by concurrent parts)."""
    names: dict[tuple, str] = {}
    acts = 0
    for part in bp.parts:
        for port in ports(part, stripes):
            key = port.key
            if key in names or port.role == "scalar":
                continue
            v = port.value
            if port.role == "weight":
                names[key] = weight_name(v) + (f"#rows={port.rows[0]}:{port.rows[1]}"
                                               if port.rows else "")
            elif port.role == "cache":
                names[key] = v.name_hint or f"cache{v.index}"
            elif port.copy:
                names[key] = f"{names[v, None, 0]}#copy={port.copy}"
            else:
                names[key] = f"act{acts}"
                acts += 1
    return names
