"""Runs code/train_target.py with a recorder around every training step, in one process or as one of
torchrun's processes, for the step-level equality tests (tests/test_ddp_steps.py):

    [torchrun --nproc_per_node=2] tests/ddp_trace.py OUT RUNS.json [--float64] [--record grads,weights]
                                                    [--steps N] [--no-eval]

RUNS.json maps a run name to train_target.py's arguments; the runs go one after another in this
process (one process group, one start-up). Each process writes OUT/<name>/rank<r>.pt:
  steps            per step: this process's share of the batch (dataset indices, labels, two checksums of
                   each image's augmented views) and the loss this process computed
  grads            (--record grads) {parameter name: gradient} at the first step, after DDP's and
                   the losses' reductions, just before the optimizer steps (target network and
                   loss modules); on other ranks than 0 only their (norm, sum), `grad_sums`
  weights, update  (--record weights, rank 0) the target network's state_dict after the last step,
                   and the norm of what training changed in it (w_end - w_start; BatchNorm's
                   running statistics left out)
  loss_state       (--record weights, rank 0) the loss modules' state_dict after the last step
  steps[0]["loss_state"]  (--record grads) the loss modules' state_dict (proxies, regressors, CRD
                   memory) after the first step
Records hold whole networks (tens of MB each): each process keeps only what --record asks for
(one of grads and weights, or both).
--float64: every network, loss module and input in double precision, so that float noise is
about 1e-16 instead of 1e-7 (the drift it leaves over the steps shrinks accordingly).
--steps N: each run stops after N optimisation steps, as --time-budget stops a run (the step
records need no more than the steps they compare).
--no-eval: the epochs are not scored (every epoch records R@1 0): what is traced is training, and
scoring the test split would cost as much as the steps themselves.
"""
import json
import os
import sys

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "code"))

from embedding_transfer import distributed  # noqa: E402
from embedding_transfer import train_target  # noqa: E402
from embedding_transfer import training  # noqa: E402
from embedding_transfer.models.head import EmbeddingNet  # noqa: E402

ORIGINAL_STEP = training.train_step


def image_checksums(x):
    """(b, [V,] 3, H, W) -> (b, 2) float64: a plain sum and a position-weighted sum per image, so
    that another augmentation, view order or pixel layout changes them."""
    flat = x.double().flatten(1)
    weights = torch.linspace(1, 2, flat.shape[1], dtype=torch.float64)
    return torch.stack([flat.sum(1), (flat * weights).sum(1)], dim=1)


def named_trainables(objective):
    """(name, parameter) of the target network (without DDP's `module.` prefix) and of the loss
    modules (`method.*`, `proxy_anchor.*`)."""
    runner = objective.nets[0]
    network = getattr(runner, "module", runner)
    return [(f"net.{n}", p) for n, p in network.named_parameters()] + list(objective.named_parameters())


class Recorder:
    """Wraps training.train_step; records what `keep` asks for ('grads', 'weights')."""

    def __init__(self, keep):
        self.keep, self.steps, self.grads, self.network, self.start = keep, [], None, None, None
        self.objective = None

    def train_step(self, objective, batch, optimizer, scaler=None, clip_value=None):
        x, labels, index = batch
        record = dict(index=torch.as_tensor(index).clone(), labels=torch.as_tensor(labels).clone(),
                      checksums=image_checksums(x))
        first = not self.steps
        runner = objective.nets[0]
        self.network, self.objective = getattr(runner, "module", runner), objective
        if first and "weights" in self.keep:
            self.start = state_of(self.network)
        hook = None
        if first and "grads" in self.keep:
            def grab(opt, args, kwargs):
                self.grads = {n: p.grad.detach().cpu().clone() for n, p in named_trainables(objective)
                              if p.grad is not None}
            hook = optimizer.register_step_pre_hook(grab)
        try:
            loss = ORIGINAL_STEP(objective, batch, optimizer, scaler, clip_value)
        finally:
            if hook is not None:
                hook.remove()
        record["loss"] = float(loss)
        if first and "grads" in self.keep:
            record["loss_state"] = state_of(objective)   # proxies, regressors, CRD memory after it
        self.steps.append(record)
        return loss


def state_of(module):
    return {k: v.detach().cpu().clone() for k, v in module.state_dict().items()}


class StepLimit:
    """Stands in for training.Deadline: 'passed' once the recorder has taken `steps` steps (the
    same step on every process, with no collective needed)."""

    def __init__(self, recorder, steps):
        self.recorder, self.steps = recorder, steps

    def passed(self):
        return len(self.recorder.steps) >= self.steps


def no_scores(model, loaders, best, device, ks, channels_last=False, normalised=False):
    return {f"R@{k}": 0.0 for k in ks}


def float64_networks():
    """Networks take inputs in their own precision (images arrive as float32)."""
    forward = EmbeddingNet.forward

    def cast_forward(self, x):
        return forward(self, x.to(self.model.embedding.weight.dtype))
    EmbeddingNet.forward = cast_forward
    torch.set_default_dtype(torch.float64)


def main(out, runs_file, float64=False, keep=("grads", "weights"), steps=None, evaluate=True):
    if float64:
        float64_networks()
    if not evaluate:
        train_target.score_epoch = no_scores
    with open(runs_file) as f:
        runs = json.load(f)
    parser = train_target.get_args_parser()
    for name, argv in runs.items():
        recorder = Recorder(keep)
        training.train_step = recorder.train_step
        if steps is not None:
            training.Deadline = lambda seconds, recorder=recorder: StepLimit(recorder, steps)
        args = parser.parse_args(argv)
        train_target.main(args)
        folder = os.path.join(out, name)
        os.makedirs(folder, exist_ok=True)
        record = dict(steps=recorder.steps, world=distributed.world_size())
        main_rank = distributed.rank() == 0
        if "grads" in keep:
            record["grad_sums"] = {n: (float(g.double().norm()), float(g.double().sum())) for n, g in recorder.grads.items()}
            if main_rank:
                record["grads"] = recorder.grads
        if "weights" in keep and main_rank:
            record["weights"] = state_of(recorder.network)
            record["loss_state"] = state_of(recorder.objective)
            trained = [k for k, v in record["weights"].items() if v.is_floating_point() and "running_" not in k]
            record["update"] = float(torch.cat([(record["weights"][k] - recorder.start[k]).double().flatten()
                                                for k in trained]).norm())
        torch.save(record, os.path.join(folder, f"rank{distributed.rank()}.pt"))
    distributed.shutdown()


if __name__ == "__main__":
    options = sys.argv[3:]
    keep = options[options.index("--record") + 1].split(",") if "--record" in options else ["grads", "weights"]
    steps = int(options[options.index("--steps") + 1]) if "--steps" in options else None
    main(sys.argv[1], sys.argv[2], "--float64" in options, keep, steps, "--no-eval" not in options)
