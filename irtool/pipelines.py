"""Named pass pipelines: `irtool-opt --pipeline=NAME` runs the sequence given here.

A pipeline is a plain xDSL pipeline string, so `--pipeline=NAME` and `-p <string>` are
interchangeable. A target pipeline takes the KV-cache options of `extract-kv-cache` in braces,
`--pipeline=riscv-ulp{capacity=128}` or `{window=64}`, because what fits a small chip depends
on the context it must hold.
"""

from __future__ import annotations

import re

from irtool.errors import IrtoolError

KV = "@KV@"  # where a target pipeline's KV-cache options go

PIPELINES: dict[str, str] = {
    # Clean-up after a frontend: fold duplicates, drop dead ops.
    "frontend-cleanup": "canonicalize,cse,dce",
    # Bare-metal RV32 with Flash/SRAM/DTIM: one decode kernel set (token-by-token prefill),
    # buffers placed by CP-SAT, weights read in place from Flash, runtime kernel calls.
    # Emit the C project with `-t c-project{dir=OUT}`.
    "riscv-ulp": ("canonicalize,cse,extract-kv-cache{prefill=token-by-token" + KV + "},"
                  "bufferize,allocate{target=riscv-ulp copy-weights=false},"
                  "lower-to-hw{target=riscv-ulp}"),
}

_KV_OPTIONS = ("capacity", "window")
_SPEC = re.compile(r"^(?P<name>[A-Za-z0-9_-]+)(\{(?P<opts>[^{}]*)\})?$")


def expand_pipeline(spec: str) -> str:
    """`riscv-ulp{window=64}` -> the pass pipeline string it stands for."""
    m = _SPEC.match(spec.strip())
    if m is None or m["name"] not in PIPELINES:
        raise IrtoolError(f"unknown pipeline '{spec}' (known: {', '.join(sorted(PIPELINES))})")
    template, opts = PIPELINES[m["name"]], (m["opts"] or "").split()
    for opt in opts:
        key = opt.split("=", 1)[0]
        if key not in _KV_OPTIONS or "=" not in opt or KV not in template:
            allowed = ", ".join(f"{k}=N" for k in _KV_OPTIONS) if KV in template else "none"
            raise IrtoolError(f"pipeline '{m['name']}' does not take the option '{opt}' "
                              f"(options: {allowed})")
    return template.replace(KV, "".join(" " + o for o in opts))
