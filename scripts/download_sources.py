"""Download the six Proxy-Anchor source networks released with the paper into
pretrained_source/{model}/{dataset}_{model}_512dim_Proxy_Anchor_ckpt.pth, the names that
code/train_target.py --source-ckpt and the experiment scripts use.

    python scripts/download_sources.py [bn_inception] [resnet50] [cub] [cars] [SOP]

Names narrow the set: `resnet50 cub` is one file, `cub` the two CUB networks, nothing all six.

The authors host them on Google Drive, which answers large files with an HTML confirmation page
(that plain curl/wget saves under the checkpoint's name); gdown (pip install gdown) gets past it.
SOURCE_MODELS_URL=<base> downloads from a mirror instead, by plain HTTP(S) with resume:
{base}/{model}/{file}, the layout of pretrained_source/ itself (so `python -m http.server`
started in a copy of pretrained_source/ serves as a mirror).

Every file is checked after download, and a file already present before: it must load with
torch.load(weights_only=True) and hold {'model_state_dict': ...} with the keys and shapes of the
network build_model(model, 512) makes. A bad file (an HTML page, a truncated download, another
network) is removed with one line saying why; a present bad file is downloaded again. Exit
status 1 when any file is missing at the end, with how to get it by hand or train it.
"""
import argparse
import functools
import os
import pickle
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from downloads import ROOT, FetchError, fetch  # noqa: E402  (also puts code/ on sys.path)

MODELS = ("bn_inception", "resnet50")
DATASETS = ("cub", "cars", "SOP")
EMBEDDING_SIZE = 512

# Google Drive file ids of the released checkpoints (the authors' download script; recorded in
# the paper material as source_models.tsv).
DRIVE_IDS = {
    ("bn_inception", "cub"): "1uuTF1AI5yHVVHT0RzBqTEnYHr5TbEdC3",
    ("bn_inception", "cars"): "1ENSpNad0Zu8d6D5pMG5fsK2bU2z4KuMv",
    ("bn_inception", "SOP"): "1gyMei5IMSFshqqt0UfN5-po41JbNFULl",
    ("resnet50", "cub"): "1pDBfV3vNTxlYkwsMZylQEgOwmg_bicjV",
    ("resnet50", "cars"): "1WSeBPi61NIr-dsTuZFRoUZ3RJ-S86nfS",
    ("resnet50", "SOP"): "152JIJzzFuz_v6vLtlpybB4OhphE9icRz",
}


def file_name(model, dataset):
    return f"{dataset}_{model}_{EMBEDDING_SIZE}dim_Proxy_Anchor_ckpt.pth"


def drive_url(model, dataset):
    return f"https://drive.google.com/uc?id={DRIVE_IDS[model, dataset]}"


# ---- checking a file -------------------------------------------------------------------------

@functools.lru_cache(maxsize=None)
def expected_shapes(model):
    """{key: shape} of the network the checkpoint must fit, built on the meta device: keys and
    shapes only, no memory or initialisation cost."""
    import torch
    from embedding_transfer.models import build_model
    with torch.device("meta"):
        net = build_model(model, EMBEDDING_SIZE, pretrained=False)
    return {k: tuple(v.shape) for k, v in net.state_dict().items()}


def looks_like_html(path):
    with open(path, "rb") as f:
        head = f.read(256).lstrip().lower()
    return head.startswith((b"<!doctype html", b"<html"))


def problem_with(path, model):
    """None when `path` holds the released `model` network, else why not (a short phrase)."""
    import torch
    if os.path.getsize(path) == 0:
        return "the file is empty"
    if looks_like_html(path):
        return ("it is an HTML page (Google Drive's confirmation or error page), not a checkpoint")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        # weights_only refuses classes and functions ("Unsupported global"); any other complaint
        # of its unpickler means bytes that are no pickle at all.
        m = re.search(r"Unsupported global: GLOBAL (\S+)", str(e))
        if m:
            return f"it holds pickled objects besides tensors ({m.group(1)}; refused: loading it could run code)"
        return "it is not a readable PyTorch file (not a pickle of tensors), probably a damaged download"
    except Exception as e:  # zip/pickle readers raise many types on a truncated file
        first = str(e).strip().splitlines()[0][:120] if str(e).strip() else ""
        return f"it is not a readable PyTorch file, probably a truncated download ({type(e).__name__}: {first})"
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get("model_state_dict"), dict):
        what = (f"a dict with keys {sorted(map(str, ckpt))[:4]}" if isinstance(ckpt, dict)
                else f"a {type(ckpt).__name__}")
        return f"it holds {what}, not {{'model_state_dict': ...}}"
    return fits(ckpt["model_state_dict"], model)


def fits(sd, model):
    """None when state_dict `sd` has exactly the keys and shapes of `model`, else the differences."""
    if sd and all(k.startswith("module.") for k in sd):  # saved from nn.DataParallel
        sd = {k[len("module."):]: v for k, v in sd.items()}
    want = expected_shapes(model)
    # BatchNorm fills in a missing num_batches_tracked (files from before PyTorch 0.4.1).
    missing = [k for k in want if k not in sd and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in sd if k not in want]
    shapes = [f"{k} {tuple(getattr(sd[k], 'shape', ()))} vs {want[k]}" for k in want
              if k in sd and tuple(getattr(sd[k], "shape", ())) != want[k]]
    parts = [f"{len(ks)} {what} (e.g. {', '.join(ks[:2])})"
             for ks, what in ((missing, "keys missing"), (unexpected, "unexpected keys"),
                              (shapes, "shapes differ")) if ks]
    return f"it is not the {model} {EMBEDDING_SIZE}-d network: " + ", ".join(parts) if parts else None


# ---- downloading -----------------------------------------------------------------------------

def import_gdown():
    """The gdown module, or FetchError: one line saying how to install it."""
    try:
        import gdown
    except ImportError:
        raise FetchError("gdown is not installed: pip install gdown (it is in requirements.txt), "
                         "or set SOURCE_MODELS_URL to a mirror") from None
    return gdown


def from_drive(model, dataset, dest):
    """gdown handles Drive's confirmation page and shows its own progress bar."""
    gdown = import_gdown()
    try:
        # resume=True: gdown continues its own partial file (<name>XXXXXXXX.part) from an
        # interrupted run. Safe here: `dest` itself never exists at this point (gdown would skip it).
        out = gdown.download(id=DRIVE_IDS[model, dataset], output=dest, quiet=False, resume=True)
    except Exception as e:  # gdown raises its own errors and requests' on network failures
        text = " ".join(ln.strip() for ln in str(e).splitlines() if ln.strip())
        raise FetchError(f"Google Drive: {type(e).__name__}: {text[:400]}") from None
    if out is None or not os.path.isfile(dest):  # older gdown versions return None on failure
        raise FetchError("Google Drive: gdown could not fetch it (see its message above)")


def from_mirror(base, model, dataset, dest):
    fetch(f"{base.rstrip('/')}/{model}/{file_name(model, dataset)}", dest)


def destination(out_dir, model, dataset):
    return os.path.join(out_dir, model, file_name(model, dataset))


def usable(dest, model):
    """True when `dest` is already a good checkpoint; a bad one is reported and removed."""
    if not os.path.isfile(dest):
        return False
    why = problem_with(dest, model)
    if why is None:
        print(f"have {dest}")
        return True
    print(f"{dest} is unusable ({why}): removing it and downloading it again", file=sys.stderr)
    os.remove(dest)
    return False


def download_one(model, dataset, dest, mirror):
    """Download and check one checkpoint; returns None, or why it is still missing."""
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    print(f"downloading {dest}", file=sys.stderr)
    try:
        (from_mirror(mirror, model, dataset, dest) if mirror else from_drive(model, dataset, dest))
    except FetchError as e:
        return str(e)
    why = problem_with(dest, model)
    if why:
        os.remove(dest)
        return f"downloaded, but {why}; removed it"
    print(f"saved {dest}")
    return None


def by_hand(model, dataset, out_dir):
    dest = destination(out_dir, model, dataset)
    return (f"  {dest}: download {drive_url(model, dataset)} in a browser and save it there, "
            f"or train it: sh scripts/source_{model}_{dataset}.sh")


def select(names):
    """(models, datasets) that the positional names choose; unnamed kinds mean all."""
    models = [m for m in MODELS if m in names] or list(MODELS)
    datasets = [d for d in DATASETS if d in names] or list(DATASETS)
    return models, datasets


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("names", nargs="*", metavar="{bn_inception,resnet50,cub,cars,SOP}",
                    help="models and/or data sets to download (default: all)")
    ap.add_argument("--out-dir", default=os.path.join(ROOT, "pretrained_source"),
                    help="folder that receives {model}/{file} (default: pretrained_source/)")
    args = ap.parse_args(argv)
    unknown = [n for n in args.names if n not in MODELS + DATASETS]
    if unknown:
        ap.error(f"unknown name(s) {', '.join(unknown)}: choose among {', '.join(MODELS + DATASETS)}")
    mirror = os.environ.get("SOURCE_MODELS_URL", "").strip()
    if mirror:
        print(f"downloading from the mirror SOURCE_MODELS_URL={mirror}", file=sys.stderr)
    models, datasets = select(args.names)
    wanted = [(m, d) for m in models for d in datasets]
    try:
        todo = [(m, d) for m, d in wanted if not usable(destination(args.out_dir, m, d), m)]
        if todo and not mirror:
            import_gdown()  # before any download: one line instead of one per file
        failed = []
        for model, dataset in todo:
            why = download_one(model, dataset, destination(args.out_dir, model, dataset), mirror)
            if why:
                print(f"error: {file_name(model, dataset)}: {why}", file=sys.stderr)
                failed.append((model, dataset))
    except FetchError as e:  # gdown missing
        print(f"error: {e}", file=sys.stderr)
        failed = todo
    except KeyboardInterrupt:
        print("interrupted: run again to resume", file=sys.stderr)
        return 130
    if failed:
        print(f"error: {len(failed)} of {len(wanted)} source networks are missing; "
              "get them by hand or train them:", file=sys.stderr)
        for model, dataset in failed:
            print(by_hand(model, dataset, args.out_dir), file=sys.stderr)
        return 1
    print(f"all {len(wanted)} source networks are in {args.out_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
