"""The regime ladder's results (issue 26; scripts/regime_ladder.py): each level of the ladder is a
spec (scripts/specs/ladder/LEVEL.toml) that changes one of the CPU miniature's departures from the
paper, and is read as claims (a) and (c), paired by seed, beside the default level.

(a) a self-transfer Relaxed_Contra target's test R@1 minus its own source's (the file it learnt from);
(c) a 64-d Relaxed_Contra target's minus its labels-only Proxy-Anchor baseline's of the same seed
    (the level's own baselines, or the default level's where the level trains none).
"change" is a level's claim minus the default level's, paired by seed. The diagnostic "norm" reads
the same claims with the targets scored on L2-normalised embeddings (--score-normalised)."""
import csv
import dataclasses
import io
import json
import os
import statistics

from ..errors import UserError
from ..experiments import plan, state
from ..experiments.spec import absolute
from .claims import interval, verdict
from .runs import find_runs
from ..storage import save_json, save_text

MAIN, BASELINE = "Relaxed_Contra", "Proxy_Anchor"


@dataclasses.dataclass
class Level:
    name: str      # its spec: scripts/specs/ladder/NAME.toml
    factor: str
    label: str
    versus: str = ""   # a level it is also read against, paired by seed (besides the default)


LEVELS = [Level("default", "default", "48 px, head trains, 8 views, lr 5e-4, σ 1"),
          Level("stage6", "trainable depth", "stage6 trains too"),
          Level("stage5", "trainable depth", "stages 5-6 train too"),
          Level("crop96", "image size", "96 px"),
          Level("views32", "augmentation", "32 cached views"),
          Level("lr1e-4", "target lr", "1e-4 (the paper's)"),
          Level("weak_source", "source strength", "source after 18 epochs"),
          Level("sigma0.5", "σ", "0.5"),
          Level("sigma2", "σ", "2"),
          Level("default_annealed", "schedule", "cosine of 50 epochs run to its end (no patience)", "default"),
          Level("stage6_annealed", "schedule", "stage6 trains too, cosine of 50 epochs run to its end", "stage6")]
CSV_FIELDS = ["factor", "level", "setting", "method", "seed", "steps", "epochs_run", "epoch", "test_R@1", "val_R@1",
              "norm_R@1", "seconds", "source", "run"]


def level_runs(spec):
    """[(the spec's Run, its reporting.runs.Run or None if it has no epoch yet)] of one level (a run
    folder holds the trainer's own log folder, e.g. logs_emoji/...)."""
    out = []
    for run in spec.runs:
        got = None
        if os.path.isdir(spec.run_dir(run)):
            try:
                got = next((r for r in find_runs([spec.run_dir(run)]) if r.selected is not None), None)
            except UserError:   # no record yet
                pass
        out.append((run, got))
    return out


def rows(level, spec, seconds):
    """The CSV rows of one level's runs that have scored an epoch."""
    out = []
    for run, got in level_runs(spec):
        if got is None:
            continue
        best = got.selected

        def pct(key):
            return round(100 * best[key], 2) if key in best else ""
        out.append({"factor": level.factor, "level": level.name, "setting": run.setting or "source",
                    "method": run.method or BASELINE, "seed": got.args.get("seed"),
                    "steps": sum(e.get("steps", 0) for e in got.epochs), "epochs_run": len(got.epochs),
                    "epoch": best["epoch"], "test_R@1": pct("R@1"), "val_R@1": pct("val/R@1"),
                    "norm_R@1": pct("norm/R@1"), "seconds": seconds(spec.run_dir(run)), "source": run.ckpt,
                    "_args": got.args,
                    "run": os.path.relpath(got.dir, os.path.dirname(spec.out_dir.rstrip(os.sep)))})
    return out


def pick(rs, setting, method, key="test_R@1"):
    """{seed: value} of the rows of one setting and method."""
    return {r["seed"]: r[key] for r in rs if r["setting"] == setting and r["method"] == method and r[key] != ""}


def baselines(level_rows, default_rows, setting="dim64"):
    """{seed: test R@1} of a setting's labels-only baselines: the level's own, else the default's."""
    return pick(level_rows, setting, BASELINE) or pick(default_rows, setting, BASELINE)


def claims(level_rows, default_rows, source_r1):
    """{claim: {seed: difference}} of one level: "a", "c", "a norm", "c norm", and "a labels" (the
    self-transfer target against the same network trained on labels alone, which tells a gain of the
    transfer from one of a second training). source_r1(run row): the test R@1 of the file that a
    target learnt from."""
    out = {}
    for suffix, key in (("", "test_R@1"), (" norm", "norm_R@1")):
        self_t = pick(level_rows, "self_transfer", MAIN, key)
        sources = {r["seed"]: source_r1(r) for r in level_rows if r["setting"] == "self_transfer"
                   and r["method"] == MAIN}
        out["a" + suffix] = {s: self_t[s] - sources[s] for s in self_t if sources.get(s) is not None}
        dim64 = pick(level_rows, "dim64", MAIN, key)
        base = baselines(level_rows, default_rows)
        out["c" + suffix] = {s: dim64[s] - base[s] for s in dim64 if s in base}
    self_t, base = pick(level_rows, "self_transfer", MAIN), baselines(level_rows, default_rows, "self_transfer")
    out["a labels"] = {s: self_t[s] - base[s] for s in self_t if s in base}
    return out


def change(level, default):
    """{claim: {seed: level's difference - the default's}}."""
    return {k: {s: v[s] - default[k][s] for s in v if s in default.get(k, {})} for k, v in level.items()}


def fmt(diffs):
    ci = interval(diffs)
    if ci is None:
        return "–"
    mean, low, high, n = ci
    return f"{mean:+.2f}" + ("" if low is None else f" [{low:+.2f}, {high:+.2f}]") + f" (n={n})"


def mean_std(values):
    values = [v for v in values if v != ""]
    if not values:
        return "–"
    return f"{statistics.fmean(values):.1f} ± {statistics.stdev(values) if len(values) > 1 else 0.0:.1f}"


def reading(levels, by_level, changes):
    """Which levels move which claim, from the intervals alone (so that a rerun writes the same
    reading as its numbers)."""
    lines = []
    for claim, name in (("a", "(a) self-transfer target − its source"),
                        ("c", "(c) 64-d target − its labels-only baseline")):
        moved, turned = [], []
        for lv in levels:
            if lv.name == "default" or lv.name not in by_level:
                continue
            ci = interval(changes[lv.name].get(claim, {}))
            if ci is not None and ci[1] is not None and (ci[1] > 0 or ci[2] < 0):
                moved.append(f"{lv.factor} {lv.label}: {'up' if ci[0] > 0 else 'down'} by {abs(ci[0]):.2f} points "
                             f"[{ci[1]:+.2f}, {ci[2]:+.2f}]")
            if verdict(interval(by_level[lv.name].get(claim, {}))) == "supports":
                turned.append(f"{lv.factor} {lv.label}")
        base = {"supports": "holds (interval above 0)", "contradicts": "is contradicted (interval below 0)",
                "cannot decide": "is undecided (interval spans 0)"}[
            verdict(interval(by_level.get("default", {}).get(claim, {})))]
        lines.append(f"- {name}: at the default level the claim {base}. "
                     + (f"Levels that move it (change vs default, 95% interval excluding 0): {'; '.join(moved)}."
                        if moved else "No level measured so far moves it beyond its seeds' noise.")
                     + (f" Levels where the claim holds (interval above 0): {'; '.join(turned)}." if turned else
                        " At no level measured so far does the claim hold."))
    return lines


def source_scores(all_rows, cache_path, evaluate):
    """{source file: test R@1}: a source run's selected epoch where a level trained the file; else
    evaluate(file, the args of a run that read it) (e.g. a checkpoint kept at an epoch), cached in
    cache_path."""
    scores = {r["source"]: r["test_R@1"] for r in all_rows if r["setting"] == "source"}
    cached = {}
    if os.path.isfile(cache_path):
        with open(cache_path) as f:
            cached = json.load(f)
    for r in all_rows:
        ckpt = r["source"]
        if r["setting"] == "source" or not ckpt or ckpt in scores:
            continue
        path = absolute(ckpt)
        stamp = f"{ckpt}@{os.path.getmtime(path) if os.path.isfile(path) else 'missing'}"
        if stamp not in cached and os.path.isfile(path):
            cached[stamp] = round(100 * evaluate(path, r["_args"]), 2)
            save_json(cached, cache_path)
        scores[ckpt] = cached.get(stamp)
    return scores


def run_seconds(folder):
    """The wall clock a run's processes took (runner.json), summed over its resumes."""
    seconds = state.read(folder).get("total_seconds")
    return "" if seconds is None else round(seconds, 1)


def versus_section(levels, claims_by):
    """Each level read against the level it names in `versus` (the same regime stopped by patience,
    for the annealed schedules): claim differences paired by seed."""
    pairs = [lv for lv in levels if lv.versus and lv.name in claims_by and lv.versus in claims_by]
    if not pairs:
        return []
    out = ["", "## Levels read against another level", "",
           "Each row: the level's claim minus the named level's, paired by seed (for the annealed schedules: the "
           "same regime with its runs stopped by patience).", "",
           "| level | against | (a) change | (c) change | (a) norm change | (c) norm change |",
           "|---|---|---:|---:|---:|---:|"]
    for lv in pairs:
        d = change(claims_by[lv.name], claims_by[lv.versus])
        out.append(f"| {lv.label} | {lv.versus} | {fmt(d['a'])} | {fmt(d['c'])} | {fmt(d['a norm'])} | "
                   f"{fmt(d['c norm'])} |")
    return out


def labels_section(levels, by_rows, claims_by, changes):
    """The self-transfer target against its labels-only baseline, by level: whether what (a) credits
    to the transfer is more than a second training of the same network."""
    default = by_rows.get("default", [])
    out = ["", "## Self-transfer against labels alone", "",
           "The self-transfer Relaxed_Contra target minus the same network trained on Proxy-Anchor alone "
           "(the level's own baselines, else the default level's), paired by seed.", "",
           "| factor | level | self-transfer labels only | RC − labels only | change vs default |",
           "|---|---|---:|---:|---:|"]
    for lv in levels:
        if lv.name in claims_by:
            base = baselines(by_rows[lv.name], default, "self_transfer").values()
            out.append(f"| {lv.factor} | {lv.label} | {mean_std(list(base))} | {fmt(claims_by[lv.name]['a labels'])} | "
                       f"{'–' if lv.name == 'default' else fmt(changes[lv.name]['a labels'])} |")
    return out


def has(level_rows, setting):
    """Whether a level trains Relaxed_Contra targets of a setting (else it has no baseline to show)."""
    return any(r["setting"] == setting and r["method"] == MAIN for r in level_rows)


def markdown(levels, by_rows, claims_by, changes, source_r1, command, done):
    default = by_rows.get("default", [])
    out = ["# The regime ladder", "",
           "Each level changes one of the CPU miniature's departures from the paper (docs/mini_reproduction.md) and "
           "keeps the rest of the default level; every level's runs are paired by seed with the default's. Test R@1 "
           "in percent at the epoch picked on held-out training classes; differences in points, mean over seeds "
           "with a 95% t-interval. Reproduce (skips finished runs, resumes interrupted ones):", "",
           f"    {command}", "",
           "## Claims by level", "",
           "| factor | level | source R@1 | self-transfer RC | 64-d RC | 64-d labels only | (a) RC − source | "
           "(c) RC − labels only | (a) change vs default | (c) change vs default | runs finished | lane-minutes |",
           "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for lv in levels:
        rs = by_rows.get(lv.name)
        if rs is None:
            continue
        selfs = [r for r in rs if r["setting"] == "self_transfer" and r["method"] == MAIN]
        src = [source_r1(r) for r in selfs if source_r1(r) is not None]
        secs = sum(r["seconds"] or 0 for r in rs)
        dash = "–" if lv.name == "default" else None
        out.append(f"| {lv.factor} | {lv.label} | {mean_std(src)} | {mean_std([r['test_R@1'] for r in selfs])} | "
                   f"{mean_std([r['test_R@1'] for r in rs if r['setting'] == 'dim64' and r['method'] == MAIN])} | "
                   f"{mean_std(list(baselines(rs, default).values())) if has(rs, 'dim64') else '–'} | {fmt(claims_by[lv.name]['a'])} | {fmt(claims_by[lv.name]['c'])} | "
                   f"{dash or fmt(changes[lv.name]['a'])} | {dash or fmt(changes[lv.name]['c'])} | {done[lv.name]} | {secs / 60:.0f} |")
    out += ["", "Levels without their own baselines (the source-reusing ones) read (c) against the default "
            "level's. A level with unfinished runs reads their best epoch so far. Lane-minutes: the runs' wall clock "
            "summed (two lanes run side by side).", "",
            "## Reading", ""] + reading(levels, claims_by, changes) + versus_section(levels, claims_by)
    out += labels_section(levels, by_rows, claims_by, changes)
    out += ["", "## Diagnostic: targets scored on L2-normalised embeddings", "",
            "| factor | level | (a) norm | (c) norm |", "|---|---|---:|---:|"]
    for lv in levels:
        if lv.name in claims_by:
            out.append(f"| {lv.factor} | {lv.label} | {fmt(claims_by[lv.name]['a norm'])} | "
                       f"{fmt(claims_by[lv.name]['c norm'])} |")
    out += ["", "## Convergence of each run", "",
            "Selected epoch / epochs run (steps); ⚠: the selected epoch is one of the run's last 10.", "",
            "| level | setting | method | " + " | ".join(f"seed {s}" for s in seeds_of(by_rows)) + " |",
            "|---|---|---|" + "---|" * len(seeds_of(by_rows))]
    for lv in levels:
        groups = {}
        for r in by_rows.get(lv.name, []):
            groups.setdefault((r["setting"], r["method"]), {})[r["seed"]] = r
        for (setting, method), by_seed in groups.items():
            cells = []
            for s in seeds_of(by_rows):
                r = by_seed.get(s)
                cells.append("–" if r is None else f"{r['epoch']} / {r['epochs_run']} ({r['steps']})"
                             + (" ⚠" if r["epochs_run"] - 1 - r["epoch"] < 10 else ""))
            out.append(f"| {lv.name} | {setting} | {method} | " + " | ".join(cells) + " |")
    return "\n".join(out) + "\n"


def seeds_of(by_rows):
    return sorted({r["seed"] for rs in by_rows.values() for r in rs})


def figure(levels, claims_by, path):
    """Claims (a) and (c) by level, each a mean with its 95% interval."""
    from matplotlib.figure import Figure
    shown = [lv for lv in levels if lv.name in claims_by]
    fig = Figure(figsize=(1.2 * len(shown) + 3, 4.2), layout="constrained")
    ax = fig.add_subplot()
    for offset, (claim, label) in zip((-0.12, 0.12), (("a", "(a) self-transfer RC − its source"),
                                                      ("c", "(c) 64-d RC − labels only"))):
        xs, ys, errs = [], [], [[], []]
        for i, lv in enumerate(shown):
            ci = interval(claims_by[lv.name][claim])
            if ci is None:
                continue
            mean, low, high, _ = ci
            xs.append(i + offset)
            ys.append(mean)
            errs[0].append(0 if low is None else mean - low)
            errs[1].append(0 if high is None else high - mean)
        ax.errorbar(xs, ys, yerr=errs, fmt="o", capsize=4, label=label)
    ax.axhline(0, color="grey", lw=0.8)
    ax.set_xticks(range(len(shown)), [f"{lv.factor}\n{lv.label}" for lv in shown], fontsize=7)
    ax.set_ylabel("test R@1 difference (points)")
    ax.set_title("Regime ladder: the paper's claims by level (mean, 95% interval over seeds)")
    ax.legend(fontsize=8)
    fig.savefig(path, dpi=110)


def write(levels, specs, out_dir, evaluate, command):
    """misc/regime_ladder.{csv,md,png} from the levels' run folders, finished or not. specs:
    {level name: loaded spec}. Returns the Markdown."""
    by_rows = {lv.name: rows(lv, specs[lv.name], run_seconds) for lv in levels if lv.name in specs}
    by_rows = {k: v for k, v in by_rows.items() if v}
    if "default" not in by_rows:
        raise UserError("the default level has no run with a scored epoch yet: run it first "
                        "(python scripts/regime_ladder.py run --levels default)")
    all_rows = [r for rs in by_rows.values() for r in rs]
    cache = os.path.join(specs["default"].out_dir, "..", "source_scores.json")
    scores = source_scores(all_rows, os.path.normpath(cache), evaluate)

    def source_r1(row):
        return scores.get(row["source"])
    claims_by = {name: claims(rs, by_rows["default"], source_r1) for name, rs in by_rows.items()}
    changes = {name: change(c, claims_by["default"]) for name, c in claims_by.items()}
    done = {}
    for name in by_rows:
        words = plan.states(specs[name]).values()
        done[name] = f"{sum(w in plan.DONE for w in words)} of {len(words)}"
    text = markdown(levels, by_rows, claims_by, changes, source_r1, command, done)
    os.makedirs(out_dir, exist_ok=True)
    save_text(text, os.path.join(out_dir, "regime_ladder.md"))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_FIELDS, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(all_rows)
    save_text(buf.getvalue(), os.path.join(out_dir, "regime_ladder.csv"))
    figure([lv for lv in levels if lv.name in by_rows], claims_by, os.path.join(out_dir, "regime_ladder.png"))
    return text
