"""`metrics.recall_at_k` as a top-level name, for the authors'-values check (../shared/reference/check_reference.py,
which imports it from code/); the library itself is the package embedding_transfer."""
from embedding_transfer.metrics import recall_at_k  # noqa: F401
