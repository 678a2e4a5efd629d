"""irtool's passes, one per module (installed as `irtool.passes`).

`get_all_passes()` maps pass names to factories that import lazily, as xDSL does, so that a
driver's start-up does not pay for passes it does not run.
"""

from collections.abc import Callable

from xdsl.passes import ModulePass


def get_all_passes() -> dict[str, Callable[[], type[ModulePass]]]:
    return {}
