"""scripts/mini_reproduction.sh end to end on a tiny CUB tree, in both regimes: every setting with
its ImageNet-pretrained networks, early stopping, both readings of the budgeted baseline, the
table and figures, the claims (converged regime: sources per seed, cached features, seeds side by
side), and a second call that reuses the finished runs."""
import csv
import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.e2e
def test_converged_regime_runs_resumes_and_reads_the_claims(tiny_cub, tmp_path):
    env = {**os.environ, "PYTHON": sys.executable, "DATASET": "cub", "DATA_DIR": str(tiny_cub),
           "OUT": str(tmp_path / "runs"), "MISC": str(tmp_path / "misc"), "EPOCHS": "2", "PATIENCE": "1",
           "CROP": "32", "SEEDS": "0 1", "SPLIT": "head", "VIEWS": "2", "JOBS": "2",
           "METHODS": "Relaxed_Contra PKT", "WORKERS": "1"}
    script = os.path.join(ROOT, "scripts", "mini_reproduction.sh")
    first = subprocess.run(["bash", script], env=env, capture_output=True, text=True, timeout=1800)
    assert first.returncode == 0, first.stderr[-3000:] + "".join(
        open(tmp_path / "runs" / f"lane{j}.log").read()[-2000:] for j in (0, 1) if (tmp_path / "runs" / f"lane{j}.log").exists())
    # Two networks' caches (training and evaluation splits), built before the lanes and only read by them.
    assert len(os.listdir(tmp_path / "runs" / "feature_cache")) == 4
    assert "feature cache" not in "".join(open(tmp_path / "runs" / f"lane{j}.log").read() for j in (0, 1))
    with open(tmp_path / "misc" / "mini_reproduction.csv") as f:
        rows = list(csv.DictReader(f))
    sources = [r for r in rows if r["setting"] == "source"]
    assert sorted((r["target"], r["seed"]) for r in sources) == [
        ("efficientnet_lite0-512", "0"), ("efficientnet_lite0-512", "1"),
        ("efficientnet_lite2-512", "0"), ("efficientnet_lite2-512", "1")]
    for r in rows:
        args = json.load(open(os.path.join(r["run"].split("#")[0], "args.json")))
        assert args["freeze_below"] == "head" and args["cache_views"] == 2 and str(args["seed"]) == r["seed"]
        assert r["still_rising"] in ("0", "1") and int(r["steps"]) > 0
        if r["setting"] != "no source":   # a budgeted baseline's last epoch may end before its first step
            assert int(r["steps"]) >= int(r["epochs_run"])
        if args.get("source_ckpt"):   # each seed's targets learn from that seed's source
            assert f"seed{args['seed']}" in args["source_ckpt"]
    claims = (tmp_path / "misc" / "mini_reproduction_claims.md").read_text()
    for line in ("| (a) | self-transfer: Relaxed_Contra − its source (efficientnet_lite0-512) | 2 |",
                 "| (b) | compression: Relaxed_Contra − PKT | 2 |",
                 "| (c) | dimensionality reduction: Relaxed_Contra − Proxy_Anchor (no source) [budget=same epochs"):
        assert line in claims
    assert (tmp_path / "misc" / "mini_reproduction_curves.png").stat().st_size > 10000
    table = (tmp_path / "misc" / "mini_reproduction.md").read_text()
    second = subprocess.run(["bash", script], env=env, capture_output=True, text=True, timeout=600)
    assert second.returncode == 0, second.stderr[-3000:]
    assert (tmp_path / "misc" / "mini_reproduction.md").read_text() == table


@pytest.mark.e2e
def test_short_regime_runs_resumes_and_tabulates(tiny_cub, tmp_path):
    # The paper's networks (EfficientNet-Lite) at a small crop, on a tiny CUB tree.
    env = {**os.environ, "PYTHON": sys.executable, "DATASET": "cub", "DATA_DIR": str(tiny_cub), "REGIME": "short",
           "OUT": str(tmp_path / "runs"), "MISC": str(tmp_path / "misc"), "EPOCHS": "2", "PATIENCE": "1",
           "SOURCE_EPOCHS": "1", "SOURCE_PATIENCE": "1", "CROP": "32", "SEEDS": "1",
           "METHODS": "Relaxed_Contra", "WORKERS": "1"}
    script = os.path.join(ROOT, "scripts", "mini_reproduction.sh")
    first = subprocess.run(["bash", script], env=env, capture_output=True, text=True, timeout=1800)
    assert first.returncode == 0, first.stderr[-3000:]
    table = (tmp_path / "misc" / "mini_reproduction_short.md").read_text()
    for heading in ("### self-transfer: efficientnet_lite0-512 → efficientnet_lite0-512",
                    "### dimensionality reduction: efficientnet_lite0-512 → efficientnet_lite0-64",
                    "### compression: efficientnet_lite2-512 → efficientnet_lite0-128"):
        assert heading in table
    with open(tmp_path / "misc" / "mini_reproduction_short.csv") as f:
        rows = list(csv.DictReader(f))
    baselines = [f"Proxy_Anchor (no source) [budget=same {b} as Relaxed_Contra]" for b in ("epochs", "wall-clock")]
    assert sorted((r["setting"], r["method"]) for r in rows) == sorted(
        [("source", "source (Proxy_Anchor)")] * 2
        + [(s, "Relaxed_Contra") for s in ("self-transfer", "dimensionality reduction", "compression")]
        + [("no source", b) for b in baselines] * 3)
    for r in rows:
        args = json.load(open(os.path.join(r["run"].split("#")[0], "args.json")))
        assert args["val_classes"] == 0.2 and r["selection"] == "val" and not args["random_init"]
        if r["setting"] == "no source":
            # Normalised like the source; budgeted by its Relaxed_Contra run, whose epochs bound
            # the "same epochs" reading.
            assert args["target_norm"] == 1 and args["time_budget"] > 0
            rc = next(x for x in rows if x["method"] == "Relaxed_Contra" and x["target"] == r["target"]
                      and json.load(open(os.path.join(x["run"], "args.json")))["seed"] == args["seed"])
            if "same epochs" in r["method"]:
                assert int(r["epochs_run"]) == min(int(rc["epochs_run"]), len(open(
                    os.path.join(r["run"].split("#")[0], "metrics.jsonl")).readlines()))
        elif r["setting"] != "source":
            assert args["patience"] == 1 and int(r["epochs_run"]) <= 2
    assert (tmp_path / "misc" / "mini_reproduction_short.png").stat().st_size > 10000
    # Finished runs are not trained again; the table is rebuilt from them unchanged.
    second = subprocess.run(["bash", script], env=env, capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stderr[-3000:]
    assert second.stdout.count("== done already") == 3 + 3 * 2 and "epoch 0:" not in second.stdout
    assert (tmp_path / "misc" / "mini_reproduction_short.md").read_text() == table


@pytest.mark.parametrize("env, message", [
    ({"SETTINGS": "self_transfer compresion"}, "unknown setting 'compresion'"),
    ({"METHODS": "RKD"}, "METHODS must include Relaxed_Contra"),   # the baselines are matched to it
    ({"REGIME": "long"}, "unknown REGIME 'long'"),
])
def test_bad_settings_are_refused_before_any_training(tmp_path, env, message):
    env = {**os.environ, "PYTHON": sys.executable, "OUT": str(tmp_path), **env}
    p = subprocess.run(["bash", os.path.join(ROOT, "scripts", "mini_reproduction.sh")], env=env,
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 2 and message in p.stderr
    assert not os.listdir(tmp_path)
