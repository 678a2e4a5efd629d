"""Reading and writing a module together with its weight store.

Parse and verify failures become IrtoolError with the file name, the location and the
message, so drivers report them in one line instead of a traceback.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp
from xdsl.ir import Block, BlockArgument, Operation
from xdsl.parser import Parser
from xdsl.printer import Printer
from xdsl.utils.exceptions import DiagnosticException, ParseError

from irtool.context import make_context
from irtool.errors import IrtoolError, verifier_message
from irtool.output_safety import (
    IR_TEXT,
    WEIGHT_STORE,
    check_output,
    note_input,
    transaction,
)
from irtool.weights import (
    WeightStore,
    absolutize_store_reference,
    check_store,
    set_store_reference,
    store_path_for,
    store_reference,
    used_weights,
)


def parse_module(text: str, name: str, ctx: Context | None = None) -> ModuleOp:
    ctx = ctx or make_context()
    try:
        module = Parser(ctx, text, name=name).parse_module()
    except ParseError as e:
        raise IrtoolError(f"cannot parse {name}:\n{e}") from None
    except DiagnosticException as e:  # a type constraint checked while parsing an op
        raise IrtoolError(f"cannot parse {name}: {e}") from None
    verify_module(module, name)
    return module


def verify_module(module: ModuleOp, name: str) -> None:
    try:
        module.verify()
    except DiagnosticException as e:
        raise IrtoolError(f"{name} does not verify: {verifier_message(e)}") from None
    check_defined_before_use(module, name)


def check_defined_before_use(module: ModuleOp, name: str) -> None:
    """Every value is defined before its uses (xDSL's verifier does not check dominance, and
    the interpreter and the passes would fail on a use before its definition)."""
    position: dict[Operation, int] = {}
    for op in module.walk():
        block = op.parent_block()
        if block is not None and op not in position:
            for i, o in enumerate(block.ops):
                position[o] = i
    for op in module.walk():
        for v in op.operands:
            if isinstance(v, BlockArgument):
                ok = _encloses(v.block, op)
            else:
                user = _ancestor_in(v.owner.parent_block(), op)
                ok = user is not None and position[v.owner] < position[user]
            if not ok:
                where = f"{v.name_hint or 'a value'} of type {v.type}"
                raise IrtoolError(f"{name} does not verify: {op.name} uses {where} before it is "
                                  "defined (or outside the region that defines it)")


def _ancestor_in(block: Block | None, op: Operation) -> Operation | None:
    """`op` or its ancestor whose block is `block`."""
    cur: Operation | None = op
    while cur is not None and cur.parent_block() is not block:
        cur = cur.parent_op()
    return cur


def _encloses(block: Block, op: Operation) -> bool:
    cur: Operation | None = op
    while cur is not None:
        if cur.parent_block() is block:
            return True
        cur = cur.parent_op()
    return False


def read_module(path: str | os.PathLike[str], ctx: Context | None = None) -> ModuleOp:
    """Parse a `.mlir` file; its store reference becomes absolute."""
    note_input(path, "module")
    try:
        text = Path(path).read_text()
    except OSError as e:
        raise IrtoolError(f"cannot read '{path}': {e.strerror}") from None
    except UnicodeDecodeError as e:
        raise IrtoolError(f"cannot read '{path}': it is not UTF-8 text ({e.reason} at byte "
                          f"{e.start}); is it a model file rather than an .mlir?") from None
    module = parse_module(text, str(path), ctx)
    absolutize_store_reference(module, Path(path).parent)
    return module


def load_store(module: ModuleOp, name: str) -> WeightStore:
    """Load and check the store a module names (an empty store when it names none)."""
    ref = store_reference(module)
    if ref is None:
        if used_weights(module):  # e.g. a compiled project's model.hw.mlir: a record only
            raise IrtoolError(f"'{name}' reads weights but names no weight store (no "
                              "irtool.weights attribute): a compiled project's model.hw.mlir "
                              "is a record of the plan, its weights are in the project's "
                              "binary files; run the project, or the model it was compiled "
                              "from")
        store = WeightStore()
    else:  # only the entries the module uses, checked against the IR as they are read
        store = WeightStore.load(ref, used_weights(module))
    check_store(module, store, ref or f"(none: {name} has no irtool.weights attribute)")
    return store


def load_module(path: str | os.PathLike[str]) -> tuple[ModuleOp, WeightStore]:
    module = read_module(path)
    return module, load_store(module, str(path))


def module_text(module: ModuleOp) -> str:
    out = io.StringIO()
    Printer(stream=out).print_op(module)
    out.write("\n")
    return out.getvalue()


def check_module_destination(path: str | os.PathLike[str]) -> tuple[Path, Path]:
    """(module path, store path) for `write_module`, or the error it would end with (an empty
    or store-like name, a file that is no earlier module or store): commands check before
    their work."""
    path = check_output(path, "module", IR_TEXT)
    store_path = check_output(store_path_for(path), "weight store", WEIGHT_STORE)
    return path, store_path


def write_module(module: ModuleOp, store: WeightStore, path: str | os.PathLike[str]) -> Path:
    """Write `path` and its store `<stem>.weights.npz` beside it; returns the store path.

    Both go through the command's output transaction (irtool.output_safety): written beside
    their destinations, renamed into place when the command succeeds, never over an input nor
    over a file that is not an earlier module (or store)."""
    path, store_path = check_module_destination(path)
    with transaction() as outputs:
        store.save(outputs.file(store_path, "weight store", kind=WEIGHT_STORE))
        set_store_reference(module, store_path.name)
        outputs.file(path, "module", kind=IR_TEXT).write_text(module_text(module))
    return store_path
