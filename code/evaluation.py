"""Scoring an embedding network on a split: embeddings of every image (all processes' shares),
then Recall@K, MAP@R and R-Precision (metrics.py)."""
import torch
from tqdm import tqdm

import distributed
from loaders import split_of
from metrics import retrieval_metrics
from records import VAL, improves


def recall_ks(dataset_name):
    """The K list the paper reports: 1,10,100,1000 on SOP, 1,2,4,8 elsewhere."""
    return [1, 10, 100, 1000] if dataset_name == "SOP" else [1, 2, 4, 8]


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


def evaluate(model, loader, device, ks, channels_last=False, return_embeddings=False):
    """{'R@k': recall for each k, 'MAP@R': ..., 'RP': R-Precision} on the loader's split (all
    processes' shares together). return_embeddings: also the (N, d) embeddings and (N,) labels,
    in dataset order."""
    X, T, index = predict_batchwise(model, loader, device, channels_last)
    X, T = distributed.gather_embeddings(X, T, index, len(split_of(loader)))
    recalls, map_r, r_precision = retrieval_metrics(X, T, ks)   # one pass over the distance blocks
    scores = {f"R@{k}": r for k, r in zip(ks, recalls)}
    scores["MAP@R"], scores["RP"] = map_r, r_precision
    return (scores, X, T) if return_embeddings else scores


def score_epoch(model, loaders, best, device, ks, channels_last=False):
    """The epoch's scores: test R@k, MAP@R, RP; with a validation loader (--val-classes), the same
    on it under VAL keys, and the test scores only when the validation R@1 improves on `best`."""
    if loaders.val is None:
        return evaluate(model, loaders.eval, device, ks, channels_last)
    record = {VAL + k: v for k, v in evaluate(model, loaders.val, device, ks, channels_last).items()}
    if improves(record, best, VAL + "R@1"):
        record.update(evaluate(model, loaders.eval, device, ks, channels_last))
    return record
