"""Run folders read back (runs.py), the paper-layout tables (tables.py), the figures (plots.py) and
the two scripts that print and draw them."""
import csv
import json
import os
import subprocess
import sys

import PIL.Image
import pytest

from embedding_transfer.errors import UserError
from embedding_transfer.reporting.baselines import matched_baselines, wall_clock
from embedding_transfer.reporting.paper_results import paper_value, setting_name
from embedding_transfer.reporting.runs import Run, find_runs
from embedding_transfer.reporting.tables import csv_rows, group_runs, markdown

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET = {"source_ckpt": "s.pth", "source_model": "bn_inception", "source_embedding_size": 512,
          "model": "bn_inception", "embedding_size": 512, "dataset": "cub", "loss": "Relaxed_Contra"}


def fake_run(folder, records, **args):
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "args.json"), "w") as f:
        json.dump({**TARGET, **args}, f)
    with open(os.path.join(folder, "metrics.jsonl"), "w") as f:
        for i, r in enumerate(records):
            f.write(json.dumps({"epoch": i, "loss": 1.0 / (i + 1), "lr": 1e-4, "time": 1.0, **r}) + "\n")
    return str(folder)


def scores(r1, **extra):
    return {"R@1": r1, "R@2": r1 + 0.05, "R@4": r1 + 0.1, "R@8": r1 + 0.15, "MAP@R": r1 / 2, "RP": r1 / 2 + 0.01,
            **extra}


def test_selected_epoch_is_the_first_best_test_r1(tmp_path):
    run = Run(fake_run(tmp_path / "a", [scores(0.5), scores(0.7), scores(0.7), scores(0.6)]))
    assert run.selection == "test" and run.selected["epoch"] == 1
    assert (run.method, run.network, run.teacher) == ("Relaxed_Contra", "bn_inception-512", "bn_inception-512")


def test_selected_epoch_with_validation_classes_ignores_test_scores(tmp_path):
    records = [{"val/R@1": 0.3, **scores(0.5)}, {"val/R@1": 0.2}, {"val/R@1": 0.4, **scores(0.45)},
               {"val/R@1": 0.35}]
    run = Run(fake_run(tmp_path / "a", records))
    assert run.selection == "val" and run.selected["epoch"] == 2 and run.selected["R@1"] == 0.45


def test_partial_last_line_is_tolerated_damage_elsewhere_is_not(tmp_path):
    folder = fake_run(tmp_path / "a", [scores(0.5), scores(0.6)])
    path = os.path.join(folder, "metrics.jsonl")
    with open(path, "a") as f:
        f.write('{"epoch": 2, "R@1"')          # a write interrupted by a crash
    assert len(Run(folder).epochs) == 2
    lines = open(path).read().splitlines()
    with open(path, "w") as f:
        f.write("\n".join([lines[0], "garbage", lines[1]]) + "\n")
    with pytest.raises(UserError, match="line 2"):
        Run(folder)


def test_roles_of_runs(tmp_path):
    source = Run(fake_run(tmp_path / "s", [scores(0.6)], loss="Proxy_Anchor", source_ckpt=None))
    os.remove(os.path.join(source.dir, "args.json"))
    with open(os.path.join(source.dir, "args.json"), "w") as f:
        json.dump({"model": "bn_inception", "embedding_size": 512, "dataset": "cub", "loss": "Proxy_Anchor"}, f)
    source = Run(source.dir)
    baseline = Run(fake_run(tmp_path / "b", [scores(0.5)], loss="Proxy_Anchor"))
    assert source.is_source and source.method == "source (Proxy_Anchor)" and source.teacher is None
    assert not baseline.is_source and baseline.method == "Proxy_Anchor (no source)" and baseline.teacher is None


def test_setting_names_and_paper_values():
    assert setting_name("bn_inception-512", "bn_inception-512") == "self-transfer"
    assert setting_name("bn_inception-512", "bn_inception-64") == "dimensionality reduction"
    assert setting_name("resnet50-512", "resnet18-128") == "compression"
    assert paper_value("resnet50-512", "resnet18-128", "SOP", "Relaxed_Contra") == 78.4
    assert paper_value("resnet50-512", "resnet18-64", "SOP", "Relaxed_Contra") is None   # not the paper's
    assert paper_value("bn_inception-512", "bn_inception-512", "cub", "RKD", "R@2") == 80.8
    assert paper_value("bn_inception-512", "bn_inception-64", "SOP", "RKD", "R@10") == 83.8
    assert paper_value("bn_inception-512", "bn_inception-64", "SOP", "RKD", "R@2") is None   # SOP: K=1/10/100
    assert paper_value("resnet50-512", "resnet18-128", "cars", "source (Proxy_Anchor)", "R@4") == 95.5
    assert paper_value("bn_inception-512", "bn_inception-512", "cub", "Relaxed_MS") is None   # no such row
    assert paper_value("bn_inception-512", "bn_inception-512", "cub", "Proxy_Anchor (no source)") is None


@pytest.fixture
def paper_like(tmp_path):
    """Self-transfer on CUB: two seeds of Relaxed_Contra, one RKD, a no-source baseline and the source;
    plus dimensionality reduction on SOP."""
    fake_run(tmp_path / "rc0", [scores(0.70), scores(0.72)])
    fake_run(tmp_path / "rc1", [scores(0.74)], seed=1)
    fake_run(tmp_path / "rkd", [scores(0.65)], loss="RKD")
    fake_run(tmp_path / "pa", [scores(0.60)], loss="Proxy_Anchor")
    src = tmp_path / "src"
    os.makedirs(src)
    with open(src / "args.json", "w") as f:
        json.dump({"model": "bn_inception", "embedding_size": 512, "dataset": "cub", "loss": "Proxy_Anchor"}, f)
    with open(src / "metrics.jsonl", "w") as f:
        f.write(json.dumps({"epoch": 0, "loss": 1, **scores(0.68)}) + "\n")
    sop = {"R@1": 0.75, "R@10": 0.88, "R@100": 0.95, "R@1000": 0.98, "MAP@R": 0.4, "RP": 0.45}
    fake_run(tmp_path / "sop", [sop], dataset="SOP", embedding_size=64)
    return tmp_path


def test_markdown_table_in_the_papers_layout(paper_like):
    text = markdown(find_runs([str(paper_like)]), title="T")
    lines = text.splitlines()
    self_t = lines.index("### self-transfer: bn_inception-512 → bn_inception-512")
    dim_r = lines.index("### dimensionality reduction: bn_inception-512 → bn_inception-64")
    assert self_t < dim_r
    assert lines[self_t + 2] == ("| method | cub R@1 | cub R@2 | cub R@4 | cub MAP@R | cub paper R@1 | cub Δ R@1 "
                                 "| cub paper R@2 | cub Δ R@2 | cub paper R@4 | cub Δ R@4 |")
    rows = lines[self_t + 4:self_t + 8]
    # The paper's values at every K, for the source (its Proxy-Anchor source row) and every method.
    assert rows[0] == ("| source (Proxy_Anchor) | 68.0 | 73.0 | 78.0 | 34.0 "
                       "| 69.1 | -1.1 | 78.9 | -5.9 | 86.1 | -8.1 |")
    assert rows[1] == "| Proxy_Anchor (no source) | 60.0 | 65.0 | 70.0 | 30.0 | – | – | – | – | – | – |"
    # Two seeds: mean and (sample) standard deviation, and the difference of the mean to the paper.
    assert rows[2] == ("| Relaxed_Contra (2 runs) | 73.0 ± 1.4 | 78.0 ± 1.4 | 83.0 ± 1.4 | 36.5 ± 0.7 "
                       "| 72.1 | +0.9 | 81.3 | -3.3 | 87.6 | -4.6 |")
    assert rows[3] == "| RKD | 65.0 | 70.0 | 75.0 | 32.5 | 70.9 | -5.9 | 80.8 | -10.8 | 87.5 | -12.5 |"
    # The CUB source taught a 512-d network, so it is listed beside every setting it is the source of.
    # Columns in the paper's order; its CUB numbers are shown although we have no such run; SOP at
    # K = 1/10/100.
    assert lines[dim_r + 2] == ("| method | cub R@1 | cub R@2 | cub R@4 | cub MAP@R | cub paper R@1 | cub Δ R@1 "
                                "| cub paper R@2 | cub Δ R@2 | cub paper R@4 | cub Δ R@4 "
                                "| SOP R@1 | SOP R@10 | SOP R@100 | SOP MAP@R | SOP paper R@1 | SOP Δ R@1 "
                                "| SOP paper R@10 | SOP Δ R@10 | SOP paper R@100 | SOP Δ R@100 |")
    assert lines[dim_r + 4] == ("| source (Proxy_Anchor) | 68.0 | 73.0 | 78.0 | 34.0 | 69.1 | -1.1 | 78.9 | -5.9 "
                                "| 86.1 | -8.1 | – | – | – | – | 79.2 | – | 90.7 | – | 96.2 | – |")
    assert lines[dim_r + 5] == ("| Relaxed_Contra | – | – | – | – | 67.4 | – | 78.0 | – | 85.9 | – "
                                "| 75.0 | 88.0 | 95.0 | 40.0 | 76.3 | -1.3 | 88.6 | -0.6 | 94.8 | +0.2 |")
    assert "best R@1 on the test split" in lines[-1]


def test_csv_has_one_row_per_run(paper_like):
    rows = csv_rows(find_runs([str(paper_like)]))
    assert len(rows) == 6
    rc = sorted((r for r in rows if r["method"] == "Relaxed_Contra" and r["dataset"] == "cub"),
                key=lambda r: r["R@1"])
    assert [(r["epoch"], r["R@1"], r["diff_R@1"]) for r in rc] == [(1, 72.0, -0.1), (0, 74.0, 1.9)]
    assert [(r["paper_R@2"], r["diff_R@2"], r["paper_R@4"], r["diff_R@4"]) for r in rc] == [
        (81.3, -4.3, 87.6, -5.6), (81.3, -2.3, 87.6, -3.6)]
    assert all(r["setting"] == "self-transfer" and r["paper_R@10"] == "" for r in rc)
    roles = {r["method"]: r["setting"] for r in rows}
    assert roles["source (Proxy_Anchor)"] == "source" and roles["Proxy_Anchor (no source)"] == "no source"
    by_method = {(r["method"], r["dataset"]): r for r in rows}
    rkd, src = by_method["RKD", "cub"], by_method["source (Proxy_Anchor)", "cub"]
    assert (rkd["paper_R@1"], rkd["diff_R@1"], rkd["paper_R@4"], rkd["diff_R@4"]) == (70.9, -5.9, 87.5, -12.5)
    assert (src["paper_R@1"], src["diff_R@1"], src["paper_R@2"], src["diff_R@2"]) == (69.1, -1.1, 78.9, -5.9)
    assert by_method["Proxy_Anchor (no source)", "cub"]["paper_R@1"] == ""
    sop = by_method["Relaxed_Contra", "SOP"]
    assert [(sop[f"paper_R@{k}"], sop[f"diff_R@{k}"]) for k in (1, 2, 10, 100)] == [
        (76.3, -1.3), ("", ""), (88.6, -0.6), (94.8, 0.2)]


def test_baseline_joins_the_group_of_its_network_only(tmp_path):
    fake_run(tmp_path / "a", [scores(0.5)], embedding_size=64)
    fake_run(tmp_path / "b", [scores(0.4)], embedding_size=64, loss="Proxy_Anchor")
    fake_run(tmp_path / "c", [scores(0.3)], embedding_size=128, loss="Proxy_Anchor")
    groups = {(t, n): sorted(m for m, _ in cells) for t, n, cells in group_runs(find_runs([str(tmp_path)]))}
    assert groups == {("bn_inception-512", "bn_inception-64"): ["Proxy_Anchor (no source)", "Relaxed_Contra"],
                      (None, "bn_inception-128"): ["Proxy_Anchor (no source)"]}


def test_only_repeats_of_one_configuration_are_averaged(tmp_path):
    # Seeds, folders and worker counts differ: repeats. The learning rate differs: separate rows.
    fake_run(tmp_path / "a", [scores(0.50)], lr=1e-4, seed=0, LOG_DIR="x", workers=4)
    fake_run(tmp_path / "b", [scores(0.54)], lr=1e-4, seed=1, LOG_DIR="y", workers=8)
    fake_run(tmp_path / "c", [scores(0.60)], lr=3e-4)
    fake_run(tmp_path / "d", [scores(0.40)], loss="Proxy_Anchor", epochs=13)
    fake_run(tmp_path / "e", [scores(0.30)], loss="Proxy_Anchor", epochs=3)
    runs = find_runs([str(tmp_path)])
    [(_, _, cells)] = group_runs(runs)
    assert {m: len(rs) for (m, _), rs in cells.items()} == {
        "Relaxed_Contra [lr=0.0001]": 2, "Relaxed_Contra [lr=0.0003]": 1,
        "Proxy_Anchor (no source) [epochs=13]": 1, "Proxy_Anchor (no source) [epochs=3]": 1}
    rows = [line.split(" | ")[:2] for line in markdown(runs).splitlines() if line.startswith("| ") and "R@1" not in line]
    # Baselines first, variants in numeric order; the paper's value is compared with every variant.
    assert rows == [["| Proxy_Anchor (no source) [epochs=3]", "30.0"], ["| Proxy_Anchor (no source) [epochs=13]", "40.0"],
                    ["| Relaxed_Contra [lr=0.0001] (2 runs)", "52.0 ± 2.8"], ["| Relaxed_Contra [lr=0.0003]", "60.0"]]
    assert "| 72.1 | -12.1 |" in markdown(runs)
    assert sorted(r["method"] for r in csv_rows(runs))[-3:] == ["Relaxed_Contra [lr=0.0001]"] * 2 + [
        "Relaxed_Contra [lr=0.0003]"]


def test_no_runs_is_a_clear_error(tmp_path):
    with pytest.raises(UserError, match="no runs under"):
        find_runs([str(tmp_path)])
    with pytest.raises(UserError, match="not a folder"):
        find_runs([str(tmp_path / "missing")])


def test_scripts_write_table_csv_and_figures(paper_like, tmp_path):
    out = tmp_path / "out"
    subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "results_table.py"), str(paper_like),
                    "--markdown", str(out / "t.md"), "--csv", str(out / "t.csv"), "--figure", str(out / "t.png")],
                   check=True, capture_output=True)
    assert (out / "t.md").read_text() == markdown(find_runs([str(paper_like)]))
    with open(out / "t.csv") as f:
        assert len(list(csv.DictReader(f))) == 6
    subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "plot_runs.py"), str(paper_like),
                    "--out", str(out / "curves.png")], check=True, capture_output=True)
    for name in ("t.png", "curves.png"):
        with PIL.Image.open(out / name) as im:
            assert im.width > 500 and len(im.convert("L").getcolors(1 << 16)) > 10   # drawn, not blank


def test_script_error_is_one_line(tmp_path):
    p = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "results_table.py"), str(tmp_path)],
                       capture_output=True, text=True)
    assert p.returncode == 2 and p.stderr.startswith("error: no runs under") and "Traceback" not in p.stderr


def test_runs_without_a_finished_epoch_are_reported(tmp_path):
    fake_run(tmp_path / "a", [])
    for script in ("results_table.py", "plot_runs.py"):
        p = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", script), str(tmp_path)],
                           capture_output=True, text=True)
        assert p.returncode == 2 and "finished an epoch" in p.stderr, script


# The budgeted labels-only baseline read twice (reporting/baselines.py): at its whole wall-clock,
# and at the epochs of the Relaxed_Contra run of its network and seed.
LITE = dict(model="efficientnet_lite0", embedding_size=64, source_model="efficientnet_lite0",
              source_embedding_size=512, dataset="emoji", seed=0)


def val(r1_val, r1_test=None):
    """An epoch selected on held-out classes: test scores only where validation improved."""
    return {"val_R@1": r1_val, **(scores(r1_test) if r1_test is not None else {})}


def runs_of(tmp_path, rc_epochs=2, seed=0):
    rc = fake_run(tmp_path / f"rc{seed}", [val(0.1, 0.2), val(0.3, 0.4), val(0.2), val(0.25)][:rc_epochs + 1], **{**LITE, "seed": seed})
    # The baseline: improving until epoch 3 (test R@1 0.5 at epoch 1, 0.6 at epoch 3).
    base = fake_run(tmp_path / f"base{seed}", [val(0.1, 0.3), val(0.2, 0.5), val(0.15), val(0.25, 0.6)],
                    **{**LITE, "seed": seed, "loss": "Proxy_Anchor", "source_ckpt": "", "time_budget": 12.0})
    return [Run(rc), Run(base)]


def test_two_readings_of_one_budgeted_baseline(tmp_path):
    rc, base = runs_of(tmp_path)   # the Relaxed_Contra run trained 3 epochs
    runs = matched_baselines([rc, base])
    assert runs[0] is rc and len(runs) == 3
    same_time, same_epochs = runs[1:]
    assert (same_time.selected["epoch"], same_time.selected["R@1"]) == (3, 0.6)
    assert len(same_epochs.epochs) == 3 and (same_epochs.selected["epoch"], same_epochs.selected["R@1"]) == (1, 0.5)
    assert base.args["time_budget"] == 12.0 and len(base.epochs) == 4    # the run itself is untouched
    labels = {r["method"]: r["R@1"] for r in csv_rows(runs)}
    assert labels["Proxy_Anchor (no source) [budget=same wall-clock as Relaxed_Contra]"] == 60
    assert labels["Proxy_Anchor (no source) [budget=same epochs as Relaxed_Contra]"] == 50


def test_seeds_are_matched_to_their_own_run_and_averaged(tmp_path):
    runs = runs_of(tmp_path / "a", rc_epochs=1, seed=0) + runs_of(tmp_path / "b", rc_epochs=3, seed=1)
    table = markdown(matched_baselines(runs))
    # seed 0: 2 epochs -> 0.5; seed 1: 4 epochs -> 0.6.
    assert "| Proxy_Anchor (no source) [budget=same epochs as Relaxed_Contra] (2 runs) | 55.0 ± 7.1 |" in table
    assert "| Proxy_Anchor (no source) [budget=same wall-clock as Relaxed_Contra] (2 runs) | 60.0 ± 0.0 |" in table


def test_a_budgeted_baseline_without_its_run_is_an_error(tmp_path):
    rc, base = runs_of(tmp_path)
    with pytest.raises(UserError, match="1 Relaxed_Contra runs|0 Relaxed_Contra runs"):
        matched_baselines([base])
    assert matched_baselines([rc]) == [rc]


def test_wall_clock_sums_the_epochs(tmp_path):
    rc, _ = runs_of(tmp_path)
    assert wall_clock(rc) == 3.0
