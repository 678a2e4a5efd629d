"""The `memory` dialect: buffers in named memory spaces, and computations on them.

This is the level where every byte gets a home. Values are memrefs; a buffer's memory space
is a `#memory.space<name>` attribute in its type once `allocate` has chosen it (spaces come
from the target description: `flash`, `sram`, `dtim`, `l1`, `hbm0`, ...), and its placement
(`offset`, `alignment`) is a property of the op that creates it.

* `memory.global` declares module-level storage that outlives a call: weights (read-only,
  initialised from the weight store entry `weight`) and state such as KV caches (`kind =
  "state"`, zero-initialised). Functions reach it with `memory.get_global`.
* `memory.alloc` is a function-local buffer (activations, scratch); its lifetime ends with the
  function, so the allocator may overlap buffers whose live ranges do not meet.
* `memory.kernel ins(...) outs(...)` runs the ops of its region on the *values* of its `ins`
  (memrefs are seen as tensors inside) and stores the values it yields into `outs`. This keeps
  one definition of every computation (the `transformer`/`quant` op inside) while making
  reads and writes of buffers explicit; an `outs` buffer that is also in `ins` is in-place.
* `memory.copy`, `memory.subview`, `memory.dma_start`/`memory.dma_wait` move data.
"""

from __future__ import annotations

from collections.abc import Sequence

from xdsl.dialects.builtin import (
    DenseArrayBase,
    IntegerAttr,
    MemRefType,
    StringAttr,
    SymbolNameConstraint,
    SymbolRefAttr,
    TensorType,
    i64,
)
from xdsl.ir import (
    Attribute,
    Block,
    Dialect,
    ParametrizedAttribute,
    Region,
    SSAValue,
    TypeAttribute,
)
from xdsl.irdl import (
    AttrSizedOperandSegments,
    IRDLOperation,
    ParsePropInAttrDict,
    irdl_attr_definition,
    irdl_op_definition,
    lazy_traits_def,
    operand_def,
    opt_prop_def,
    prop_def,
    region_def,
    result_def,
    traits_def,
    var_operand_def,
)
from xdsl.parser import AttrParser
from xdsl.printer import Printer
from xdsl.traits import HasParent, IsTerminator, SymbolOpInterface, SymbolTable
from xdsl.utils.exceptions import VerifyException

GLOBAL_KINDS = ("weight", "state")


@irdl_attr_definition
class SpaceAttr(ParametrizedAttribute):
    """A named memory space of the target: `#memory.space<sram>`."""

    name = "memory.space"
    space: StringAttr

    def __init__(self, space: str | StringAttr):
        super().__init__(StringAttr(space) if isinstance(space, str) else space)

    @classmethod
    def parse_parameters(cls, parser: AttrParser) -> Sequence[Attribute]:
        with parser.in_angle_brackets():
            return (StringAttr(parser.parse_identifier()),)

    def print_parameters(self, printer: Printer) -> None:
        with printer.in_angle_brackets():
            printer.print_string(self.space.data)


@irdl_attr_definition
class DmaTokenType(ParametrizedAttribute, TypeAttribute):
    """Completion handle of an asynchronous transfer."""

    name = "memory.dma_token"


def space_of(t: Attribute) -> str | None:
    """The memory space name of a memref type, or None while unplaced."""
    if isinstance(t, MemRefType) and isinstance(t.memory_space, SpaceAttr):
        return t.memory_space.space.data
    return None


def verify_placement(where: str, buffer_type: Attribute, offset: IntegerAttr | None,
                     alignment: IntegerAttr | None) -> None:
    """Checks shared by everything that creates storage (allocs and globals).

    `where` names the op in the message (`memory.alloc`, `memory.global @kv`).
    """
    if alignment is not None:
        a = alignment.value.data
        if a <= 0 or a & (a - 1):
            raise VerifyException(f"{where}: alignment {a} is not a power of two")
    if offset is not None:
        off = offset.value.data
        if off < 0:
            raise VerifyException(f"{where}: negative offset {off}")
        if space_of(buffer_type) is None:
            raise VerifyException(f"{where}: an offset needs a memory space in the buffer type")
        if alignment is not None and off % alignment.value.data:
            raise VerifyException(f"{where}: offset {off} is not a multiple of the alignment "
                                  f"{alignment.value.data}")


class _PlacedOp(IRDLOperation):
    """Ops that create storage carry its static placement once `allocate` has run."""

    offset = opt_prop_def(IntegerAttr)
    alignment = opt_prop_def(IntegerAttr)

    @property
    def placement(self) -> tuple[str | None, int | None]:
        return (space_of(self.results[0].type),
                None if self.offset is None else self.offset.value.data)


def _placement_props(offset: int | None, alignment: int | None) -> dict[str, Attribute]:
    props: dict[str, Attribute] = {}
    if offset is not None:
        props["offset"] = IntegerAttr(offset, i64)
    if alignment is not None:
        props["alignment"] = IntegerAttr(alignment, i64)
    return props


@irdl_op_definition
class GlobalOp(IRDLOperation):
    """Module-level storage: a weight (read-only, from the store) or persistent state."""

    name = "memory.global"
    sym_name = prop_def(SymbolNameConstraint())
    type = prop_def(MemRefType)
    kind = prop_def(StringAttr)
    weight = opt_prop_def(StringAttr)
    offset = opt_prop_def(IntegerAttr)
    alignment = opt_prop_def(IntegerAttr)
    traits = traits_def(SymbolOpInterface())
    irdl_options = (ParsePropInAttrDict(),)
    assembly_format = "$sym_name attr-dict `:` $type"

    def __init__(self, sym_name: str, memref_type: MemRefType, kind: str,
                 weight: str | None = None, offset: int | None = None,
                 alignment: int | None = None):
        props: dict[str, Attribute] = {"sym_name": StringAttr(sym_name), "type": memref_type,
                                       "kind": StringAttr(kind)}
        if weight is not None:
            props["weight"] = StringAttr(weight)
        props.update(_placement_props(offset, alignment))
        super().__init__(properties=props)

    @property
    def placement(self) -> tuple[str | None, int | None]:
        return space_of(self.type), None if self.offset is None else self.offset.value.data

    def verify_(self) -> None:
        if self.kind.data not in GLOBAL_KINDS:
            raise VerifyException(f"{self.name} @{self.sym_name.data}: kind must be one of "
                                  f"{', '.join(GLOBAL_KINDS)}, got \"{self.kind.data}\"")
        if (self.kind.data == "weight") != (self.weight is not None):
            raise VerifyException(f"{self.name} @{self.sym_name.data}: a weight global names "
                                  "its store entry with `weight`, and only a weight does")
        verify_placement(f"{self.name} @{self.sym_name.data}", self.type, self.offset,
                         self.alignment)


@irdl_op_definition
class GetGlobalOp(IRDLOperation):
    """The buffer of a `memory.global`."""

    name = "memory.get_global"
    global_name = prop_def(SymbolRefAttr, prop_name="name")
    result = result_def(MemRefType)
    assembly_format = "$name attr-dict `:` type($result)"

    def __init__(self, name: str, result_type: MemRefType):
        super().__init__(properties={"name": SymbolRefAttr(name)}, result_types=[result_type])

    def verify_(self) -> None:
        try:
            target = SymbolTable.lookup_symbol(self, self.global_name)
        except ValueError:
            return  # not inside a module yet: checked once it is
        name = self.global_name.string_value()
        if not isinstance(target, GlobalOp):
            raise VerifyException(f"{self.name}: @{name} is not a memory.global of this module")
        if target.type != self.result.type:
            raise VerifyException(f"{self.name} @{name}: result type {self.result.type} "
                                  f"differs from the global's {target.type}")


@irdl_op_definition
class AllocOp(_PlacedOp):
    """A function-local buffer, live from here to its last use."""

    name = "memory.alloc"
    result = result_def(MemRefType)
    irdl_options = (ParsePropInAttrDict(),)
    assembly_format = "attr-dict `:` type($result)"

    def __init__(self, memref_type: MemRefType, offset: int | None = None,
                 alignment: int | None = None):
        super().__init__(result_types=[memref_type],
                         properties=_placement_props(offset, alignment))

    def verify_(self) -> None:
        if any(d < 0 for d in self.result.type.get_shape()):
            raise VerifyException(f"{self.name}: buffers need a static shape, got "
                                  f"{self.result.type}")
        verify_placement(self.name, self.result.type, self.offset, self.alignment)


@irdl_op_definition
class DeallocOp(IRDLOperation):
    """Ends a buffer's life early (the allocator otherwise uses its last use)."""

    name = "memory.dealloc"
    buffer = operand_def(MemRefType)
    assembly_format = "$buffer attr-dict `:` type($buffer)"

    def __init__(self, buffer: SSAValue):
        super().__init__(operands=[buffer])


@irdl_op_definition
class SubviewOp(IRDLOperation):
    """A static rectangular window of a buffer (same space, strided view)."""

    name = "memory.subview"
    source = operand_def(MemRefType)
    offsets = prop_def(DenseArrayBase)
    result = result_def(MemRefType)
    irdl_options = (ParsePropInAttrDict(),)
    assembly_format = "$source attr-dict `:` type($source) `->` type($result)"

    def __init__(self, source: SSAValue, offsets: Sequence[int], sizes: Sequence[int]):
        t = source.type
        assert isinstance(t, MemRefType)
        super().__init__(operands=[source],
                         properties={"offsets": DenseArrayBase.from_list(i64, list(offsets))},
                         result_types=[MemRefType(t.element_type, list(sizes),
                                                  memory_space=t.memory_space)])

    @property
    def static_offsets(self) -> tuple[int, ...]:
        return tuple(self.offsets.get_values())

    def verify_(self) -> None:
        src = _static_shape(self, "source", self.source.type)
        sizes = _static_shape(self, "result", self.result.type)
        offs = self.static_offsets
        if not (len(src) == len(sizes) == len(offs)):
            raise VerifyException(f"{self.name}: source rank {len(src)}, {len(offs)} offsets and "
                                  f"result rank {len(sizes)} differ")
        for i, (o, s, n) in enumerate(zip(offs, sizes, src, strict=True)):
            if o < 0 or o + s > n:
                raise VerifyException(f"{self.name}: dimension {i}: window [{o}, {o + s}) is "
                                      f"outside [0, {n})")
        if self.result.type.element_type != self.source.type.element_type:
            raise VerifyException(f"{self.name}: element types differ")
        if self.result.type.memory_space != self.source.type.memory_space:
            raise VerifyException(f"{self.name}: a view stays in its source's memory space "
                                  f"({self.source.type.memory_space}), got "
                                  f"{self.result.type.memory_space}")


@irdl_op_definition
class AdapterSlabOp(IRDLOperation):
    """The selected task adapter's matrix of a stack of adapters (`--lora`): `[n, ...]` ->
    `[...]`, slab `s` of the leading dimension, `s` chosen at run time (the C runtime's
    `irt_select_adapter`; `compiled` until it is called). A view (same space, contiguous): a
    kernel or a DMA reads one adapter's bytes, not the stack's. For the base model alone
    (s = -1) it is slab 0, and the kernel that adds the delta skips it (a DMA of it, and the
    kernels on the window, do not run: irtool/adapter_guard.py)."""

    name = "memory.adapter_slab"
    source = operand_def(MemRefType)
    compiled = prop_def(IntegerAttr)
    result = result_def(MemRefType)
    irdl_options = (ParsePropInAttrDict(),)
    assembly_format = "$source attr-dict `:` type($source) `->` type($result)"

    def __init__(self, source: SSAValue, compiled: int):
        t = source.type
        assert isinstance(t, MemRefType)
        super().__init__(operands=[source],
                         properties={"compiled": IntegerAttr(compiled, i64)},
                         result_types=[MemRefType(t.element_type, t.get_shape()[1:],
                                                  memory_space=t.memory_space)])

    @property
    def adapters(self) -> int:
        return self.source.type.get_shape()[0]

    @property
    def slab(self) -> int:
        """The slab the interpreter reads: the compiled choice (0 for none)."""
        return max(self.compiled.value.data, 0)

    def verify_(self) -> None:
        src, got = self.source.type, self.result.type
        if not _static_shape(self, "source", src):
            raise VerifyException(f"{self.name}: the source {src} has no leading dimension of "
                                  "adapters to take a slab of")
        _static_shape(self, "result", got)
        if (src.get_shape()[1:] != got.get_shape() or src.element_type != got.element_type
                or src.memory_space != got.memory_space):
            raise VerifyException(f"{self.name}: {got} is not one slab of {src}")
        if not -1 <= self.compiled.value.data < self.adapters:
            raise VerifyException(f"{self.name}: compiled = {self.compiled.value.data} is not "
                                  f"an adapter (-1..{self.adapters - 1})")


def _static_shape(op: IRDLOperation, what: str, t: MemRefType) -> tuple[int, ...]:
    """A view's bounds are checked here, statically: a `?` would be compared as a huge
    negative number (and a window over it accepted or refused for no real reason)."""
    shape = tuple(t.get_shape())
    if any(d < 0 for d in shape):
        raise VerifyException(f"{op.name}: {what} needs a static shape, got {t}")
    return shape


def view_source(op) -> SSAValue | None:
    """The buffer a view op (`memory.subview`, `memory.adapter_slab`) looks into, or None
    for any other op."""
    return op.source if isinstance(op, (SubviewOp, AdapterSlabOp)) else None


def _verify_same_shape(op: IRDLOperation, src: MemRefType, dst: MemRefType) -> None:
    """A transfer moves a whole buffer: both ends have one shape and element type."""
    if src.get_shape() != dst.get_shape() or src.element_type != dst.element_type:
        raise VerifyException(f"{op.name}: source {src} and destination {dst} differ in "
                              "shape or element type")


@irdl_op_definition
class CopyOp(IRDLOperation):
    """Synchronous copy between two buffers of one shape (possibly in different spaces)."""

    name = "memory.copy"
    source = operand_def(MemRefType)
    dest = operand_def(MemRefType)
    assembly_format = "$source `,` $dest attr-dict `:` type($source) `,` type($dest)"

    def __init__(self, source: SSAValue, dest: SSAValue):
        super().__init__(operands=[source, dest])

    def verify_(self) -> None:
        _verify_same_shape(self, self.source.type, self.dest.type)


@irdl_op_definition
class DmaStartOp(IRDLOperation):
    """Starts an asynchronous copy; `memory.dma_wait` on its token completes it."""

    name = "memory.dma_start"
    source = operand_def(MemRefType)
    dest = operand_def(MemRefType)
    token = result_def(DmaTokenType)
    assembly_format = "$source `,` $dest attr-dict `:` type($source) `,` type($dest)"

    def __init__(self, source: SSAValue, dest: SSAValue):
        super().__init__(operands=[source, dest], result_types=[DmaTokenType()])

    def verify_(self) -> None:
        _verify_same_shape(self, self.source.type, self.dest.type)


@irdl_op_definition
class DmaWaitOp(IRDLOperation):
    """Blocks until the transfer of `token` has completed."""

    name = "memory.dma_wait"
    token = operand_def(DmaTokenType)
    assembly_format = "$token attr-dict"

    def __init__(self, token: SSAValue):
        super().__init__(operands=[token])


@irdl_op_definition
class YieldOp(IRDLOperation):
    """The values a `memory.kernel` stores into its `outs`, in order."""

    name = "memory.yield"
    values = var_operand_def()
    traits = lazy_traits_def(lambda: (IsTerminator(), HasParent(KernelOp)))
    assembly_format = "($values^ `:` type($values))? attr-dict"

    def __init__(self, *values: SSAValue):
        super().__init__(operands=[list(values)])


@irdl_op_definition
class KernelOp(IRDLOperation):
    """Computes on the values of `ins` with the ops of its region, writes `outs`.

    Block arguments stand for the `ins`: a memref in `ins` is a tensor of the same shape and
    element type inside; scalars (`index`, integers) pass as they are.
    """

    name = "memory.kernel"
    ins = var_operand_def()
    outs = var_operand_def(MemRefType)
    body = region_def("single_block")
    irdl_options = (AttrSizedOperandSegments(as_property=True),)

    def __init__(self, ins: Sequence[SSAValue], outs: Sequence[SSAValue], body: Region):
        super().__init__(operands=[list(ins), list(outs)], regions=[body])

    @staticmethod
    def inner_type(t: Attribute) -> Attribute:
        """The type a kernel's region sees for an operand of type `t`."""
        if isinstance(t, MemRefType):
            return TensorType(t.element_type, t.get_shape())
        return t

    @classmethod
    def build(cls, ins: Sequence[SSAValue], outs: Sequence[SSAValue]) -> tuple[KernelOp, Block]:
        """An empty kernel; fill the returned block and end it with `memory.yield`."""
        block = Block(arg_types=[cls.inner_type(v.type) for v in ins])
        return cls(ins, outs, Region(block)), block

    @property
    def yield_op(self) -> YieldOp:
        last = self.body.block.last_op
        assert isinstance(last, YieldOp)
        return last

    @property
    def computation(self) -> list:
        """The ops of the body, without the terminator."""
        return [op for op in self.body.block.ops if not isinstance(op, YieldOp)]

    def verify_(self) -> None:
        block = self.body.block
        if len(block.args) != len(self.ins):
            raise VerifyException(f"{self.name}: {len(self.ins)} ins but the body has "
                                  f"{len(block.args)} arguments")
        for i, (arg, v) in enumerate(zip(block.args, self.ins, strict=True)):
            if arg.type != self.inner_type(v.type):
                raise VerifyException(f"{self.name}: body argument {i} is {arg.type}, expected "
                                      f"{self.inner_type(v.type)} for operand {v.type}")
        last = block.last_op
        if not isinstance(last, YieldOp):
            raise VerifyException(f"{self.name}: the body must end with memory.yield")
        if len(last.values) != len(self.outs):
            raise VerifyException(f"{self.name}: yields {len(last.values)} values for "
                                  f"{len(self.outs)} outs")
        for i, (y, o) in enumerate(zip(last.values, self.outs, strict=True)):
            want = self.inner_type(o.type)
            if not isinstance(y.type, TensorType) or (
                    y.type.element_type != want.element_type
                    or len(y.type.get_shape()) != len(want.get_shape())
                    or any(a != b and a >= 0
                           for a, b in zip(y.type.get_shape(), want.get_shape(), strict=True))):
                raise VerifyException(f"{self.name}: yielded value {i} of type {y.type} does "
                                      f"not fit out buffer {o.type}")

    def print(self, printer: Printer) -> None:
        def operand_list(keyword: str, values) -> None:
            printer.print_string(f" {keyword}(")
            if values:  # an empty list prints as `ins()`
                printer.print_list(values, printer.print_operand)
                printer.print_string(" : ")
                printer.print_list((v.type for v in values), printer.print_attribute)
            printer.print_string(")")

        operand_list("ins", self.ins)
        operand_list("outs", self.outs)
        printer.print_string(" ")
        printer.print_region(self.body)
        if self.attributes:
            printer.print_op_attributes(self.attributes, print_keyword=True)

    @classmethod
    def parse(cls, parser) -> KernelOp:
        def operand_list():
            parser.parse_punctuation("(")
            if parser.parse_optional_punctuation(")") is not None:
                return []
            vals = parser.parse_optional_undelimited_comma_separated_list(
                parser.parse_optional_unresolved_operand, parser.parse_unresolved_operand) or []
            parser.parse_punctuation(":")
            types = parser.parse_comma_separated_list(parser.Delimiter.NONE, parser.parse_type) \
                if vals else []
            parser.parse_punctuation(")")
            return parser.resolve_operands(vals, types, parser.pos)

        parser.parse_keyword("ins")
        ins = operand_list()
        parser.parse_keyword("outs")
        outs = operand_list()
        body = parser.parse_region()
        attrs = parser.parse_optional_attr_dict_with_keyword()
        op = cls(ins, outs, body)
        if attrs is not None:
            op.attributes.update(attrs.data)
        return op


Memory = Dialect(
    "memory",
    [GlobalOp, GetGlobalOp, AllocOp, DeallocOp, SubviewOp, AdapterSlabOp, CopyOp, DmaStartOp,
     DmaWaitOp, KernelOp, YieldOp],
    [SpaceAttr, DmaTokenType],
)
