"""One run per folder. The first run of a command gets the authors' folder name; a later run of the
same command (another seed, or the same one again) never writes into a folder that holds a run: it
takes the next free `{name}_2`, `{name}_3`, ... and says so (as timm's output folders and
Lightning's versions do). `--resume` continues in the checkpoint's own folder. A lock on
`{folder}/.lock` keeps two live runs out of one folder; the kernel drops it when its process ends,
however it ends, so a crashed run never blocks a later one. It is a POSIX record lock (lockf), which
belongs to the process alone: data-loader workers, forked from a run, do not inherit it and cannot
keep it alive after their parent was killed (a flock would be shared with them)."""
import fcntl
import os

from .errors import UserError

RUN_FILES = ("args.json", "metrics.jsonl", "checkpoint.pth")


def holds_run(folder):
    return any(os.path.exists(os.path.join(folder, f)) for f in RUN_FILES)


_HELD = {}   # folder -> fd: POSIX locks do not exclude their own process, so it remembers its own


def _lock(folder):
    """An open file holding the folder's lock, or None when a live run holds it."""
    folder = os.path.abspath(folder)
    if folder in _HELD:
        return None
    os.makedirs(folder, exist_ok=True)
    fd = os.open(os.path.join(folder, ".lock"), os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    _HELD[folder] = fd
    return fd


def _holder(folder):
    if os.path.abspath(folder) in _HELD:   # reading the file would drop this process's own lock
        return "this process"
    try:
        with open(os.path.join(folder, ".lock")) as f:
            return f"process {f.read().strip()}"
    except OSError:
        return "another process"


def claim(base, resume=""):
    """(folder, lock) for this run: the folder of `resume`'s checkpoint, else `base` or the first
    free `{base}_N`. Keep `lock` (an fd) open for the whole run; release() lets it go."""
    if resume:
        folder = os.path.dirname(os.path.abspath(resume))
        lock = _lock(folder)
        if lock is None:
            raise UserError(f"--resume {resume}: {_holder(folder)} is still training in {folder}. Wait for "
                            "it to finish (or stop it) before resuming.")
        return folder, lock
    for n in range(1, 10000):
        folder = base if n == 1 else f"{base}_{n}"
        if holds_run(folder):
            continue
        lock = _lock(folder)
        if lock is None:
            continue
        if holds_run(folder):   # a run started between the check and the lock
            release(lock)
            continue
        if n > 1:
            print(f"note: {base} holds an earlier run (to continue it, pass --resume "
                  f"{os.path.join(base, 'checkpoint.pth')}); this run writes to {folder}", flush=True)
        return folder, lock
    raise UserError(f"{base}_2 ... {base}_9999 all hold runs: pass another --LOG_DIR or --remark.")


def release(lock):
    if lock is not None:
        for folder in [f for f, fd in _HELD.items() if fd == lock]:
            del _HELD[folder]
        os.close(lock)
