"""scripts/experiments.py: the paper's spec dry-runs to the README's commands; a tiny spec on the
generated CUB tree runs through the local launcher and through submitit's local executor, where a
run stopped midway resumes to the weights of a run left alone, a second invocation skips what
finished, and a failing run is reported while the others finish; a bad spec is one clear line.

The two flows share one trained source and one uninterrupted reference run (module fixtures);
every trainer computes on one thread, as the reference does."""
import contextlib
import glob
import io
import json
import os
import shlex
import signal
import subprocess
import sys
import time

import pytest
import torch

from embedding_transfer import train_target
from embedding_transfer.errors import UserError
from embedding_transfer.experiments import commands, costs, jobs, plan, spec as specs, state
from embedding_transfer.experiments.local import Local
from embedding_transfer.experiments.slurm import Slurm

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "scripts", "experiments.py")
PAPER = os.path.join(ROOT, "scripts", "specs", "paper.toml")
RC, PKT, SOURCE = "cub-self-Relaxed_Contra-s0", "cub-self-PKT-s0", "source-narrow-cub"
ONE_THREAD = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def tiny_spec(folder, data, tiny_flags, methods=("Relaxed_Contra", "PKT"), source=None, **replace):
    """A spec of the tiny tree: a 32-d resnet_narrow source (trained by the spec, or the file
    `source`), 16-d targets of 2 epochs; PKT reads a data folder that does not exist, so it fails."""
    flags = shlex.join(tiny_flags)
    target = (f"python code/train_target.py {flags} --epochs 2 --dataset {{dataset}} --DATA_DIR {{data}} "
              "--embedding-size 16 --batch-size 12 --IPC 2 --loss {method} --source-ckpt {source_ckpt} "
              "--source-model resnet_narrow --source-embedding-size 32")
    trained = (f"python code/train_source.py {flags} --dataset cub --DATA_DIR {data} --embedding-size 32 "
               "--batch-size 12 --IPC 2 --l2-norm 1 --save 1")
    ckpt = "{out}/sources/resnet_narrow/{dataset}_resnet_narrow_32dim_Proxy_Anchor_ckpt.pth"
    text = f"""
out = "{folder}/out"
seeds = [0]
datasets = ["cub"]
settings = ["self"]
methods = {json.dumps(list(methods))}

[target]
command = "{target}"

[dataset.cub]
data = "{data}"

[setting.self]
source = "narrow"

[method.PKT]
flags = "--DATA_DIR {folder}/nonexistent"

[source.narrow]
""" + (f'ckpt = "{source}"\ntrain = false\n' if source else f'ckpt = "{ckpt}"\ncub = "{trained}"\n')
    for old, new in replace.items():
        assert old in text, old
        text = text.replace(old, new)
    path = os.path.join(folder, "spec.toml")
    os.makedirs(folder, exist_ok=True)
    with open(path, "w") as f:
        f.write(text)
    return path


def cli(*argv, **kw):
    return subprocess.run([sys.executable, SCRIPT, *argv], capture_output=True, text=True, cwd=ROOT,
                          env=ONE_THREAD, timeout=600, **kw)


def final_state(folder):
    (ckpt,) = glob.glob(os.path.join(folder, "**", "checkpoint.pth"), recursive=True)
    return torch.load(ckpt, weights_only=True)


def max_diff(a, b):
    return max(float((a[k].double() - b[k].double()).abs().max()) for k in a if a[k].is_floating_point())


def wait_for_checkpoint(folder, proc_alive, timeout=300):
    """Until the run's epoch 0 is saved (it is then inside epoch 1 of 2)."""
    deadline = time.time() + timeout
    while not state.checkpoint(folder):
        assert proc_alive() and time.time() < deadline, "no checkpoint before the end"
        time.sleep(0.05)


# The paper's spec.

def readme_commands():
    with open(os.path.join(ROOT, "README.md")) as f:
        return [line.strip() for line in f
                if line.strip().startswith("python code/train_target.py") and "<" not in line]


def script_command(path):
    text = open(path).read().replace("\\\n", " ")
    (line,) = [l for l in text.splitlines() if "code/train_" in l]
    return " ".join(line.replace('"${PYTHON:-python}"', "python").replace('"$@"', "").split())


@pytest.mark.parametrize("launcher", ["local", "slurm"])
def test_paper_spec_dry_run_lists_the_72_targets_6_sources_and_the_readme_commands(launcher, tmp_path, capsys):
    args = commands.get_args_parser().parse_args(["run", PAPER, "--dry-run", "--launcher", launcher,
                                                  "--out", str(tmp_path / "paper")])
    assert commands.main(args) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    targets = [l for l in lines if l.startswith("python code/train_target.py")]
    sources = [l for l in lines if l.startswith("python code/train_source.py")]
    assert len(targets) == 72 and len(sources) == 6
    assert len({(a.dataset, a.model, a.embedding_size, a.loss)
                for a in (train_target.get_args_parser().parse_args(shlex.split(t)[2:]) for t in targets)}) == 72
    readme = readme_commands()
    assert len(readme) == 9
    for command in readme:   # each README command, every flag in its place, then the runner's own flags
        assert sum(t.startswith(command + " --LOG_DIR ") for t in targets) == 1, command
    for path in sorted(glob.glob(os.path.join(ROOT, "scripts", "source_*.sh"))):
        assert sum(s.startswith(script_command(path) + " --LOG_DIR ") for s in sources) == 1, path
    assert "device-hours for 78 of the 78 runs" in out
    assert out.count("from: estimate, docs/gpu.md") == 2 * 12   # every group: step and evaluation figure
    if launcher == "slurm":
        assert "job array of 6 runs" in out and out.count("afterok") == 6 and "requeued" in out


# Bad specs: one line, naming the problem and the valid choices.

FLAGS = ["--model", "resnet_narrow", "--random-init", "--epochs", "1"]   # nothing runs: any valid flags

BAD = [
    ({'methods = ["Relaxed_Contra", "PKT"]': 'methods = ["Relaxed_Contra", "Relaxed_Contrast"]'},
     "unknown method 'Relaxed_Contrast' in methods; valid: Relaxed_Contra, Relaxed_MS, RKD"),
    ({'source = "narrow"': 'source = "wide"'}, "source 'wide' has no [source.wide] table (defined: narrow)"),
    ({'source = "narrow"': ''}, "[setting.self] names no source"),
    ({"seeds = [0]": "seeds = [0]\nepochs = 3"}, "unknown key 'epochs'; valid top-level keys: out, seeds"),
    ({'data = "': 'epochs = 2\ndata = "'}, "[dataset.cub]: unknown key 'epochs'; valid: flags and the fields"),
    ({'datasets = ["cub"]': 'datasets = ["CUB"]'}, "unknown data set 'CUB' in datasets; valid: cub, cars, SOP"),
    ({"cub = \"python code/train_source.py": "cars = \"python code/train_source.py"},
     "[source.narrow] has no command for cub"),
    ({"--epochs 2": "--epochs 2 --epochz 3"}, "unrecognized arguments: --epochz 3"),
    ({"--epochs 2": "--epochs 2 --seed 3"}, "remove --seed: the runner sets --LOG_DIR, --seed"),
    ({"32dim_Proxy_Anchor_ckpt.pth": "32dim_ckpt.pth"}, "make ckpt end in resnet_narrow/cub_resnet_narrow_32dim"),
]


@pytest.mark.parametrize("replace,message", BAD, ids=[m.split(";")[0][:30] for _, m in BAD])
def test_a_bad_spec_is_one_line_naming_the_problem(replace, message, tmp_path):
    path = tiny_spec(str(tmp_path), "/data", FLAGS, **replace)
    with pytest.raises(UserError) as e:
        specs.load(path)
    assert message in str(e.value) and "\n" not in str(e.value)
    assert str(e.value).startswith(path + ": ")


def level(folder, text, name="level.toml"):
    path = os.path.join(folder, name)
    with open(path, "w") as f:
        f.write(text)
    return path


def test_a_spec_with_a_base_changes_only_what_it_names(tmp_path):
    """A ladder level: the base's grid and commands, its own out and methods, [target] flags after
    every target's command and a source's flags after the source's."""
    base = specs.load(tiny_spec(str(tmp_path), "/data", FLAGS))
    child = specs.load(level(str(tmp_path), f"""
base = "spec.toml"
out = "{tmp_path}/level"
methods = ["Relaxed_Contra"]
[target]
flags = "--sigma 2"
[source.narrow]
flags = "--lr 1e-3"
"""))
    old, new = base.by_name(), child.by_name()
    assert sorted(new) == [RC, SOURCE]
    for name in new:
        swap = [a.replace(f"{tmp_path}/out", f"{tmp_path}/level") for a in old[name].argv]
        added = ["--sigma", "2"] if name == RC else ["--lr", "1e-3"]
        at = swap.index("--LOG_DIR")
        assert new[name].argv == swap[:at] + added + swap[at:]
    assert new[RC].args.sigma == 2 and new[SOURCE].args.lr == 1e-3
    assert new[RC].ckpt.startswith(f"{tmp_path}/level/sources/")


def test_flags_of_the_command_line_follow_every_command_and_win(tmp_path):
    """--flags: after the spec's own flags (a method's too), before the runner's; a runner's flag
    in them is one line."""
    path = tiny_spec(str(tmp_path), "/data", FLAGS)
    old = specs.load(path).by_name()
    new = specs.load(path, flags="--epochs 7 --lr 3e-3").by_name()
    for name, run in new.items():
        at = old[name].argv.index("--LOG_DIR")
        assert run.argv == old[name].argv[:at] + ["--epochs", "7", "--lr", "3e-3"] + old[name].argv[at:]
        assert (run.args.epochs, run.args.lr) == (7, 3e-3)
    with pytest.raises(UserError, match=r"--flags: remove --seed: the runner sets") as e:
        specs.load(path, flags="--seed 3")
    assert "\n" not in str(e.value)
    done = cli("run", path, "--dry-run", "--flags", "--epochs 7")
    assert done.returncode == 0 and done.stdout.count("--epochs 7 --LOG_DIR") == len(new), done.stdout + done.stderr


@pytest.mark.parametrize("text,message", [
    ('base = "missing.toml"', "level.toml: base {tmp}/missing.toml: no such spec file"),
    ('base = "level.toml"', "level.toml: base {tmp}/level.toml leads back to itself"),
    ('base = "spec.toml"\n[target]\nflags = "--LOG_DIR x"', "[target] flags: remove --LOG_DIR"),
    ('base = "spec.toml"\n[target]\nflag = "--sigma 2"', "[target]: unknown key 'flag'; valid: command, flags"),
])
def test_a_bad_base_or_flags_is_one_line(text, message, tmp_path):
    tiny_spec(str(tmp_path), "/data", FLAGS)
    with pytest.raises(UserError) as e:
        specs.load(level(str(tmp_path), text))
    assert message.format(tmp=tmp_path) in str(e.value) and "\n" not in str(e.value)


def test_a_matched_baseline_waits_for_its_run_and_trains_for_its_wall_clock(tmp_path):
    """budget_of: the baseline's run waits for the named method's run of its setting and seed, and
    starts with --time-budget = that run's wall clock (metrics.jsonl's time, summed)."""
    spec = specs.load(tiny_spec(str(tmp_path), "/data", FLAGS, methods=("Relaxed_Contra", "Proxy_Anchor"),
                                **{"[source.narrow]": '[method.Proxy_Anchor]\nbudget_of = "Relaxed_Contra"\n\n'
                                                      '[source.narrow]'}))
    base = spec.by_name()["cub-self-Proxy_Anchor-s0"]
    assert base.needs == base.budget_of == RC and "--time-budget" not in base.argv
    folder = os.path.join(spec.run_dir(spec.by_name()[RC]), "logs_cub", "run")
    os.makedirs(folder)
    with open(os.path.join(folder, "metrics.jsonl"), "w") as f:
        f.write('{"epoch": 0, "time": 12.25}\n{"epoch": 1, "time": 30.0}\n{"epoch": 2, "ti')   # a partial last line
    cmd, _ = jobs.command(base.argv, spec.run_dir(base), plan.budget_folder(spec, base))
    assert cmd[-2:] == ["--time-budget", "42.2"] and cmd[1:-2] == base.argv[1:]
    assert "with --time-budget the wall clock of " + RC in plan.describe(spec, base, plan.states(spec))
    # A finished baseline started with its budget is not "changed" from the spec's command.
    assert not plan.changed(base, {"command": cmd})


@pytest.mark.parametrize("flags,message", [
    ('budget_of = "PKT"', "name a method listed before Proxy_Anchor in methods"),
    ('budget_of = "Relaxed_Contra"\nflags = "--time-budget 9"', "the runner sets --time-budget from Relaxed_Contra"),
])
def test_a_bad_budget_of_is_one_line(flags, message, tmp_path):
    path = tiny_spec(str(tmp_path), "/data", FLAGS, methods=("Relaxed_Contra", "Proxy_Anchor"),
                     **{"[source.narrow]": f"[method.Proxy_Anchor]\n{flags}\n\n[source.narrow]"})
    with pytest.raises(UserError) as e:
        specs.load(path)
    assert message in str(e.value) and "\n" not in str(e.value)


def test_prepare_steps_run_in_order_and_a_failed_one_stops_the_run(tmp_path):
    marks = tmp_path / "marks"
    steps = [f"python -c \"open('{marks}', 'a').write('{n}')\"" for n in (1, 2)]
    path = tiny_spec(str(tmp_path), "/data", FLAGS, **{"seeds = [0]": "seeds = [0]\nprepare = " + json.dumps(steps)})
    spec = specs.load(path)
    commands.prepare(spec)
    assert marks.read_text() == "12"
    spec.prepare.append(["python", "-c", "raise SystemExit(3)"])
    with pytest.raises(UserError, match=r"prepare step failed \(exit status 3\): python -c"):
        commands.prepare(spec)


@pytest.mark.e2e
def test_the_command_line_says_a_bad_spec_in_one_line(tmp_path):
    path = tiny_spec(str(tmp_path), "/data", FLAGS, methods=("Relaxed_Contra", "Fitnet"))
    out = cli("run", path, "--dry-run")
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr.strip().splitlines() == [f"error: {path}: unknown method 'Fitnet' in methods; valid: "
                                               "Relaxed_Contra, Relaxed_MS, RKD, PKT, DarkRank, Attention, FitNet, "
                                               "CRD, Proxy_Anchor"]


def test_every_committed_spec_loads_and_plans():
    """The specs under scripts/specs/ (the paper's tables, the regime ladder) pass every check of the
    format, and their sources come before the targets that read them."""
    paths = sorted(glob.glob(os.path.join(specs.ROOT, "scripts", "specs", "**", "*.toml"), recursive=True))
    paths = [p for p in paths if os.path.basename(p) != "costs.toml"]
    assert any(p.endswith(os.path.join("ladder", "default.toml")) for p in paths)
    for path in paths:
        spec = specs.load(path)
        names = [r.name for r in spec.runs]
        for run in spec.runs:
            if run.needs:
                assert run.needs in names, (path, run.name)


def test_a_run_without_a_cost_figure_is_counted_not_guessed(tmp_path):
    spec = specs.load(tiny_spec(str(tmp_path), "/data", FLAGS))
    lines = costs.summary(spec.runs, costs.load(os.path.join(ROOT, "scripts", "specs", "costs.toml")), "costs.toml")
    text = "\n".join(lines)
    assert "no figure: train_target resnet_narrow <- resnet_narrow, 224 px, batch 12, cub, 2 epochs" in text
    assert lines[-1] == "total: 0.0 device-hours for 0 of the 3 runs (3 without a figure)"


def test_local_slots_pack_runs_onto_each_gpu_or_share_the_cpu_cores(tmp_path):
    spec = specs.load(tiny_spec(str(tmp_path), "/data", FLAGS))
    gpus = Local(spec, runs_per_gpu=2, gpus=["0", "1"])
    assert gpus.slots == ["0", "0", "1", "1"] and gpus.env(2)["CUDA_VISIBLE_DEVICES"] == "1"
    cpus = Local(spec, lanes=2, gpus=[])
    assert cpus.slots == [None, None] and "2 CPU lane(s)" in cpus.describe()
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("OMP_NUM_THREADS", raising=False)
        assert cpus.env(0)["OMP_NUM_THREADS"] == str(max(1, os.cpu_count() // 2))


# The local launcher: Ctrl-C midway, then the same command again.

@pytest.fixture(scope="module")
def local_flow(tiny_cub, tiny_flags, tmp_path_factory):
    """Invocation A is stopped with SIGINT once the Relaxed_Contra target has saved epoch 0;
    invocation B is the same command again."""
    folder = str(tmp_path_factory.mktemp("local"))
    path = tiny_spec(folder, tiny_cub, tiny_flags)
    spec = specs.load(path)
    argv = [sys.executable, SCRIPT, "run", path, "--lanes", "2"]
    a = subprocess.Popen(argv, cwd=ROOT, env=ONE_THREAD, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_for_checkpoint(os.path.join(spec.out_dir, RC), lambda: a.poll() is None)
        a.send_signal(signal.SIGINT)
        out_a = a.communicate(timeout=300)[0]
    finally:
        if a.poll() is None:
            a.kill()
    after_a = plan.states(spec)
    b = cli("run", path, "--lanes", "2")
    return dict(spec=spec, rc_a=a.returncode, out_a=out_a, after_a=after_a, rc_b=b.returncode,
                out_b=b.stdout + b.stderr)


@pytest.fixture(scope="module")
def reference(local_flow, tmp_path_factory):
    """The Relaxed_Contra run left alone: its command, in this process, on one thread."""
    run = local_flow["spec"].by_name()[RC]
    argv = list(run.argv[2:])
    log_dir = str(tmp_path_factory.mktemp("reference"))
    argv[argv.index("--LOG_DIR") + 1] = log_dir
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        train_target.main(train_target.get_args_parser().parse_args(argv))
    finally:
        torch.set_num_threads(threads)
    return final_state(log_dir)


@pytest.mark.e2e
def test_local_ctrl_c_stops_resumably_and_the_rerun_ends_with_the_uninterrupted_weights(local_flow, reference):
    spec = local_flow["spec"]
    assert local_flow["rc_a"] == 130, local_flow["out_a"]
    assert "stopped; every run can go on from its last whole epoch: run python" in local_flow["out_a"]
    assert local_flow["after_a"][RC] == state.INTERRUPTED and local_flow["after_a"][SOURCE] == state.FINISHED
    assert f"started {RC}, resuming" in local_flow["out_b"]
    resumed = final_state(os.path.join(spec.out_dir, RC))
    assert resumed["epoch"] == reference["epoch"] == 1
    assert max_diff(resumed["model"], reference["model"]) <= 1e-5
    log = open(os.path.join(spec.out_dir, RC, state.LOG)).read()
    assert log.count("\n=== ") == 2 and "resumed from" in log


@pytest.mark.e2e
def test_local_rerun_skips_every_finished_run(local_flow):
    spec, out_b = local_flow["spec"], local_flow["out_b"]
    assert f"started {SOURCE}" not in out_b and f"started {RC}" in out_b
    states = plan.states(spec)
    assert states == {SOURCE: state.FINISHED, RC: state.FINISHED, PKT: state.FAILED}
    for name in (SOURCE, RC):   # a third invocation would skip both
        assert plan.describe(spec, spec.by_name()[name], states) == "skip: finished"
    assert open(os.path.join(spec.out_dir, SOURCE, state.LOG)).read().count("\n=== ") == 1


@pytest.mark.e2e
def test_local_failing_run_is_reported_with_its_log_while_the_others_finish(local_flow):
    out_b = local_flow["out_b"]
    assert local_flow["rc_b"] == 1
    assert f"FAILED {PKT} (exit status 2" in out_b and "CUB-200-2011 not found" in out_b
    assert f"finished {RC}" in out_b and f"failed: {PKT}" in out_b


@pytest.mark.e2e
def test_status_and_report_of_the_local_flow(local_flow, capsys):
    path = local_flow["spec"].path
    commands.main(commands.get_args_parser().parse_args(["status", path]))
    out = capsys.readouterr().out
    assert "3 runs: 2 done, 0 running, 1 failed, 0 waiting" in out and f"failed  {PKT}: retry" in out
    commands.main(commands.get_args_parser().parse_args(["report", path]))
    report = open(os.path.join(local_flow["spec"].out_dir, "report.md")).read()
    assert "| Relaxed_Contra" in report and "| source (Proxy_Anchor)" in report
    assert "## The paper's claims, paired by seed" in report
    assert os.path.isfile(os.path.join(local_flow["spec"].out_dir, "results.csv"))


# submitit's local executor: the Slurm launcher's path, with preemption.

@pytest.fixture(scope="module")
def submitit_flow(local_flow, tiny_cub, tiny_flags, tmp_path_factory):
    """The same targets through submitit's local executor, learning from the local flow's source
    as from a downloaded file; the Relaxed_Contra job gets submitit's preemption signal (USR2)
    once its epoch 0 is saved."""
    folder = str(tmp_path_factory.mktemp("submitit"))
    source = local_flow["spec"].by_name()[SOURCE].ckpt
    spec = specs.load(tiny_spec(folder, tiny_cub, tiny_flags, source=source))
    launch = Slurm(spec, time_min=10, gpus_per_job=0, cpus_per_job=1, cluster="local")
    states = plan.states(spec)
    todo, skipped = commands.to_submit(spec, states, launch)
    assert [r.name for r in todo] == [RC, PKT] and not skipped   # the downloaded source: both start at once
    with pytest.MonkeyPatch.context() as mp:   # the jobs inherit the environment
        for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            mp.setenv(k, "1")
        jobs = launch.submit(todo, states)
    folder_rc, out = os.path.join(spec.out_dir, RC), io.StringIO()
    try:
        wait_for_checkpoint(folder_rc, lambda: not jobs[RC].done())
        os.kill(state.read(folder_rc)["job_pid"], signal.SIGUSR2)
        with contextlib.redirect_stdout(out):
            rc = commands.wait(spec, jobs)
    finally:
        for job in jobs.values():
            if not job.done():
                job.cancel()
    return dict(spec=spec, launch=launch, rc=rc, out=out.getvalue(), jobs=jobs)


@pytest.mark.e2e
def test_submitit_preempted_job_requeues_and_resumes_to_the_uninterrupted_weights(submitit_flow, reference):
    spec = submitit_flow["spec"]
    log = open(os.path.join(spec.out_dir, RC, state.LOG)).read()
    assert log.count("\n=== ") == 2 and "resuming" in log and "resumed from" in log
    job = submitit_flow["jobs"][RC]
    assert "Requeued job" in (job.stdout() or "") + (job.stderr() or "")
    resumed = final_state(os.path.join(spec.out_dir, RC))
    assert resumed["epoch"] == 1 and max_diff(resumed["model"], reference["model"]) <= 1e-5


@pytest.mark.e2e
def test_submitit_failing_job_is_reported_and_a_second_submission_skips_the_finished(submitit_flow):
    spec, out = submitit_flow["spec"], submitit_flow["out"]
    assert submitit_flow["rc"] == 1
    assert f"FAILED {PKT} (exit status 2)" in out and "CUB-200-2011 not found" in out and f"finished {RC}" in out
    states = plan.states(spec)
    assert states == {RC: state.FINISHED, PKT: state.FAILED}
    todo, _ = commands.to_submit(spec, states, submitit_flow["launch"])
    assert [r.name for r in todo] == [PKT]
