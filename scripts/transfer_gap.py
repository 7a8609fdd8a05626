"""How far a transfer target has come towards its source's geometry, on a few training batches.

    python scripts/transfer_gap.py RUN_DIR [--batches 3]

RUN_DIR is a train_target run folder (args.json, checkpoint.pth), or a folder holding one. For each
batch it prints the relaxed contrastive loss (the run's sigma and delta, whatever loss the run
trained with) of
  - start:   the target as it started (ImageNet weights, or a random init under --random-init),
  - trained: the target in checkpoint.pth (the last epoch the run finished),
  - source:  the source's own embeddings in the target's place,
  - floor:   delta^2 * sum_{i != j} W(1 - W) / N, below which no embedding can go (each pair is
             pulled with weight W and pushed with 1 - W; its best relative distance is delta(1 - W)),
and Spearman's rank correlation between the target's and the source's pairwise distances (1: the
target orders every pair of the batch as the source does).

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

from dataset import convert_input  # noqa: E402
from errors import UserError  # noqa: E402
from loaders import build_loaders  # noqa: E402
from losses.relaxed import RelaxedContrastiveLoss, source_similarities  # noqa: E402
from losses.distance import pdist  # noqa: E402
from models import build_model  # noqa: E402
from reporting.runs import find_runs  # noqa: E402
from runtime import run_cli, seed_everything  # noqa: E402
from train_target import build_source  # noqa: E402
from views import views_to_batch  # noqa: E402


def get_args_parser():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", metavar="RUN_DIR", help="a train_target run folder, or a folder holding exactly one")
    p.add_argument("--batches", default=3, type=int, help="training batches to measure on")
    p.add_argument("--workers", default=0, type=int, help="data-loading processes")
    return p


def find_target_run(path):
    runs = [r for r in find_runs([path]) if r.uses_source]
    if len(runs) != 1:
        raise UserError(f"{path} holds {len(runs)} train_target runs that learn from a source; pass the "
                        "folder of one (the one with args.json and checkpoint.pth).")
    ckpt = os.path.join(runs[0].dir, "checkpoint.pth")
    if not os.path.isfile(ckpt):
        raise UserError(f"{runs[0].dir} has no checkpoint.pth: the run has not finished an epoch.")
    return runs[0], ckpt


def loss_floor(W, delta):
    """(N, N) source similarities -> the least relaxed contrastive loss any target could score:
    each pair's W*D^2 + (1-W)*relu(delta-D)^2 is smallest at D = delta*(1-W), where it is
    delta^2*W*(1-W); summed over pairs i != j and divided by N, as the loss is."""
    off = ~torch.eye(len(W), dtype=torch.bool)
    return delta ** 2 * (W * (1 - W))[off].sum().item() / len(W)


def gap(t_emb, s_emb, loss):
    """One batch -> the relaxed contrastive loss of t_emb and Spearman's rho of the distances."""
    off = ~torch.eye(len(t_emb), dtype=torch.bool)
    rho = spearmanr(pdist(t_emb)[off].numpy(), pdist(s_emb)[off].numpy())[0]
    return loss(t_emb, s_emb).item(), float(rho)


def main(args):
    run, ckpt = find_target_run(args.run)
    a = SimpleNamespace(**run.args)
    a.workers = args.workers
    device = torch.device("cpu")
    seed_everything(a.seed)
    net = dict(name=a.model, embedding_size=a.embedding_size, l2_norm=bool(a.target_norm), bn_freeze=bool(a.bn_freeze))
    start = build_model(pretrained=not a.random_init, **net).eval()
    trained = build_model(pretrained=False, **net)
    state = torch.load(ckpt, map_location="cpu", weights_only=False)
    trained.load_state_dict(state["model"])
    trained.eval()
    source = build_source(a, device)
    loss = RelaxedContrastiveLoss(a.sigma, a.delta)
    loaders = build_loaders(a, a.model, a.view, a.seed)
    print(f"{run.dir}: {a.loss}, {a.model}-{a.embedding_size} from {a.source_model}-{a.source_embedding_size}, "
          f"checkpoint after epoch {state['epoch']}")
    print("batch | relaxed contrastive loss: start  trained  source  floor | Spearman rho: start  trained")
    batches = iter(loaders.train)
    with torch.no_grad():
        for b in range(args.batches):
            x = views_to_batch(next(batches)[0])                              # (V*B, 3, H, W)
            _, s = source(convert_input(x, a.model, a.source_model))
            (l0, r0), (l1, r1) = gap(start(x)[1], s, loss), gap(trained(x)[1], s, loss)
            floor = loss_floor(source_similarities(s, a.sigma), a.delta)
            print(f"{b:5d} | {l0:31.2f} {l1:8.2f} {loss(s, s).item():7.2f} {floor:6.2f} | {r0:18.3f} {r1:8.3f}")


if __name__ == "__main__":
    run_cli(main, get_args_parser())
