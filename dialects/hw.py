"""The `hw` dialect: what runs on the target, call by call.

* `hw.call @kernel(args)` calls a kernel of the target's runtime with its arguments in the
  kernel signature's order: buffers (memrefs, already placed) and run-time scalars (`index`)
  as operands, compile-time parameters (sizes, flags, eps) in the `params` dictionary. The
  kernel signatures (`irtool.kernels`) say which operand a kernel writes; the dialect checks
  structure only.
* `hw.parallel` runs its region on `cores` cores of a cluster (fork/join); the interpreter
  runs it once, as a single core would.
* `hw.accel` hands a kernel call to an accelerator `engine` of the target description.
* The target itself is named by the module attribute `hw.target` (`#hw.target<"riscv-ulp">`).

Our `hw` is not CIRCT's `hw` that xDSL also ships: irtool's context never loads xDSL's.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from xdsl.dialects.builtin import (
    I64,
    DictionaryAttr,
    FloatAttr,
    IndexType,
    IntegerAttr,
    MemRefType,
    StringAttr,
    SymbolRefAttr,
)
from xdsl.ir import Attribute, Dialect, ParametrizedAttribute, Region, SSAValue
from xdsl.irdl import (
    IRDLOperation,
    irdl_attr_definition,
    irdl_op_definition,
    opt_prop_def,
    prop_def,
    region_def,
    traits_def,
    var_operand_def,
)
from xdsl.parser import AttrParser
from xdsl.printer import Printer
from xdsl.traits import NoTerminator
from xdsl.utils.exceptions import VerifyException

TARGET_ATTR = "hw.target"


@irdl_attr_definition
class TargetAttr(ParametrizedAttribute):
    """The target description a module is compiled for: `#hw.target<riscv-ulp>`."""

    name = "hw.target"
    target: StringAttr

    def __init__(self, target: str | StringAttr):
        super().__init__(StringAttr(target) if isinstance(target, str) else target)

    @classmethod
    def parse_parameters(cls, parser: AttrParser) -> Sequence[Attribute]:
        with parser.in_angle_brackets():
            return (StringAttr(parser.parse_str_literal()),)

    def print_parameters(self, printer: Printer) -> None:
        with printer.in_angle_brackets():
            printer.print_string_literal(self.target.data)


def _params_attr(params: Mapping[str, int | float | str]) -> DictionaryAttr:
    from xdsl.dialects.builtin import Float32Type, i64

    out: dict[str, Attribute] = {}
    for k, v in params.items():
        if isinstance(v, bool) or isinstance(v, int):
            out[k] = IntegerAttr(int(v), i64)
        elif isinstance(v, float):
            out[k] = FloatAttr(v, Float32Type())
        else:
            out[k] = StringAttr(str(v))
    return DictionaryAttr(out)


class _KernelParams:
    """The callee and compile-time parameters of hw.call and hw.accel as Python values."""

    @property
    def kernel(self) -> str:
        return self.callee.root_reference.data

    def _verify_call(self) -> None:
        """Structural checks shared by hw.call and hw.accel: a named kernel, and operands a
        kernel can take (a tensor was accepted, run by the interpreter as an array and printed
        by the C emitter as a scalar)."""
        if not self.kernel:
            raise VerifyException(f"{self.name}: the kernel name is empty")
        for i, arg in enumerate(self.args):
            if not isinstance(arg.type, MemRefType | IndexType):
                raise VerifyException(f"{self.name} @{self.kernel}: operand {i} is {arg.type}; "
                                      "a kernel takes placed buffers (memref) and run-time "
                                      "scalars (index)")

    def param(self, key: str):
        """A compile-time parameter as a Python value."""
        if self.params is None or key not in self.params.data:
            raise KeyError(f"{self.name} @{self.kernel}: no parameter '{key}'")
        a = self.params.data[key]
        if isinstance(a, IntegerAttr | FloatAttr):
            return a.value.data
        return a.data


@irdl_op_definition
class CallOp(_KernelParams, IRDLOperation):
    """A call of a runtime kernel; operands in the order of the kernel's signature."""

    name = "hw.call"
    callee = prop_def(SymbolRefAttr)
    args = var_operand_def()
    params = opt_prop_def(DictionaryAttr)
    assembly_format = ("$callee `(` $args `)` (`params` $params^)? attr-dict `:` "
                       "type($args)")

    def __init__(self, callee: str, args: Sequence[SSAValue],
                 params: Mapping[str, int | float | str] | None = None):
        props: dict[str, Attribute] = {"callee": SymbolRefAttr(callee)}
        if params:
            props["params"] = _params_attr(params)
        super().__init__(operands=[list(args)], properties=props)



    def verify_(self) -> None:
        # Structural only: which kernels exist and what they take is the kernel library's
        # business (irtool.kernels), checked by lower-to-hw and the emitters, not the dialect.
        self._verify_call()


@irdl_op_definition
class ParallelOp(IRDLOperation):
    """Fork/join over `cores` cores of a cluster; the region is the per-core body."""

    name = "hw.parallel"
    cores = prop_def(IntegerAttr[I64])
    body = region_def("single_block")
    traits = traits_def(NoTerminator())
    assembly_format = "`cores` `(` $cores `)` $body attr-dict"

    def __init__(self, cores: int, body: Region):
        from xdsl.dialects.builtin import i64

        super().__init__(properties={"cores": IntegerAttr(cores, i64)}, regions=[body])

    def verify_(self) -> None:
        if self.cores.value.data <= 0:
            raise VerifyException(f"{self.name}: cores must be positive, got "
                                  f"{self.cores.value.data}")


@irdl_op_definition
class AccelOp(_KernelParams, IRDLOperation):
    """A kernel call offloaded to the accelerator `engine` of the target."""

    name = "hw.accel"
    engine = prop_def(StringAttr)
    callee = prop_def(SymbolRefAttr)
    args = var_operand_def()
    params = opt_prop_def(DictionaryAttr)
    assembly_format = ("$engine $callee `(` $args `)` (`params` $params^)? attr-dict `:` "
                       "type($args)")

    def __init__(self, engine: str, callee: str, args: Sequence[SSAValue],
                 params: Mapping[str, int | float | str] | None = None):
        props: dict[str, Attribute] = {"engine": StringAttr(engine),
                                       "callee": SymbolRefAttr(callee)}
        if params:
            props["params"] = _params_attr(params)
        super().__init__(operands=[list(args)], properties=props)

    def verify_(self) -> None:
        if not self.engine.data:
            raise VerifyException(f"{self.name}: the engine name is empty")
        self._verify_call()


HW = Dialect("hw", [CallOp, ParallelOp, AccelOp], [TargetAttr])
