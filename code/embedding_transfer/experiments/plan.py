"""What each run of a spec needs now, from the run folders and the sources' files: skip it
(finished; or a source whose file is already there and that this spec never started: downloaded),
resume it (a checkpoint), start it, or let it wait for the source the spec trains for it."""
import os

from . import state
from .spec import absolute

PRESENT = "present"
DONE = (state.FINISHED, PRESENT)


def states(spec):
    """{run name: state}: a word of state.py, or PRESENT for a source file found in place. A
    trained source's file is not overwritten: the released files stay as downloaded."""
    out = {}
    for run in spec.runs:
        word = state.status(spec.run_dir(run))
        if run.kind == "source" and word == state.WAITING and os.path.isfile(absolute(run.ckpt)):
            word = PRESENT
        out[run.name] = word
    return out


def missing_source(run):
    """Why a target of a downloaded source cannot start ('' if it can)."""
    if run.kind == "target" and not run.needs and run.ckpt and not os.path.isfile(absolute(run.ckpt)):
        return (f"its source file {run.ckpt} is missing: download it (scripts/download_pretrained_source_models.sh) "
                "or let the spec train it")
    return ""


def budget_folder(spec, run):
    """The folder of the run whose wall clock is this one's --time-budget ('' if none)."""
    return spec.run_dir(spec.by_name()[run.budget_of]) if run.budget_of else ""


def ready(run, states):
    return not run.needs or states[run.needs] in DONE


def describe(spec, run, states):
    """What `run` would do with this run now, in a few words (the dry run, `status`)."""
    word, folder = states[run.name], spec.run_dir(run)
    record = state.read(folder)
    if word == state.FINISHED:
        return "skip: finished" + (" (by another command than the spec's now: remove its folder to run it again)"
                                   if changed(run, record) else "")
    if word == PRESENT:
        return f"skip: {run.ckpt} is there (downloaded), not trained"
    if word in (state.RUNNING, state.QUEUED):
        return f"{word} ({record.get('host', '')} pid {record.get('pid', '?')})" if word == state.RUNNING else \
            f"queued as Slurm job {record.get('job_id', '?')}"
    ckpt = state.checkpoint(folder)
    what = f"resume from {os.path.relpath(ckpt, spec.out_dir)}" if ckpt else "start"
    if word == state.FAILED:
        what = f"retry (failed with exit status {record.get('returncode')}), {what}"
    why = missing_source(run)
    if why:
        return f"blocked: {why}"
    what += f" after {run.needs}" if run.needs and states[run.needs] not in DONE else ""
    return what + (f", with --time-budget the wall clock of {run.budget_of}" if run.budget_of else "")


def changed(run, record):
    """Whether the command a run's record holds differs from the spec's command for it now (a
    finished run is skipped all the same: the runner never deletes results)."""
    done = list(record.get("command", [None])[1:])
    for flag in ("--resume", "--time-budget") if run.budget_of else ("--resume",):
        if flag in done:
            i = done.index(flag)
            del done[i:i + 2]
    return bool(done) and done != list(run.argv[1:])
