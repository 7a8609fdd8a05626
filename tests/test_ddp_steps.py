"""torchrun with 2 gloo processes computes, step by step, what one process computes, with every layer
training from the first step (--bn-freeze 1, no warm-up, AdamW):

- every step draws the same global batch: the same dataset indices, labels and augmented pixels
  (every loss over three steps; the compression command over a whole epoch);
- the first step's loss is the same to float precision, and so is the gradient of every parameter
  (target network and the losses' own: proxies, FitNet regressors, CRD embeddings), for every
  loss in LOSSES, with ResNet-18 from a ResNet-50-512 source and BN-Inception from BN-Inception-512;
- later steps drift apart only by float noise that the dynamics amplify: in float64 the drift
  shrinks by orders of magnitude, and the loss modules' state (proxies, regressors, CRD memory)
  ends equal;
- the compression command ends within the bounds that this noise allows (float32), and within 1e-4
  in float64; under --gpu-id -1 (which relaunches itself under torchrun) it trains exactly as
  torchrun does.

Every process runs with one thread. A single process with two threads computes its convolutions
in another order than one with one thread (4e-7 relative in the embeddings), a difference that has
nothing to do with torchrun and that the losses amplify (1e-5 in the relaxed contrastive loss).

The networks start from ImageNet stand-ins: random weights with the BatchNorm statistics of
image-like inputs, as the ImageNet files have (frozen random statistics let activations blow up or
collapse). The images are textured, so that augmented views of one image differ: on flat colours
every crop is the same picture, two rows of a batch become identical, and RKD's angle between them
is 0/0, which float noise decides (seen in float64).
"""
import json
import os
import shutil
import subprocess
import sys

import pytest
import torch

from embedding_transfer.losses import LOSSES

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TRACE = os.path.join(ROOT, "tests", "ddp_trace.py")
SOURCES = {"resnet18": "resnet50", "bn_inception": "bn_inception"}
# Losses of differences between embeddings only: moving all embeddings by one vector (the embedding
# layer's bias) changes nothing, so the bias's true gradient is 0 and backward computes float noise
# (1e-6 to 1e-9 of the weight's gradient, measured). Its difference between runs is noise/noise.
TRANSLATION_INVARIANT = ("Relaxed_Contra", "Relaxed_MS", "RKD")
BIAS, WEIGHT = "net.model.embedding.bias", "net.model.embedding.weight"

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="session")
def paper_sources(imagenet_standins, tmp_path_factory):
    """{network: checkpoint} of 512-d L2-normalised sources built from the stand-ins."""
    from embedding_transfer.models import build_model
    out = tmp_path_factory.mktemp("paper_sources")
    old = os.environ.get("TORCH_HOME")
    os.environ["TORCH_HOME"] = imagenet_standins
    try:
        paths = {}
        for name in sorted(set(SOURCES.values())):
            torch.manual_seed(1)
            paths[name] = str(out / f"{name}_512.pth")
            torch.save({"model_state_dict": build_model(name, 512, pretrained=True, l2_norm=True).state_dict()},
                       paths[name])
        return paths
    finally:
        if old is None:
            os.environ.pop("TORCH_HOME")
        else:
            os.environ["TORCH_HOME"] = old


def python_command(argv, torch_home, nproc=1):
    """(`python argv` in one process, or under torchrun with nproc processes; one thread each, env)."""
    cmd = [sys.executable]
    if nproc > 1:
        cmd += ["-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}"]
    return cmd + argv, dict(os.environ, OMP_NUM_THREADS="1", TORCH_HOME=torch_home)


def run_python(argv, torch_home, nproc=1):
    cmd, env = python_command(argv, torch_home, nproc)
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=1800, env=env, cwd=ROOT)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]
    return done.stdout


def run_side_by_side(argvs, torch_home):
    """Several one-process, one-thread commands at once (one per core): a one-process trace leaves
    the second core idle otherwise."""
    procs = []
    for argv in argvs:
        cmd, env = python_command(argv, torch_home)
        procs.append(subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT))
    for p in procs:
        out, err = p.communicate(timeout=1800)
        assert p.returncode == 0, out[-3000:] + err[-5000:]


class Traces:
    """What one ddp_trace.py launch recorded: traces[name] is [each rank's record] of that run, read
    from disk on each access (a record holds whole networks: keeping them all would take GBs)."""

    def __init__(self, out, nproc):
        self.out, self.nproc = out, nproc

    def __getitem__(self, name):
        return [torch.load(self.out / name / f"rank{r}.pt", weights_only=True) for r in range(self.nproc)]


@pytest.fixture(scope="module")
def traced(tmp_path_factory, imagenet_standins):
    """traced(runs, nproc, record, float64=False, steps=None) -> Traces of ddp_trace.py over `runs`
    ({name: train_target argv}) in nproc processes, keeping `record` ('grads', 'weights' or both,
    'grads,weights'), each run stopped after `steps` steps (None: its epochs) and its epochs not
    scored; each configuration runs once per module, and its files (GBs in all) go when the module
    ends. float64 runs add --deterministic. One-process runs go in two halves side by side."""
    launched = {}

    def get(runs, nproc, record, float64=False, steps=None):
        key = (json.dumps(runs), nproc, record, float64, steps)
        if key not in launched:
            out = tmp_path_factory.mktemp(f"trace{nproc}{'_f64' if float64 else ''}")
            spec = {name: argv + ["--LOG_DIR", str(out / "logs" / name)] + (["--deterministic"] if float64 else [])
                    for name, argv in runs.items()}
            options = ["--record", record, "--no-eval"] + (["--float64"] if float64 else []) \
                + (["--steps", str(steps)] if steps else [])
            names = sorted(spec)
            parts = [names] if nproc > 1 or len(names) == 1 else [names[::2], names[1::2]]
            for i, part in enumerate(parts):
                (out / f"runs{i}.json").write_text(json.dumps({n: spec[n] for n in part}))
            argvs = [[TRACE, str(out), str(out / f"runs{i}.json"), *options] for i in range(len(parts))]
            if nproc > 1:
                run_python(argvs[0], imagenet_standins, nproc)
            else:
                run_side_by_side(argvs, imagenet_standins)
            launched[key] = Traces(out, nproc)
        return launched[key]
    yield get
    for traces in launched.values():
        shutil.rmtree(traces.out, ignore_errors=True)


def loss_runs(data_dir, model, paper_sources, crop, batch):
    """{loss: argv} for every loss in LOSSES: the paper's network pairing at a small crop and batch."""
    flags = ["--dataset", "cub", "--DATA_DIR", str(data_dir), "--model", model, "--crop-size", str(crop),
             "--embedding-size", "64", "--batch-size", str(batch), "--IPC", "3", "--view", "2", "--epochs", "1",
             "--workers", "1", "--bn-freeze", "1", "--warm", "0", "--optimizer", "adamw", "--lr", "1e-4",
             "--nce-k", "256", "--wandb", "disabled", "--source-ckpt", paper_sources[SOURCES[model]]]
    return {loss: flags + ["--loss", loss] for loss in LOSSES}


# The traces of every loss: ResNet-18 at 32 px, 6 classes x 3 images a batch, for three steps, its
# first step's gradients and its last weights (the first-step test and the drift test read the
# same float32 runs); BN-Inception at 64 px, 10 classes a batch, for its first step's gradients.
LOSS_TRACES = {"resnet18": dict(crop=32, batch=18, record="grads,weights", steps=3),
               "bn_inception": dict(crop=64, batch=30, record="grads", steps=1)}


def loss_traces(traced, data_dir, paper_sources, model, nproc, float64=False):
    """The traces of LOSS_TRACES[model]; float64 ones keep only the weights (the drift test's)."""
    plan = LOSS_TRACES[model]
    return traced(loss_runs(data_dir, model, paper_sources, plan["crop"], plan["batch"]), nproc,
                  "weights" if float64 else plan["record"], float64, plan["steps"])


def command_runs(data_dir, source_ckpt):
    """The compression command (ResNet-50-512 -> ResNet-18-128 on CUB at 64 px), with AdamW and with SGD."""
    flags = ["--gpu-id", "0", "--loss", "Relaxed_Contra", "--model", "resnet18", "--embedding-size", "128",
             "--batch-size", "30", "--IPC", "3", "--dataset", "cub", "--epochs", "1", "--workers", "2", "--view", "2",
             "--sigma", "1", "--save", "1", "--crop-size", "64", "--bn-freeze", "1", "--source-ckpt", source_ckpt,
             "--DATA_DIR", str(data_dir), "--wandb", "disabled"]
    return {"adamw": flags, "sgd": flags + ["--optimizer", "sgd", "--lr", "0.01"]}


def global_steps(records):
    """Per step: the global batch (indices, labels, checksums, rank by rank) and the loss one process
    computes (batch-wise terms are the same on every rank, per-sample terms are averaged)."""
    steps = []
    for parts in zip(*(r["steps"] for r in records)):
        steps.append(dict(index=torch.cat([p["index"] for p in parts]), labels=torch.cat([p["labels"] for p in parts]),
                          checksums=torch.cat([p["checksums"] for p in parts]),
                          loss=sum(p["loss"] for p in parts) / len(parts)))
    return steps


def same_batches(a, b):
    """Whether two runs' global_steps drew the same images, labels and augmented pixels at every step."""
    return all(torch.equal(x["index"], y["index"]) and torch.equal(x["labels"], y["labels"])
               and torch.equal(x["checksums"], y["checksums"]) for x, y in zip(a, b))


def relative(a, b):
    return float((a - b).double().norm() / a.double().norm())


def drift(one, two):
    """(max |w1 - w2|, ||w1 - w2|| / ||w1 - w0||): how far the trained target networks of two runs
    (rank 0's records) ended apart, absolutely and relative to the update (BatchNorm's frozen
    statistics left out)."""
    keys = [k for k in one["weights"] if one["weights"][k].is_floating_point() and "running_" not in k]
    diff = torch.cat([(one["weights"][k] - two["weights"][k]).double().flatten() for k in keys])
    return float(diff.abs().max()), float(diff.norm()) / one["update"]


def loss_drift(one, two):
    """The largest relative difference of the per-step losses of two runs."""
    return max(abs(a["loss"] - b["loss"]) / abs(a["loss"]) for a, b in zip(global_steps(one), global_steps(two)))


@pytest.mark.parametrize("model", ["resnet18", "bn_inception"])
def test_every_loss_takes_the_same_first_step_under_torchrun(model, textured_cub, paper_sources, traced):
    traces = [loss_traces(traced, textured_cub, paper_sources, model, n) for n in (1, 2)]
    for loss in LOSSES:
        one, two = (t[loss] for t in traces)
        a, b = global_steps(one), global_steps(two)
        assert len(a) == len(b) == LOSS_TRACES[model]["steps"]
        assert same_batches(a, b), loss
        assert abs(a[0]["loss"] - b[0]["loss"]) <= 1e-6 * abs(a[0]["loss"]), loss

        g1, g2 = one[0]["grads"], two[0]["grads"]
        assert g1.keys() == g2.keys(), loss
        for n, (norm, total) in two[0]["grad_sums"].items():   # both processes hold the same gradients
            other_norm, other_total = two[1]["grad_sums"][n]
            assert abs(norm - other_norm) <= 1e-6 * norm and abs(total - other_total) <= 1e-6 * (norm + abs(total)), \
                f"{loss} {n}: the two processes step alike"
        assert any(n.startswith("net.model.layer1.") or n.startswith("net.model.conv1_7x7") for n in g1), \
            f"{loss}: the first layers train from the first step"
        if loss in ("FitNet", "Attention", "CRD", "Proxy_Anchor"):
            assert any("proxies" in n for n in g1), f"{loss}: the Proxy-Anchor term's proxies have a gradient"
        for n in g1:
            if loss in TRANSLATION_INVARIANT and n == BIAS:   # float noise in both runs
                for g in (g1, g2):
                    assert g[BIAS].norm() <= 1e-5 * g[WEIGHT].norm(), loss
                continue
            assert relative(g1[n], g2[n]) <= 1e-5, f"{loss} {n}: {relative(g1[n], g2[n]):.1e}"

        # What the step leaves in the loss modules, CRD's memory banks and normalisers included.
        s1, s2 = one[0]["steps"][0]["loss_state"], two[0]["steps"][0]["loss_state"]
        assert s1.keys() == s2.keys()
        for k in s1:
            assert torch.allclose(s1[k], s2[k], rtol=1e-6, atol=1e-6), f"{loss} {k}"


def test_later_steps_drift_only_by_float_noise(textured_cub, paper_sources, traced):
    """Every loss, ResNet-18 at 32 px, batches of 18, three steps, each drawing the same batch in both runs. In
    float32 the runs drift apart: noise of 1e-7 at the first step, amplified (AdamW's first steps
    move every weight by about lr whatever the size of its gradient, so a gradient within noise of
    0 steps either way). Measured: 3e-8 to 6.4e-5 max, 4.0e-6 to 3.5e-4 of the update. In float64,
    whose noise is 1e-16, the same runs end 2e-16 to 4e-13 apart (max), their losses equal to 2e-14
    at every step. (Batches of 30 over six steps, an epoch, measured before: 5e-6 to 5e-4 and 3e-5
    to 4e-2 in float32, 1e-14 to 1e-12 in float64.)"""
    f32, f64 = ([loss_traces(traced, textured_cub, paper_sources, "resnet18", n, f) for n in (1, 2)]
                for f in (False, True))
    for loss in LOSSES:
        one32, two32, one64, two64 = (t[loss] for t in f32 + f64)
        assert same_batches(global_steps(one64), global_steps(two64)), loss
        (_, rel32), (max64, rel64) = drift(one32[0], two32[0]), drift(one64[0], two64[0])
        assert 0 < rel32 <= 0.1, f"{loss}: float32 runs ended {rel32:.1e} of the update apart"
        assert max64 <= 1e-10 and rel64 <= 1e-6 * rel32, f"{loss}: float64 drift {rel64:.1e} (max {max64:.1e})"
        assert loss_drift(one64, two64) <= 1e-11, loss
        # The loss modules' own parameters and buffers (proxies, FitNet's regressors, CRD's memory).
        s1, s2 = one64[0]["loss_state"], two64[0]["loss_state"]
        assert s1.keys() == s2.keys()
        for k in s1:
            assert torch.allclose(s1[k], s2[k], rtol=1e-9, atol=1e-10), f"{loss} {k}"


def test_the_compression_command_ends_like_one_process(textured_cub, paper_sources, traced):
    """The compression command (ResNet-50-512 -> ResNet-18-128, one epoch: six steps here), with
    AdamW and with SGD; every step draws the same batch in both runs. In float32 max |w1 - w2| is no
    measure of equality: AdamW moves each weight by about lr a step whatever its gradient (a gradient
    within float noise of 0 steps either way, up to 2 lr per step apart), and SGD at lr 0.01 moves
    weights by up to 0.6 in a few steps, over which the noise grows tenfold a step. Measured in
    float32 over the epoch: 3.9e-4 max, 2.4% of the update apart (AdamW), 4.2e-2 and 23% (SGD). The
    float64 runs stop after three steps, at half the cost: 1.0e-13 and 3.3e-15 apart (max), 4.7e-13
    and 4.1e-14 of the update (over the whole epoch they ended 1.5e-13 and 7e-13 apart), far inside 1e-4."""
    runs = command_runs(textured_cub, paper_sources["resnet50"])
    (one32, two32), (one64, two64) = ([traced(runs, n, "weights", f, steps) for n in (1, 2)]
                                      for f, steps in ((False, None), (True, 3)))
    for optimizer, float32_bound in (("adamw", 0.1), ("sgd", 0.5)):
        a, b = global_steps(one32[optimizer]), global_steps(two32[optimizer])
        assert len(a) == len(b) == 200 // 30   # training classes 1-100, two images each
        assert same_batches(a, b), optimizer
        (_, rel32), (max64, rel64) = (drift(one[optimizer][0], two[optimizer][0])
                                      for one, two in ((one32, two32), (one64, two64)))
        assert 0 < rel32 <= float32_bound, f"{optimizer}, float32: {rel32:.1e} of the update apart"
        assert max64 <= 1e-8 and rel64 <= 1e-6 * rel32, \
            f"{optimizer}, float64: max {max64:.1e}, {rel64:.1e} of the update"


def test_the_cli_and_its_gpu_id_minus_one_relaunch_train_as_traced(textured_cub, paper_sources, traced,
                                                                     imagenet_standins, tmp_path):
    """The recorder changes nothing: code/train_target.py itself ends with the traced weights, in one
    process and under --gpu-id -1 on a machine with two (pretended) GPUs, which relaunches the
    command under torchrun (here gloo on the CPU)."""
    argv = command_runs(textured_cub, paper_sources["resnet50"])["adamw"]
    assert argv[:2] == ["--gpu-id", "0"]
    script = os.path.join(ROOT, "code", "train_target.py")
    one = run_python([script, *argv, "--LOG_DIR", str(tmp_path / "one")], imagenet_standins)
    assert "epoch 0:" in one
    pretend_two_gpus = ("import runpy, sys, torch; torch.cuda.device_count = lambda: 2; "
                        "sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name='__main__')")
    relaunched = run_python(["-c", pretend_two_gpus, script, "--gpu-id", "-1", *argv[2:],
                             "--LOG_DIR", str(tmp_path / "all")], imagenet_standins)
    assert "--gpu-id -1: 2 processes, one per GPU" in relaunched
    assert len([l for l in relaunched.splitlines() if l.startswith("epoch 0:")]) == 1   # only the main process reports
    for folder, nproc in (("one", 1), ("all", 2)):
        (ckpt,) = (tmp_path / folder).glob("logs_cub/*/checkpoint.pth")
        saved = torch.load(ckpt, weights_only=True)["model"]
        expected = traced(command_runs(textured_cub, paper_sources["resnet50"]), nproc, "weights")["adamw"][0]["weights"]
        assert saved.keys() == expected.keys()
        assert all(torch.equal(saved[k], expected[k]) for k in saved), folder
