"""The local launcher: a spec's runs side by side on this machine, one per slot. A slot is a
visible GPU (--runs-per-gpu N makes N slots of each; a run sees only its GPU, so the commands'
--gpu-id 0 is that GPU), or without GPUs one of --lanes CPU lanes. A run starts when a slot is
free and the source the spec trains for it has finished. A failed run is reported with the tail of
its log and the others go on. Ctrl-C (or SIGTERM) stops the runs as the trainers stop on Ctrl-C,
each keeping its last whole epoch, and says how to continue: the same command again."""
import fcntl
import os
import shlex
import signal
import sys
import time

from ..errors import UserError
from . import jobs, plan, progress, state
from .spec import ROOT


def visible_gpus():
    """The GPUs this process may use: CUDA_VISIBLE_DEVICES when set, else every one torch sees."""
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        return [g.strip() for g in env.split(",") if g.strip() and not g.strip().startswith("-")]
    import torch
    return [str(i) for i in range(torch.cuda.device_count())]


def lane_threads(lanes):
    """Threads of each run when `lanes` CPU lanes share the cores."""
    return max(1, (os.cpu_count() or 1) // max(1, lanes))


def indent(text):
    return "\n".join("    | " + line for line in text.splitlines())


def say(text):
    print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)


class Local:
    def __init__(self, spec, lanes=1, runs_per_gpu=1, gpus=None):
        self.spec = spec
        self.gpus = visible_gpus() if gpus is None else gpus
        self.slots = [g for g in self.gpus for _ in range(runs_per_gpu)] if self.gpus else [None] * max(1, lanes)
        self.lanes = max(1, lanes)

    def describe(self):
        if self.gpus:
            return (f"local: {len(self.slots)} runs side by side on {len(self.gpus)} GPU(s) "
                    f"({len(self.slots) // len(self.gpus)} per GPU)")
        return f"local: no GPU; {len(self.slots)} CPU lane(s) (--lanes)"

    def env(self, slot):
        env = dict(os.environ)
        gpu = self.slots[slot]
        if gpu is not None:
            env["CUDA_VISIBLE_DEVICES"] = gpu
        elif self.lanes > 1 and "OMP_NUM_THREADS" not in env:
            # Lanes share the cores instead of each trainer taking them all.
            env["OMP_NUM_THREADS"] = str(lane_threads(self.lanes))
        return env

    def _signal(self, signum, frame):
        self.stopping += 1   # acted on by the loop: a handler should not print or wait

    def run(self):
        """Run every run that is not done; returns the exit status (0: all done, 1: some failed or
        could not start, 130: stopped)."""
        os.makedirs(self.spec.out_dir, exist_ok=True)
        lock = os.open(os.path.join(self.spec.out_dir, ".launcher.lock"), os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.lockf(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise UserError(f"another `experiments.py run` is running the runs in {self.spec.out_dir}: "
                            "wait for it to end, or stop it (Ctrl-C), then run again") from None
        old = {s: signal.signal(s, self._signal) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            return self._loop()
        finally:
            for s, h in old.items():
                signal.signal(s, h)
            os.close(lock)

    def _loop(self):
        spec, self.stopping = self.spec, 0
        self.states = states = plan.states(spec)
        todo = [r for r in spec.runs if states[r.name] not in plan.DONE + (state.RUNNING,)]
        for r in todo:   # tried again now: until then, what waits for it waits
            states[r.name] = state.WAITING if states[r.name] == state.FAILED else states[r.name]
        for r in spec.runs:
            if states[r.name] == state.RUNNING:
                say(f"{r.name} is running elsewhere ({plan.describe(spec, r, states)}): left alone")
        say(f"{self.describe()}; {self._line()}; {len(todo)} to run")
        running, given_up, acted = {}, [], 0
        while running or todo and not self.stopping:
            if self.stopping > acted:
                acted = self.stopping
                say("stopping: each run keeps its last whole epoch" if acted == 1 else "killing the runs now")
                for run, proc, _ in running.values():
                    if acted == 1:
                        proc.send_signal(signal.SIGTERM)
                    else:
                        os.killpg(proc.pid, signal.SIGKILL)
            for slot in [s for s in range(len(self.slots)) if s not in running]:
                run = None if self.stopping else self._next(todo, running, given_up)
                if run is None:
                    break
                todo.remove(run)
                proc, record = jobs.start(run.argv, spec.run_dir(run), ROOT, env=self.env(slot),
                                          budget=plan.budget_folder(spec, run))
                running[slot] = (run, proc, record)
                states[run.name] = state.RUNNING
                where = f" on GPU {self.slots[slot]}" if self.slots[slot] is not None else ""
                say(f"started {run.name}{where}" + (f", resuming {progress.shown(record['resumed_from'])}"
                                                    if record["resumed_from"] else "") + f"; {self._line()}")
            for slot, (run, proc, record) in list(running.items()):
                if proc.poll() is None:
                    continue
                del running[slot]
                word = states[run.name] = jobs.end(spec.run_dir(run), proc, record, stopped=self.stopping > 0)
                took = progress.duration(time.time() - record["started"])
                if word == state.FAILED:
                    log = os.path.join(spec.run_dir(run), state.LOG)
                    say(f"FAILED {run.name} (exit status {proc.returncode}, {took}); "
                        f"the end of {progress.shown(log)}:\n" + indent(state.log_tail(spec.run_dir(run))))
                else:
                    say(f"{word} {run.name} ({took}); {self._line()}")
            time.sleep(0.2)
        return self._summary(todo, given_up)

    def _line(self):
        return progress.line(self.states, progress.eta(self.spec, self.states, len(self.slots)))

    def _next(self, todo, running, given_up):
        """The first run of the spec's order that can start now; runs that never can (their
        source failed, or is neither done nor due to run here) are given up with the reason."""
        pending = {r.name for r in todo} | {r.name for r, _, _ in running.values()}
        for run in list(todo):
            why = plan.missing_source(run)
            if run.needs and self.states[run.needs] == state.FAILED:
                why = f"{run.needs}, which it waits for, failed"
            elif run.needs and self.states[run.needs] not in plan.DONE and run.needs not in pending:
                why = f"{run.needs}, which it waits for, is not finished ({self.states[run.needs]})"
            if why:
                todo.remove(run)
                given_up.append((run, why))
                say(f"not started: {run.name}: {why}")
            elif plan.ready(run, self.states):
                return run
        return None

    def _summary(self, todo, given_up):
        failed = [n for n, w in self.states.items() if w == state.FAILED]
        say(self._line())
        for name in failed:
            say(f"failed: {name} (log: {progress.shown(os.path.join(self.spec.out_dir, name, state.LOG))})")
        for run, why in given_up:
            say(f"not started: {run.name}: {why}")
        again = shlex.join(["python"] + sys.argv) if sys.argv and sys.argv[0].endswith(".py") else "the same command"
        if self.stopping:
            say(f"stopped; every run can go on from its last whole epoch: run {again}")
            return 130
        if failed or given_up:
            say(f"fix what failed and run {again}: finished runs are skipped, the others resume or start again")
            return 1
        return 0
