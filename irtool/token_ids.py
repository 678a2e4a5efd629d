"""Token ids given on the command line (`--tokens`, `--prompt-tokens`, `--stop`): one strict
parser for all of them.

Why strict: Python's `int()` accepts `1_2` and non-ASCII digits, and removing the spaces before
splitting on commas turned `--tokens "1 2"` into the one id 12, a different prompt without a
word. Ids here are ASCII digits, separated by commas, spaces or both; anything else (an empty
item as in `1,,2`, a sign, an underscore) is an error naming the flag.
"""

from __future__ import annotations

import re

from irtool.errors import IrtoolError

_ID = re.compile(r"[0-9]+", re.ASCII)
_SEPARATOR = re.compile(r"\s*,\s*|\s+")


def parse_ids(text: str, flag: str) -> tuple[int, ...]:
    """The ids in `text`, in order; IrtoolError naming `flag` for an empty list or a bad item."""
    stripped = text.strip()
    if not stripped:
        raise IrtoolError(f"{flag} is empty: give at least one token id")
    items = _SEPARATOR.split(stripped)
    for item in items:
        if not _ID.fullmatch(item):
            what = "an empty item" if not item else f"'{item}'"
            raise IrtoolError(f"{flag} expects token ids (non-negative integers) separated by "
                              f"commas or spaces, e.g. 1,403,407; '{text}' has {what}")
    return tuple(int(item) for item in items)
