"""The project's error type for expected failures (bad input, missing files, broken runs), and
its warnings.

Entry points catch `UserError`, print its message and exit non-zero: a traceback means a bug.
"""
import sys


WORKER_PREFIX = "Caught UserError in DataLoader worker"


class UserError(Exception):
    """A failure the user can fix; the message says what is wrong and how to fix it.

    Raised in a DataLoader worker, it comes back re-created from PyTorch's wrapper message
    ("Caught UserError in DataLoader worker process N. Original Traceback ..."); the original
    message is kept and the worker's traceback dropped, so that it still prints as one line."""

    def __init__(self, message=""):
        message = str(message)
        if message.startswith(WORKER_PREFIX) and "UserError: " in message:
            message = message.rsplit("UserError: ", 1)[1].strip()
        super().__init__(message)


def warn(msg):
    """One 'warning: ...' line on stderr."""
    print(f"warning: {msg}", file=sys.stderr, flush=True)
