"""irtool's passes, one per module (installed as `irtool.passes`).

`get_all_passes()` maps pass names to factories that import lazily, as xDSL does, so that a
driver's start-up does not pay for passes it does not run.
"""

from collections.abc import Callable

from xdsl.passes import ModulePass


def _extract_kv_cache() -> type[ModulePass]:
    from irtool.passes.extract_kv_cache import ExtractKVCachePass

    return ExtractKVCachePass


def _bufferize() -> type[ModulePass]:
    from irtool.passes.bufferize import BufferizePass

    return BufferizePass


def _allocate() -> type[ModulePass]:
    from irtool.passes.allocate import AllocatePass

    return AllocatePass


def _tile() -> type[ModulePass]:
    from irtool.passes.tile import TilePass

    return TilePass


def _lower_to_hw() -> type[ModulePass]:
    from irtool.passes.lower_to_hw import LowerToHwPass

    return LowerToHwPass


def _calibrate() -> type[ModulePass]:
    from irtool.passes.calibrate import CalibratePass

    return CalibratePass


def _quantize() -> type[ModulePass]:
    from irtool.passes.quantize import QuantizePass

    return QuantizePass


def _assign_hbm_banks() -> type[ModulePass]:
    from irtool.passes.assign_hbm_banks import AssignHbmBanksPass

    return AssignHbmBanksPass


XDSL_PASSES = ("canonicalize", "cse", "dce", "licm", "constant-fold-interp")
"""xDSL's generic passes that irtool pipelines use, available under the same names."""


def get_all_passes() -> dict[str, Callable[[], type[ModulePass]]]:
    from xdsl.transforms import get_all_passes as xdsl_passes

    available = xdsl_passes()
    return {
        **{name: available[name] for name in XDSL_PASSES},
        "extract-kv-cache": _extract_kv_cache,
        "bufferize": _bufferize,
        "allocate": _allocate,
        "tile": _tile,
        "lower-to-hw": _lower_to_hw,
        "calibrate": _calibrate,
        "quantize": _quantize,
        "assign-hbm-banks": _assign_hbm_banks,
    }
