"""OR-Tools' CP-SAT Python module, imported without pandas.

Why: `ortools.sat.python.cp_model` imports pandas at its top for its `*_series` helpers (sets
of variables indexed by a pandas Index), which irtool never uses; that import was 0.16 s of
the 0.5 s of CPU an `irtool compile` of stories260K takes, a third of the whole. So, when
pandas is not loaded yet, cp_model is imported against a stand-in `pandas` module that holds
only the two names it reads while loading (`Index`, `Series`), and the stand-in is removed
right after: a later `import pandas` anywhere in the process gets the real one. Only
cp_model's own series helpers would see the stand-in (they would fail; nothing calls them).
If loading fails that way (an OR-Tools version that needs more of pandas at import), the
module is imported again normally.
"""

from __future__ import annotations

import importlib
import sys
import types

_MODULE = "ortools.sat.python.cp_model"


class _NotPandas:
    """What cp_model's annotations and isinstance checks see instead of pandas' classes."""


def _stand_in() -> types.ModuleType:
    pandas = types.ModuleType("pandas", "stand-in while ortools' cp_model loads (irtool.cpsat)")
    pandas.Index = pandas.Series = _NotPandas  # type: ignore[attr-defined]
    return pandas


def cp_model() -> types.ModuleType:
    """`ortools.sat.python.cp_model`, loaded on first use (without pandas when it can be)."""
    loaded = sys.modules.get(_MODULE)
    if loaded is not None or "pandas" in sys.modules:
        return loaded or importlib.import_module(_MODULE)
    stand_in = sys.modules["pandas"] = _stand_in()
    try:
        return importlib.import_module(_MODULE)
    except Exception:  # any failure: forget the half-loaded module, import it normally
        sys.modules.pop(_MODULE, None)
        sys.modules.pop("pandas", None)
        return importlib.import_module(_MODULE)
    finally:
        if sys.modules.get("pandas") is stand_in:
            del sys.modules["pandas"]
