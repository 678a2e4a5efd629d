"""`bufferize`: from tensors with value semantics to buffers (the `memory` level).

Every `func.func` whose tensors all have static shapes is rewritten so that each value lives in
a buffer:

* `transformer.weight "n"` becomes one module-level `memory.global @n {kind = "weight"}`
  (shared by all functions) read with `memory.get_global`;
* state arguments (the trailing arguments that come back, updated, as the trailing results
  after the first, e.g. the K/V caches of `@decode`) become one `memory.global {kind = "state"}`
  per position, shared by all functions of the module, so `@prefill` and `@decode` fill the
  same caches; the function loses those arguments and results;
* other tensor arguments and results become memrefs of the same shape;
* every other `transformer` or `quant` op becomes a `memory.kernel` whose body is the op
  itself, reading the buffers of its operands and writing a `memory.alloc`ed buffer, or one it
  may overwrite (see `_out_buffer` for the in-place rules), one out buffer per result: an op
  with several results (`quant.kv_write` returns the int8 cache and its scales) writes them
  all from one kernel.

Quantized data needs nothing special: weights of integer element types (`i8`, `ui8`, `i32`)
become `memory.global`s of that element type, and an int8 KV cache with its scales is state
like any other. Ops are handled generically (by dialect and types), so ops added to
`transformer` or `quant` later, such as those of `extract-kv-cache`, bufferize without changes
here. Buffers stay unplaced: choosing
memory spaces and offsets is the job of `allocate`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from xdsl.context import Context
from xdsl.dialects import func
from xdsl.dialects.builtin import DYNAMIC_INDEX, MemRefType, ModuleOp, TensorType
from xdsl.ir import Attribute, Block, Operation, OpResult, SSAValue
from xdsl.passes import ModulePass
from xdsl.traits import SymbolOpInterface

from irtool.dialects import memory as mem
from irtool.dialects import transformer as tf
from irtool.errors import IrtoolError
from irtool.kernels import kernel_signature
from irtool.lowering import LoweringRules
from irtool.targets.registry import DEFAULT_TARGET, load_target

TRANSFORMER = "transformer."
KERNEL_DIALECTS = (TRANSFORMER, "quant.")

DYNAMIC_HINT = ("use extract-kv-cache{prefill=token-by-token}, whose decode step is static, or "
                "give the prompt a fixed length")


def memref_of(t: TensorType) -> MemRefType:
    """The (unplaced) buffer type holding a tensor of type `t`."""
    return MemRefType(t.element_type, t.get_shape())


def _is_dynamic(t: Attribute) -> bool:
    return isinstance(t, TensorType) and DYNAMIC_INDEX in t.get_shape()


def _has_tensors(fn: func.FuncOp) -> bool:
    """True while a function still computes on tensors at its top level."""
    types = [*fn.function_type.inputs.data, *fn.function_type.outputs.data]
    for block in fn.body.blocks:
        for op in block.ops:
            types += [*op.operand_types, *op.result_types]
    return any(isinstance(t, TensorType) for t in types)


def check_static(fn: func.FuncOp) -> None:
    """Buffers need sizes: name the first dynamic shape in `fn` and say how to avoid it."""
    where = f"function @{fn.sym_name.data}"
    for i, t in enumerate(fn.function_type.inputs.data):
        if _is_dynamic(t):
            raise IrtoolError(f"bufferize: {where} has a dynamic shape: argument {i} is {t}; "
                              f"{DYNAMIC_HINT}")
    for i, t in enumerate(fn.function_type.outputs.data):
        if _is_dynamic(t):
            raise IrtoolError(f"bufferize: {where} has a dynamic shape: result {i} is {t}; "
                              f"{DYNAMIC_HINT}")
    for op in fn.walk():
        for t in op.result_types:
            if _is_dynamic(t):
                raise IrtoolError(f"bufferize: {where} has a dynamic shape: {op.name} gives "
                                  f"{t}; {DYNAMIC_HINT}")


def state_positions(fn: func.FuncOp) -> list[int]:
    """Indices of `fn`'s state arguments.

    After `extract-kv-cache`, a step function returns its primary result first and then the
    updated state: `(tok, pos, K, V) -> (logits, K', V')`, or `(tokens, K, V) -> (...)` for a
    prefill. The state arguments are the trailing arguments whose types match the results
    after the first, position by position. A plain `@forward` has none.
    """
    ins, outs = fn.function_type.inputs.data, fn.function_type.outputs.data
    k = len(outs) - 1
    if k <= 0 or k >= len(ins):
        return []
    first = len(ins) - k
    pairs = zip(ins[first:], outs[1:], strict=False)
    if all(isinstance(a, TensorType) and a == r for a, r in pairs):
        return list(range(first, len(ins)))
    return []


def symbol_name(name: str) -> str:
    """`name` as a bare MLIR symbol: letters, digits, `_`, `$`, `.`; not starting with a digit."""
    s = re.sub(r"[^A-Za-z0-9_$.]", "_", name)
    return s if s and (s[0].isalpha() or s[0] == "_") else "_" + s


@dataclass
class ModuleGlobals:
    """The `memory.global`s of a module, created once and shared by its functions."""

    module: ModuleOp
    taken: set[str] = field(default_factory=set)
    weights: dict[str, mem.GlobalOp] = field(default_factory=dict)
    states: dict[int, mem.GlobalOp] = field(default_factory=dict)
    state_owner: dict[int, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for op in self.module.ops:
            if (iface := op.get_trait(SymbolOpInterface)) is not None:
                self.taken.add(iface.get_sym_attr_name(op).data)

    def _fresh(self, base: str) -> str:
        name, n = symbol_name(base), 0
        while name in self.taken:
            n += 1
            name = f"{symbol_name(base)}_{n}"
        self.taken.add(name)
        return name

    def weight(self, name: str, t: TensorType, fn: str) -> mem.GlobalOp:
        g = self.weights.get(name)
        if g is None:
            g = self.weights[name] = mem.GlobalOp(self._fresh(name), memref_of(t), "weight",
                                                  weight=name)
        elif g.type != memref_of(t):
            raise IrtoolError(f"bufferize: weight \"{name}\" is {t} in @{fn} but {g.type} "
                              "elsewhere in the module")
        return g

    def state(self, position: int, t: TensorType, hint: str | None, fn: str) -> mem.GlobalOp:
        g = self.states.get(position)
        if g is None:
            label = hint if hint else str(position)
            g = self.states[position] = mem.GlobalOp(self._fresh(f"state.{label}"),
                                                     memref_of(t), "state")
            self.state_owner[position] = fn
        elif g.type != memref_of(t):
            raise IrtoolError(f"bufferize: state argument {position} is {t} in @{fn} but "
                              f"{g.type} in @{self.state_owner[position]}; functions of one "
                              "module share their state, so its types must agree")
        return g

    def insert(self) -> None:
        """Place the globals at the top of the module: weights first, then state."""
        new = [*self.weights.values(), *self.states.values()]
        block = self.module.body.block
        if block.first_op is None:
            block.add_ops(new)
        else:
            block.insert_ops_before(new, block.first_op)


def _last_uses(block: Block) -> dict[SSAValue, int]:
    """For each value used in `block`, the index of the top-level op that uses it last."""
    index = {op: i for i, op in enumerate(block.ops)}
    last: dict[SSAValue, int] = {}
    for op in block.ops:
        for inner in op.walk():
            for v in inner.operands:
                last[v] = max(last.get(v, -1), index[op])
    return last


class FunctionBufferizer:
    """Rewrites one function into a new block on buffers, then swaps the bodies."""

    def __init__(self, fn: func.FuncOp, globals_: ModuleGlobals, rules: LoweringRules):
        self.fn = fn
        self.rules = rules
        self.name = fn.sym_name.data
        self.globals = globals_
        self.old = fn.body.block
        self.ops = list(self.old.ops)
        self.index = {op: i for i, op in enumerate(self.ops)}
        self.last_use = _last_uses(self.old)
        self.states = state_positions(fn)
        # value of the old block -> value of the new block (a buffer, or a scalar as it was)
        self.buf: dict[SSAValue, SSAValue] = {}
        # buffers this function allocated: the only ones an op may overwrite in place
        self.owned: set[SSAValue] = set()
        self.weights: dict[str, SSAValue] = {}
        self.new = Block()
        ret = self.old.last_op
        if not isinstance(ret, func.ReturnOp):
            raise IrtoolError(f"bufferize: function @{self.name} does not end with func.return")
        self.ret = ret
        # state position -> the buffer of its global in this function
        self.state_buf: dict[int, SSAValue] = {}
        # state buffer -> the (old) value it holds at the op being rewritten
        self.held: dict[SSAValue, SSAValue] = {}
        # state position -> the values that may be computed in its global (`_lineage`)
        self.lineage = {pos: self._lineage(self.ret.operands[1 + pos])
                        for pos in range(len(self.states))}

    def run(self) -> None:
        self._arguments()
        for op in self.ops[:-1]:
            self._op(op)
        self._return()
        self.fn.body.detach_block(self.old)
        self.fn.body.add_block(self.new)
        self.fn.update_function_type()
        self.old.erase()

    def _arguments(self) -> None:
        """Non-state arguments stay (as memrefs); state arguments become their globals."""
        for i, arg in enumerate(self.old.args):
            if i in self.states:
                continue
            t = memref_of(arg.type) if isinstance(arg.type, TensorType) else arg.type
            new = self.new.insert_arg(t, len(self.new.args))
            new.name_hint = arg.name_hint
            self.buf[arg] = new
        for pos, i in enumerate(self.states):
            arg = self.old.args[i]
            g = self.globals.state(pos, arg.type, arg.name_hint, self.name)
            get = self._emit(mem.GetGlobalOp(g.sym_name.data, g.type))
            get.result.name_hint = arg.name_hint
            self.buf[arg] = self.state_buf[pos] = get.result
            self.held[get.result] = arg

    def _lineage(self, new_state: SSAValue) -> set[SSAValue]:
        """The versions of a state: the value returned as its new content and, recursively,
        the operands of the state's type it is computed from (`K2 = kv_write(K1, ...)`,
        `K1 = kv_write(K0, ...)`). Writing those into the state global is what an update is.
        """
        versions: set[SSAValue] = set()
        todo = [new_state]
        while todo:
            v = todo.pop()
            if v in versions or not isinstance(v, OpResult) or v.type != new_state.type:
                continue
            versions.add(v)
            todo.extend(v.op.operands)
        return versions

    def _emit(self, op: Operation) -> Operation:
        self.new.add_op(op)
        return op

    def _op(self, op: Operation) -> None:
        if isinstance(op, tf.WeightOp):
            self._weight(op)
        elif op.name.startswith(KERNEL_DIALECTS):
            self._kernel(op)
        elif any(isinstance(t, TensorType) for t in (*op.operand_types, *op.result_types)):
            raise IrtoolError(f"bufferize: function @{self.name}: {op.name} computes on tensors "
                              "but is not a transformer or quant op; only those are "
                              "bufferized")
        else:
            new = self._emit(op.clone(value_mapper=self.buf))
            self.buf.update(zip(op.results, new.results, strict=False))

    def _weight(self, op: tf.WeightOp) -> None:
        name = op.weight_name.data
        if name not in self.weights:
            g = self.globals.weight(name, op.result.type, self.name)
            get = self._emit(mem.GetGlobalOp(g.sym_name.data, g.type))
            get.result.name_hint = op.result.name_hint
            self.weights[name] = get.result
        self.buf[op.result] = self.weights[name]

    def _kernel(self, op: Operation) -> None:
        """`memory.kernel ins(operands) outs(result buffers) { op on the block arguments }`."""
        if not all(isinstance(t, TensorType) for t in op.result_types):
            raise IrtoolError(f"bufferize: function @{self.name}: {op.name} has a result that "
                              "is not a tensor; a kernel can only write buffers")
        ins = list(dict.fromkeys(self.buf[v] for v in op.operands))
        outs: list[SSAValue] = []
        for r in op.results:
            out = self._out_buffer(op, r, outs)
            outs.append(out)
            self.buf[r] = out
            if out in self.held:
                self.held[out] = r
        kernel, body = mem.KernelOp.build(ins, outs)
        inner = dict(zip(ins, body.args, strict=False))
        for v, a in zip(ins, body.args, strict=False):
            a.name_hint = v.name_hint
        clone = op.clone(value_mapper={v: inner[self.buf[v]] for v in op.operands})
        body.add_ops([clone, mem.YieldOp(*clone.results)])
        self._emit(kernel)

    def _out_buffer(self, op: Operation, r: SSAValue, taken: list[SSAValue]) -> SSAValue:
        """Where result `r` of `op` is written. In order of preference:

        1. a state global, when `r` is a version of that state (see `_lineage`) and nothing
           reads the value the global holds after `op`: a chain of kv_writes, one per layer,
           then updates the cache in place without a single copy;
        2. the buffer of an operand of the same type, when the kernel the target's rules
           choose for `op` may write that result over that operand (`may_alias` of its
           signature: elementwise and row-wise kernels read an element before writing it),
           `op` is the operand's last use, and the buffer was allocated here (never a
           weight, state, or argument: their contents outlive the value);
        3. a new `memory.alloc`.
        """
        i = self.index[op]
        for pos, buffer in self.state_buf.items():
            if (r in self.lineage[pos] and buffer not in taken
                    and self.last_use.get(self.held[buffer], -1) <= i):
                return buffer
        for v in self._may_alias(op, r):
            b = self.buf[v]
            if (v.type == r.type and b in self.owned and b not in taken
                    and self.last_use.get(v) == i):
                return b
        return self._alloc(r)

    def _may_alias(self, op: Operation, r: SSAValue) -> list[SSAValue]:
        """The operands of `op` whose buffer result `r` may reuse, from the signature of the
        kernel the rules choose (none when no rule applies yet, e.g. before extract-kv-cache
        gives rope its start position)."""
        try:
            call = self.rules.choose(op, lambda v: v, list(op.results))
            sig = kernel_signature(call.kernel)
        except IrtoolError:
            return []
        roles = dict(zip(sig.operands, call.args, strict=False))
        out = [role for role, v in roles.items() if v is r]
        return [roles[read] for w in out for read in sig.aliases(w)
                if roles.get(read) in op.operands]

    def _alloc(self, like: SSAValue) -> SSAValue:
        alloc = self._emit(mem.AllocOp(memref_of(like.type)))
        alloc.result.name_hint = like.name_hint
        self.owned.add(alloc.result)
        return alloc.result

    def _return(self) -> None:
        """Return the non-state results; make sure each state global holds its new value.

        A state result not already computed in its global is copied there. Copies that read
        a global another copy writes (state returned at another position) read it first,
        through a scratch buffer, so the order of the copies does not matter.
        """
        copies = [(self.buf[self.ret.operands[1 + pos]], buffer)
                  for pos, buffer in self.state_buf.items()
                  if self.buf[self.ret.operands[1 + pos]] is not buffer]
        written = {dst for _, dst in copies}
        for k, (src, dst) in enumerate(copies):
            if src in written:
                scratch = self._alloc(src)
                self._emit(mem.CopyOp(src, scratch))
                copies[k] = (scratch, dst)
        for src, dst in copies:
            self._emit(mem.CopyOp(src, dst))
        skip = {1 + pos for pos in self.state_buf}
        keep = [self.buf[v] for j, v in enumerate(self.ret.operands) if j not in skip]
        self._emit(func.ReturnOp(*keep))


@dataclass(frozen=True)
class BufferizePass(ModulePass):
    """Tensors -> buffers for every function of the module (see the module docstring)."""

    name = "bufferize"
    target: str | None = None
    """Whose lowering rules (and so kernels' aliasing) decide in-place reuse."""

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        rules = load_target(self.target or DEFAULT_TARGET).rules
        functions = [f for f in op.ops if isinstance(f, func.FuncOp) and not f.is_declaration
                     and _has_tensors(f)]
        for fn in functions:  # check them all before changing anything
            if len(fn.body.blocks) != 1:
                raise IrtoolError(f"bufferize: function @{fn.sym_name.data} has "
                                  f"{len(fn.body.blocks)} blocks; only single-block functions "
                                  "are supported")
            check_static(fn)
        globals_ = ModuleGlobals(op)
        for fn in functions:
            FunctionBufferizer(fn, globals_, rules).run()
        globals_.insert()
