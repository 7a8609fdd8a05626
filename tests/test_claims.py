"""The claims' paired differences (reporting/claims.py), the still-rising flag and the convergence
curves, on run folders written here."""
import json
import math
import os
import statistics

import pytest
from scipy import stats

from embedding_transfer.reporting.claims import claim_rows, claims_markdown, interval, verdict
from embedding_transfer.reporting.curves import plot_convergence, steps_axis
from embedding_transfer.reporting.runs import Run, find_runs

LITE0 = {"source_model": "efficientnet_lite0", "source_embedding_size": 512, "model": "efficientnet_lite0",
         "dataset": "emoji"}


def fake_run(folder, records, **args):
    """A run folder: args.json holding exactly `args`, metrics.jsonl the records."""
    os.makedirs(folder)
    with open(os.path.join(folder, "args.json"), "w") as f:
        json.dump(args, f)
    with open(os.path.join(folder, "metrics.jsonl"), "w") as f:
        f.writelines(json.dumps({"epoch": i, "loss": 1.0, "lr": 1e-4, "time": 1.0, **r}) + "\n"
                     for i, r in enumerate(records))
    return str(folder)


def val_records(curve, test_at_best):
    """Records whose held-out R@1 follows `curve`; test R@1 only where it improves (as training writes)."""
    out, best = [], -1
    for v in curve:
        r = {"val/R@1": v, "steps": 54}
        if v > best:
            best = v
            r.update({"R@1": test_at_best, "R@2": test_at_best, "R@4": test_at_best, "R@8": test_at_best,
                      "MAP@R": 0.1, "RP": 0.1})
        out.append(r)
    return out


def write_runs(root, seeds=(0, 1, 2, 3, 4)):
    """Per seed: a Lite0 source, self-transfer Relaxed_Contra and RKD, a 64-d Relaxed_Contra and a
    labels-only 64-d baseline, with known test R@1."""
    for s in seeds:
        fake_run(root / f"source_seed{s}", val_records([0.5, 0.6], 0.30 + 0.01 * s), model="efficientnet_lite0",
                 embedding_size=512, dataset="emoji", loss="Proxy_Anchor", seed=s)
        fake_run(root / f"st_rc{s}", val_records([0.5, 0.6], 0.32 + 0.01 * s + 0.002 * (s % 2)), **LITE0,
                 embedding_size=512, loss="Relaxed_Contra", seed=s, source_ckpt=f"seed{s}.pth")
        fake_run(root / f"st_rkd{s}", val_records([0.5, 0.6], 0.31 + 0.01 * s), **LITE0, embedding_size=512,
                 loss="RKD", seed=s, source_ckpt=f"seed{s}.pth")
        fake_run(root / f"dr_rc{s}", val_records([0.5, 0.6], 0.25 + 0.003 * s), **LITE0, embedding_size=64,
                 loss="Relaxed_Contra", seed=s, source_ckpt=f"seed{s}.pth")
        fake_run(root / f"dr_pa{s}", val_records([0.5, 0.6], 0.25 + 0.001 * s * s), model="efficientnet_lite0",
                 embedding_size=64, dataset="emoji", loss="Proxy_Anchor", seed=s, source_ckpt="",
                 source_model="efficientnet_lite0")


def test_interval_is_the_t_interval_of_the_paired_differences():
    diffs = {0: 1.0, 1: 2.5, 2: 0.5, 3: 1.5}
    mean, low, high, n = interval(diffs)
    sem = statistics.stdev(diffs.values()) / math.sqrt(4)
    t = stats.t.ppf(0.975, 3)
    assert (mean, n) == (1.375, 4) and low == pytest.approx(1.375 - t * sem) and high == pytest.approx(1.375 + t * sem)
    assert verdict(interval(diffs)) == "supports"
    assert verdict(interval({s: -d for s, d in diffs.items()})) == "contradicts"
    assert verdict(interval({0: 1.0, 1: -1.5, 2: 0.2})) == "cannot decide"
    assert verdict(interval({0: 3.0})) == "cannot decide"          # one seed: no interval


def test_claims_pair_runs_by_seed(tmp_path):
    write_runs(tmp_path)
    rows = {what: diffs for _, what, diffs in claim_rows(find_runs([str(tmp_path)]))}
    a = rows["self-transfer: Relaxed_Contra − its source (efficientnet_lite0-512)"]
    assert a == pytest.approx({s: 2 + 0.2 * (s % 2) for s in range(5)})    # each target with its own seed's source
    assert rows["self-transfer: Relaxed_Contra − RKD"] == pytest.approx({s: 1 + 0.2 * (s % 2) for s in range(5)})
    c = rows["dimensionality reduction: Relaxed_Contra − Proxy_Anchor (no source) (efficientnet_lite0-64)"]
    assert c == pytest.approx({s: 0.3 * s - 0.1 * s * s for s in range(5)})
    text = claims_markdown(find_runs([str(tmp_path)]))
    assert "| (a) | self-transfer: Relaxed_Contra − its source (efficientnet_lite0-512) | 5 | +2.08 |" in text
    assert "- (a) the self-transfer target beats its source: 2 comparisons: 2 supports." in text


def test_still_rising_and_the_convergence_curves(tmp_path):
    target = dict(LITE0, embedding_size=64, loss="Relaxed_Contra", source_ckpt="s.pth")
    plateau = Run(fake_run(tmp_path / "p", val_records([0.5, 0.6] + [0.59] * 10, 0.3), **target))
    rising = Run(fake_run(tmp_path / "r", val_records([0.5, 0.6] + [0.59] * 8 + [0.61], 0.3), **target))
    assert plateau.still_rising is False and rising.still_rising is True
    assert steps_axis(plateau.epochs)[:3] == [54, 108, 162]
    path = plot_convergence([("self-transfer", [("Relaxed_Contra", plateau.epochs), ("Relaxed_Contra", rising.epochs)])],
                            str(tmp_path / "curves.png"), "curves")
    assert (tmp_path / "curves.png").stat().st_size > 5000 and path.endswith("curves.png")
