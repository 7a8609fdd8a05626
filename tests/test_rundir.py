"""No run overwrites another: a repeated command gets a folder of its own, --resume continues in
place, and a lock keeps two live runs out of one folder without outliving its process."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from embedding_transfer import rundir
from embedding_transfer import train_target
from embedding_transfer.errors import UserError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def train(tiny_flags, tiny_cub, log_dir, *extra):
    argv = tiny_flags + ["--dataset", "cub", "--DATA_DIR", str(tiny_cub), "--LOG_DIR", str(log_dir),
                         "--embedding-size", "8", "--batch-size", "12", "--IPC", "2", "--loss", "Proxy_Anchor",
                         "--save", "1", *extra]
    return train_target.main(train_target.get_args_parser().parse_args(argv))


def test_a_second_run_never_writes_into_the_first(tiny_flags, tiny_cub, tmp_path, capsys):
    base = tmp_path / "logs_cub" / "resnet_narrow_Proxy_Anchor_embedding8_adamw_lr0.0001_batch12"
    train(tiny_flags, tiny_cub, tmp_path)
    first = {f: (base / f).read_bytes() for f in os.listdir(base) if f != ".lock"}
    assert {"args.json", "metrics.jsonl", "checkpoint.pth", "cub_resnet_narrow_best.pth"} <= set(first)
    train(tiny_flags, tiny_cub, tmp_path, "--seed", "1")
    assert {f: (base / f).read_bytes() for f in first} == first             # untouched
    second = base.parent / (base.name + "_2")
    assert json.loads((second / "args.json").read_text())["seed"] == 1
    assert len((second / "metrics.jsonl").read_text().splitlines()) == 1
    assert f"this run writes to {second}" in capsys.readouterr().out


def test_resume_continues_in_its_own_folder(tiny_flags, tiny_cub, tmp_path):
    base = tmp_path / "logs_cub" / "resnet_narrow_Proxy_Anchor_embedding8_adamw_lr0.0001_batch12"
    train(tiny_flags, tiny_cub, tmp_path)
    # An epoch recorded after the last checkpoint (an interruption between the two writes).
    with open(base / "metrics.jsonl", "a") as f:
        f.write(json.dumps({"epoch": 1, "loss": 9.0}) + "\n")
    train(tiny_flags, tiny_cub, tmp_path, "--epochs", "2", "--resume", str(base / "checkpoint.pth"))
    assert sorted(os.listdir(base.parent)) == [base.name]
    epochs = [json.loads(line) for line in (base / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in epochs] == [0, 1] and epochs[1]["loss"] != 9.0


def hold_lock(folder):
    """A separate live process that claims `folder` and waits."""
    code = (f"import sys; sys.path.insert(0, {os.path.join(ROOT, 'code')!r}); import time; from embedding_transfer import rundir; "
            f"rundir.claim({str(folder)!r}); print('locked', flush=True); time.sleep(60)")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "locked"
    return proc


def test_a_live_run_locks_its_folder_and_a_dead_one_does_not(tmp_path):
    base = str(tmp_path / "run")
    holder = hold_lock(base)
    try:
        folder, lock = rundir.claim(base)                       # not in the live run's folder
        assert folder == base + "_2"
        rundir.release(lock)
        with pytest.raises(UserError, match=f"process {holder.pid} is still training in"):
            rundir.claim(base + "_x", resume=os.path.join(base, "checkpoint.pth"))
    finally:
        holder.send_signal(signal.SIGKILL)                     # a crash: no clean-up ran
        holder.wait()
    deadline = time.time() + 10
    while time.time() < deadline:
        folder, lock = rundir.claim(base)
        rundir.release(lock)
        if folder == base:
            break
    assert folder == base                                       # the stale lock does not block


def test_concurrent_claims_get_distinct_folders(tmp_path):
    base = str(tmp_path / "run")
    claims = [rundir.claim(base) for _ in range(3)]             # three live runs of one command
    assert [f for f, _ in claims] == [base, base + "_2", base + "_3"]
    for _, lock in claims:
        rundir.release(lock)
