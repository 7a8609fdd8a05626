"""The `metrics.recall_at_k` that ../shared/reference/check_reference.py imports from its --code folder."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "code"))

from embedding_transfer.metrics import recall_at_k  # noqa: E402,F401
