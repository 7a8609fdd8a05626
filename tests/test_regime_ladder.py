"""scripts/regime_ladder.py end to end on the tiny CUB tree: a default level (per-seed sources, each
keeping its epoch-1 model; self-transfer and 16-d Relaxed_Contra targets beside labels-only
baselines) and a weaker-source level that reuses the default's epoch-1 files, two seeds each. The
report's claims are recomputed here from its own CSV and from evaluate.py; a second `run` starts
nothing. A level that inherits from another (`base`) is checked in test_experiments.py's spec tests."""
import csv
import os
import shlex
import subprocess
import sys

import pytest

from embedding_transfer import evaluate_checkpoint
from embedding_transfer.reporting.claims import interval

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "scripts", "regime_ladder.py")
ONE_THREAD = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def write_specs(folder, data, tiny_flags):
    flags = shlex.join(tiny_flags[:tiny_flags.index("--epochs")]) + " --epochs 2 --val-classes 0.2"
    common = f"{flags} --dataset cub --DATA_DIR {data} --batch-size 12 --IPC 2"
    sources = f"{folder}/out/default/sources/seed{{seed}}/resnet_narrow/cub_resnet_narrow_32dim_Proxy_Anchor"
    (folder / "specs").mkdir()
    (folder / "specs" / "default.toml").write_text(f"""
out = "{folder}/out/default"
seeds = [0, 1]
datasets = ["cub"]
settings = ["self_transfer", "dim64"]
methods = ["Relaxed_Contra", "Proxy_Anchor"]

[target]
command = "python code/train_target.py {common} --loss {{method}} --embedding-size {{size}} --source-model resnet_narrow --source-embedding-size 32 --source-ckpt {{source_ckpt}}"

[setting.self_transfer]
size = 32
source = "narrow"

[setting.dim64]
size = 16
source = "narrow"

[method.Relaxed_Contra]
flags = "--score-normalised"

[source.narrow]
ckpt = "{sources}_ckpt.pth"
cub = "python code/train_source.py {common} --embedding-size 32 --l2-norm 1 --save 1 --save-epochs 1"
""")
    (folder / "specs" / "weak_source.toml").write_text(f"""
base = "default.toml"
out = "{folder}/out/weak_source"
methods = ["Relaxed_Contra"]

[source.narrow]
train = false
ckpt = "{sources}_epoch1_ckpt.pth"
""")
    return str(folder / "specs")


def ladder(*argv):
    return subprocess.run([sys.executable, SCRIPT, *argv], capture_output=True, text=True, cwd=ROOT,
                          env=ONE_THREAD, timeout=900)


@pytest.fixture(scope="module")
def tiny_ladder(tiny_cub, tiny_flags, tmp_path_factory):
    folder = tmp_path_factory.mktemp("ladder")
    specs = write_specs(folder, tiny_cub, tiny_flags)
    run = ladder("run", "--specs", specs, "--lanes", "2")
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    report = ladder("report", "--specs", specs, "--out", str(folder / "misc"))
    assert report.returncode == 0, report.stderr[-3000:]
    with open(folder / "misc" / "regime_ladder.csv") as f:
        rows = list(csv.DictReader(f))
    return folder, specs, run.stdout, (folder / "misc" / "regime_ladder.md").read_text(), rows, str(tiny_cub)


def r1(rows, level, setting, method, key="test_R@1"):
    return {int(r["seed"]): float(r[key]) for r in rows
            if (r["level"], r["setting"], r["method"]) == (level, setting, method)}


def ci_text(diffs):
    mean, low, high, n = interval(diffs)
    return f"{mean:+.2f} [{low:+.2f}, {high:+.2f}] (n={n})"


def test_every_run_of_both_levels_is_a_row_and_a_second_run_starts_nothing(tiny_ladder):
    folder, specs, first, _, rows, _ = tiny_ladder
    kinds = sorted((r["level"], r["setting"], r["method"], r["seed"]) for r in rows)
    default = [("default", s, m, str(seed)) for seed in (0, 1) for s, m in
               (("source", "Proxy_Anchor"), ("self_transfer", "Relaxed_Contra"), ("self_transfer", "Proxy_Anchor"),
                ("dim64", "Relaxed_Contra"), ("dim64", "Proxy_Anchor"))]
    weak = [("weak_source", s, "Relaxed_Contra", str(seed)) for seed in (0, 1) for s in ("self_transfer", "dim64")]
    assert kinds == sorted(default + weak)
    for r in rows:
        assert int(r["epochs_run"]) == 2 and int(r["steps"]) > 0 and r["val_R@1"] != "", r
        assert (r["norm_R@1"] != "") == (r["method"] == "Relaxed_Contra"), r
    assert "== level weak_source" in first
    again = ladder("run", "--specs", specs, "--lanes", "2")
    assert again.returncode == 0, again.stderr
    assert again.stdout.count("0 to run") == 2 and "started" not in again.stdout


def test_claims_are_paired_by_seed_against_each_levels_own_source(tiny_ladder):
    """(a) at the weaker-source level subtracts the epoch-1 model's R@1, scored by evaluate.py;
    (c) there pairs with the default level's baselines; 'change' is level minus default, per seed."""
    folder, _, _, text, rows, data = tiny_ladder
    sources = r1(rows, "default", "source", "Proxy_Anchor")
    weak = {}
    for seed in (0, 1):
        ckpt = (folder / "out" / "default" / "sources" / f"seed{seed}" / "resnet_narrow" /
                "cub_resnet_narrow_32dim_Proxy_Anchor_epoch1_ckpt.pth")
        args = evaluate_checkpoint.get_args_parser().parse_args(
            ["--ckpt", str(ckpt), "--dataset", "cub", "--DATA_DIR", data, "--crop-size", "32", "--workers", "0"])
        weak[seed] = round(100 * evaluate_checkpoint.main(args)["R@1"], 2)
    a_default = {s: v - sources[s] for s, v in r1(rows, "default", "self_transfer", "Relaxed_Contra").items()}
    a_weak = {s: v - weak[s] for s, v in r1(rows, "weak_source", "self_transfer", "Relaxed_Contra").items()}
    base = r1(rows, "default", "dim64", "Proxy_Anchor")
    c_default = {s: v - base[s] for s, v in r1(rows, "default", "dim64", "Relaxed_Contra").items()}
    c_weak = {s: v - base[s] for s, v in r1(rows, "weak_source", "dim64", "Relaxed_Contra").items()}
    claims = text.split("## Claims by level")[1].split("## Reading")[0]
    table = {line.split(" | ")[1]: line.split(" | ") for line in claims.splitlines() if line.startswith("| ")}
    default, weakest = table["48 px, head trains, 8 views, lr 5e-4, σ 1"], table["source after 18 epochs"]
    assert default[6:8] == [ci_text(a_default), ci_text(c_default)]
    assert weakest[6:10] == [ci_text(a_weak), ci_text(c_weak), ci_text({s: a_weak[s] - a_default[s] for s in a_weak}),
                             ci_text({s: c_weak[s] - c_default[s] for s in c_weak})]
    assert weakest[10] == "4 of 4" and default[10] == "10 of 10"
    # The self-transfer target against labels alone: the weaker-source level trains no baseline, so it
    # pairs with the default level's.
    labels = r1(rows, "default", "self_transfer", "Proxy_Anchor")
    l_default = {s: v - labels[s] for s, v in r1(rows, "default", "self_transfer", "Relaxed_Contra").items()}
    l_weak = {s: v - labels[s] for s, v in r1(rows, "weak_source", "self_transfer", "Relaxed_Contra").items()}
    section = text.split("## Self-transfer against labels alone")[1].split("##")[0]
    assert f"| default | 48 px, head trains, 8 views, lr 5e-4, σ 1 | " in section
    assert f"| {ci_text(l_default)} | – |" in section
    assert f"| {ci_text(l_weak)} | {ci_text({s: l_weak[s] - l_default[s] for s in l_weak})} |" in section
    norm = {s: v - sources[s] for s, v in r1(rows, "default", "self_transfer", "Relaxed_Contra", "norm_R@1").items()}
    assert f"| default | 48 px, head trains, 8 views, lr 5e-4, σ 1 | {ci_text(norm)} |" in text
    assert (folder / "misc" / "regime_ladder.png").stat().st_size > 10_000


def test_an_unknown_level_is_one_line_naming_the_valid_ones(tmp_path):
    out = ladder("run", "--levels", "default,sigma3")
    assert out.returncode == 2
    assert out.stderr.strip().splitlines()[-1].startswith("error: --levels: unknown level 'sigma3'; valid: default, ")


def test_a_level_read_against_another_pairs_its_claims_by_seed():
    """The annealed schedules are also read against the same regime stopped by patience: the
    differences are paired by seed, and a seed missing from either level is left out."""
    from embedding_transfer.reporting import ladder
    patience = {"a": {0: -1.0, 1: 0.5, 2: 2.0}, "c": {0: 1.0, 1: 2.0}, "a norm": {}, "c norm": {}}
    annealed = {"a": {0: 0.0, 1: 2.5, 2: 2.0}, "c": {0: 3.0, 1: 2.0, 2: 9.0}, "a norm": {}, "c norm": {}}
    levels = [ladder.Level("stage6", "depth", "stage6"), ladder.Level("annealed", "schedule", "annealed", "stage6")]
    text = "\n".join(ladder.versus_section(levels, {"stage6": patience, "annealed": annealed}))
    a, c = ladder.fmt({0: 1.0, 1: 2.0, 2: 0.0}), ladder.fmt({0: 2.0, 1: 0.0})
    assert f"| annealed | stage6 | {a} | {c} | – | – |" in text
    assert a.startswith("+1.00 [") and c.startswith("+1.00 [") and c.endswith("(n=2)")
    assert ladder.versus_section(levels[:1], {"stage6": patience}) == []
