"""Results tables in the paper's layout from finished runs.

    python scripts/results_table.py logs/                 # every run under logs/
    python scripts/results_table.py RUN_DIR... --csv results.csv --figure results.png

Reads each run's args.json and metrics.jsonl and takes the epoch the run's own rule selected (best
test R@1, the paper's protocol; or best R@1 on the held-out classes with --val-classes). Prints one
Markdown table per setting (source -> target network): methods as rows, the source first; per dataset
R@1/2/4 (R@1/10/100 on SOP) and MAP@R, then for each of those K the paper's value and our difference
to it where the paper reports one (every method of its tables, and its Proxy-Anchor source beside our
source run; code/embedding_transfer/reporting/paper_results.csv).
"""
import argparse
import csv
import io
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "code"))

from embedding_transfer.errors import UserError  # noqa: E402
from embedding_transfer.reporting.baselines import matched_baselines  # noqa: E402
from embedding_transfer.reporting.paper_results import setting_name  # noqa: E402
from embedding_transfer.reporting.runs import find_runs  # noqa: E402
from embedding_transfer.runtime import run_cli  # noqa: E402
from embedding_transfer.storage import save_text  # noqa: E402
from embedding_transfer.reporting.tables import CSV_FIELDS, csv_rows, markdown  # noqa: E402


def get_args_parser():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="+", metavar="RUN_DIR", help="run folders, or folders containing them")
    p.add_argument("--title", default=None, help="heading above the tables")
    p.add_argument("--markdown", default="", metavar="FILE.md", help="also write the Markdown here")
    p.add_argument("--csv", default="", metavar="FILE.csv",
                   help="one row per run, values in percent, with the paper's at each K")
    p.add_argument("--matched-baselines", action="store_true",
                   help="read each baseline trained with --time-budget as two rows, same wall-clock and same "
                        "epochs as the Relaxed_Contra run of its network and seed (code/embedding_transfer/reporting/baselines.py)")
    p.add_argument("--flag-rising", action="store_true",
                   help="mark rows with runs whose selected epoch is one of their last 10 (no plateau shown)")
    p.add_argument("--claims", default="", metavar="FILE.md",
                   help="also write the paper's claims as paired differences over seeds with 95%% intervals "
                        "(code/embedding_transfer/reporting/claims.py)")
    p.add_argument("--curves", default="", metavar="FILE.png",
                   help="held-out R@1 against optimisation steps of every run, a panel per setting")
    p.add_argument("--figure", default="", metavar="FILE.png", help="bar chart of R@1 by method and setting")
    return p


def convergence_panels(runs):
    """[(panel, [(label, records)])]: the sources, then each setting with its labels-only baselines
    (the runs without a source of its target network)."""
    panels = {"sources": []}
    targets = [r for r in runs if r.uses_source and r.epochs]
    for r in sorted(targets, key=lambda r: r.dir):
        panels.setdefault(setting_name(r.teacher, r.network), []).append((r.method, r.epochs))
    for r in runs:
        if r.is_source and r.epochs:
            panels["sources"].append((r.network, r.epochs))
        elif not r.is_source and not r.uses_source and r.epochs:
            for t in {(setting_name(t.teacher, t.network)) for t in targets if t.network == r.network}:
                panels[t].append((r.method, r.epochs))
    return [(name, rs) for name, rs in panels.items() if rs]


def main(args):
    runs = trained = find_runs(args.runs)
    if args.matched_baselines:
        runs = matched_baselines(runs)
    if not any(r.selected is not None for r in runs):
        raise UserError(f"none of the {len(runs)} runs under {', '.join(args.runs)} has finished an epoch yet.")
    text = markdown(runs, args.title, flag_rising=args.flag_rising)
    print(text)
    if args.markdown:
        save_text(text, args.markdown)
    if args.csv:
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=CSV_FIELDS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(csv_rows(runs))
        save_text(buf.getvalue(), args.csv)
    if args.figure:
        from embedding_transfer.reporting.plots import plot_bars   # matplotlib only when a figure is asked for
        plot_bars(runs, args.figure, title=args.title or "R@1 by method and setting")
    if args.claims:
        from embedding_transfer.reporting.claims import claims_markdown
        claims = claims_markdown(runs)
        print(claims)
        save_text(claims, args.claims)
    if args.curves:
        from embedding_transfer.reporting.curves import plot_convergence
        plot_convergence(convergence_panels(trained), args.curves, "held-out R@1 while training (★: selected epoch)")
    for path in (args.markdown, args.csv, args.figure, args.claims, args.curves):
        if path:
            print(f"written: {path}")
    return text


if __name__ == "__main__":
    run_cli(main, get_args_parser())
