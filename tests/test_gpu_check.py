"""scripts/gpu_check.sh runs where there is no GPU: the CUDA parts skipped with a line each, the
rest small, the determinism check real, the report written."""
import os
import subprocess

import pytest
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.e2e
@pytest.mark.skipif(torch.cuda.is_available(), reason="on a GPU this is the real, 8-minute check")
def test_gpu_check_runs_on_the_cpu(tmp_path):
    report = tmp_path / "gpu_report.md"
    out = subprocess.run(["bash", os.path.join(ROOT, "scripts", "gpu_check.sh"), "--report", str(report)],
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout + out.stderr
    text = report.read_text()
    for title in ("Test suite on CUDA", "Training step, paper settings", "DDP equality with NCCL"):
        assert f"{title}" in text and f"{title}" in out.stdout
    assert out.stdout.count("skipped: ") == 3
    assert "max |weight difference| 0\n" in text
    assert "| workers | images/s | batches/s |" in text
