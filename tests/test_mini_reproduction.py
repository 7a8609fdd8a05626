"""The mini reproduction (`make mini-reproduction`: scripts/specs/mini_reproduction*.toml through the
experiment runner, then scripts/results_table.py) end to end on a tiny CUB tree, in both regimes:
every setting with its ImageNet-pretrained networks, early stopping, the baselines matched to their
Relaxed_Contra run's wall clock and read at both budgets, the table and figures, the claims
(converged regime: sources per seed, features cached once by the spec's prepare steps, runs side by
side), and a second call that trains nothing. The committed specs are run with the tiny tree's
data set, sizes and lengths written over them, as a user would edit them."""
import csv
import json
import os
import re
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SPECS = os.path.join(ROOT, "scripts", "specs")
ONE_THREAD = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


SPEC_OF = {"converged": "mini_reproduction_stage6.toml", "short": "mini_reproduction_short.toml"}


def tiny_spec(regime, folder, data, seeds=(0, 1), methods=("Relaxed_Contra", "PKT"), settings=None):
    """The committed spec of `regime` (SPEC_OF: 'converged' is `make mini-reproduction`'s default),
    with the spec it names as its base, on the tiny CUB tree at DATA, 32 px, 2 epochs (sources of the
    short regime: 1), patience 1, 2 cached views, one loader worker; runs under FOLDER/runs."""
    name = SPEC_OF[regime]
    os.makedirs(folder, exist_ok=True)
    while name:
        name = _tiny_copy(name, folder, data, seeds, methods, settings)
    return os.path.join(str(folder), SPEC_OF[regime])


def _tiny_copy(name, folder, data, seeds, methods, settings):
    """Writes the tiny version of spec NAME into FOLDER; returns the name of its base, if any."""
    with open(os.path.join(SPECS, name)) as f:
        text = f.read()
    out = os.path.join(str(folder), "runs")
    text = re.sub(r' *"python scripts/prepare_emoji.py[^"]*",?\n?', "", text)   # the tree is there
    for old, new in (("emoji", "cub"), ("./data", data), ("--crop-size 48", "--crop-size 32"),
                     ("--epochs 110", "--epochs 2"), ("--epochs 50", "--epochs 2"), ("--epochs 3", "--epochs 2"),
                     ("--epochs 8", "--epochs 1"),
                     ("--patience 10", "--patience 1"), ("--cache-views 8", "--cache-views 2"),
                     ("--workers 0", "--workers 1"), ("--workers 2", "--workers 1"),
                     ("logs/mini_reproduction_short", out), ("logs/mini_reproduction_stage6", out),
                     ("logs/mini_reproduction", out)):
        text = text.replace(old, new)
    assert "emoji" not in text and "./data" not in text and "logs/" not in text
    text = re.sub(r"^seeds = .*$", f"seeds = {list(seeds)}", text, flags=re.M)
    text = re.sub(r"^methods = .*$", f"methods = {json.dumps([*methods, 'Proxy_Anchor'])}", text, flags=re.M)
    if settings:
        text = re.sub(r"^settings = .*$", f"settings = {json.dumps(list(settings))}", text, flags=re.M)
    base = re.search(r'^base = "(.*)"$', text, flags=re.M)
    if not base:   # the methods' flags go where the grid is
        for m in methods:
            if f"[method.{m}]" not in text:
                text += f'\n[method.{m}]\nflags = "--IPC 3 --view 2"\n'
    with open(os.path.join(str(folder), name), "w") as f:
        f.write(text)
    return base and base.group(1)


def make_mini_reproduction(spec, folder, misc_name, lanes):
    """What `make mini-reproduction` runs: the spec through the runner, then the tables."""
    run = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "experiments.py"), "run", spec,
                          "--lanes", str(lanes)], capture_output=True, text=True, timeout=1800, cwd=ROOT,
                         env=ONE_THREAD)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    misc = os.path.join(str(folder), "misc")
    table = subprocess.run(
        [sys.executable, os.path.join(ROOT, "scripts", "results_table.py"), os.path.join(str(folder), "runs"),
         "--matched-baselines", "--flag-rising", "--title", "Mini reproduction on cub",
         "--markdown", f"{misc}/{misc_name}.md", "--csv", f"{misc}/{misc_name}.csv", "--figure", f"{misc}/{misc_name}.png",
         "--claims", f"{misc}/{misc_name}_claims.md", "--curves", f"{misc}/{misc_name}_curves.png"],
        capture_output=True, text=True, timeout=600, cwd=ROOT, env=ONE_THREAD)
    assert table.returncode == 0, table.stderr[-3000:]
    return run.stdout


def test_the_make_target_runs_the_committed_specs():
    with open(os.path.join(ROOT, "Makefile")) as f:
        make = f.read()
    assert "scripts/experiments.py run scripts/specs/$(MINI).toml" in make
    assert f"MINI ?= {SPEC_OF['converged'][:-len('.toml')]}" in make   # what the e2e test below runs
    assert "scripts/results_table.py logs/$(TABLES) --matched-baselines --flag-rising" in make
    assert not os.path.exists(os.path.join(ROOT, "scripts", "mini_reproduction.sh"))


def test_the_stage6_spec_anneals_every_run_above_stage6():
    """mini_reproduction_stage6.toml: its overlay reaches every run of the grid it inherits, the
    Lite2 source and the budget-matched baselines included, and wins over the base's schedule."""
    from embedding_transfer.experiments import spec as specs
    base = specs.load(os.path.join(SPECS, "mini_reproduction.toml"))
    spec = specs.load(os.path.join(SPECS, "mini_reproduction_stage6.toml"))
    assert spec.seeds == [0, 1, 2]
    assert {(r.setting, r.method, r.kind) for r in spec.runs} == {
        (r.setting, r.method, r.kind) for r in base.runs if r.method != "Relaxed_MS"}   # (b) is _full's
    assert {r.args.model for r in spec.runs if r.kind == "source"} == {"efficientnet_lite0", "efficientnet_lite2"}
    for run in spec.runs:
        a = run.args
        assert (a.freeze_below, a.epochs, a.patience, a.crop_size, a.cache_views) == ("stage6", 50, 0, 48, 8), run.name
    assert any(r.budget_of for r in spec.runs)
    for step in spec.prepare[1:]:   # the caches below stage6 that the runs read
        assert step[step.index("--freeze-below") + 1] == "stage6"
    full = specs.load(os.path.join(SPECS, "mini_reproduction_stage6_full.toml"))
    assert full.out == spec.out and len({r.method for r in full.runs if r.kind != "source"}) == 9
    assert {r.name for r in spec.runs} < {r.name for r in full.runs}   # it reuses the default's runs
    assert all((r.args.freeze_below, r.args.epochs, r.args.patience) == ("stage6", 50, 0) for r in full.runs)


@pytest.mark.e2e
def test_converged_regime_runs_resumes_and_reads_the_claims(tiny_cub, tmp_path):
    spec = tiny_spec("converged", tmp_path, str(tiny_cub))
    first = make_mini_reproduction(spec, tmp_path, "mini_reproduction_stage6", lanes=2)
    # Two networks' caches (training and evaluation splits), built by the prepare steps and only
    # read by the runs.
    assert len(os.listdir(tmp_path / "runs" / "feature_cache")) == 4
    assert "feature cache" not in "".join(p.read_text() for p in (tmp_path / "runs").glob("*/log.txt"))
    with open(tmp_path / "misc" / "mini_reproduction_stage6.csv") as f:
        rows = list(csv.DictReader(f))
    sources = [r for r in rows if r["setting"] == "source"]
    assert sorted((r["target"], r["seed"]) for r in sources) == [
        ("efficientnet_lite0-512", "0"), ("efficientnet_lite0-512", "1"),
        ("efficientnet_lite2-512", "0"), ("efficientnet_lite2-512", "1")]
    for r in rows:
        args = json.load(open(os.path.join(r["run"].split("#")[0], "args.json")))
        assert args["freeze_below"] == "stage6" and args["cache_views"] == 2 and str(args["seed"]) == r["seed"]
        assert (args["epochs"], args["patience"]) == (2, 0)   # the default's schedule, run to its end
        assert r["still_rising"] in ("0", "1") and int(r["steps"]) > 0
        if r["setting"] != "no source":   # a budgeted baseline's last epoch may end before its first step
            assert int(r["steps"]) >= int(r["epochs_run"]) and r["epochs_run"] == "2"
        if args.get("source_ckpt"):   # each seed's targets learn from that seed's source
            assert f"seed{args['seed']}" in args["source_ckpt"]
    claims = (tmp_path / "misc" / "mini_reproduction_stage6_claims.md").read_text()
    for line in ("| (a) | self-transfer: Relaxed_Contra − its source (efficientnet_lite0-512) | 2 |",
                 "| (b) | compression: Relaxed_Contra − PKT | 2 |",
                 "| (c) | dimensionality reduction: Relaxed_Contra − Proxy_Anchor (no source) [budget=same epochs"):
        assert line in claims
    assert (tmp_path / "misc" / "mini_reproduction_stage6_curves.png").stat().st_size > 10000
    assert first.count("started ") == 4 + 2 * 3 * 3
    table = (tmp_path / "misc" / "mini_reproduction_stage6.md").read_text()
    second = make_mini_reproduction(spec, tmp_path, "mini_reproduction_stage6", lanes=2)
    assert "0 to run" in second and "started " not in second
    assert (tmp_path / "misc" / "mini_reproduction_stage6.md").read_text() == table


@pytest.mark.e2e
def test_short_regime_runs_resumes_and_tabulates(tiny_cub, tmp_path):
    # The paper's networks (EfficientNet-Lite), whole, at a small crop, on a tiny CUB tree.
    spec = tiny_spec("short", tmp_path, str(tiny_cub), seeds=(1,), methods=("Relaxed_Contra",))
    make_mini_reproduction(spec, tmp_path, "mini_reproduction_short", lanes=1)
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
        assert not args["freeze_below"]
        if r["setting"] == "source":    # one source per network, seed 0, for every seed's targets
            assert args["seed"] == 0 and args["epochs"] == 1
        elif r["setting"] == "no source":
            # Normalised like the source; budgeted by its Relaxed_Contra run's wall clock, whose
            # epochs bound the "same epochs" reading.
            assert args["target_norm"] == 1 and args["time_budget"] > 0
            rc = next(x for x in rows if x["method"] == "Relaxed_Contra" and x["target"] == r["target"])
            rc_time = sum(json.loads(line)["time"] for line in open(os.path.join(rc["run"], "metrics.jsonl")))
            assert args["time_budget"] == max(1.0, round(rc_time, 1))
            if "same epochs" in r["method"]:
                assert int(r["epochs_run"]) == min(int(rc["epochs_run"]), len(open(
                    os.path.join(r["run"].split("#")[0], "metrics.jsonl")).readlines()))
        else:
            assert args["patience"] == 1 and int(r["epochs_run"]) <= 2 and args["seed"] == 1
    assert (tmp_path / "misc" / "mini_reproduction_short.png").stat().st_size > 10000
    # Finished runs are not trained again; the table is rebuilt from them unchanged.
    second = make_mini_reproduction(spec, tmp_path, "mini_reproduction_short", lanes=1)
    assert "0 to run" in second and "started " not in second
    assert (tmp_path / "misc" / "mini_reproduction_short.md").read_text() == table
