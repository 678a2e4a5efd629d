"""Exports zoo models (tests/hf_zoo.py) with optimum's ONNX exporter, task text-generation
(no KV cache): `python -m tests.optimum_export OUT NAME...` writes OUT/NAME/model.onnx (and
the config.json optimum writes beside it).

It runs in the side environment `.venv-optimum` that scripts/setup.sh makes: no released
optimum exporter runs with transformers 5 (optimum-onnx 0.1.0 requires transformers < 4.58),
so that environment pins transformers 4.57 over this checkout's packages (torch, onnx).
tests/hf_zoo.export_optimum calls it; nothing here runs in the main environment.
"""

from __future__ import annotations

import sys
from pathlib import Path


def main(out: Path, names: list[str]) -> None:
    from optimum.exporters.onnx import main_export

    from tests import hf_zoo

    for name in names:
        model = hf_zoo.build(hf_zoo.BY_NAME[name])
        folder = hf_zoo.save_folder(model, out / name / "checkpoint")
        main_export(str(folder), output=str(out / name), task="text-generation",
                    no_post_process=True, do_validation=False)


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2:])
