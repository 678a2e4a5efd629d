"""Does the program fit beside the weights? Checked when the project is written, not by the
linker at `make`.

The allocator plans the weights of a read-only memory into its size less the `reserved`
bytes kept for the program. The program itself (code, the C library, constants:
`toolchain.program` in the description, measured with `make size`) is the same for every
model of a target within a few KB, but main.c's token table grows with the vocabulary (5
bytes a token plus the text, targets/c/token_table.py): an 8,192-token model fills a
reserve meant for a few thousand tokens, and what the user then saw was the linker's
"region `flash' overflowed" after irtool had said to run the project. Here the exact table,
the measured program and the plan's weights are added up for each memory that holds them.
"""

from __future__ import annotations

from xdsl.dialects.builtin import ModuleOp

from irtool.errors import IrtoolError
from irtool.liveness import placed_end
from irtool.targets.c.emit import TokenTable
from irtool.targets.c.token_table import table_bytes
from irtool.targets.description import TargetDescription


def program_memory(target: TargetDescription):
    """The read-only memory the program's code and constants go into (picolibc's `flash`
    region: the first read-only memory), or None for a native build."""
    if target.toolchain.layout == "native":
        return None
    return next((m for m in target.memories if m.read_only), None)


def check_program_fits(module: ModuleOp, target: TargetDescription, table: TokenTable,
                       table_memory: str | None = None) -> None:
    """Refuse a project whose program, token table and planned weights overflow a memory.
    `table_memory`: where the target's linker script puts the token table (None: with the
    program). A description without `toolchain.program` checks the table alone."""
    code = program_memory(target)
    if code is None:
        return
    table_mem = code if table_memory is None else target.memory(table_memory)
    tokens = table_bytes(table)
    for mem in {code.name: code, table_mem.name: table_mem}.values():
        parts = [("the weights the plan puts there", placed_end(module, mem.name))]
        if mem is code and target.toolchain.program:
            parts.append(("the program (code, C library, constants; measured)",
                          target.toolchain.program))
        if mem is table_mem:
            parts.append((f"main.c's token table ({len(table.pieces):,} tokens)", tokens))
        need = sum(n for _, n in parts)
        if need <= mem.size:
            continue
        held = ", ".join(f"{what}: {n:,} bytes" for what, n in parts)
        raise IrtoolError(
            f"the model does not fit target '{target.name}': {mem.name} ({mem.size:,} bytes) "
            f"holds {held}; {need - mem.size:,} bytes over. Quantize the weights that stay "
            "there (--quant w8, w4g32 or w1a4; --quantize-lm-head for the classifier), or "
            "use a model with a smaller vocabulary")
