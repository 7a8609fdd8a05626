"""The checks for a machine's first GPU, in one command (about 8 minutes on one GPU), written to
misc/gpu_report.md:

1. the test suite, whose entry points run on CUDA when it is there;
2. benchmarks/bench_train_step.py for the paper's two network settings at 224 px with the paper's
   batch (90 images x 2 views), fp32, bf16 and fp16, with and without channels-last;
3. benchmarks/bench_data.py with all CPU cores;
4. one short run on a generated CUB tree, twice with --deterministic: are the weights equal?
5. with two or more GPUs, the DDP equality tests with NCCL (tests/test_distributed.py).

Without CUDA the CUDA parts are skipped, each with a line saying so, and the rest runs small:
that is how the tests run this script on a CPU.

    bash scripts/gpu_check.sh [--report misc/gpu_report.md]
"""
import argparse
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests"))
from conftest import make_cub  # noqa: E402  (the tests' generated CUB tree)


def shell(cmd, timeout, env=None):
    """(exit status, seconds, output) of a command run from the repository root."""
    t0 = time.perf_counter()
    try:
        out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout,
                             env=dict(os.environ, **(env or {})))
        return out.returncode, time.perf_counter() - t0, out.stdout + out.stderr
    except subprocess.TimeoutExpired as e:
        text = (e.stdout or b"").decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or "")
        return 124, time.perf_counter() - t0, text + f"\n(stopped after {timeout} s)"


FAILED = []


def section(title, cmd, timeout, keep=40, env=None):
    rc, secs, text = shell(cmd, timeout, env)
    if rc != 0:
        FAILED.append(title)
    tail = "\n".join(text.strip().splitlines()[-keep:])
    status = "ok" if rc == 0 else f"exit status {rc}"
    print(f"{title}: {status} ({secs:.0f} s)", flush=True)
    return f"## {title}\n\n`{shlex.join(cmd)}`: {status}, {secs:.0f} s\n\n```\n{tail}\n```\n"


def skipped(title, why):
    print(f"{title}: skipped: {why}", flush=True)
    return f"## {title}\n\nskipped: {why}\n"


def determinism(cuda, tmp):
    """Two identical --deterministic runs of a paper network on the generated CUB tree."""
    data = make_cub(Path(tmp) / "cub")
    states = []
    for n in (1, 2):
        log = os.path.join(tmp, f"det{n}")
        cmd = [sys.executable, "code/train_target.py", "--dataset", "cub", "--DATA_DIR", str(data), "--LOG_DIR", log,
               "--model", "resnet18", "--random-init", "--crop-size", "64" if not cuda else "224", "--loss",
               "Proxy_Anchor", "--embedding-size", "64", "--batch-size", "30", "--IPC", "3", "--epochs", "1",
               "--workers", "2", "--wandb", "disabled", "--deterministic"]
        rc, secs, text = shell(cmd, 120)
        if rc != 0:
            return f"## Determinism\n\nrun {n} failed (exit status {rc}):\n\n```\n{text[-3000:]}\n```\n", False
        (ckpt,) = [os.path.join(d, f) for d, _, fs in os.walk(log) for f in fs if f == "checkpoint.pth"]
        states.append(torch.load(ckpt, weights_only=True)["model"])
    diff = max(float((states[0][k].double() - states[1][k].double()).abs().max()) for k in states[0]
               if states[0][k].is_floating_point())
    line = (f"two --deterministic runs (resnet18, 1 epoch, {'cuda' if cuda else 'cpu'}): "
            f"max |weight difference| {diff:g}")
    print(f"Determinism: {line}", flush=True)
    return f"## Determinism\n\n{line}\n", diff == 0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                 allow_abbrev=False)
    ap.add_argument("--report", default=os.path.join(ROOT, "misc", "gpu_report.md"))
    args = ap.parse_args(argv)
    cuda = torch.cuda.is_available()
    gpus = torch.cuda.device_count() if cuda else 0
    no_cuda = "no CUDA device on this machine"
    where = (f"{gpus} x {torch.cuda.get_device_name(0)}" if cuda else "CPU only") + f", {os.cpu_count()} CPU cores"
    parts = [f"# GPU check\n\n{time.strftime('%Y-%m-%d %H:%M')}, torch {torch.__version__}, {where}.\n"]
    py = sys.executable
    if cuda:
        parts.append(section("Test suite on CUDA", [py, "-m", "pytest", "-q", "-x"], 180, keep=15))
        parts.append(section("Training step, paper settings, 224 px, batch 90 x 2 views", [
            "bash", "-c", f"for cl in '' --channels-last; do {py} benchmarks/bench_train_step.py --devices cuda "
                          "--precisions fp32,bf16,fp16 --iters 4 --warmup 2 --budget 6 $cl; done"], 150, keep=30))
    else:
        parts.append(skipped("Test suite on CUDA", f"{no_cuda} (CI runs the suite on the CPU)"))
        parts.append(skipped("Training step, paper settings, 224 px, batch 90 x 2 views", no_cuda))
    data_flags = (["--workers", f"0,{os.cpu_count()}", "--batches", "5"] if cuda else
                  ["--workers", "0,2", "--batches", "2", "--classes", "200", "--per-class", "2", "--batch-size", "12",
                   "--IPC", "2", "--crop-size", "64", "--synthetic"])
    parts.append(section("Data loading, all cores", [py, "benchmarks/bench_data.py", *data_flags], 90, keep=12))
    with tempfile.TemporaryDirectory() as tmp:
        text, equal = determinism(cuda, tmp)
    parts.append(text)
    if gpus >= 2:
        parts.append(section("DDP equality with NCCL (2 processes)",
                             [py, "-m", "pytest", "-q", "tests/test_distributed.py"], 150, keep=10))
    else:
        parts.append(skipped("DDP equality with NCCL (2 processes)", f"{gpus} GPU(s); it needs two or more"))
    os.makedirs(os.path.dirname(os.path.abspath(args.report)), exist_ok=True)
    with open(args.report, "w") as f:
        f.write("\n".join(parts))
    print(f"report written to {args.report}" + (f"; failed: {', '.join(FAILED)}" if FAILED else ""))
    return 0 if equal and not FAILED else 1


if __name__ == "__main__":
    sys.exit(main())
