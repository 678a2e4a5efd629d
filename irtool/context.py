"""The one place that knows which dialects irtool parses.

xDSL ships a CIRCT dialect also called `hw`, and its blob store for `dense_resource` is
process-global; both are sidestepped here: we register only the xDSL dialects we use (never
xDSL's `hw`), and give every Context its own builtin dialect object.
"""

from collections.abc import Callable

from xdsl.context import Context
from xdsl.dialect_interfaces.op_asm import OpAsmDialectInterface
from xdsl.dialects import get_all_dialects
from xdsl.dialects.builtin import Builtin
from xdsl.ir import Dialect

XDSL_DIALECTS = ("func", "arith", "math", "scf", "memref", "tensor", "linalg", "ml_program",
                 "printf")


def _transformer() -> Dialect:
    from irtool.dialects.transformer import Transformer

    return Transformer


def _memory() -> Dialect:
    from irtool.dialects.memory import Memory

    return Memory


def _quant() -> Dialect:
    from irtool.dialects.quant import Quant

    return Quant


def _hw() -> Dialect:
    from irtool.dialects.hw import HW

    return HW


IRTOOL_DIALECTS: dict[str, Callable[[], Dialect]] = {"transformer": _transformer,
                                                     "memory": _memory, "hw": _hw,
                                                     "quant": _quant}


def fresh_builtin() -> Dialect:
    """A builtin dialect object of our own, so parsed blobs never leak between modules."""
    return Dialect("builtin", list(Builtin.operations), list(Builtin.attributes),
                   [OpAsmDialectInterface()])


def register_dialects(ctx: Context) -> None:
    """Register (lazily) every dialect an irtool module may contain."""
    xdsl = get_all_dialects()
    if "builtin" not in ctx.registered_dialect_names:
        ctx.register_dialect("builtin", fresh_builtin)
    for name in XDSL_DIALECTS:
        if name not in ctx.registered_dialect_names:
            ctx.register_dialect(name, xdsl[name])
    for name, factory in IRTOOL_DIALECTS.items():
        if name not in ctx.registered_dialect_names:
            ctx.register_dialect(name, factory)


def make_context() -> Context:
    ctx = Context()
    register_dialects(ctx)
    return ctx
