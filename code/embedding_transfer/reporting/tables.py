"""Results tables in the paper's layout: one table per setting (source -> target network), methods
as rows, datasets as column groups (R@1/2/4, or R@1/10/100 on SOP, and MAP@R), then the paper's
value and our difference to it at each of those K where the paper reports one (paper_results.py;
its source row beside our source run). Runs that share setting, method and dataset
and configuration (e.g. several seeds) are averaged, with their standard deviation; runs of a
method that differ in other arguments are rows of their own, labelled by those arguments."""
import re
import statistics

from ..losses import LOSSES
from .paper_results import paper_source_value, paper_value, setting_name
from .runs import RISING_WINDOW

SOURCE_ROW = "source"
# Arguments that leave what a run learns unchanged (where it ran, logged, resumed from), or that
# tell repeats of one configuration apart (the seed, the source checkpoint's file).
NOT_CONFIG = {"seed", "LOG_DIR", "resume", "workers", "gpu_id", "wandb", "save", "DATA_DIR", "save_dir",
              "source_ckpt"}


def table_ks(dataset):
    # In-Shop: the first three of Proxy-Anchor's K (evaluation.recall_ks).
    return {"SOP": ["R@1", "R@10", "R@100"], "Inshop": ["R@1", "R@10", "R@20"]}.get(dataset, ["R@1", "R@2", "R@4"])


def dataset_order(dataset):
    """The paper's column order (CUB, Cars, SOP), then any other data set by name."""
    paper = ["cub", "cars", "SOP"]
    return (paper.index(dataset), "") if dataset in paper else (len(paper), dataset)


def base_method(label):
    """The method of a row label: 'Proxy_Anchor (no source) [epochs=13]' -> 'Proxy_Anchor (no source)'."""
    return label.split(" [", 1)[0]


def _natural(text):
    return [float(t) if i % 2 else t for i, t in enumerate(re.split(r"(\d+(?:\.\d+)?)", text))]


def _method_order(label):
    names, method = list(LOSSES), base_method(label)
    if method.startswith(SOURCE_ROW):
        rank = (0, 0)
    elif method.endswith("(no source)"):
        rank = (1, 0)
    else:
        rank = (2, names.index(method) if method in names else len(names))
    return rank + (method, _natural(label))


def method_labels(runs):
    """{run folder: row label}: the run's method, and where runs of the same method, networks and
    dataset differ in more than NOT_CONFIG, the arguments they differ in ('RKD [lr=0.0003]'), so
    that only repeats of one configuration are averaged."""
    cells = {}
    for r in runs:
        cells.setdefault((r.method, r.teacher, r.network, r.args.get("dataset")), []).append(r)
    labels = {}
    for (method, *_), rs in cells.items():
        configs = [{k: v for k, v in r.args.items() if k not in NOT_CONFIG} for r in rs]
        differ = sorted(k for k in set().union(*configs) if len({repr(c.get(k)) for c in configs}) > 1)
        for r, c in zip(rs, configs):
            labels[r.dir] = method + (f" [{', '.join(f'{k}={c.get(k)}' for k in differ)}]" if differ else "")
    return labels


def group_runs(runs):
    """[(teacher, network, {(method, dataset): [runs]})]. Runs without a source join every group
    of their network (they are its baseline); a source run joins the groups it taught."""
    labels = method_labels([r for r in runs if r.selected is not None])
    targets = [r for r in runs if not r.is_source and r.selected is not None]
    groups = {}
    for r in targets:
        if r.teacher is not None:
            groups.setdefault((r.teacher, r.network), {})
    for r in targets:
        if r.teacher is None and not any(net == r.network for _, net in groups):
            groups.setdefault((None, r.network), {})
    for (teacher, network), cells in groups.items():
        for r in targets:
            if r.network == network and r.teacher in (teacher, None):
                cells.setdefault((labels[r.dir], r.args["dataset"]), []).append(r)
        for r in runs:
            if r.is_source and r.selected is not None and r.network == teacher:
                cells.setdefault((labels[r.dir], r.args["dataset"]), []).append(r)
    order = {"self-transfer": 0, "dimensionality reduction": 1, "compression": 2}
    return sorted(((t, n, c) for (t, n), c in groups.items()),
                  key=lambda g: (order.get(setting_name(g[0], g[1]), 3), g[0] or "", g[1]))


def summarise(runs, metric):
    """(mean, std, n) in percent of `metric` at each run's selected epoch; std is None for n=1."""
    values = [100 * r.selected[metric] for r in runs if metric in r.selected]
    if not values:
        return None
    std = statistics.stdev(values) if len(values) > 1 else None
    return statistics.fmean(values), std, len(values)


def _fmt(summary):
    if summary is None:
        return "–"
    mean, std, _ = summary
    return f"{mean:.1f}" if std is None else f"{mean:.1f} ± {std:.1f}"


def markdown(runs, title=None, flag_rising=False):
    """The tables, in Markdown. flag_rising: mark the rows holding runs that are still rising
    (reporting.runs.Run.still_rising)."""
    out = [f"## {title}", ""] if title else []
    for teacher, network, cells in group_runs(runs):
        datasets = sorted({d for _, d in cells}, key=dataset_order)
        methods = sorted({m for m, _ in cells}, key=_method_order)
        papers = {d: [k for k in table_ks(d)
                      if any(paper_value(teacher, network, d, base_method(m), k) is not None for m in methods)]
                  for d in datasets}
        out.append(f"### {setting_name(teacher, network)}: "
                   + (f"{teacher} → {network}" if teacher else network))
        out.append("")
        head, rule = ["method"], ["---"]
        for d in datasets:
            cols = table_ks(d) + ["MAP@R"] + [c for k in papers[d] for c in (f"paper {k}", f"Δ {k}")]
            head += [f"{d} {c}" for c in cols]
            rule += ["---:"] * len(cols)
        out += ["| " + " | ".join(head) + " |", "|" + "|".join(rule) + "|"]
        for m in methods:
            n = max(len(rs) for (method, _), rs in cells.items() if method == m)
            rising = flag_rising and sum(r.still_rising for (method, _), rs in cells.items() if method == m for r in rs)
            row = [(m if n == 1 else f"{m} ({n} runs)") + (f" ⚠ {rising} still rising" if rising else "")]
            for d in datasets:
                rs = cells.get((m, d), [])
                row += [_fmt(summarise(rs, k)) if rs else "–" for k in table_ks(d) + ["MAP@R"]]
                for k in papers[d]:
                    paper, ours = paper_value(teacher, network, d, base_method(m), k), summarise(rs, k) if rs else None
                    row += ["–" if paper is None else f"{paper:.1f}",
                            f"{ours[0] - paper:+.1f}" if paper is not None and ours else "–"]
            out.append("| " + " | ".join(row) + " |")
        out.append("")
    out.append(_selection_note(runs) + (f" ⚠ still rising: runs whose selected epoch is one of their last "
                                        f"{RISING_WINDOW}, so no plateau is shown." if flag_rising else ""))
    return "\n".join(out) + "\n"


def _selection_note(runs):
    rules = {r.selection for r in runs if r.selected is not None}
    counts = {}
    for r in runs:
        if r.selected is not None:
            counts.setdefault(r.args["dataset"], []).append(len(r.epochs))
    trained = ", ".join(f"{d}: {min(n)}" + (f"-{max(n)}" if max(n) != min(n) else "") + " epochs"
                        for d, n in sorted(counts.items()))
    how = {"test": "best R@1 on the test split (the paper's protocol, optimistic)",
           "val": "best R@1 on classes held out of the training split (--val-classes); test scores of that epoch"}
    return ("Values in percent, at the epoch picked by " + "; or ".join(how[r] for r in sorted(rules))
            + f". Mean ± std over runs where there are several. Trained: {trained}.")


METRICS = ("R@", "MAP@R", "RP")
PAPER_METRICS = ("R@1", "R@2", "R@4", "R@10", "R@100")   # the K the paper reports (SOP: 1, 10, 100)
CSV_FIELDS = ["setting", "source", "target", "method", "dataset", "seed", "selection", "epoch", "epochs_run", "steps",
              "R@1", "R@2", "R@4", "R@8", "R@10", "R@100", "R@1000", "MAP@R", "RP",
              *(f"{p}_{k}" for k in PAPER_METRICS for p in ("paper", "diff")), "still_rising", "run"]


def csv_rows(runs):
    """One dict per run that finished an epoch (no averaging), values in percent. `setting` is the
    paper's name for a transfer, 'no source' for a target trained alone, 'source' for a source.
    paper_R@k / diff_R@k: the paper's value and ours minus it, where the paper reports one (for a
    source, the paper's source row of the tables with that source network)."""
    rows, labels = [], method_labels([r for r in runs if r.selected is not None])
    for r in sorted((r for r in runs if r.selected is not None),
                    key=lambda r: (dataset_order(r.args["dataset"]), _method_order(labels[r.dir]), r.dir)):
        best, dataset = r.selected, r.args["dataset"]
        row = {"setting": "source" if r.is_source else setting_name(r.teacher, r.network),
               "source": r.teacher or "", "target": r.network, "method": labels[r.dir], "dataset": dataset,
               "seed": r.args.get("seed", ""), "selection": r.selection, "epoch": best["epoch"],
               "epochs_run": len(r.epochs), "steps": sum(e.get("steps", 0) for e in r.epochs) or "",
               "still_rising": int(r.still_rising), "run": r.dir}
        row.update({k: round(100 * best[k], 2) for k in CSV_FIELDS if k in best and k.startswith(METRICS)})
        for k in PAPER_METRICS:
            if r.is_source:
                paper = paper_source_value(r.network, dataset, r.method, k)
            else:
                paper = paper_value(r.teacher, r.network, dataset, r.method, k) if r.teacher else None
            row[f"paper_{k}"] = "" if paper is None else paper
            row[f"diff_{k}"] = "" if paper is None or k not in best else round(100 * best[k] - paper, 2)
        rows.append(row)
    return rows
