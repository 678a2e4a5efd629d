"""The layer contracts of pyproject.toml ([tool.importlinter]) hold, checked by import-linter.

The checkout maps dialects/, passes/ and targets/ to irtool.dialects, irtool.passes and
irtool.targets (setuptools package-dir), which import-linter cannot follow: it walks the
directory of `irtool` only. So the package is laid out as it is installed (every module of
every package in [tool.setuptools] packages, copied to where an install puts it) in a
temporary folder, and lint-imports runs there with the contracts of this checkout.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.requirements import need

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = ROOT / "pyproject.toml"


def _packages() -> list[str]:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # Python 3.10 reads TOML with tomli
        need("tomli")
        import tomli as tomllib
    with PYPROJECT.open("rb") as f:
        return tomllib.load(f)["tool"]["setuptools"]["packages"]


def lay_out_installed(dest: Path) -> Path:
    """Copy the Python modules of every irtool package to `dest/irtool/...` (the installed
    layout), each from where the import system finds it in this checkout."""
    for name in _packages():
        spec = importlib.util.find_spec(name)
        assert spec is not None and spec.submodule_search_locations, f"package {name} not found"
        src = Path(list(spec.submodule_search_locations)[0])
        assert src.resolve().is_relative_to(ROOT), f"{name} is imported from {src}, not {ROOT}"
        out = dest.joinpath(*name.split("."))
        out.mkdir(parents=True, exist_ok=True)
        for module in src.glob("*.py"):
            shutil.copy2(module, out / module.name)
    return dest


def lint_imports(tree: Path) -> subprocess.CompletedProcess:
    """lint-imports with this checkout's contracts on the package laid out in `tree`."""
    need("importlinter")
    env = {**os.environ, "PYTHONPATH": str(tree)}
    code = ("import sys; from importlinter.cli import lint_imports; "
            f"sys.exit(lint_imports(config_filename={str(PYPROJECT)!r}, no_cache=True))")
    return subprocess.run([sys.executable, "-c", code], cwd=tree, env=env,
                          capture_output=True, text=True, timeout=300)


def test_layer_contracts_hold(tmp_path):
    proc = lint_imports(lay_out_installed(tmp_path))
    assert proc.returncode == 0, proc.stdout[-10000:] + proc.stderr[-3000:]
    assert "BROKEN" not in proc.stdout and " KEPT" in proc.stdout


def test_an_upward_import_breaks_a_contract(tmp_path):
    """The check sees what it must: a dialect importing a pass through a function-level
    import, and the cycle that makes, are both reported."""
    tree = lay_out_installed(tmp_path)
    (tree / "irtool" / "dialects" / "upward.py").write_text(
        "def f():\n    from irtool.passes import get_all_passes\n\n    return get_all_passes\n")
    proc = lint_imports(tree)
    assert proc.returncode == 1, proc.stdout[-10000:] + proc.stderr[-3000:]
    out = proc.stdout
    assert "dialects import no passes, targets, interpreter, frontend or drivers BROKEN" in out
    assert "irtool.dialects.upward -> irtool.passes" in out
    assert "no import cycles between irtool's packages and modules BROKEN" in out
