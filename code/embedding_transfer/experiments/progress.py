"""Progress of a spec: how many runs are done, running, failed and waiting, and an ETA from the
wall-clock of the runs that finished in the same output folder (the runner.json of each)."""
import os
import statistics
import time

from . import state
from .plan import DONE


def counts(states):
    words = list(states.values())
    done = sum(w in DONE for w in words)
    running = words.count(state.RUNNING)
    failed = words.count(state.FAILED)
    return {"done": done, "running": running, "failed": failed, "waiting": len(words) - done - running - failed}


def line(states, eta_s=None):
    c = counts(states)
    text = f"{len(states)} runs: {c['done']} done, {c['running']} running, {c['failed']} failed, {c['waiting']} waiting"
    if not c["running"] + c["waiting"]:
        return text
    if eta_s is not None:
        text += f"; ETA {duration(eta_s)}"
    else:
        text += "; ETA once a run of this spec has finished here"
    return text


def shown(path):
    """A path as short as it can be said: relative to the working folder when inside it."""
    rel = os.path.relpath(path)
    return path if rel.startswith("..") else rel


def duration(seconds):
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


def _kind(run):
    """Runs expected to take alike: same trainer, networks, data set and epochs."""
    a = run.args
    return (run.script, a.model, getattr(a, "source_model", None), a.embedding_size, run.dataset, a.epochs,
            a.crop_size, a.batch_size)


def eta(spec, states, slots, now=None):
    """Seconds until every run not done has run, with `slots` runs side by side: each takes what
    finished runs of its kind took (or of any kind, when none of its kind has finished), less
    what a running one has already run. None until some run has finished."""
    now = now or time.time()
    took = {}
    for run in spec.runs:
        record = state.read(spec.run_dir(run))
        if states[run.name] == state.FINISHED and "total_seconds" in record:
            took.setdefault(_kind(run), []).append(record["total_seconds"])
    if not took:
        return None
    overall = statistics.fmean(s for v in took.values() for s in v)
    left = 0.0
    for run in spec.runs:
        if states[run.name] in DONE:
            continue
        expected = statistics.fmean(took[_kind(run)]) if _kind(run) in took else overall
        if states[run.name] == state.RUNNING:
            record = state.read(spec.run_dir(run))
            expected -= record.get("earlier_seconds", 0) + now - record.get("started", now)
        elif states[run.name] == state.INTERRUPTED:
            expected -= state.read(spec.run_dir(run)).get("total_seconds", 0)
        left += max(expected, 0)
    return left / max(1, slots)
