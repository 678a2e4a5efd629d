"""What an emitter checks before it trusts a module: one call, so every emitter does all of it.

The C program uses the memory plan blindly (`arena + offset`) and copies weights into arenas
byte for byte, so a broken plan or a store entry of the right size but the wrong shape (a
transposed matrix) would compile into a program that prints wrong tokens. Emitters call
`check_before_emission` first.
"""

from __future__ import annotations

from xdsl.dialects.builtin import ModuleOp

from irtool.targets.plan_verifier import verify_module_plan
from irtool.weights import WeightStore, check_store


def check_before_emission(module: ModuleOp, store: WeightStore, target) -> None:
    """The plan holds on `target` (its TargetDescription); the store's entries match the IR
    and are finite.

    An empty store is not checked: `irtool-opt -t c` prints the code only, without weights."""
    verify_module_plan(module, target, "given to the C emitter")
    if store.arrays:
        check_store(module, store, "the weight store given to the C emitter")
