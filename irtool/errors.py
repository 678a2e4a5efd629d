"""User-facing errors.

Every mistake a user can make (a bad file, an unsupported op, a model that does not fit) raises
IrtoolError with a message that names the culprit and says what to do; the drivers print it as
``error: <message>`` and exit with code 1, with no traceback unless ``--debug`` is given.
"""

import re


class IrtoolError(Exception):
    """A user-facing error: printed as 'error: <message>' with exit code 1, no traceback."""


_MARKED_OP = re.compile(r'"([A-Za-z_][\w$.]*)"\(')
_UNDERLINE = re.compile(r"\s*\^+-*\s*$")


def verifier_message(e: Exception) -> str:
    """The message of a verifier error, on one line and prefixed by the failing op's name when
    it does not say it: xDSL's checks of an op's declared operand and result types ("operand
    'rhs' at position 1 does not verify: ...") never name the op, which only the module printed
    in the error's notes marks (the line above the `^^^^` underline)."""
    message = " ".join(line.strip() for line in str(e).splitlines() if line.strip())
    lines = "\n".join(getattr(e, "__notes__", [])).splitlines()
    for above, line in zip(lines, lines[1:], strict=False):
        if _UNDERLINE.match(line):
            found = _MARKED_OP.search(above)
            if found and found.group(1) not in message:
                return f"{found.group(1)}: {message}"
            break
    return message
