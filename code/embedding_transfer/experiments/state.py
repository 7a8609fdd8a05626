"""Where one run stands, read from its folder OUT/<run>/ alone, so that any process (the local
launcher, a Slurm job, `status` in another shell) sees the same thing:

    runner.json   written by the runner: running (host, pid), queued (submitted to Slurm),
                  interrupted, failed (exit status), or finished, which is written only after the
                  trainer exited with 0: "finished" never rests on reading a log
    **/checkpoint.pth   the trainer's state after its last whole epoch: resume from it
    log.txt       the trainer's stdout and stderr, every attempt appended

Standard library only: a Slurm job imports this without torch."""
import glob
import json
import os
import shutil
import socket
import time

from ..storage import save_json

MARKER, LOG = "runner.json", "log.txt"
FINISHED, RUNNING, QUEUED, FAILED, INTERRUPTED, WAITING = \
    "finished", "running", "queued", "failed", "interrupted", "waiting"


def read(folder):
    try:
        with open(os.path.join(folder, MARKER)) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


def write(folder, status, **fields):
    """Replace runner.json atomically (a reader never sees half a file)."""
    record = {"status": status, "time": time.time(), **fields}
    save_json(record, os.path.join(folder, MARKER))
    return record


def checkpoint(folder):
    """The newest checkpoint.pth in the run's folder (the trainer's run folder is a level or two
    down: logs_{dataset}/{name}/), or ''."""
    found = glob.glob(os.path.join(folder, "**", "checkpoint.pth"), recursive=True)
    return max(found, key=os.path.getmtime) if found else ""


def alive(record):
    """A 'running' record is stale when its process, on this host, is gone (killed with the
    launcher, or the machine restarted). On another host (a Slurm node) it is taken as written."""
    if record.get("host") != socket.gethostname():
        return True
    pid = record.get("pid")
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True


def status(folder):
    """One of FINISHED, RUNNING, QUEUED, FAILED, INTERRUPTED (a checkpoint to resume from), WAITING."""
    record = read(folder)
    word = record.get("status")
    if word in (FINISHED, QUEUED, FAILED) or word == RUNNING and alive(record):
        return word
    return INTERRUPTED if checkpoint(folder) else WAITING


def wall_clock(folder):
    """Seconds the run in `folder` trained and evaluated: its metrics.jsonl's `time`, summed (as
    reporting.baselines.wall_clock reads it), at least 1 (a --time-budget of 0 means none)."""
    found = glob.glob(os.path.join(folder, "**", "metrics.jsonl"), recursive=True)
    total = 0.0
    if found:
        with open(max(found, key=os.path.getmtime)) as f:
            for line in f:
                try:
                    total += json.loads(line).get("time", 0.0)
                except ValueError:   # a partial last line
                    pass
    return max(1.0, round(total, 1))


def log_tail(folder, lines=12):
    try:
        with open(os.path.join(folder, LOG), errors="replace") as f:
            return "".join(f.readlines()[-lines:]).rstrip()
    except OSError:
        return "(no log)"


def set_aside(folder):
    """Before a run starts again from scratch (no checkpoint to resume), move what an earlier
    attempt left (a trainer folder without a whole epoch) to OUT/.attempts/, so that the trainer
    reuses its own folder name and the report reads only the new attempt. log.txt stays."""
    moved = []
    for entry in sorted(os.listdir(folder)) if os.path.isdir(folder) else []:
        path = os.path.join(folder, entry)
        if os.path.isdir(path):
            n = 1
            while os.path.exists(dest := os.path.join(os.path.dirname(folder), ".attempts",
                                                      f"{os.path.basename(folder)}.{n}", entry)):
                n += 1
            os.makedirs(os.path.dirname(dest), exist_ok=True)
            shutil.move(path, dest)
            moved.append(dest)
    return moved
