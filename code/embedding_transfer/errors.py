"""The project's error type for expected failures (bad input, missing files, broken runs), and
its warnings.

Entry points catch `UserError`, print its message and exit non-zero: a traceback means a bug.
"""
import contextlib
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


class Problems:
    """Checks run one after another, every failure kept: an entry point checks all its inputs
    (data, weights, checkpoints) before it trains, and names everything that is missing at once
    instead of one problem per attempt.

        problems = Problems()
        with problems.check():
            splits = image_splits(...)
        with problems.check():
            source = build_source(...)
        problems.raise_any()
    """

    def __init__(self):
        self.messages = []

    @contextlib.contextmanager
    def check(self):
        try:
            yield
        except UserError as e:
            self.messages.append(str(e))

    def raise_any(self):
        if len(self.messages) == 1:
            raise UserError(self.messages[0])
        if self.messages:
            raise UserError(f"{len(self.messages)} problems, each to fix before this can run:\n"
                            + "\n".join(f"  {i}. {m}" for i, m in enumerate(self.messages, 1)))
