"""Named pass pipelines: `irtool-opt --pipeline=NAME` runs the sequence given here.

A pipeline is a plain xDSL pipeline string, so `--pipeline=NAME` and `-p <string>` are
interchangeable; targets add their sequence here as their passes land.
"""

PIPELINES: dict[str, str] = {
    # Clean-up after a frontend: fold duplicates, drop dead ops.
    "frontend-cleanup": "canonicalize,cse,dce",
}
