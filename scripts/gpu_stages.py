"""The stages of scripts/gpu_check.py, in order of value. Each takes gpu_check's Context and returns
(status, markdown); the miniature, which runs scripts/specs/gpu_miniature.toml, is in scripts/gpu_miniature.py."""
import os
import re
import shlex
import sys
from pathlib import Path

import gpu_miniature

STAGES = ("smoke", "miniature", "step_bench", "data_bench", "determinism", "tests")
TITLES = {"smoke": "1. Smoke: one training step of each paper network",
          "miniature": "2. Full-network miniature at the paper's step count",
          "step_bench": "3. Training step benchmark, 224 px, batch 90 x 2 views",
          "data_bench": "4. Data loading, all cores",
          "determinism": "5. Determinism",
          "tests": "6. Test suite"}
UNTIL_DEADLINE = float("inf")   # a command's own timeout when only the stage's deadline bounds it


def status_of(res):
    return "ok" if res.rc == 0 else "timed out" if res.timed_out else "failed"


def block(cmd, res, keep=40):
    """The command, how it ended and the last `keep` lines it printed."""
    how = {"ok": "ok", "timed out": f"stopped at its time limit ({res.limit:.0f} s)",
           "failed": f"exit status {res.rc}"}[status_of(res)]
    shown = [a if len(a) < 200 else a[:60] + "..." for a in cmd]   # the fault shim's source
    tail = "\n".join(res.text.strip().splitlines()[-keep:])
    return f"`{shlex.join(shown)}`: {how}, {res.seconds:.0f} s\n\n```\n{tail}\n```\n"


def worst(statuses):
    return next((s for s in ("timed out", "failed") if s in statuses), "ok")


def table_rows(text, columns):
    """The cells of the markdown table rows of `text` that have `columns` cells."""
    rows = []
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and len(cells) == columns and not set(cells[0]) <= set("-"):
            rows.append(cells)
    return rows


def is_number(text):
    try:
        float(text)
        return True
    except ValueError:
        return False


def smoke(ctx):
    flags = (["--device", "cpu", "--networks", "resnet18", "--precisions", "fp32,bf16", "--batch-size", "6",
              "--size", "32"] if ctx.dry else ["--device", "cuda"])
    cmd = [ctx.py, "scripts/gpu_smoke.py", *flags]
    res = ctx.run(cmd, UNTIL_DEADLINE)
    return status_of(res), block(cmd, res)


def miniature(ctx):
    return gpu_miniature.stage(ctx)


def step_bench(ctx):
    flags = (["--devices", "cpu", "--precisions", "fp32", "--settings", "resnet50-to-resnet18", "--batch-size", "6",
              "--size", "32", "--iters", "1", "--warmup", "0"] if ctx.dry else
             ["--devices", "cuda", "--precisions", "fp32,bf16,fp16", "--iters", "4", "--warmup", "2", "--budget", "6"])
    parts, statuses = [], []
    for layout in ([], ["--channels-last"]):
        cmd = [ctx.py, "benchmarks/bench_train_step.py", *flags, *layout]
        res = ctx.run(cmd, UNTIL_DEADLINE)
        parts.append(block(cmd, res, keep=12))
        statuses.append(status_of(res))
        for setting, _, precision, step, *_ in table_rows(res.text, 6):
            if precision == "fp32" and not layout and "step" not in ctx.measured and is_number(step):
                ctx.measured["step"] = (setting, float(step) / 2)   # rows count 2 views per image
    return worst(statuses), "\n".join(parts)


def data_bench(ctx):
    flags = (["--workers", "0,2", "--batches", "2", "--classes", "200", "--per-class", "2", "--batch-size", "12",
              "--IPC", "2", "--crop-size", "64", "--synthetic"] if ctx.dry else
             ["--workers", f"4,{os.cpu_count()}", "--batches", "32"])
    cmd = [ctx.py, "benchmarks/bench_data.py", *flags]
    res = ctx.run(cmd, UNTIL_DEADLINE)
    body = block(cmd, res, keep=12)
    rows = [r for r in table_rows(res.text, 3) if r[0].isdigit() and is_number(r[1])]
    if rows and "step" in ctx.measured:
        workers, images = rows[-1][0], float(rows[-1][1])
        setting, trained = ctx.measured["step"]
        limit = "the GPU" if images > trained else "the loader"
        line = (f"loader: {images:.0f} images/s with {workers} workers; training step ({setting}, fp32): "
                f"{trained:.0f} images/s: {limit} is the limit")
        ctx.say(line)
        body += f"\n{line}\n"
    return status_of(res), body


def determinism(ctx):
    """Two identical --deterministic runs of a paper network on the generated CUB tree."""
    import torch
    sys.path.insert(0, os.path.join(gpu_miniature.ROOT, "tests"))
    from conftest import make_cub   # the tests' generated CUB tree (needs pytest, scipy)
    data = make_cub(Path(ctx.tmp) / "cub")
    states = []
    for n in (1, 2):
        log = os.path.join(ctx.tmp, f"det{n}")
        cmd = [ctx.py, "code/train_target.py", "--dataset", "cub", "--DATA_DIR", str(data), "--LOG_DIR", log,
               "--model", "resnet18", "--random-init", "--crop-size", "32" if ctx.dry else "224", "--loss",
               "Proxy_Anchor", "--embedding-size", "64", "--batch-size", "30", "--IPC", "3", "--epochs", "1",
               "--workers", "2", "--wandb", "disabled", "--deterministic"]
        res = ctx.run(cmd, UNTIL_DEADLINE)
        if res.rc != 0:
            return status_of(res), f"run {n}:\n\n" + block(cmd, res)
        (ckpt,) = [os.path.join(d, f) for d, _, fs in os.walk(log) for f in fs if f == "checkpoint.pth"]
        states.append(torch.load(ckpt, weights_only=True)["model"])
    diff = max(float((states[0][k].double() - states[1][k].double()).abs().max()) for k in states[0]
               if states[0][k].is_floating_point())
    line = (f"two --deterministic runs (resnet18, 1 epoch, {'cuda' if ctx.cuda else 'cpu'}): "
            f"max |weight difference| {diff:g}")
    ctx.say(line)
    return ("ok" if diff == 0 else "failed"), line + "\n"


def pytest_summary(res):
    """pytest's closing line, or, when it was stopped, how far its progress had got."""
    if not res.timed_out:
        return res.last_line
    progress = re.findall(r"^(?:\S+\.py )?([.FEsxX]+)\s*\[\s*(\d+)%\]$", res.text, re.M)
    fails = sum(marks.count("F") + marks.count("E") for marks, _ in progress)
    return f"stopped at {progress[-1][1] if progress else 0}% of the selection, {fails} failures or errors so far"


def tests(ctx):
    runs = ([["tests/losses/test_rkd.py"]] if ctx.dry else
            [["-m", "not e2e", "--maxfail", "25"], ["-m", "e2e", "--maxfail", "10"]])
    parts, statuses = [], []
    for selection in runs:
        cmd = [ctx.py, "-m", "pytest", "-q", "-rfE", *selection]
        res = ctx.run(cmd, UNTIL_DEADLINE)
        summary = pytest_summary(res)
        ctx.say(f"{' '.join(selection)}: {summary}")
        parts.append(f"{summary}\n\n" + block(cmd, res, keep=25))
        statuses.append(status_of(res))
        if res.timed_out:
            break
    return worst(statuses), "\n".join(parts)


FUNCTIONS = {"smoke": smoke, "miniature": miniature, "step_bench": step_bench, "data_bench": data_bench,
             "determinism": determinism, "tests": tests}
