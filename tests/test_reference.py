"""The reference check of ../shared (values produced by the authors' code), run as part of the suite.

The same golden data is copied into tests/data/reference_public.pt and checked by our own tests
(tests/*/test_reference_*.py), so a clone without ../shared still tests itself; this test runs the
original script when it is there and skips otherwise.
"""
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "..", "shared", "reference", "check_reference.py")


@pytest.mark.skipif(not os.path.exists(SCRIPT), reason="../shared/reference is not beside this checkout")
def test_shared_reference_check_passes():
    out = subprocess.run([sys.executable, SCRIPT], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout + out.stderr
    assert " 0 failed" in out.stdout


def test_public_golden_copy_is_the_shared_one():
    """The copy under tests/data must not drift from ../shared when both exist."""
    copy = os.path.join(ROOT, "tests", "data", "reference_public.pt")
    assert os.path.getsize(copy) > 0
    shared = os.path.join(ROOT, "..", "shared", "reference", "public.pt")
    if os.path.exists(shared):
        with open(copy, "rb") as a, open(shared, "rb") as b:
            assert a.read() == b.read()
