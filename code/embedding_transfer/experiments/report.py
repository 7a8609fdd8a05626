"""The results of a spec, whenever asked: the tables of reporting/tables.py (ours beside the paper's
numbers) and the paper's claims as paired differences with 95% intervals (reporting/claims.py),
read from the spec's run folders, finished or not, under a line of progress. Written to
OUT/report.md, with one row per run in OUT/results.csv."""
import csv
import io
import os
import time

from ..errors import UserError
from ..reporting.claims import claims_markdown
from ..reporting.runs import find_runs
from ..reporting.tables import CSV_FIELDS, csv_rows, markdown
from ..storage import save_text
from . import plan, progress


def read_runs(spec):
    """The reporting.runs.Run of every run folder of the spec that has written an epoch."""
    folders = [spec.run_dir(r) for r in spec.runs if os.path.isdir(spec.run_dir(r))]
    try:
        return [r for r in find_runs(folders) if r.selected is not None] if folders else []
    except UserError:   # no run folder holds a record yet
        return []


def write(spec):
    """Write OUT/report.md and OUT/results.csv; returns (the Markdown, its path)."""
    states = plan.states(spec)
    runs = read_runs(spec)
    unfinished = sorted(n for n, w in states.items() if w not in plan.DONE)
    lines = [f"# Results of {spec.path}", "",
             f"{time.strftime('%Y-%m-%d %H:%M')}: {progress.line(states)}.", ""]
    if not runs:
        lines.append("No run has finished an epoch yet.")
    else:
        partial = [r for r in runs if os.path.relpath(r.dir, spec.out_dir).split(os.sep)[0] in unfinished]
        if partial:
            lines += [f"{len(partial)} of the {len(runs)} runs below have not finished: their rows use the best "
                      "epoch so far.", ""]
        lines += [markdown(runs, flag_rising=True), "## The paper's claims, paired by seed", "", claims_markdown(runs)]
    text = "\n".join(lines) + "\n"
    path = os.path.join(spec.out_dir, "report.md")
    save_text(text, path)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_FIELDS, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(csv_rows(runs))
    save_text(buf.getvalue(), os.path.join(spec.out_dir, "results.csv"))
    return text, path

