"""scripts/mini_reproduction.sh end to end on a tiny CUB tree: every setting, both baselines, the
table and figure, and a second call that reuses the finished runs."""
import csv
import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.e2e
def test_mini_reproduction_runs_resumes_and_tabulates(tiny_cub, tmp_path):
    env = {**os.environ, "PYTHON": sys.executable, "DATASET": "cub", "DATA_DIR": str(tiny_cub),
           "OUT": str(tmp_path / "runs"), "MISC": str(tmp_path / "misc"), "EPOCHS": "1", "SOURCE_EPOCHS": "1",
           "METHODS": "Relaxed_Contra FitNet", "WORKERS": "0"}
    script = os.path.join(ROOT, "scripts", "mini_reproduction.sh")
    first = subprocess.run(["bash", script], env=env, capture_output=True, text=True, timeout=900)
    assert first.returncode == 0, first.stderr[-3000:]
    table = (tmp_path / "misc" / "mini_reproduction.md").read_text()
    for heading in ("### self-transfer: resnet_narrow-512 → resnet_narrow-512",
                    "### dimensionality reduction: resnet_narrow-512 → resnet_narrow-64",
                    "### compression: resnet_narrow-512 → resnet_tiny-128"):
        assert heading in table
    with open(tmp_path / "misc" / "mini_reproduction.csv") as f:
        rows = list(csv.DictReader(f))
    assert sorted((r["setting"], r["method"]) for r in rows) == sorted(
        [("source", "source (Proxy_Anchor)")]
        + [(s, m) for s in ("self-transfer", "dimensionality reduction", "compression")
           for m in ("Relaxed_Contra", "FitNet")]
        + [("no source", f"Proxy_Anchor (no source) [epochs={n}]") for n in (1, 2)] * 3)
    # The baselines are evaluated as the source is: on L2-normalised embeddings.
    for r in rows:
        if r["setting"] == "no source":
            with open(os.path.join(r["run"], "args.json")) as f:
                assert json.load(f)["target_norm"] == 1
    assert (tmp_path / "misc" / "mini_reproduction.png").stat().st_size > 10000
    # Finished runs are not trained again; the table is rebuilt from them unchanged.
    second = subprocess.run(["bash", script], env=env, capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stderr[-3000:]
    assert second.stdout.count("== done already") == 13 and "epoch 0:" not in second.stdout
    assert (tmp_path / "misc" / "mini_reproduction.md").read_text() == table


def test_unknown_setting_is_refused_before_any_training(tmp_path):
    env = {**os.environ, "PYTHON": sys.executable, "SETTINGS": "self_transfer compresion", "OUT": str(tmp_path)}
    p = subprocess.run(["bash", os.path.join(ROOT, "scripts", "mini_reproduction.sh")], env=env,
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 2 and "unknown setting 'compresion'" in p.stderr
    assert not os.listdir(tmp_path)
