"""The target registry: every target irtool can compile for, found lazily.

Like xDSL's `get_all_passes`, `get_all_targets()` maps names to factories that import the
target only when it is asked for. Three sources:

* the targets shipped in this package (one folder each under `irtool/targets/`);
* installed packages declaring an entry point in the group `irtool.targets`
  (`[project.entry-points."irtool.targets"] mychip = "mychip.target:make_target"`), so a team
  can ship its chip as its own package;
* a path (`--target DIR` or `target="DIR"` in a pass option): a folder with a
  `description.json` and optionally a `target.py` defining `make_target(folder)`, or a bare
  description `.json` (a C target with the portable kernels).

Loading a target registers its own kernel signatures, so the interpreter can run its calls.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from collections.abc import Callable
from pathlib import Path

from irtool.errors import IrtoolError
from irtool.kernels import register_kernels
from irtool.targets.target import Target

ENTRY_POINT_GROUP = "irtool.targets"
DEFAULT_TARGET = "host"
"""The target passes plan for when no target is given (one flat RAM, portable kernels)."""

_BUILTIN = {
    "riscv-ulp": "irtool.targets.riscv_ulp",
    "host": "irtool.targets.host",
    "matrix8x8": "irtool.targets.matrix8x8",
    "cortex-m7-256k": "irtool.targets.cortex_m7_256k",
    "siracusa": "irtool.targets.siracusa",
    "u280-hls": "irtool.targets.u280_hls",
}
_LOADED: dict[str, Target] = {}


def _builtin(module: str) -> Callable[[], Target]:
    return lambda: importlib.import_module(module).make_target()


def entry_points(group: str):
    """The installed packages' entry points of `group` (importlib.metadata takes 15 ms to
    import: only asked when a name is not a shipped target)."""
    from importlib.metadata import entry_points as installed

    return installed(group=group)


def get_all_targets() -> dict[str, Callable[[], Target]]:
    """Target name -> factory (shipped targets, then entry points; a shipped name wins)."""
    targets: dict[str, Callable[[], Target]] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        targets[ep.name] = (lambda ep=ep: ep.load()())
    targets.update({name: _builtin(mod) for name, mod in _BUILTIN.items()})
    return targets


def known_targets() -> list[str]:
    return sorted(get_all_targets())


def _looks_like_path(text: str) -> bool:
    return text.endswith(".json") or os.sep in text or "/" in text or Path(text).exists()


def load_target(name_or_path: str | os.PathLike[str]) -> Target:
    """The target of a registered name or of a path; loaded once per process."""
    key = str(name_or_path)
    if key in _LOADED:
        return _LOADED[key]
    if not key.strip():  # else read as the path '.', "target folder '.' has no description.json"
        raise IrtoolError(f"the target name is empty; known targets: "
                          f"{', '.join(sorted(get_all_targets()))} (or give the path of a "
                          "target folder or of a description .json)")
    if key in _BUILTIN:  # a shipped name wins over entry points: no need to scan them
        target = _builtin(_BUILTIN[key])()
    elif _looks_like_path(key):
        target = _from_path(Path(key))
    else:
        factories = get_all_targets()
        if key not in factories:
            raise IrtoolError(f"unknown target '{key}'; known targets: "
                              f"{', '.join(sorted(factories))} (or give the path of a target "
                              "folder or of a description .json)")
        target = factories[key]()
    register_kernels(target.kernels)
    _LOADED[key] = target
    return target


def _from_path(path: Path) -> Target:
    from irtool.targets.c.target import CTarget
    from irtool.targets.description import load_description

    if path.is_file():
        return CTarget(load_description(path), reference=str(path.resolve()))
    if not path.is_dir():
        raise IrtoolError(f"target '{path}' not found (give a registered name, a target folder "
                          "or a description .json)")
    if not (path / "description.json").is_file():
        raise IrtoolError(f"target folder '{path}' has no description.json")
    reference = str(path.resolve())
    plugin = path / "target.py"
    if not plugin.is_file():
        return CTarget.from_folder(path, reference=reference)
    name = f"irtool_target_plugin_{abs(hash(reference))}"
    spec = importlib.util.spec_from_file_location(name, plugin)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except IrtoolError:
        raise
    except Exception as e:  # the plugin's own bug: name the file
        raise IrtoolError(f"target plugin '{plugin}' failed to load: {type(e).__name__}: {e}"
                          ) from None
    make = getattr(module, "make_target", None)
    if make is None:
        raise IrtoolError(f"target plugin '{plugin}' defines no make_target(folder)")
    target = make(path)
    if not isinstance(target, Target):
        raise IrtoolError(f"target plugin '{plugin}': make_target returned "
                          f"{type(target).__name__}, not an irtool Target")
    if target.reference == target.description.name:
        target.reference = reference  # passes must find the plugin by its path
    return target


def all_emitters() -> dict[str, Callable[[], type]]:
    """`irtool-opt -t` names: the emitters of every shipped and installed target."""
    out: dict[str, Callable[[], type]] = {}
    for name in known_targets():
        try:
            out.update(load_target(name).emitters())
        except IrtoolError:
            continue  # a broken installed target must not take irtool-opt down
    return out
