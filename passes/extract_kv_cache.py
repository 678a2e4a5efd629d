"""extract-kv-cache: turn the whole-sequence `@forward` into a prefill and a one-token decode step.

`@forward(tokens: tensor<?xi32>) -> tensor<?xVxf32>` recomputes every position for every new
token. This pass makes the KV cache explicit state in the IR, so that every later level (and
the memory planner) sees it as a buffer like any other:

    @decode(%tok: tensor<1xi32>, %pos: index, %K0: tensor<1xKVxCxhd>, %V0, %K1, %V1, ...)
        -> (tensor<1xVxf32>, K0', V0', K1', V1', ...)
    @prefill(%tokens: tensor<?xi32>, %K0, %V0, ...) -> (tensor<?xVxf32>, K0', V0', ...)
                                                                          (prefill=batched)
    @prefill(%tokens: tensor<Txi32>, %pos: index, %K0, %V0, ...) -> (tensor<TxVxf32>, ...)
                                                               (prefill=batched tokens=T)

There is one key and one value cache per layer (arguments `kcache<l>`, `vcache<l>`, in layer
order, K before V), not one tensor for all layers: each is a buffer of its own, so the memory
planner can put some layers' caches in one memory and the rest in another. A cache keeps the
rank-4 `[layers, KV, C, hd]` type the cache ops take, with `layers = 1`, and the ops address it
with `layer = 0` (an op's `layer` is the index inside the buffer it is given, see
`transformer.kv_write`); which model layer a buffer belongs to is in its name.

`decode` is `forward` with every `?` token dimension refined to 1, `rope`/`position_embedding`
started at `%pos`, and each attention replaced by `kv_write` of the new key/value row into
that layer's caches followed by `cached_attention` over the updated caches. `prefill` keeps
the batched attention of `forward` (sliding-window in window mode) and writes all its rows into
the caches. With `window=W` the caches are rings of `W` positions (generation continues past
`W`, each token seeing the last `W`); otherwise they hold `capacity` positions.

With `tokens=T` the prefill is static (what a C target can place in memory): the decode step
over `T` tokens at once, starting at `%pos`: every linear a `[T, d]` GEMM, `T` key/value rows
written into the caches, `cached_attention` of the `T` query rows over them (each row causal up
to its own position). Its numbers are the decode step's, row for row, so a prompt goes in as
chunks of `T` (the last, shorter part through `@decode`) and gives the tokens of token-by-token
prefill; `irtool.prefill_tokens` records `T`.

The module records `irtool.prefill`, `irtool.kv_capacity` and (window mode) `irtool.kv_window`;
`@forward` is removed, so `prefill`/`decode` are the entry points (see ModelRunner for the
calling convention: `decode(tok, pos, *state) -> (logits, *state)`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from xdsl.builder import Builder
from xdsl.context import Context
from xdsl.dialects import arith, func
from xdsl.dialects.builtin import (
    IndexType,
    IntegerAttr,
    ModuleOp,
    StringAttr,
    TensorType,
    i64,
)
from xdsl.ir import Attribute, Block, Operation, Region, SSAValue
from xdsl.passes import ModulePass
from xdsl.rewriter import InsertPoint

from irtool.dialects import transformer as tf
from irtool.errors import IrtoolError
from irtool.ir_names import (
    DECODE,
    FORWARD,
    KV_CAPACITY_ATTR,
    KV_WINDOW_ATTR,
    MAX_SEQ_LEN_ATTR,
    PREFILL,
    PREFILL_ATTR,
    PREFILL_BATCHED,
    PREFILL_MODES,
    PREFILL_TOKENS_ATTR,
)


@dataclass(frozen=True)
class CacheShape:
    """The shape shared by every layer's key and value cache: `[1, kv_heads, capacity, hd]`."""

    layers: int
    kv_heads: int
    head_dim: int
    capacity: int
    element_type: Attribute
    ring: bool

    @property
    def type(self) -> TensorType:
        return TensorType(self.element_type, [1, self.kv_heads, self.capacity, self.head_dim])

    def arg_types(self) -> list[Attribute]:
        """The state arguments of a step: a key and a value cache per layer."""
        return [self.type] * (2 * self.layers)

    def arg_names(self) -> list[str]:
        return [f"{kv}cache{layer}" for layer in range(self.layers) for kv in "kv"]


def _refine_tokens(t: Attribute, tokens: int = 1) -> Attribute:
    """The type with every `?` (in `forward` only the token count is dynamic) set to
    `tokens`."""
    if isinstance(t, TensorType) and tf.DYNAMIC in t.get_shape():
        return TensorType(t.element_type,
                          [tokens if d == tf.DYNAMIC else d for d in t.get_shape()])
    return t


def _index_constant(value: int) -> arith.ConstantOp:
    return arith.ConstantOp(IntegerAttr(value, IndexType()))


class _StepBuilder:
    """Builds one step function by copying the body of `@forward` op by op.

    Ops that do not depend on the position or on earlier tokens are copied unchanged (with
    their result types passed through `refine`); subclasses rewrite the position-dependent
    ones (`rope`, `position_embedding`) and each `attention`, which also threads the caches.
    """

    name: str

    def __init__(self, forward: func.FuncOp, cache: CacheShape):
        self.forward = forward
        self.cache = cache
        self.block = Block(arg_types=self.arg_types(forward.args[0].type))
        self.builder = Builder(InsertPoint.at_end(self.block))
        self.values: dict[SSAValue, SSAValue] = {forward.args[0]: self.block.args[0]}
        first = len(self.block.args) - 2 * cache.layers
        self.caches: list[SSAValue] = list(self.block.args[first:])
        """The current value of each layer's caches: kcache0, vcache0, kcache1, ..."""
        self.layer = 0

    # Hooks of the subclasses --------------------------------------------------------------

    def arg_types(self, tokens: Attribute) -> list[Attribute]:
        raise NotImplementedError

    def arg_names(self) -> list[str]:
        raise NotImplementedError

    def refine(self, t: Attribute) -> Attribute:
        return t

    def positioned(self, op: tf.RopeOp | tf.PositionEmbeddingOp) -> Operation:
        return self.copy(op)

    def attend(self, op: tf.AttentionOp) -> SSAValue:
        raise NotImplementedError

    # The copy ------------------------------------------------------------------------------

    def build(self) -> func.FuncOp:
        for arg, name in zip(self.block.args, self.arg_names(), strict=True):
            arg.name_hint = name
        for op in self.forward.body.block.ops:
            if isinstance(op, func.ReturnOp):
                outputs = [self.values[v] for v in op.operands] + self.caches
                self.builder.insert(func.ReturnOp(*outputs))
            elif isinstance(op, tf.RopeOp | tf.PositionEmbeddingOp):
                self.positioned(op)
            elif isinstance(op, tf.AttentionOp):
                self.values[op.result] = self.attend(op)
                self.layer += 1
            else:
                self.copy(op)
        types = ([a.type for a in self.block.args], [v.type for v in outputs])
        return func.FuncOp(self.name, types, Region(self.block))

    def insert(self, op: Operation) -> Operation:
        self.builder.insert(op)
        return op

    def copy(self, op: Operation, operands: Sequence[SSAValue] | None = None,
             extra_operands: Sequence[SSAValue] = (),
             properties: dict[str, Attribute] | None = None) -> Operation:
        """`op` on the mapped `operands` (default: all of op's) followed by `extra_operands`
        (values of the new function), with refined result types and `properties` added."""
        if op.regions or op.successors:
            raise IrtoolError(f"extract-kv-cache: {op.name} in @forward has regions or "
                              "successors; only straight-line forward functions are supported")
        mapped = [self.values[v] for v in (op.operands if operands is None else operands)]
        new = type(op).create(
            operands=mapped + list(extra_operands),
            result_types=[self.refine(r.type) for r in op.results],
            properties=dict(op.properties) | (properties or {}),
            attributes=dict(op.attributes))
        for old, res in zip(op.results, new.results, strict=True):
            res.name_hint = old.name_hint
            self.values[old] = res
        return self.insert(new)

    @property
    def kcache(self) -> SSAValue:
        """This layer's key cache (as last written)."""
        return self.caches[2 * self.layer]

    @property
    def vcache(self) -> SSAValue:
        return self.caches[2 * self.layer + 1]

    def write_caches(self, op: tf.AttentionOp, pos: SSAValue) -> None:
        """kv_write the key and value rows of `op` into this layer's caches from `pos`."""
        for which, row in ((0, op.key), (1, op.value)):
            slot = 2 * self.layer + which
            write = self.insert(tf.KVWriteOp(self.caches[slot], self.values[row], pos,
                                             layer=0, ring=self.cache.ring))
            write.result.name_hint = f"{'kv'[which]}cache{self.layer}"
            self.caches[slot] = write.result


class _DecodeBuilder(_StepBuilder):
    """`@decode(tok, pos, K, V)`: one token at position `pos` against the caches (or, as
    `@prefill` with `tokens` = T, T tokens at positions `pos .. pos + T - 1`)."""

    name = DECODE

    def __init__(self, forward: func.FuncOp, cache: CacheShape, tokens: int = 1):
        self.tokens = tokens
        super().__init__(forward, cache)
        self.pos = self.block.args[1]
        count = self.insert(_index_constant(tokens))
        end = self.insert(arith.AddiOp(self.pos, count.result))
        end.result.name_hint = "end"
        self.end = end.result

    def arg_types(self, tokens: Attribute) -> list[Attribute]:
        return [_refine_tokens(tokens, self.tokens), IndexType(), *self.cache.arg_types()]

    def arg_names(self) -> list[str]:
        return ["tok" if self.tokens == 1 else "tokens", "pos", *self.cache.arg_names()]

    def refine(self, t: Attribute) -> Attribute:
        return _refine_tokens(t, self.tokens)

    def positioned(self, op: tf.RopeOp | tf.PositionEmbeddingOp) -> Operation:
        """The same op, started at `%pos` (added to the start `forward` already gave it)."""
        start = self.pos
        if op.start is not None:
            start = self.insert(arith.AddiOp(self.values[op.start], self.pos)).result
        return self.copy(op, [v for v in op.operands if v is not op.start], (start,))

    def attend(self, op: tf.AttentionOp) -> SSAValue:
        self.write_caches(op, self.pos)
        new = self.insert(tf.CachedAttentionOp(
            self.values[op.query], self.kcache, self.vcache, self.end, layer=0,
            heads=op.heads.value.data, kv_heads=op.kv_heads.value.data,
            head_dim=op.head_dim.value.data, scale=op.scale.value.data, ring=self.cache.ring))
        new.result.name_hint = op.result.name_hint
        return new.result


class _ChunkBuilder(_DecodeBuilder):
    """`@prefill(tokens, pos, K, V)` with a static token count: the decode step over `T`
    tokens (see the module docstring)."""

    name = PREFILL


class _PrefillBuilder(_StepBuilder):
    """`@prefill(tokens, K, V)`: the batched forward from position 0, filling the caches."""

    name = PREFILL

    def __init__(self, forward: func.FuncOp, cache: CacheShape, window: int | None):
        super().__init__(forward, cache)
        self.window = window
        zero = self.insert(_index_constant(0))
        zero.result.name_hint = "start"
        self.start = zero.result

    def arg_types(self, tokens: Attribute) -> list[Attribute]:
        return [tokens, *self.cache.arg_types()]

    def arg_names(self) -> list[str]:
        return ["tokens", *self.cache.arg_names()]

    def attend(self, op: tf.AttentionOp) -> SSAValue:
        props = {} if self.window is None else {"window": IntegerAttr(self.window, i64)}
        new = self.copy(op, properties=props)
        self.write_caches(op, self.start)
        return new.results[0]


@dataclass(frozen=True)
class ExtractKVCachePass(ModulePass):
    """Replace `@forward` by `@prefill` (optional) and `@decode` with an explicit KV cache.

    Options: `capacity` (positions held; default the module's irtool.max_seq_len), `window`
    (a ring buffer of the last W positions, which is then the capacity) and `prefill`
    ("batched": an `@prefill` over the whole prompt; "token-by-token": the prompt goes
    through `@decode` one token at a time, so no `@prefill` is emitted) and `tokens`
    (batched only: a static `@prefill` of `T` tokens from any position, see the module
    docstring; 0: the dynamic whole-prompt `@prefill`).
    """

    name = "extract-kv-cache"

    capacity: int | None = None
    window: int | None = None
    prefill: str = PREFILL_BATCHED
    tokens: int = 0

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        if self.prefill not in PREFILL_MODES:
            raise IrtoolError(f"extract-kv-cache: prefill must be one of "
                              f"{', '.join(PREFILL_MODES)}, got \"{self.prefill}\"")
        forward = _find_forward(op)
        cache = _cache_shape(forward, self._capacity(op), ring=self.window is not None)
        _check_windows(forward, self.window)
        if self.tokens < 0 or (self.tokens and self.prefill != PREFILL_BATCHED):
            raise IrtoolError(f"extract-kv-cache: tokens={self.tokens} needs prefill=batched "
                              "and a token count of at least 1 (0: a dynamic @prefill)")
        if self.tokens > cache.capacity:
            raise IrtoolError(f"extract-kv-cache: a prefill of tokens={self.tokens} does not "
                              f"fit the KV cache of {cache.capacity} positions; give at most "
                              f"tokens={cache.capacity}")
        steps = [_DecodeBuilder(forward, cache).build()]
        if self.prefill == PREFILL_BATCHED and self.tokens:
            steps.insert(0, _ChunkBuilder(forward, cache, self.tokens).build())
            op.attributes[PREFILL_TOKENS_ATTR] = IntegerAttr(self.tokens, i64)
        elif self.prefill == PREFILL_BATCHED:
            steps.insert(0, _PrefillBuilder(forward, cache, self.window).build())
        op.body.block.insert_ops_before(steps, forward)
        forward.detach()
        forward.erase()
        op.attributes[PREFILL_ATTR] = StringAttr(self.prefill)
        op.attributes[KV_CAPACITY_ATTR] = IntegerAttr(cache.capacity, i64)
        if self.window is not None:
            op.attributes[KV_WINDOW_ATTR] = IntegerAttr(self.window, i64)

    def _capacity(self, module: ModuleOp) -> int:
        """Positions the caches hold: the window, else `capacity`, else irtool.max_seq_len."""
        from irtool.run_limits import check_cache_positions

        context = module.attributes.get(MAX_SEQ_LEN_ATTR)
        context = context.value.data if isinstance(context, IntegerAttr) else None
        for what, value in (("window", self.window), ("capacity", self.capacity)):
            if value is not None:
                check_cache_positions(value, f"extract-kv-cache: {what}", context)
        if self.window is not None:
            if self.capacity is not None and self.capacity != self.window:
                raise IrtoolError(f"extract-kv-cache: a window of {self.window} positions is "
                                  f"a ring cache of {self.window}, but capacity={self.capacity} "
                                  "was also given; give only one of them")
            return self.window
        if self.capacity is not None:
            return self.capacity
        attr = module.attributes.get(MAX_SEQ_LEN_ATTR)
        if not isinstance(attr, IntegerAttr):
            raise IrtoolError(f"extract-kv-cache: the module has no {MAX_SEQ_LEN_ATTR} "
                              "attribute to size the cache; pass capacity=N or window=W")
        return attr.value.data


def _find_forward(module: ModuleOp) -> func.FuncOp:
    """The module's `@forward(tokens: tensor<?xi..>)`, checked to be a whole-sequence step."""
    for op in module.body.block.ops:
        if isinstance(op, func.FuncOp) and op.sym_name.data == FORWARD:
            args = op.args
            if (len(args) != 1 or not isinstance(args[0].type, TensorType)
                    or args[0].type.get_shape() != (tf.DYNAMIC,)):
                raise IrtoolError("extract-kv-cache: @forward must take exactly the token ids "
                                  f"(tensor<?xi32>), got ({', '.join(str(a.type) for a in args)})")
            if not op.body.blocks or len(op.body.blocks) != 1:
                raise IrtoolError("extract-kv-cache: @forward must have a body of one block")
            return op
    names = [o.sym_name.data for o in module.body.block.ops if isinstance(o, func.FuncOp)]
    raise IrtoolError("extract-kv-cache: the module has no @forward function to split into "
                      f"prefill and decode (it has: {', '.join('@' + n for n in names) or 'none'})")


def _cache_shape(forward: func.FuncOp, capacity: int, ring: bool) -> CacheShape:
    """One cache shape for all layers; attention ops must agree on kv_heads and head_dim
    (every layer's buffer has the same type, which the C runtime and the runner rely on)."""
    attentions = [op for op in forward.body.block.ops if isinstance(op, tf.AttentionOp)]
    if not attentions:
        raise IrtoolError("extract-kv-cache: @forward has no transformer.attention op, so there "
                          "is nothing to cache (is the model raised to the transformer level?)")
    first = attentions[0]
    kv_heads, head_dim = first.kv_heads.value.data, first.head_dim.value.data
    for i, op in enumerate(attentions):
        if not op.is_causal:
            raise IrtoolError(f"extract-kv-cache: transformer.attention #{i} is not causal; a "
                              "KV cache needs causal attention (later tokens must not change "
                              "earlier outputs)")
        got = (op.kv_heads.value.data, op.head_dim.value.data)
        if got != (kv_heads, head_dim):
            raise IrtoolError(
                f"extract-kv-cache: transformer.attention #{i} has kv_heads = {got[0]}, "
                f"head_dim = {got[1]} but #0 has kv_heads = {kv_heads}, head_dim = {head_dim}; "
                "every layer's caches must have the same shape")
        if op.key.type.element_type != first.key.type.element_type:
            raise IrtoolError(f"extract-kv-cache: transformer.attention #{i} has keys of "
                              f"{op.key.type.element_type}, #0 of {first.key.type.element_type}")
    return CacheShape(len(attentions), kv_heads, head_dim, capacity,
                      first.key.type.element_type, ring)


def _check_windows(forward: func.FuncOp, window: int | None) -> None:
    """A forward that already slides a window can only be cached with that same window, and
    only if every layer slides the same one: the caches of all layers have one shape, so a
    ring of W positions would cut a full-attention layer (Qwen2's layers below
    max_window_layers) to the last W keys, a silently different model."""
    ops = [o for o in forward.body.block.ops if isinstance(o, tf.AttentionOp)]
    slid = [(i, op.window_size) for i, op in enumerate(ops) if op.window_size is not None]
    if not slid:
        return
    if window != slid[0][1]:
        i, w = slid[0]
        raise IrtoolError(f"extract-kv-cache: transformer.attention #{i} already has "
                          f"window = {w}; run extract-kv-cache with window={w} (irtool "
                          f"generate --level decode and irtool compile: --window {w})")
    other = next(((i, op.window_size) for i, op in enumerate(ops)
                  if op.window_size != slid[0][1]), None)
    if other is not None:
        (i, w), (j, v) = slid[0], other
        what = "attends to every earlier key" if v is None else f"slides a window of {v}"
        raise IrtoolError(f"extract-kv-cache: transformer.attention #{i} slides a window of "
                          f"{w} keys but #{j} {what}: every layer's cache has one shape, so no "
                          "cache fits both; run the model without a cache (irtool generate "
                          "--level forward)")
