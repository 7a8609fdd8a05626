"""Search a gallery of images with a trained network: the top-k gallery items of each query image, as
a CSV and as a picture.

    python scripts/retrieve.py --ckpt MODEL --gallery DIR --query IMAGE_OR_DIR... [--k 5] \\
        [--out-csv hits.csv] [--grid hits.png] [--save-gallery gallery.npz] [--index faiss]

MODEL is a checkpoint (.pth; --model, --embedding-size, --target-norm, --crop-size as for
evaluate.py when it does not record them) or a model written by scripts/export.py (.onnx,
.torchscript.pt, with its JSON). Instead of image folders, saved embeddings can be given
(--gallery-embeddings, --query-embeddings: files of evaluate.py --save-embeddings or of
--save-gallery), which needs no network when both are.

A gallery folder of class folders (DIR/<class>/<image>) gives every image its folder's name as class,
and each query the name of the folder it is in: the picture then frames a neighbour green when it is
of the query's class and red when not (blue when classes are unknown). A query that is itself a
gallery file does not retrieve itself (--keep-self keeps it).

Search is exact (the blocked scan of code/embedding_transfer/query_gallery.py). --index faiss searches an IVF index
instead, for galleries too big for that, and reports its recall@k against the exact search on up to
--recall-queries of the queries, with both search times.
"""
import argparse
import csv
import io
import os
import sys
import time

import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "code"))

from embedding_transfer.dataset import check_images  # noqa: E402
from embedding_transfer.deploy import faiss_index  # noqa: E402
from embedding_transfer.deploy.images import class_folder_labels, embed_files, gather, list_images  # noqa: E402
from embedding_transfer.deploy.runners import open_model  # noqa: E402
from embedding_transfer.embeddings_file import load_embeddings, save_embeddings  # noqa: E402
from embedding_transfer.errors import UserError  # noqa: E402
from embedding_transfer.models import MODELS  # noqa: E402
from embedding_transfer.query_gallery import nearest_gallery  # noqa: E402
from embedding_transfer.reporting.retrieval_grid import draw_grid  # noqa: E402
from embedding_transfer.runtime import run_cli  # noqa: E402
from embedding_transfer.storage import save_text  # noqa: E402


def get_args_parser():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                allow_abbrev=False)
    p.add_argument("--ckpt", default="", help="checkpoint (.pth) or exported model (.onnx, .torchscript.pt)")
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--gallery", default="", metavar="DIR", help="folder of gallery images (class folders or flat)")
    g.add_argument("--gallery-embeddings", default="", metavar="G.npz", help="saved gallery embeddings")
    q = p.add_mutually_exclusive_group(required=True)
    q.add_argument("--query", nargs="+", default=None, metavar="PATH", help="query image files or folders")
    q.add_argument("--query-embeddings", default="", metavar="Q.npz", help="saved query embeddings")
    p.add_argument("--k", type=int, default=5, help="gallery items returned per query")
    p.add_argument("--out-csv", default="retrievals.csv", metavar="FILE.csv")
    p.add_argument("--grid", default="", metavar="FILE.png", help="also draw the queries and their top k")
    p.add_argument("--grid-queries", type=int, default=8, help="queries drawn in --grid (the first ones)")
    p.add_argument("--save-gallery", default="", metavar="G.npz", help="save the gallery's embeddings for reuse")
    p.add_argument("--keep-self", action="store_true", help="let a query that is a gallery file retrieve itself")
    p.add_argument("--index", default="exact", choices=("exact", "faiss"))
    p.add_argument("--nlist", type=int, default=0, help="faiss IVF cells (default: about 4 sqrt(gallery size))")
    p.add_argument("--nprobe", type=int, default=faiss_index.DEFAULT_NPROBE, help="faiss IVF cells searched per query")
    p.add_argument("--recall-queries", type=int, default=1000,
                   help="with --index faiss: queries searched exactly too, to measure its recall@k")
    p.add_argument("--model", default=None, help=f"for a checkpoint that does not record it: {', '.join(MODELS)}")
    p.add_argument("--embedding-size", default=None, type=int)
    p.add_argument("--target-norm", "--l2-norm", dest="target_norm", default=None, type=int)
    p.add_argument("--crop-size", default=None, type=int,
                   help="checkpoints: input size (default: the run's args.json beside it, else 224)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--workers", type=int, default=0)
    return p


class Items:
    """One side of the search: embeddings, image paths (or None), classes (or None), and what embedded them."""

    def __init__(self, X, paths=None, labels=None, identity=None, source=""):
        self.X, self.paths, self.labels, self.identity, self.source = X, paths, labels, identity, source


def from_file(path, flag):
    z = load_embeddings(path, flag)
    model = str(z["model"]) if "model" in z else None
    labels = [str(v) for v in z["labels"]] if "labels" in z else None
    paths = [str(v) for v in z["paths"]] if "paths" in z else None
    return Items(z["embeddings"].astype(np.float32), paths, labels, model, f"{flag} {path}")


def embed_images(runner, paths, what, args):
    check_images(paths, what)          # one error naming every unreadable file, before any embedding
    t0 = time.perf_counter()
    X = embed_files(runner, paths, args.batch_size, args.workers)
    print(f"embedded {len(paths)} {what} images in {time.perf_counter() - t0:.1f} s", flush=True)
    return X


def check_compatible(query, gallery, runner):
    """Both sides from one network: equal sizes, and the same network where both files record it."""
    dq, dg = query.X.shape[1], gallery.X.shape[1]
    if dq != dg:
        raise UserError(f"the queries are {dq}-d ({query.source}) but the gallery is {dg}-d ({gallery.source}): "
                        "embeddings of different networks cannot be compared. Embed both with the same model "
                        "(or pass the matching --gallery-embeddings).")
    if query.identity and gallery.identity and query.identity != gallery.identity:
        raise UserError(f"the gallery was embedded by {gallery.identity} ({gallery.source}) and the queries by "
                        f"{query.identity}: another network, or another checkpoint of it. Embed the gallery again "
                        "with this model.")


def search(args, query, gallery, k):
    """(distances, indices) of the k nearest gallery items of each query by the chosen search, and
    the exact search's (the same with --index exact; with faiss, to measure its recall)."""
    t0 = time.perf_counter()
    exact = tuple(a.numpy() for a in nearest_gallery(torch.from_numpy(query.X), torch.from_numpy(gallery.X), k))
    t_exact = time.perf_counter() - t0
    if args.index == "exact":
        print(f"exact search of {len(query.X)} queries in {len(gallery.X)} items: {t_exact:.3f} s")
        return exact, exact
    t0 = time.perf_counter()
    index = faiss_index.build_ivf(gallery.X, args.nlist or None)
    t_build = time.perf_counter() - t0
    t0 = time.perf_counter()
    found = faiss_index.search_ivf(index, query.X, k, args.nprobe)
    print(f"faiss IVF ({index.nlist} cells, nprobe {index.nprobe}): built in {t_build:.2f} s, searched "
          f"{len(query.X)} queries in {time.perf_counter() - t0:.3f} s (exact scan: {t_exact:.3f} s)")
    return found, exact


def drop_self(query, gallery, dist, idx, k, keep_self):
    """The first k neighbours of each query, without the query's own file unless keep_self; rows with
    fewer (a tiny gallery, or faiss's probed cells) end in index -1."""
    if not keep_self and query.paths is not None and gallery.paths is not None:
        where = {os.path.realpath(p): i for i, p in enumerate(gallery.paths)}
        own = np.array([where.get(os.path.realpath(p), -2) for p in query.paths])
        idx = np.where(idx == own[:, None], -1, idx)
    out_d, out_i = np.full((len(idx), k), np.inf, dtype=np.float32), np.full((len(idx), k), -1)
    for r, (d, i) in enumerate(zip(dist, idx)):
        kept = np.flatnonzero(i >= 0)[:k]
        out_d[r, :len(kept)], out_i[r, :len(kept)] = d[kept], i[kept]
    return out_d, out_i


def write_csv(path, query, gallery, dist, idx):
    labelled = query.labels is not None and gallery.labels is not None
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["query", "rank", "gallery_item", "distance"] + (["query_class", "item_class", "same_class"]
                                                                if labelled else []))
    for qi in range(len(idx)):
        for rank, (j, d) in enumerate(zip(idx[qi], dist[qi]), start=1):
            if j < 0:
                continue
            row = [query.paths[qi] if query.paths else qi, rank, gallery.paths[j] if gallery.paths else j, f"{d:.6f}"]
            if labelled:
                row += [query.labels[qi], gallery.labels[j], int(query.labels[qi] == gallery.labels[j])]
            w.writerow(row)
    save_text(buf.getvalue(), path)
    return path


def main(args):
    if args.k < 1 or args.grid_queries < 1:
        raise UserError(f"--k {args.k} --grid-queries {args.grid_queries}: give positive numbers.")
    needs_model = bool(args.gallery or args.query)
    if needs_model and not args.ckpt:
        raise UserError("embedding images needs a model: pass --ckpt (a checkpoint or a scripts/export.py model).")
    runner = None
    if args.ckpt:
        runner = open_model(args.ckpt, args.model, args.embedding_size,
                            None if args.target_norm is None else bool(args.target_norm), args.crop_size)
        print(f"model: {runner.name}")
    if args.gallery:
        paths = list_images(args.gallery)
        gallery = Items(embed_images(runner, paths, f"gallery {args.gallery}", args), paths,
                        class_folder_labels(args.gallery, paths), runner.identity, f"--gallery {args.gallery}")
    else:
        gallery = from_file(args.gallery_embeddings, "--gallery-embeddings")
    if args.query:
        paths = gather(args.query)
        labels = [os.path.basename(os.path.dirname(p)) for p in paths] if gallery.labels is not None else None
        query = Items(embed_images(runner, paths, "query", args), paths, labels, runner.identity, "--query")
    else:
        query = from_file(args.query_embeddings, "--query-embeddings")
    if runner is not None and not args.gallery and gallery.X.shape[1] != runner.info["embedding_size"]:
        raise UserError(f"--gallery-embeddings {args.gallery_embeddings} holds {gallery.X.shape[1]}-d embeddings but "
                        f"{args.ckpt} makes {runner.info['embedding_size']}-d ones: embed the gallery with this model "
                        f"(--gallery DIR) or pass the embeddings it made.")
    check_compatible(query, gallery, runner)
    if args.save_gallery and args.gallery:
        save_embeddings(args.save_gallery, gallery.X, gallery.labels, gallery.paths, model=gallery.identity)
        print(f"gallery embeddings saved in {args.save_gallery}")
    extra = 0 if args.keep_self else 1          # room for the query's own file, dropped below
    found, exact = search(args, query, gallery, args.k + extra)
    dist, idx = drop_self(query, gallery, *found, args.k, args.keep_self)
    if args.index == "faiss":
        m = min(len(query.X), args.recall_queries)
        truth = drop_self(query, gallery, *exact, args.k, args.keep_self)[1]
        recall = faiss_index.recall_against_exact(idx[:m], truth[:m])
        print(f"faiss recall@{args.k} against exact search: {100 * recall:.1f}% on {m} queries")
    write_csv(args.out_csv, query, gallery, dist, idx)
    print(f"top {idx.shape[1]} of {len(gallery.X)} gallery items for {len(query.X)} queries in {args.out_csv}")
    if args.grid:
        if query.paths is None or gallery.paths is None:
            raise UserError("--grid needs the images: the embeddings file given has no 'paths'.")
        n = min(args.grid_queries, len(query.X))
        cols = int((idx[:n] >= 0).sum(1).min())     # the neighbours every drawn query has
        labels = query.labels + gallery.labels if query.labels is not None and gallery.labels is not None else None
        draw_grid(query.paths + gallery.paths, labels, list(range(n)),
                  torch.as_tensor(idx[:n, :cols]) + len(query.X), args.grid)
        print(f"picture of {n} queries and their top {cols} in {args.grid}")
    return dist, idx


if __name__ == "__main__":
    run_cli(main, get_args_parser())
