"""Labels-only baselines matched to a transfer run's budget (the mini reproduction's protocol).

A transfer run costs more per epoch than training its target network alone (a second view of
every image, the source's forward pass), so "the baseline trained as long" has two meanings. One
baseline run (a target trained without a source, with --time-budget set to the matched transfer
run's wall-clock and the same --epochs, hence the same cosine schedule) gives both:

- same wall-clock: the whole run, at the epoch its own rule selects;
- same epochs: its first E epochs, E being the epochs the matched transfer run trained.

The matched run is the run of `match` (Relaxed_Contra by default) with the same target network,
data set and seed.
"""
import copy

from ..errors import UserError

MATCH = "Relaxed_Contra"
SAME_TIME, SAME_EPOCHS = "same wall-clock", "same epochs"


def _key(run):
    a = run.args
    return a.get("model"), a.get("embedding_size"), a.get("dataset"), a.get("seed")


def _reading(run, epochs, budget, match):
    """A copy of `run` that shows only `epochs`, labelled with its budget."""
    view = copy.copy(run)
    view.epochs = epochs
    view.args = {**run.args, "time_budget": None, "budget": f"{budget} as {match}"}
    view.dir = f"{run.dir}#{budget.replace(' ', '-')}"
    return view


def matched_baselines(runs, match=MATCH):
    """`runs` with every budgeted baseline (no source, --time-budget > 0) replaced by its two
    readings. A budgeted baseline without exactly one matched run is an error."""
    partners = {}
    for r in runs:
        if r.uses_source and r.args.get("loss") == match:
            partners.setdefault(_key(r), []).append(r)
    out = []
    for r in runs:
        if r.is_source or r.uses_source or not r.args.get("time_budget"):
            out.append(r)
            continue
        found = partners.get(_key(r), [])
        if len(found) != 1:
            raise UserError(f"{r.dir} is a baseline with a time budget, but {len(found)} {match} runs have its "
                            "network, data set and seed (one is needed to match its epochs).")
        out += [_reading(r, r.epochs, SAME_TIME, match),
                _reading(r, r.epochs[:len(found[0].epochs)], SAME_EPOCHS, match)]
    return out


def wall_clock(run):
    """Seconds a run trained and evaluated, summed over its epochs (metrics.jsonl's `time`)."""
    return sum(e.get("time", 0.0) for e in run.epochs)
