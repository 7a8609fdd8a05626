"""The project's error type for expected failures (bad input, missing files, broken runs).

Entry points catch `UserError`, print its message and exit non-zero: a traceback means a bug.
"""


class UserError(Exception):
    """A failure the user can fix; the message says what is wrong and how to fix it."""
