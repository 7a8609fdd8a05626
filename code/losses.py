"""`losses.LOSSES` as a top-level name, for the authors'-values check (../shared/reference/check_reference.py,
which imports it from code/); the library itself is the package embedding_transfer."""
from embedding_transfer.losses import LOSSES  # noqa: F401
