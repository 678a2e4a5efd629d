"""`irtool estimate CONFIG.json` models the same linears as the model it describes: for each
family of the zoo (tests/hf_zoo.py), the multiply-accumulates per decode token from the
config alone equal those of the imported checkpoint folder (the importer's module, op by op),
with the older key names (GPT-2's n_embd/n_layer/n_head, OPT's ffn_dim) and each family's MLP
(gated or not) read as transformers builds the model."""

from __future__ import annotations

import json

import pytest

from tests import hf_zoo
from tests.requirements import need_module

need_module("torch")
need_module("transformers")

FAMILIES = ["llama-gqa", "gemma", "qwen3", "phi3", "gpt2", "phi", "gpt-neox", "gpt-j", "opt"]


@pytest.mark.parametrize("name", FAMILIES)
def test_config_alone_models_the_checkpoints_linears(name, tmp_path):
    from irtool.estimate import load_workload

    folder = hf_zoo.save_folder(hf_zoo.build(hf_zoo.BY_NAME[name]), tmp_path / name)
    config = folder / "config.json"
    # the folder as transformers wrote it: the older keys where the family has them
    if name == "gpt2":
        assert {"n_embd", "n_layer", "n_head"} <= set(json.loads(config.read_text()))

    def linear_macs(path) -> int:
        work = load_workload(str(path), quantized=False)
        return sum(op.K * op.N for op in work.ops if op.kind == "linear")

    assert linear_macs(config) == linear_macs(folder)
