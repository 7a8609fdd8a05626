"""Scoring an embedding network on a split: embeddings of every image (all processes' shares),
then Recall@K, MAP@R and R-Precision (metrics.py; for a query/gallery split such as In-Shop's,
each query searched in the gallery only: query_gallery.py)."""
import torch
import torch.nn.functional as F
from tqdm import tqdm

from . import distributed
from .loaders import split_of
from .metrics import retrieval_metrics
from .query_gallery import query_gallery_metrics
from .records import VAL, improves


# Scores of the L2-normalised embeddings (--score-normalised): the relaxed losses leave the
# embedding's norm free, while the paper scores raw Euclidean distances.
NORM = "norm/"

# The K lists the papers report: SOP's in the paper, In-Shop's in Proxy-Anchor's code.
RECALL_KS = {"SOP": [1, 10, 100, 1000], "Inshop": [1, 10, 20, 30, 40, 50]}


def recall_ks(dataset_name):
    """The K list reported on a data set: 1,10,100,1000 on SOP, 1,10,20,30,40,50 on In-Shop, 1,2,4,8
    elsewhere."""
    return list(RECALL_KS.get(dataset_name, [1, 2, 4, 8]))


def split_metrics(X, T, split, ks):
    """(recalls, MAP@R, RP) of a split's embeddings in dataset order: self-retrieval (the query
    itself excluded), or with a per-image `is_query` list its queries searched in the rest."""
    is_query = getattr(split, "is_query", None)
    if is_query is None:
        return retrieval_metrics(X, T, ks)   # one pass over the distance blocks
    q = torch.as_tensor(is_query, dtype=torch.bool)
    return query_gallery_metrics(X[q], T[q], X[~q], T[~q], ks)


@torch.no_grad()
def predict_batchwise(model, loader, device, channels_last=False):
    """Embeddings (N, d), labels (N,) and dataset indices (N,) of a loader, model in eval mode."""
    was_training = model.training
    model.eval()
    embs, labels, indices = [], [], []
    for x, y, i in tqdm(loader, desc="embed", leave=False, dynamic_ncols=True, mininterval=1.0,
                        disable=None if distributed.is_main() else True):
        x = x.to(device, non_blocking=True)
        _, emb = model(x.contiguous(memory_format=torch.channels_last) if channels_last else x)
        embs.append(emb.float().cpu())
        labels.append(torch.as_tensor(y))
        indices.append(torch.as_tensor(i))
    model.train(was_training)
    return torch.cat(embs), torch.cat(labels), torch.cat(indices)


def named_scores(X, T, split, ks, prefix=""):
    """{prefix + 'R@k': ..., prefix + 'MAP@R': ..., prefix + 'RP': ...} of a split's embeddings."""
    recalls, map_r, r_precision = split_metrics(X, T, split, ks)
    scores = {f"{prefix}R@{k}": r for k, r in zip(ks, recalls)}
    scores[prefix + "MAP@R"], scores[prefix + "RP"] = map_r, r_precision
    return scores


def evaluate(model, loader, device, ks, channels_last=False, return_embeddings=False, normalised=False):
    """{'R@k': recall for each k, 'MAP@R': ..., 'RP': R-Precision} on the loader's split (all
    processes' shares together). return_embeddings: also the (N, d) embeddings and (N,) labels,
    in dataset order. normalised: also the same scores of the L2-normalised embeddings, under
    NORM keys."""
    X, T, index = predict_batchwise(model, loader, device, channels_last)
    X, T = distributed.gather_embeddings(X, T, index, len(split_of(loader)))
    scores = named_scores(X, T, split_of(loader), ks)
    if normalised:
        scores.update(named_scores(F.normalize(X, p=2, dim=1), T, split_of(loader), ks, NORM))
    return (scores, X, T) if return_embeddings else scores


def score_epoch(model, loaders, best, device, ks, channels_last=False, normalised=False):
    """The epoch's scores: test R@k, MAP@R, RP; with a validation loader (--val-classes), the same
    on it under VAL keys, and the test scores only when the validation R@1 improves on `best`.
    normalised: the test split is also scored on L2-normalised embeddings (NORM keys)."""
    if loaders.val is None:
        return evaluate(model, loaders.eval, device, ks, channels_last, normalised=normalised)
    record = {VAL + k: v for k, v in evaluate(model, loaders.val, device, ks, channels_last).items()}
    if improves(record, best, VAL + "R@1"):
        record.update(evaluate(model, loaders.eval, device, ks, channels_last, normalised=normalised))
    return record
