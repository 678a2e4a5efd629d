"""User-facing errors.

Every mistake a user can make (a bad file, an unsupported op, a model that does not fit) raises
IrtoolError with a message that names the culprit and says what to do; the drivers print it as
``error: <message>`` and exit with code 1, with no traceback unless ``--debug`` is given.
"""


class IrtoolError(Exception):
    """A user-facing error: printed as 'error: <message>' with exit code 1, no traceback."""
