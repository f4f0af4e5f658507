"""The one project error type: its message is a single line that says what is wrong and how to fix it."""


class PemError(Exception):
    """A user-facing error. Commands print ``error: <message>`` and exit non-zero, never a traceback."""
