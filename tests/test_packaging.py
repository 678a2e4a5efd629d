"""A non-editable install must carry everything the commands use at run time.

Built as a wheel (what `pip install .` installs) and checked for the modules that live in the
top-level folders mapped into the package, the bundled example model and the C runtime.
"""

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_wheel_contains_mapped_packages_and_data(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps",
                           "-q", "-w", str(tmp_path), str(ROOT)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    (wheel,) = tmp_path.glob("irtool-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for needed in ("irtool/dialects/transformer.py", "irtool/dialects/memory.py",
                   "irtool/dialects/hw.py", "irtool/passes/allocate.py",
                   "irtool/kernels.py", "irtool/targets/c/emit.py",
                   "irtool/targets/registry.py", "irtool/targets/riscv_ulp/__init__.py",
                   "irtool/targets/host/description.json",
                   "irtool/targets/c/runtime/irt_kernels.h",
                   "irtool/targets/c/runtime/irt_linear.c",
                   "irtool/targets/c/runtime/irt_sample.c",
                   "irtool/targets/c/library/irt_generate.c",
                   "irtool/targets/riscv_ulp/description.json",
                   "irtool/data/stories260K.bin", "irtool/data/tok512.bin"):
        assert needed in names, needed
    assert not any(n.startswith(("passes/", "dialects/", "targets/")) for n in names)
    # every target folder ships whole: its code, its description and its own sources
    for path in sorted((ROOT / "targets").rglob("*")):
        rel = path.relative_to(ROOT / "targets")
        if (path.is_file() and "tests" not in rel.parts and "__pycache__" not in rel.parts
                and path.suffix in (".py", ".json", ".c", ".h", ".S", ".cpp")):
            assert f"irtool/targets/{rel.as_posix()}" in names, rel
