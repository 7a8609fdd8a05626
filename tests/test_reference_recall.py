"""Recall@K cases of the golden file (the reference implementation's values), checked exactly."""
import os

import pytest
import torch

from embedding_transfer.metrics import recall_at_k

GOLDEN = torch.load(os.path.join(os.path.dirname(__file__), "data", "reference_public.pt"), weights_only=True)


@pytest.mark.parametrize("case", GOLDEN["recall"], ids=lambda c: "-".join(map(str, c["ks"])))
def test_recall_equals_reference(case):
    got = recall_at_k(case["X"].clone(), case["T"].clone(), list(case["ks"]))
    assert got == pytest.approx(list(case["recall"]), abs=1e-9)
