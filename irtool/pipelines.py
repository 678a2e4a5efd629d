"""Named pass pipelines: `irtool-opt --pipeline=NAME{options}`.

`frontend-cleanup` is generic; every other name is a target of the registry, whose pipeline
is the one `irtool compile --target NAME` runs (one definition, in the target). A target
pipeline takes the user's choices in braces: `riscv-ulp{capacity=128}`, `{window=64}`,
`{quant=w8 kv=int8}`, `{quant=w8a8 calibration=eval_tokens.json}`, `{time-limit=5}`.
"""

from __future__ import annotations

import re

from irtool.errors import IrtoolError

GENERIC: dict[str, str] = {
    # Clean-up after a frontend: fold duplicates, drop dead ops.
    "frontend-cleanup": "canonicalize,cse,dce",
}

_SPEC = re.compile(r"^(?P<name>[A-Za-z0-9_.-]+)(\{(?P<opts>[^{}]*)\})?$")
_INT_OPTIONS = ("capacity", "window", "prefill_tokens", "stream_window")
_TEXT_OPTIONS = ("quant", "kv", "calibration", "prefill")


def pipeline_names() -> list[str]:
    from irtool.targets.registry import known_targets

    return sorted([*GENERIC, *known_targets()])


def expand_pipeline(spec: str) -> str:
    """`riscv-ulp{window=64}` -> the pass pipeline string it stands for."""
    from irtool.targets.registry import get_all_targets, load_target
    from irtool.targets.target import PipelineOptions

    m = _SPEC.match(spec.strip())
    name = spec.strip().split("{", 1)[0].strip()
    if m is None and "{" in spec and (name in GENERIC or name in get_all_targets()):
        # a known pipeline whose braces do not pair: not an "unknown pipeline"
        raise IrtoolError(f"pipeline '{name}': its options go in one pair of braces at the end, "
                          f"e.g. --pipeline='{name}{{capacity=128}}' (got '{spec}')")
    if m is None or (m["name"] not in GENERIC and m["name"] not in get_all_targets()):
        raise IrtoolError(f"unknown pipeline '{spec}' (known: {', '.join(pipeline_names())})")
    opts = (m["opts"] or "").split()
    if m["name"] in GENERIC:
        if opts:
            raise IrtoolError(f"pipeline '{m['name']}' takes no options (got '{opts[0]}')")
        return GENERIC[m["name"]]
    values: dict = {}
    for opt in opts:
        key, eq, value = opt.partition("=")
        key = key.replace("-", "_")
        try:
            if not eq:
                raise ValueError
            if key in _INT_OPTIONS:
                values[key] = int(value)
            elif key in _TEXT_OPTIONS:
                values[key] = value.strip('"')
            elif key == "time_limit":
                values[key] = float(value)
            else:
                raise ValueError
        except ValueError:
            if eq and (key in _INT_OPTIONS or key == "time_limit"):  # known, not a number
                kind = "an integer" if key in _INT_OPTIONS else "a number of seconds"
                raise IrtoolError(f"pipeline '{m['name']}': option {key.replace('_', '-')} "
                                  f"takes {kind}, got '{value}'") from None
            allowed = ", ".join([*(f"{k}=N" for k in _INT_OPTIONS),
                                 *(f"{k}=..." for k in _TEXT_OPTIONS), "time-limit=S"])
            raise IrtoolError(f"pipeline '{m['name']}' does not take the option '{opt}' "
                              f"(options: {allowed})") from None
    return load_target(m["name"]).pipeline(PipelineOptions(**values))
