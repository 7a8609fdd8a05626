"""The paper's three claims read from a mini reproduction's runs, as paired differences over seeds.

(a) the self-transfer target beats its source;
(b) Relaxed_Contra beats every other transfer method;
(c) the 64-d and the compressed Relaxed_Contra targets beat the same network trained on labels alone.

Runs are paired by seed: a target with the source of its seed (each seed has its own source), two
methods of one setting with each other, a target with its network's labels-only baseline of the
same seed. Each difference of test R@1 (percentage points) gets a 95% t-interval over the seeds
(scipy); the reading is "supports" when the interval lies above 0, "contradicts" when below, and
"cannot decide" otherwise (or with fewer than two seeds).
"""
import math
import statistics

from scipy import stats

from .paper_results import setting_name
from .tables import method_labels

MAIN = "Relaxed_Contra"
SETTINGS = ("self-transfer", "dimensionality reduction", "compression")


def paired(a, b):
    """{seed: R@1 of a - R@1 of b} over the seeds both have ({seed: value} each)."""
    return {s: a[s] - b[s] for s in sorted(set(a) & set(b))}


def interval(diffs):
    """(mean, low, high, n) of the differences' 95% t-interval; low/high None for n < 2."""
    values = list(diffs.values())
    n = len(values)
    if n == 0:
        return None
    mean = statistics.fmean(values)
    if n < 2:
        return mean, None, None, n
    sem = statistics.stdev(values) / math.sqrt(n)
    if sem == 0:
        return mean, mean, mean, n
    low, high = stats.t.interval(0.95, n - 1, loc=mean, scale=sem)
    return mean, float(low), float(high), n


def verdict(ci):
    if ci is None or ci[1] is None:
        return "cannot decide"
    if ci[1] > 0:
        return "supports"
    if ci[2] < 0:
        return "contradicts"
    return "cannot decide"


def r1_by_seed(runs):
    return {r.args.get("seed"): 100 * r.selected["R@1"] for r in runs if r.selected and "R@1" in r.selected}


def collect(runs):
    """{"sources": {network: {seed: R@1}}, "targets": {(setting, method): {seed: R@1}}, "teacher":
    {setting: network}, "baselines": {(network, label): {seed: R@1}}}."""
    labels = method_labels([r for r in runs if r.selected is not None])
    out = {"sources": {}, "targets": {}, "teacher": {}, "network": {}, "baselines": {}}
    groups = {}
    for r in runs:
        if r.selected is None:
            continue
        if r.is_source:
            key = ("sources", r.network)
        elif r.uses_source:
            setting = setting_name(r.teacher, r.network)
            out["teacher"][setting], out["network"][setting] = r.teacher, r.network
            key = ("targets", (setting, labels[r.dir]))
        else:
            key = ("baselines", (r.network, labels[r.dir]))
        groups.setdefault(key, []).append(r)
    for (kind, key), rs in groups.items():
        out[kind][key] = r1_by_seed(rs)
    return out


def claim_rows(runs):
    """[(claim, comparison, {seed: diff})] for every comparison the runs allow."""
    data, rows = collect(runs), []
    methods = sorted({m for _, m in data["targets"]}, key=lambda m: (m != MAIN, m))
    teacher = data["teacher"].get("self-transfer")
    if teacher in data["sources"]:
        for m in methods:
            if ("self-transfer", m) in data["targets"]:
                rows.append(("a", f"self-transfer: {m} − its source ({teacher})",
                             paired(data["targets"][("self-transfer", m)], data["sources"][teacher])))
    for setting in SETTINGS:
        main = data["targets"].get((setting, MAIN))
        if main is None:
            continue
        for m in methods:
            if m != MAIN and (setting, m) in data["targets"]:
                rows.append(("b", f"{setting}: {MAIN} − {m}", paired(main, data["targets"][(setting, m)])))
    for setting in ("dimensionality reduction", "compression"):
        main, network = data["targets"].get((setting, MAIN)), data["network"].get(setting)
        for (net, label), values in sorted(data["baselines"].items()):
            if main is not None and net == network:
                rows.append(("c", f"{setting}: {MAIN} − {label} ({net})", paired(main, values)))
    return rows


def _fmt_ci(ci):
    if ci is None:
        return "–", "–"
    mean, low, high, n = ci
    return f"{mean:+.2f}", "–" if low is None else f"[{low:+.2f}, {high:+.2f}]"


def claims_markdown(runs):
    """The claims' table in Markdown, one row per comparison, and a one-line reading per claim."""
    rows = claim_rows(runs)
    out = ["| claim | comparison (test R@1, points) | seeds | mean difference | 95% interval | per seed | reading |",
           "|---|---|---:|---:|---:|---|---|"]
    readings = {}
    for claim, what, diffs in rows:
        ci = interval(diffs)
        mean, span = _fmt_ci(ci)
        seeds = ", ".join(f"{d:+.1f}" for d in diffs.values())
        out.append(f"| ({claim}) | {what} | {len(diffs)} | {mean} | {span} | {seeds} | {verdict(ci)} |")
        readings.setdefault(claim, []).append(verdict(ci))
    out.append("")
    names = {"a": "the self-transfer target beats its source",
             "b": f"{MAIN} beats every other transfer method",
             "c": f"the 64-d and compressed {MAIN} targets beat their network trained on labels alone"}
    for claim in "abc":
        got = readings.get(claim)
        if not got:
            out.append(f"- ({claim}) {names[claim]}: no runs to compare.")
            continue
        counts = ", ".join(f"{got.count(v)} {v}" for v in ("supports", "contradicts", "cannot decide") if got.count(v))
        out.append(f"- ({claim}) {names[claim]}: {len(got)} comparisons: {counts}.")
    return "\n".join(out) + "\n"
