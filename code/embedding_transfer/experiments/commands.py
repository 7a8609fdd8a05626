"""What scripts/experiments.py does: `run` (or, with --dry-run, every command and the estimated
device-hours), `status`, `report`."""
import argparse
import os
import shlex
import subprocess
import sys
import time

from ..errors import UserError
from . import costs, plan, progress, spec as specs, state

EXAMPLES = """examples:
  python scripts/experiments.py run scripts/specs/paper.toml --dry-run     every command, and the device-hours
  python scripts/experiments.py run scripts/specs/paper.toml               side by side on the visible GPUs
  python scripts/experiments.py run scripts/specs/paper.toml --launcher slurm --partition gpu --time-min 720
  python scripts/experiments.py status scripts/specs/paper.toml            done, running, failed, waiting; ETA
  python scripts/experiments.py report scripts/specs/paper.toml            OUT/report.md: ours beside the paper's
Run the same `run` again at any time: finished runs are skipped, interrupted ones resume (docs/experiments.md)."""


def get_args_parser():
    p = argparse.ArgumentParser(description="Run a spec's grid of experiments, and report on it.", epilog=EXAMPLES,
                                formatter_class=argparse.RawDescriptionHelpFormatter, allow_abbrev=False)
    sub = p.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run what is not done yet (--dry-run: print it)", allow_abbrev=False)
    status = sub.add_parser("status", help="where each run stands, and an ETA", allow_abbrev=False)
    report = sub.add_parser("report", help="write OUT/report.md: results beside the paper's, and its claims",
                            allow_abbrev=False)
    for q in (run, status, report):
        q.add_argument("spec", help="the spec, e.g. scripts/specs/paper.toml")
        q.add_argument("--out", default=None, help="folder of the run folders (default: the spec's out)")
        q.add_argument("--flags", default="", help="trainer flags added after every run's command, over the "
                       "spec's values (e.g. --flags '--epochs 2 --workers 0' to try a spec small)")
    run.add_argument("--dry-run", action="store_true", help="print every command and the estimated device-hours")
    run.add_argument("--launcher", default="local", choices=("local", "slurm"))
    local = run.add_argument_group("local launcher")
    local.add_argument("--lanes", type=int, default=1, help="runs side by side on a machine without a GPU")
    local.add_argument("--runs-per-gpu", type=int, default=1, help="runs side by side on each visible GPU")
    slurm = run.add_argument_group("slurm launcher (submitit)")
    slurm.add_argument("--partition", default=None, help="Slurm partition (default: the cluster's)")
    slurm.add_argument("--time-min", type=int, default=1440, help="time limit of a job; a run that needs longer "
                       "is requeued and resumes")
    slurm.add_argument("--gpus-per-job", type=int, default=1)
    slurm.add_argument("--cpus-per-job", type=int, default=10, help="the trainers load data with 8 workers")
    slurm.add_argument("--max-requeues", type=int, default=20, help="time-outs after which a job is not requeued")
    slurm.add_argument("--cluster", default="slurm", choices=("slurm", "local"),
                       help="local: submitit's local executor on this machine, to try the path without a cluster")
    slurm.add_argument("--wait", action="store_true", help="wait for the jobs and report each as it ends")
    return p


def launcher(args, spec):
    if args.launcher == "slurm":
        from .slurm import Slurm
        return Slurm(spec, args.partition, args.time_min, args.gpus_per_job, args.cpus_per_job, args.max_requeues,
                     args.cluster)
    from .local import Local
    return Local(spec, args.lanes, args.runs_per_gpu)


def main(args):
    spec = specs.load(args.spec, args.out, args.flags)
    return {"run": run, "status": status, "report": report}[args.command](args, spec)


def dry_run(spec, states, launch):
    sources = sum(r.kind == "source" for r in spec.runs)
    lines = [f"spec {spec.path}: {sources} source runs and {len(spec.runs) - sources} target runs, seeds "
             f"{', '.join(map(str, spec.seeds))}; run folders in {spec.out}/",
             f"launcher: {launch.describe()}"]
    todo = [r for r in spec.runs if states[r.name] not in plan.DONE]
    if hasattr(launch, "arrays"):
        for needs, runs in launch.arrays(todo, states):
            lines.append(f"  job array of {len(runs)} runs" + (f", after {needs} ends well (afterok)" if needs else ""))
    lines.append("")
    if spec.prepare:
        lines.append("# prepare: here, in order, before any run starts (each step skips what is done)")
        lines += [shlex.join(argv) for argv in spec.prepare]
    for run in spec.runs:
        lines += [f"# {run.name}: {plan.describe(spec, run, states)}", run.command]
    lines += [""] + costs.summary(spec.runs, costs.load(spec.costs), progress.shown(spec.costs) if spec.costs else "",
                                  left={r.name for r in todo})
    lines.append(progress.line(states))
    return "\n".join(lines)


def run(args, spec):
    states = plan.states(spec)
    launch = launcher(args, spec)
    if args.dry_run:
        print(dry_run(spec, states, launch))
        return 0
    prepare(spec)
    if args.launcher == "local":
        return launch.run()
    todo, skipped = to_submit(spec, states, launch)
    for line in skipped:
        print(line)
    jobs = launch.submit(todo, states) if todo else {}
    print(f"{launch.describe()}\nsubmitted {len(jobs)} runs; {progress.line(plan.states(spec))}\n"
          f"follow them with: python scripts/experiments.py status {spec.path}")
    return wait(spec, jobs) if args.wait else 0


def prepare(spec):
    """The spec's prepare steps, in order, here (e.g. rendering a data set, caching features once
    for every run instead of in each lane); a failed step stops everything."""
    for argv in spec.prepare:
        print(f"[{time.strftime('%H:%M:%S')}] prepare: {shlex.join(argv)}", flush=True)
        done = subprocess.run([sys.executable] + argv[1:], cwd=specs.ROOT)
        if done.returncode != 0:
            raise UserError(f"prepare step failed (exit status {done.returncode}): {shlex.join(argv)}")


def to_submit(spec, states, launch):
    """(runs to submit, lines on those left out): not done, not already in Slurm, and with their
    source file there unless the submission trains it."""
    todo, skipped = [], []
    for r in spec.runs:
        if states[r.name] in plan.DONE:
            continue
        if states[r.name] in (state.QUEUED, state.RUNNING) and launch.alive(r):
            skipped.append(f"{r.name}: already submitted ({plan.describe(spec, r, states)})")
        elif plan.missing_source(r):
            skipped.append(f"{r.name}: not submitted: {plan.missing_source(r)}")
        else:
            todo.append(r)
    return todo, skipped


def wait(spec, jobs):
    """Wait for submitted jobs, saying how each ended; 0 when all finished."""
    left, failed = dict(jobs), []
    while left:
        for name, job in list(left.items()):
            if not job.done():
                continue
            del left[name]
            error = job.exception()
            if error is None:
                print(f"finished {name}; {progress.line(plan.states(spec))}", flush=True)
                continue
            failed.append(name)
            folder = os.path.join(spec.out_dir, name)
            record = state.read(folder)
            if record.get("status") == state.FAILED:   # the trainer failed: its log says why
                why = f"exit status {record.get('returncode')}" if "reason" not in record else record["reason"]
                log = progress.shown(os.path.join(folder, state.LOG))
                print(f"FAILED {name} ({why}); the end of {log}:\n{state.log_tail(folder)}", flush=True)
            else:                                       # the job itself failed: submitit's report
                print(f"FAILED {name}: {str(error).strip()[-2000:]}", flush=True)
        time.sleep(1)
    return 1 if failed else 0


def status(args, spec):
    states = plan.states(spec)
    for run in spec.runs:
        print(f"{states[run.name]:>11}  {run.name}: {plan.describe(spec, run, states)}")
    running = sum(w == state.RUNNING for w in states.values())
    print(progress.line(states, progress.eta(spec, states, max(1, running))))
    return 0


def report(args, spec):
    from .report import write   # the reporting code (scipy) only when asked
    text, path = write(spec)
    print(text)
    print(f"written: {path} and {os.path.join(os.path.dirname(path), 'results.csv')}")
    return 0
