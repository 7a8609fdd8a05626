"""Stage 2 of scripts/gpu_check.py: the full-network miniature at the paper's step count.

The spec scripts/specs/gpu_miniature.toml (EfficientNet-Lite0 self-transfer on the emoji data at
48 px: the source, a Relaxed_Contra target, the Proxy-Anchor baseline), run by the experiment
runner (scripts/experiments.py) inside the stage's time limit, with the epochs that give the
paper's 5,850 steps on the data found. Each run stops at its --time-budget; the stage reads from
the run folders how far each got (steps from metrics.jsonl, a budget stop from log.txt), so a run
stopped at the stage's limit still tells what it had scored.
"""
import math
import os
import shlex
import sys
import tarfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "code"))

SPEC = os.path.join(ROOT, "scripts", "specs", "gpu_miniature.toml")
PAPER_STEPS = 90 * (5864 // 90)
TARBALL = os.path.join(ROOT, ".whl", "emoji-data.tar.gz")   # written by scripts/gpu_wheels.sh
# Steps to plan, and flags over the spec's: the GPU keeps the spec's sizes; --dry-run is toy-sized.
GPU = dict(steps=PAPER_STEPS, batch=90, flags=[])
DRY = dict(steps=6, batch=12, flags=["--crop-size", "32", "--batch-size", "12", "--workers", "0"])
TITLES = {"": "source (Proxy-Anchor)", "Relaxed_Contra": "target: Relaxed_Contra",
          "Proxy_Anchor": "baseline: Proxy-Anchor alone"}


def unpack_emoji(data_dir, tarball=TARBALL):
    """data_dir once it holds a complete emoji data set, unpacked from `tarball` when needed."""
    from embedding_transfer.dataset.emoji import read_manifest
    from embedding_transfer.errors import UserError
    if read_manifest(data_dir) is not None:
        return data_dir
    if not os.path.isfile(tarball):
        raise UserError(f"no emoji data: neither {os.path.join(data_dir, 'emoji')} nor {tarball}. Run "
                        "scripts/gpu_wheels.sh on a machine with the network, and carry .whl.")
    os.makedirs(data_dir, exist_ok=True)
    with tarfile.open(tarball) as tar:
        tar.extractall(data_dir, filter="data")
    if read_manifest(data_dir) is None:
        raise UserError(f"{tarball} holds no complete emoji data set: run scripts/gpu_wheels.sh again.")
    return data_dir


def toy_emoji_tarball(folder, classes=24, vendors=("twemoji", "openmoji", "noto")):
    """A tarball like gpu_wheels.sh's of a tiny emoji data set: `classes` emoji, each drawn by every
    vendor as a 16 px square of a colour of its own."""
    import PIL.Image
    from emoji_prep.manifest import write_manifest   # noqa: E402  (scripts/ is on sys.path)
    root = os.path.join(folder, "emoji")
    results = {}
    for c in range(classes):
        key = f"{0x1F600 + c:x}"
        os.makedirs(os.path.join(root, "images", key))
        for v, vendor in enumerate(vendors):
            colour = ((c * 53 + v * 9) % 256, (c * 101) % 256, (c * 29 + v * 40) % 256)
            PIL.Image.new("RGB", (16, 16), colour).save(os.path.join(root, "images", key, f"{vendor}.png"))
        results[key] = list(vendors)
    write_manifest(root, results, list(vendors), {v: "toy" for v in vendors})
    path = os.path.join(folder, "emoji-data.tar.gz")
    with tarfile.open(path, "w:gz") as tar:
        tar.add(root, arcname="emoji")
    return path


def flags(cfg, data_dir, per_epoch):
    """The flags written over the spec: the data found, and the epochs that give cfg's steps."""
    return ["--DATA_DIR", data_dir, "--epochs", str(math.ceil(cfg["steps"] / per_epoch)), *cfg["flags"]]


def runner_command(py, out, over):
    return [py, "scripts/experiments.py", "run", SPEC, "--out", out, "--flags", shlex.join(over)]


def recorded(folder):
    """A run's metrics.jsonl records (whatever it wrote before it ended), [] when none."""
    from embedding_transfer.reporting.runs import find_runs
    try:
        (run,) = find_runs([folder])
    except Exception:   # no folder, or no epoch written yet: nothing measured
        return []
    return run.epochs


def by_budget(folder):
    """Whether the run's log says its --time-budget stopped it (training.Deadline's line)."""
    try:
        with open(os.path.join(folder, "log.txt"), errors="replace") as f:
            return any(line.startswith("--time-budget ") and " reached" in line for line in f)
    except OSError:
        return False


def percent(x):
    return "-" if x is None else f"{100 * x:.1f}"


def one_run(spec, run, planned, stage_stopped):
    """(table row, R@1 summary, curve line, status) of one run, from its folder."""
    from embedding_transfer.experiments import state
    from embedding_transfer.records import best_record
    folder = spec.run_dir(run)
    record, records = state.read(folder), recorded(folder)
    word = record.get("status")
    steps = sum(r.get("steps", 0) for r in records)
    best = best_record(records) or {}
    seconds = record.get("total_seconds", sum(r.get("time", 0) for r in records))
    if word == state.FINISHED:
        status = "ok"
        end = (f"stopped by its --time-budget of {run.args.time_budget:g} s" if by_budget(folder)
               else "all planned steps")
    elif word == state.FAILED:
        status, end = "failed", (f"failed (exit status {record.get('returncode')}): "
                                 f"{state.log_tail(folder, 1)[:300]}")
    elif record or records:   # started, and stopped with the runner at the stage's limit
        status, end = "timed out", "stopped at the stage's time limit; figures as far as it got"
    else:
        status = "timed out" if stage_stopped else "failed"
        end = "not started" + (": its source did not finish" if run.needs else "")
    every = max(1, math.ceil(len(records) / 12))
    curve = ", ".join(f"{r['epoch']}: {percent(r.get('R@1'))}" for r in records[::every])
    title = TITLES[run.method]
    row = (f"| {title} | {steps} of {planned} | {seconds:.0f} | {best.get('epoch', '-')} | "
           f"{percent(best.get('R@1'))} | {end} |")
    name = title.split(":")[-1].strip()
    return row, f"{name} {percent(best.get('R@1'))} ({steps} steps)", f"- {name}, test R@1 by epoch: {curve or '-'}", \
        status


def stage(ctx):
    """(status, markdown) of the miniature. ctx: gpu_check's stage context."""
    from embedding_transfer.dataset import build_dataset
    from embedding_transfer.experiments import spec as specs
    cfg = DRY if ctx.dry else GPU
    data_dir = unpack_emoji(os.path.join(ctx.tmp, "data"), toy_emoji_tarball(ctx.tmp)) if ctx.dry \
        else unpack_emoji(os.path.join(ROOT, "data"))
    per_epoch = len(build_dataset("emoji", data_dir, "train")) // cfg["batch"]
    over, out = flags(cfg, data_dir, per_epoch), os.path.join(ctx.tmp, "miniature")
    cmd = runner_command(ctx.py, out, over)
    res = ctx.run(cmd, math.inf)   # bounded by the stage's deadline; each run by its --time-budget
    spec = specs.load(SPEC, out, shlex.join(over))
    epochs = spec.runs[0].args.epochs
    rows, r1, curves, statuses = [], [], [], []
    for run in spec.runs:
        row, recall, curve, status = one_run(spec, run, epochs * per_epoch, res.timed_out)
        rows.append(row)
        r1.append(recall)
        curves.append(curve)
        statuses.append(status)
    line = "test R@1: " + ", ".join(r1)
    ctx.say(line)
    args = spec.runs[0].args
    head = (f"`{shlex.join(cmd[1:])}` ({res.seconds:.0f} s{', stopped at the stage limit' if res.timed_out else ''})"
            f"\n\nLite0-{args.embedding_size} self-transfer on the emoji data, {args.crop_size} px, batch "
            f"{args.batch_size}, lr {args.lr:g}, {args.workers} loader workers; plan: {epochs} epochs x {per_epoch} "
            f"steps (the paper's {PAPER_STEPS:,} steps on CUB){' [dry run: toy data and sizes]' if ctx.dry else ''}.")
    table = "| run | steps done | seconds | best epoch | test R@1 | how it ended |\n|---|---|---|---|---|---|\n"
    tail = "\n".join(res.text.strip().splitlines()[-15:])
    worst = next((s for s in ("timed out", "failed") if s in statuses), "ok")
    return worst, (f"{head}\n\n{table}" + "\n".join(rows) + f"\n\n{line}\n\n" + "\n".join(curves)
                   + f"\n\nThe runner's last lines:\n\n```\n{tail}\n```\n")
