"""The one exception type the command line turns into a one-line `Error: ...`."""


class MgrError(Exception):
    """A user-facing error: the message says what is wrong and what to do."""
