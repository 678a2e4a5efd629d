"""Per-layer KV caches let the allocator split the cache over memories (issue 10).

extract-kv-cache makes one key and one value cache per layer. On riscv-ulp (SRAM 240 KiB and a
64 KiB DTIM) stories260K then holds 240 positions: the caches of 240 positions take 300 KiB in
all, more than any one writable memory, so a single cache tensor for all layers could not be
placed at that capacity; split per layer, some layers' caches go to the DTIM and the rest to the
SRAM. The program built from that plan still prints the golden tokens on qemu.
"""

from __future__ import annotations

import json
from pathlib import Path

from tests.requirements import need
from tests.test_riscv_ulp import TARGET_JSON, _compile, _golden

CAPACITY = 240
LAYERS, KV_HEADS, HEAD_DIM = 5, 4, 8  # stories260K (shared models README)


def _state_spaces(module) -> dict[str, tuple[str, int]]:
    """@state.* global -> (memory space, bytes), read from the placed memory-level IR."""
    out = {}
    for op in module.body.block.ops:
        if op.name == "memory.global" and op.properties["sym_name"].data.startswith("state."):
            t = op.properties["type"]
            n = 4
            for d in t.get_shape():
                n *= d
            out[op.properties["sym_name"].data] = (t.memory_space.space.data, n)
    return out


def test_stories260k_caches_split_over_dtim_and_sram_give_the_golden_tokens(
        shared_models, tmp_path):
    from irtool.tokenizer import load_tokenizer

    d = shared_models / "stories260K"
    golden = _golden(shared_models, "stories260K")
    project = _compile(d / "stories260K.bin", tmp_path / "p", golden["prompt_ids"],
                       golden["n_new"], load_tokenizer(d / "tok512.bin"), capacity=CAPACITY)
    hw = project.extra["module"]
    spaces = _state_spaces(hw)
    per_cache = CAPACITY * KV_HEADS * HEAD_DIM * 4
    assert spaces == {f"state.{kv}cache{layer}": (spaces[f"state.{kv}cache{layer}"][0],
                                                   per_cache)
                      for layer in range(LAYERS) for kv in "kv"}
    used = {space for space, _ in spaces.values()}
    assert used == {"dtim", "sram"}, spaces
    # one tensor of all layers' caches would fit no writable memory of the target
    writable = [m["size"] - m.get("reserved", 0)
                for m in json.loads(Path(TARGET_JSON).read_text())["memories"]
                if not m["read_only"]]
    assert len(writable) == 2
    assert 2 * LAYERS * per_cache > max(writable)
    # the program runs from that plan
    need("qemu")
    assert project.qemu.tokens == golden["new_ids"]
