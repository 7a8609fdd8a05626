"""Evaluate a saved embedding network: Recall@K, MAP@R and R-Precision on the evaluation split of a
dataset; optionally save the embeddings (--save-embeddings) or a picture of retrievals (--visualize).

    python evaluate.py --gpu-id 0 --dataset cub --model bn_inception --embedding-size 512 \
        --ckpt pretrained_source/bn_inception/cub_bn_inception_512dim_Proxy_Anchor_ckpt.pth

On In-Shop (--dataset Inshop) each query image is searched among the gallery images only, as in
Proxy-Anchor. Any two sets of saved embeddings can be scored the same way, without a network:

    python evaluate.py --query-embeddings Q.npz --gallery-embeddings G.npz [--recall-ks 1,10,20]

The authors' flags and defaults. Checkpoints written by this project remember their network,
embedding size and L2 norm, and a best model saved in its run folder has the run's args.json
beside it, which gives the data set and crop size; each is used unless a flag says otherwise (a
flag that differs from the run is said in one line). Other files (the released sources, targets
trained with the authors' code) get the authors' defaults: cub, 224 px, bn_inception, 512-d,
--target-norm 0 (no L2 norm; the released Proxy-Anchor sources were trained normalised: pass
--target-norm 1 to score them as their training did).
"""
import argparse
import os

import numpy as np
import torch

from . import distributed
from .dataset import build_dataset, build_transform
from .embeddings_file import load_embeddings, save_embeddings
from .evaluation import evaluate, recall_ks
from .deploy.network import RUN_FALLBACK, network_of, run_setting
from .errors import Problems, UserError
from .loaders import build_eval_loader
from .models import MODELS, build_model, load_checkpoint_weights
from .models.pretrained import read_weight_file
from .query_gallery import nearest_gallery, query_gallery_metrics
from .reporting.retrieval_grid import draw_grid, nearest_neighbours, pick_queries
from .runtime import run_cli


def settings_from_run(args):
    """--dataset and --crop-size: the flag, else the run's args.json, else the authors' default
    (deploy.network.run_setting, which export and retrieve use too)."""
    for key in RUN_FALLBACK:
        setattr(args, key, run_setting(args.ckpt, key, getattr(args, key))[0])


def get_args_parser():
    p = argparse.ArgumentParser(description="Recall@K of a saved embedding network.",
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter, allow_abbrev=False)
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--ckpt", "--resume", dest="ckpt", help="checkpoint holding {'model_state_dict': ...}")
    what.add_argument("--query-embeddings", default="", metavar="Q.npz",
                      help="instead of a network: score these saved embeddings (evaluate.py --save-embeddings) "
                           "as queries searched in --gallery-embeddings (alone: a file saved from In-Shop, "
                           "whose queries are searched in its gallery)")
    p.add_argument("--gallery-embeddings", default="", metavar="G.npz", help="the gallery of --query-embeddings")
    p.add_argument("--recall-ks", default="", metavar="K,K,...",
                   help="the K of Recall@K (default: the data set's; In-Shop's 1,10,20,30,40,50 for saved embeddings)")
    p.add_argument("--dataset", default=None, help="cub, cars, SOP, Inshop or emoji (default: the run's, from "
                   "the args.json beside the checkpoint, else cub)")
    p.add_argument("--DATA_DIR", default="./data", help="folder holding the datasets")
    p.add_argument("--model", default=None, help=f"{', '.join(MODELS)} (default: from the checkpoint, "
                                                  "else bn_inception)")
    p.add_argument("--embedding-size", default=None, type=int, help="default: from the checkpoint, else 512")
    p.add_argument("--target-norm", "--l2-norm", dest="target_norm", default=None, type=int,
                   help="1: L2-normalise the embedding (default: from the checkpoint, else 0)")
    p.add_argument("--source-norm", default=1, type=int,
                   help="accepted for the authors' command lines; unused by their evaluation and ours")
    p.add_argument("--bn-freeze", default=1, type=int,
                   help="accepted for the authors' command lines (evaluation runs BatchNorm in eval mode anyway)")
    p.add_argument("--batch-size", default=150, type=int, help="images per evaluation batch")
    p.add_argument("--gpu-id", default=0, type=int, help="CUDA device; -1: all visible GPUs (one process each)")
    p.add_argument("--workers", default=20, type=int, help="data-loading processes")
    p.add_argument("--crop-size", default=None, type=int, help="image size (resize keeps the 256/224 ratio; "
                   "default: the run's, from the args.json beside the checkpoint, else 224)")
    p.add_argument("--save-embeddings", default="", metavar="FILE.npz",
                   help="also save the embeddings, labels and image paths of the evaluation split")
    p.add_argument("--visualize", default=0, type=int, metavar="N",
                   help="also save a picture of N queries and their nearest neighbours "
                        "(green frame: same class, red: another class)")
    p.add_argument("--visualize-k", default=8, type=int, metavar="K", help="neighbours shown per query")
    p.add_argument("--visualize-out", default="", metavar="FILE.png",
                   help="default: {checkpoint name}_{dataset}_retrievals.png beside the checkpoint")
    return p


def visualize(args, X, T, eval_set):
    """The retrieval grid of --visualize queries (drawn with a fixed seed); on a query/gallery split,
    queries from the query images and their neighbours from the gallery."""
    out = args.visualize_out or f"{os.path.splitext(args.ckpt)[0]}_{args.dataset}_retrievals.png"
    is_query = getattr(eval_set, "is_query", None)
    if is_query is None:
        queries = pick_queries(len(eval_set), args.visualize)
        neighbours = nearest_neighbours(X, queries, args.visualize_k)
    else:
        q_idx, g_idx = (np.flatnonzero(np.asarray(is_query) == side) for side in (True, False))
        queries = q_idx[pick_queries(len(q_idx), args.visualize)].tolist()
        neighbours = torch.as_tensor(g_idx)[nearest_gallery(X[queries], X[g_idx], args.visualize_k)[1]]
    draw_grid(eval_set.im_paths, T.tolist(), queries, neighbours, out)
    print(f"retrievals of {len(queries)} queries saved in {out}")
    return out


def parse_ks(text, default):
    try:
        ks = [int(k) for k in text.split(",")] if text else default
    except ValueError:
        ks = []
    if not ks or min(ks) < 1:
        raise UserError(f"--recall-ks {text!r}: give positive integers separated by commas, e.g. 1,10,20.")
    return ks


def score_saved(args):
    """The query/gallery mode: Recall@K, MAP@R and RP of saved query embeddings searched in saved
    gallery embeddings."""
    query = load_embeddings(args.query_embeddings, "--query-embeddings", need_labels=True)
    if args.gallery_embeddings:
        gallery = load_embeddings(args.gallery_embeddings, "--gallery-embeddings", need_labels=True)
    elif "is_query" in query:   # one file of a query/gallery split (In-Shop's --save-embeddings)
        q = query["is_query"].astype(bool)
        query, gallery = ({k: v[side] for k, v in query.items()} for side in (q, ~q))
    else:
        raise UserError(f"--query-embeddings {args.query_embeddings} is not from a query/gallery split (no "
                        "'is_query'): pass the gallery with --gallery-embeddings.")
    (nq, dq), (ng, dg) = query["embeddings"].shape, gallery["embeddings"].shape
    if dq != dg:
        raise UserError(f"the query embeddings are {dq}-d and the gallery embeddings {dg}-d: both sets must "
                        "come from the same network (embed both with one checkpoint).")
    ks = parse_ks(args.recall_ks, recall_ks("Inshop"))
    # Labels of any kind (integers, or class-folder names from scripts/retrieve.py) as class numbers.
    _, classes = np.unique(np.concatenate([query["labels"].astype(str), gallery["labels"].astype(str)]),
                           return_inverse=True)
    recalls, map_r, rp = query_gallery_metrics(torch.from_numpy(query["embeddings"]), torch.from_numpy(classes[:nq]),
                                               torch.from_numpy(gallery["embeddings"]),
                                               torch.from_numpy(classes[nq:]), ks)
    print(f"{nq} queries searched in {ng} gallery items ({dq}-d)")
    scores = {**{f"R@{k}": r for k, r in zip(ks, recalls)}, "MAP@R": map_r, "RP": rp}
    for k, v in scores.items():
        print(f"{k}: {100 * v:.2f}")
    return scores


def main(args):
    if args.gallery_embeddings and not args.query_embeddings:
        raise UserError("--gallery-embeddings needs --query-embeddings (the queries to search in it).")
    if args.query_embeddings:
        return score_saved(args)
    # The checkpoint and the data set checked together, and both problems said at once.
    problems, saved = Problems(), {}
    with problems.check():
        if not os.path.isfile(args.ckpt):
            raise UserError(f"--ckpt {args.ckpt} does not exist: pass the path of a saved model "
                            "(e.g. logs/logs_cub/.../cub_bn_inception_best.pth).")
        saved = read_weight_file(args.ckpt)
        saved = saved if isinstance(saved, dict) else {}
    # Explicit flags win; then what the checkpoint recorded; then the reference's defaults.
    net = network_of(saved, args.model, args.embedding_size, args.target_norm)
    args.model, args.embedding_size, args.target_norm = net["arch"], net["embedding_size"], int(net["l2_norm"])
    settings_from_run(args)
    if args.visualize < 0 or args.visualize_k < 1:
        raise UserError(f"--visualize {args.visualize} --visualize-k {args.visualize_k}: give a number of "
                        "queries >= 0 and of neighbours >= 1.")
    device = distributed.init(args.gpu_id)
    with problems.check():
        eval_set = build_dataset(args.dataset, args.DATA_DIR, "eval",
                                 build_transform(args.model, train=False, crop_size=args.crop_size))
    problems.raise_any()
    model = build_model(args.model, args.embedding_size, pretrained=False, l2_norm=bool(args.target_norm),
                        bn_freeze=bool(args.bn_freeze))
    load_checkpoint_weights(model, args.ckpt)
    model.to(device)
    # Under torchrun each process embeds a share; the recalls are those of one process.
    loader = build_eval_loader(eval_set, args.batch_size, args.workers)
    recalls, X, T = evaluate(model, loader, device, parse_ks(args.recall_ks, recall_ks(args.dataset)),
                             return_embeddings=True)
    if args.save_embeddings and distributed.is_main():
        save_embeddings(args.save_embeddings, X.numpy(), T.numpy(), eval_set.im_paths,
                        getattr(eval_set, "is_query", None))
        print(f"embeddings saved in {args.save_embeddings}")
    if args.visualize and distributed.is_main():
        visualize(args, X, T, eval_set)
    is_query = getattr(eval_set, "is_query", None)
    split = (f"{sum(is_query)} queries searched in {len(is_query) - sum(is_query)} gallery images"
             if is_query is not None else f"{len(eval_set)} images")
    print(f"{args.dataset} eval split, {split}, {args.model}-{args.embedding_size}"
          f"{' (L2-normalised)' if args.target_norm else ''} at {args.crop_size} px from {args.ckpt}")
    for k, v in recalls.items():
        print(f"{k}: {100 * v:.2f}")
    return recalls


if __name__ == "__main__":
    run_cli(main, get_args_parser())
