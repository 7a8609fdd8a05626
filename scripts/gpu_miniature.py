"""Stage 2 of scripts/gpu_check.py: the full-network miniature at the paper's step count.

EfficientNet-Lite0 self-transfer (512-d to 512-d) on the emoji data at 48 px, ImageNet-initialised,
three runs in a row:
  1. the source: train_source.py, Proxy-Anchor, L2-normalised, one warm-up epoch, lr halved every
     sixth of the run (the released sources' recipe: every 10 of 60 epochs);
  2. a target: train_target.py --loss Relaxed_Contra from that source, 30 classes x 3 images x 2 views;
  3. the baseline: the same target network on Proxy-Anchor alone (single-view random batches,
     L2-normalised like the source).
Each gets the paper's step count, 5,850 optimisation steps (CUB: 90 target epochs of 5,864 // 90
batches of 90), as whole epochs of the emoji training split, or what its --time-budget allows.
lr 1e-4 as in the paper (the CPU recipes' 5e-4 made up for their short runs). Best epoch by test R@1,
the paper's protocol.

Every run is a subprocess of this file, `python scripts/gpu_miniature.py train_source|train_target
FLAGS...`, which counts the optimisation steps and prints them after each epoch: a run killed at its
time limit still tells how far it got, and its metrics.jsonl what it had scored.
"""
import json
import math
import os
import sys
import tarfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "code"))

NET, DIM, LR = "efficientnet_lite0", 512, "1e-4"
PAPER_STEPS = 90 * (5864 // 90)
TARBALL = os.path.join(ROOT, ".whl", "emoji-data.tar.gz")   # written by scripts/gpu_wheels.sh
MARK = "gpu_check:"   # prefix of the lines this file's runs print for gpu_check to read

# Time budgets (s) of the three runs, and the margin for start-up, final evaluation and saving.
GPU = dict(steps=PAPER_STEPS, crop=48, batch=90, workers=8, margin=35,
           budgets={"source": 75, "Relaxed_Contra": 80, "Proxy_Anchor": 60})
# Toy sizes for --dry-run; the baseline's budget is meant to run out, to show how that reads.
DRY = dict(steps=6, crop=32, batch=12, workers=0, margin=240,
           budgets={"source": 240, "Relaxed_Contra": 240, "Proxy_Anchor": 0.2})


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


def commands(py, data_dir, work, cfg, epochs):
    """[(name, planned steps, command)] of the three runs."""
    def flags(name, budget_key):
        return ["--dataset", "emoji", "--DATA_DIR", data_dir, "--LOG_DIR", os.path.join(work, name),
                "--model", NET, "--embedding-size", str(DIM), "--crop-size", str(cfg["crop"]),
                "--batch-size", str(cfg["batch"]), "--workers", str(cfg["workers"]), "--bn-freeze", "0",
                "--lr", LR, "--epochs", str(epochs), "--wandb", "disabled",
                "--time-budget", str(cfg["budgets"][budget_key])]
    me = [py, os.path.abspath(__file__)]
    ckpt_dir = os.path.join(work, "pretrained_source")
    ckpt = os.path.join(ckpt_dir, NET, f"emoji_{NET}_{DIM}dim_Proxy_Anchor_ckpt.pth")
    source = me + ["train_source"] + flags("source", "source") + [
        "--l2-norm", "1", "--warm", "1", "--lr-decay-step", str(math.ceil(epochs / 6)), "--save", "1",
        "--save-dir", ckpt_dir]
    relaxed = me + ["train_target"] + flags("relaxed_contra", "Relaxed_Contra") + [
        "--loss", "Relaxed_Contra", "--source-ckpt", ckpt, "--source-model", NET,
        "--source-embedding-size", str(DIM), "--IPC", "3", "--view", "2"]
    baseline = me + ["train_target"] + flags("proxy_anchor", "Proxy_Anchor") + [
        "--loss", "Proxy_Anchor", "--IPC", "0", "--view", "1", "--target-norm", "1"]
    return [("source (Proxy-Anchor)", "source", source), ("target: Relaxed_Contra", "Relaxed_Contra", relaxed),
            ("baseline: Proxy-Anchor alone", "Proxy_Anchor", baseline)], ckpt


def read_marks(text):
    """(steps done, stopped by --time-budget, result dict or None) from a run's output."""
    steps, budget, result = 0, False, None
    for line in text.splitlines():
        if line.startswith("--time-budget ") and " reached" in line:   # training.Deadline, within an epoch or at its end
            budget = True
        elif line.startswith(MARK + " steps "):
            parts = line.split()
            steps, budget = int(parts[2]), budget or parts[-1] == "budget"
        elif line.startswith(MARK + " result "):
            result = json.loads(line[len(MARK + " result "):])
    return steps, budget, result


def recorded(log_dir):
    """A run's metrics.jsonl records (whatever it wrote before it ended), [] when none."""
    from embedding_transfer.reporting.runs import find_runs
    try:
        (run,) = find_runs([log_dir])
    except Exception:   # no folder, or no epoch written yet: nothing measured
        return []
    return run.epochs


def percent(x):
    return "-" if x is None else f"{100 * x:.1f}"


def one_run(ctx, title, cmd, budget, timeout, planned):
    """(table row, R@1 summary, curve line, status) of one of the three runs."""
    res = ctx.run(cmd, timeout)
    steps, by_budget, result = read_marks(res.text)
    records = recorded(cmd[cmd.index("--LOG_DIR") + 1])
    if result is None:   # stopped before its end: the best of what it recorded
        from embedding_transfer.records import best_record
        best = best_record(records)
        result = {"best_epoch": best["epoch"], "R@1": best.get("R@1")} if best else {"best_epoch": None, "R@1": None}
    status = "ok" if res.rc == 0 else "timed out" if res.timed_out else "failed"
    end = {"ok": f"stopped by its --time-budget of {budget:g} s" if by_budget else "all planned steps",
           "timed out": f"killed at its time limit ({res.limit:.0f} s); figures as far as it got",
           "failed": f"failed (exit status {res.rc}): {res.last_line}"}[status]
    every = max(1, math.ceil(len(records) / 12))
    curve = ", ".join(f"{r['epoch']}: {percent(r.get('R@1'))}" for r in records[::every])
    best_epoch = "-" if result["best_epoch"] is None else result["best_epoch"]
    row = f"| {title} | {steps} of {planned} | {res.seconds:.0f} | {best_epoch} | {percent(result['R@1'])} | {end} |"
    name = title.split(":")[-1].strip()
    return row, f"{name} {percent(result['R@1'])} ({steps} steps)", f"- {name}, test R@1 by epoch: {curve or '-'}", status


def stage(ctx):
    """(status, markdown) of the miniature. ctx: gpu_check's stage context."""
    from embedding_transfer.dataset import build_dataset
    from gpu_stages import worst
    cfg = DRY if ctx.dry else GPU
    data_dir = unpack_emoji(os.path.join(ctx.tmp, "data"), toy_emoji_tarball(ctx.tmp)) if ctx.dry \
        else unpack_emoji(os.path.join(ROOT, "data"))
    per_epoch = len(build_dataset("emoji", data_dir, "train")) // cfg["batch"]
    epochs = math.ceil(cfg["steps"] / per_epoch)
    runs, ckpt = commands(ctx.py, data_dir, os.path.join(ctx.tmp, "miniature"), cfg, epochs)
    rows, r1, curves, statuses = [], [], [], []
    for title, key, cmd in runs:
        if key == "Relaxed_Contra" and not os.path.isfile(ckpt):
            rows.append(f"| {title} | - | - | - | - | skipped: the source saved no checkpoint |")
            statuses.append("failed")
            continue
        budget = cfg["budgets"][key]
        row, recall, curve, status = one_run(ctx, title, cmd, budget, budget + cfg["margin"], epochs * per_epoch)
        rows.append(row)
        r1.append(recall)
        curves.append(curve)
        statuses.append(status)
    line = "test R@1: " + ", ".join(r1)
    ctx.say(line)
    head = (f"Lite0-{DIM} self-transfer on the emoji data, {cfg['crop']} px, batch {cfg['batch']}, lr {LR}, "
            f"{cfg['workers']} loader workers; plan: {epochs} epochs x {per_epoch} steps "
            f"(the paper's {PAPER_STEPS:,} steps on CUB){' [dry run: toy data and sizes]' if ctx.dry else ''}.")
    table = "| run | steps done | seconds | best epoch | test R@1 | how it ended |\n|---|---|---|---|---|---|\n"
    return worst(statuses), f"{head}\n\n{table}" + "\n".join(rows) + f"\n\n{line}\n\n" + "\n".join(curves) + "\n"


def counted_run(module_name, argv):
    """Run an entry point's main in this process, printing the steps done after every epoch and its
    best epoch's scores at the end (the marks that read_marks reads)."""
    import importlib
    from embedding_transfer import training
    from embedding_transfer.runtime import run_cli
    module = importlib.import_module(f"embedding_transfer.{module_name}")
    steps, step = [0], training.train_step

    def counted_step(*args, **kwargs):
        steps[0] += 1
        return step(*args, **kwargs)

    epoch = module.train_one_epoch

    def counted_epoch(*args, **kwargs):
        result = epoch(*args, **kwargs)   # (loss, stopped, steps)
        print(f"{MARK} steps {steps[0]}{' budget' if result[1] else ''}", flush=True)
        return result

    training.train_step, module.train_one_epoch = counted_step, counted_epoch   # both looked up per call
    t0 = time.perf_counter()
    best = run_cli(module.main, module.get_args_parser(), argv)
    result = {"steps": steps[0], "seconds": time.perf_counter() - t0,
              "best_epoch": best[0] if best else None, "R@1": best[1].get("R@1") if best else None}
    print(f"{MARK} result {json.dumps(result)}", flush=True)


if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in ("train_source", "train_target"):
        sys.exit("usage: gpu_miniature.py train_source|train_target FLAGS... (run by scripts/gpu_check.py)")
    counted_run(sys.argv[1], sys.argv[2:])
