"""How far a transfer target has come towards its source's geometry, on a few training batches.

    python scripts/transfer_gap.py RUN_DIR [--batches 3] [--also OTHER_RUN_DIR]

RUN_DIR is a train_target run folder (args.json, checkpoint.pth), or a folder holding one. For each
batch it prints the relaxed contrastive loss (the run's sigma and delta, whatever loss the run
trained with) of
  - start:   the target as it started (ImageNet weights, or a random init under --random-init),
  - trained: the target in checkpoint.pth (the last epoch the run finished),
  - source:  the source's own embeddings in the target's place,
  - floor:   delta^2 * sum_{i != j} W(1 - W) / N, below which no embedding can go (each pair is
             pulled with weight W and pushed with 1 - W; its best relative distance is delta(1 - W)),
and Spearman's rank correlation between the target's and the source's pairwise distances (1: the
target orders every pair of the batch as the source does). --also adds both measures for another
run's trained network on the same batches (e.g. the same target trained on labels alone).

Why: the loss never nears 0, and the distance between the start and the source can be a few
percent of it, so a flat training loss says little about whether the transfer is working; the rank
correlation says how much of the source's ordering the target holds.
"""
import argparse
import os
import sys
from types import SimpleNamespace

import torch
from scipy.stats import spearmanr

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "code"))

from embedding_transfer.dataset import convert_input  # noqa: E402
from embedding_transfer.errors import UserError  # noqa: E402
from embedding_transfer.loaders import build_loaders, image_splits  # noqa: E402
from embedding_transfer.losses.relaxed import RelaxedContrastiveLoss, _off_diagonal, source_similarities  # noqa: E402
from embedding_transfer.losses.distance import pdist  # noqa: E402
from embedding_transfer.models import build_model  # noqa: E402
from embedding_transfer.reporting.runs import find_runs  # noqa: E402
from embedding_transfer.runtime import run_cli, seed_everything  # noqa: E402
from embedding_transfer.train_target import build_source  # noqa: E402
from embedding_transfer.views import views_to_batch  # noqa: E402


def get_args_parser():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", metavar="RUN_DIR", help="a train_target run folder, or a folder holding exactly one")
    p.add_argument("--batches", default=3, type=int, help="training batches to measure on")
    p.add_argument("--workers", default=0, type=int, help="data-loading processes")
    p.add_argument("--also", default="", metavar="OTHER_RUN_DIR",
                   help="another run (e.g. --loss Proxy_Anchor without a source) whose checkpoint.pth to measure too")
    return p


def find_target_run(path, with_source=True):
    runs = [r for r in find_runs([path]) if not r.is_source and (r.uses_source or not with_source)]
    if len(runs) != 1:
        kind = "train_target runs that learn from a source" if with_source else "train_target runs"
        raise UserError(f"{path} holds {len(runs)} {kind}; pass the folder of one (the one with "
                        "args.json and checkpoint.pth).")
    ckpt = os.path.join(runs[0].dir, "checkpoint.pth")
    if not os.path.isfile(ckpt):
        raise UserError(f"{runs[0].dir} has no checkpoint.pth: the run has not finished an epoch.")
    return runs[0], ckpt


def network_of(run, ckpt=None):
    """The run's network in eval mode with the weights of `ckpt`, and the checkpoint's epoch; with
    no ckpt, the network as the run started it (ImageNet weights, or a random init), and None."""
    a = run.args
    net = build_model(a["model"], a["embedding_size"], pretrained=ckpt is None and not a["random_init"],
                      l2_norm=bool(a["target_norm"]), bn_freeze=bool(a["bn_freeze"]))
    if ckpt is None:
        return net.eval(), None
    state = torch.load(ckpt, map_location="cpu", weights_only=False)
    net.load_state_dict(state["model"])
    return net.eval(), state["epoch"]


def loss_floor(W, delta):
    """(N, N) source similarities -> the least relaxed contrastive loss any target could score:
    each pair's W*D^2 + (1-W)*relu(delta-D)^2 is smallest at D = delta*(1-W), where it is
    delta^2*W*(1-W); summed over pairs i != j and divided by N, as the loss is."""
    return delta ** 2 * (W * (1 - W))[_off_diagonal(len(W), W.device)].sum().item() / len(W)


def gap(t_emb, s_emb, loss):
    """One batch -> the relaxed contrastive loss of t_emb and Spearman's rho of the distances."""
    off = _off_diagonal(len(t_emb), t_emb.device)
    rho = spearmanr(pdist(t_emb)[off].numpy(), pdist(s_emb)[off].numpy())[0]
    return loss(t_emb, s_emb).item(), float(rho)


def main(args):
    run, ckpt = find_target_run(args.run)
    a = SimpleNamespace(**run.args)
    a.workers = args.workers
    device = torch.device("cpu")
    seed_everything(a.seed)
    start, _ = network_of(run)
    trained, epoch = network_of(run, ckpt)
    other = None
    if args.also:
        other_run, other_ckpt = find_target_run(args.also, with_source=False)
        if other_run.args["model"] != a.model or other_run.args["crop_size"] != a.crop_size:
            raise UserError(f"--also {args.also} trained {other_run.args['model']} at {other_run.args['crop_size']} px; "
                            f"it must be the run's network, {a.model} at {a.crop_size} px, to see the same batches.")
        other = network_of(other_run, other_ckpt)
    source = build_source(a, device)
    loss = RelaxedContrastiveLoss(a.sigma, a.delta)
    loaders = build_loaders(a, image_splits(a, a.model, a.view), a.seed)
    if not 1 <= args.batches <= len(loaders.train):
        raise UserError(f"--batches {args.batches}: the run's training split gives 1 to {len(loaders.train)} batches.")
    print(f"{run.dir}: {a.loss}, {a.model}-{a.embedding_size} from {a.source_model}-{a.source_embedding_size}, "
          f"checkpoint after epoch {epoch}")
    if other:
        print(f"also: {other_run.dir} ({other_run.method}, {other_run.network}), checkpoint after epoch {other[1]}")
    print("batch | relaxed contrastive loss: start  trained  source  floor | Spearman rho: start  trained"
          + ("  | also: loss  rho" if other else ""))
    batches = iter(loaders.train)
    with torch.no_grad():
        for b in range(args.batches):
            x = views_to_batch(next(batches)[0])                              # (V*B, 3, H, W)
            _, s = source(convert_input(x, a.model, a.source_model))
            (l0, r0), (l1, r1) = gap(start(x)[1], s, loss), gap(trained(x)[1], s, loss)
            floor = loss_floor(source_similarities(s, a.sigma), a.delta)
            line = f"{b:5d} | {l0:31.2f} {l1:8.2f} {loss(s, s).item():7.2f} {floor:6.2f} | {r0:18.3f} {r1:8.3f}"
            if other:
                l2, r2 = gap(other[0](x)[1], s, loss)
                line += f"  | {l2:10.2f} {r2:5.3f}"
            print(line)


if __name__ == "__main__":
    run_cli(main, get_args_parser())
