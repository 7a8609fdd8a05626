"""The evaluation transforms against the reference implementation's outputs (golden file copied
from ../shared/reference/public.pt, so that the project checks itself without ../shared)."""
import os

import PIL.Image
import pytest
import torch

from embedding_transfer.dataset import build_transform

GOLDEN = os.path.join(os.path.dirname(__file__), "..", "data", "reference_public.pt")
CASES = torch.load(GOLDEN, weights_only=True)["transforms"]


@pytest.mark.parametrize("case", CASES, ids=[c["model"] for c in CASES])
def test_eval_transform_matches_reference(case):
    tf = build_transform(case["model"], train=False)
    got = tf(PIL.Image.fromarray(case["image"].numpy())).double()
    expected = case["out"].double()
    assert got.shape == expected.shape
    assert torch.isfinite(got).all()
    atol = 1e-3 if case["model"] == "bn_inception" else 1e-5  # as check_reference.py
    assert ((got - expected).abs() <= atol).all(), (got - expected).abs().max()
