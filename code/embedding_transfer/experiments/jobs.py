"""One run's process: its command, run from the repository root as a user would run it, output
appended to OUT/<run>/log.txt, with --resume when an earlier attempt left a checkpoint; its end
written to runner.json. Both launchers use this: the local one polls many processes, a Slurm job
waits for one. Standard library only (a Slurm job imports it)."""
import os
import shlex
import signal
import socket
import subprocess
import sys
import time

from . import state


def command(argv, folder, budget=""):
    """(what to execute now, the checkpoint it resumes or ''): the run's command with this
    interpreter for `python`, plus --time-budget when matched to the finished run in folder
    `budget`, plus --resume when a checkpoint is there; without one, what an earlier attempt left
    is set aside and the run starts afresh."""
    ckpt = state.checkpoint(folder)
    if not ckpt:
        state.set_aside(folder)
    extra = ["--time-budget", str(state.wall_clock(budget))] if budget else []
    return [sys.executable] + list(argv[1:]) + extra + (["--resume", ckpt] if ckpt else []), ckpt


def _ignore_usr2():
    # Slurm signals every process of a job before its time limit; only the job itself (submitit)
    # should act on it, and stop the trainer cleanly. SIG_IGN survives exec; the default would kill.
    signal.signal(signal.SIGUSR2, signal.SIG_IGN)


def start(argv, folder, root, env=None, in_job=False, budget="", **fields):
    """Start the run; returns (process, its runner.json record)."""
    os.makedirs(folder, exist_ok=True)
    earlier = state.read(folder)
    cmd, ckpt = command(argv, folder, budget)
    with open(os.path.join(folder, state.LOG), "a") as log:
        log.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} on {socket.gethostname()}"
                  f"{', resuming' if ckpt else ''}: {shlex.join(cmd)}\n")
        log.flush()
        proc = subprocess.Popen(cmd, cwd=root, stdout=log, stderr=subprocess.STDOUT, env=env,
                                start_new_session=True,   # a Ctrl-C reaches it once, through the launcher
                                preexec_fn=_ignore_usr2 if in_job else None)
    # Time already spent on this run by attempts that left a checkpoint (for the ETA).
    before = earlier.get("total_seconds", 0) if ckpt else 0
    record = state.write(folder, state.RUNNING, host=socket.gethostname(), pid=proc.pid, command=cmd,
                         resumed_from=ckpt, started=time.time(), earlier_seconds=before, **fields)
    return proc, record


def end(folder, proc, record, stopped=False):
    """Write how the run ended: finished only on exit status 0; interrupted when the launcher
    stopped it; failed otherwise. Returns the status."""
    rc = proc.returncode
    seconds = time.time() - record["started"]
    word = state.FINISHED if rc == 0 else state.INTERRUPTED if stopped else state.FAILED
    state.write(folder, word, returncode=rc, seconds=round(seconds, 1),
                total_seconds=round(record.get("earlier_seconds", 0) + seconds, 1), command=record["command"],
                host=record["host"])
    return word


def stop(proc, grace=60.0):
    """Stop a trainer as Ctrl-C does (it keeps its last whole epoch in checkpoint.pth), and kill
    its process group if it has not exited after `grace` seconds. Polls rather than waits, so
    that it can run inside a signal handler while the caller is polling the same process."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    deadline = time.time() + grace
    while proc.poll() is None and time.time() < deadline:
        time.sleep(0.1)
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except OSError:
            pass
        while proc.poll() is None:
            time.sleep(0.1)
