"""Export a trained embedding network for serving: ONNX (default) or TorchScript, plus a JSON beside it
with the preprocessing and what the model is.

    python scripts/export.py CKPT [--format onnx|torchscript] [--out FILE]

The network, embedding size and L2 normalisation come from the checkpoint (as evaluate.py reads them;
--model, --embedding-size and --target-norm for files that do not record them), the crop size from
--crop-size, else the run's args.json beside the checkpoint, else 224. The model maps a float32 batch
`images` (N, 3, crop, crop), preprocessed as the JSON says, to `embeddings` (N, d), normalised
exactly when the run's network was; N is free.

Before anything is kept, the export embeds real photographs (--check-images, else the repository's
test photo and matplotlib's sample portrait) at batch 1 and batch 6, and must agree with PyTorch
within 1e-4 on unit-norm embeddings; otherwise nothing is written and the command fails.
"""
import argparse
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "code"))

from embedding_transfer.deploy.check import TOLERANCE, check_batch, default_images, require_equal  # noqa: E402
from embedding_transfer.deploy.exporters import EXTENSIONS, FORMATS, INPUT, OUTPUT, export  # noqa: E402
from embedding_transfer.deploy.images import gather  # noqa: E402
from embedding_transfer.deploy.network import inference_parameters  # noqa: E402
from embedding_transfer.deploy.runners import CheckpointRunner, OnnxRunner, TorchScriptRunner, sidecar  # noqa: E402
from embedding_transfer.models import MODELS  # noqa: E402
from embedding_transfer.runtime import run_cli  # noqa: E402
from embedding_transfer.storage import save_json  # noqa: E402


def get_args_parser():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                allow_abbrev=False)
    p.add_argument("ckpt", help="checkpoint (.pth) written by training, or a released source")
    p.add_argument("--format", default="onnx", choices=FORMATS)
    p.add_argument("--out", default="", help="model file (default: the checkpoint's name with "
                                             f"{' or '.join(EXTENSIONS.values())}); its JSON is FILE.json")
    p.add_argument("--model", default=None,
                   help=f"{', '.join(MODELS)} (default: from the checkpoint, else bn_inception)")
    p.add_argument("--embedding-size", default=None, type=int, help="default: from the checkpoint, else 512")
    p.add_argument("--target-norm", "--l2-norm", dest="target_norm", default=None, type=int,
                   help="1: L2-normalise the embedding (default: from the checkpoint, else 0)")
    p.add_argument("--crop-size", default=None, type=int,
                   help="input size (default: the run's, from args.json beside the checkpoint, else 224)")
    p.add_argument("--check-images", nargs="+", default=None, metavar="PATH",
                   help="image files or folders to check the export on (at most 6 are used)")
    return p


def metadata(args, runner, out, diff, images):
    import onnxruntime
    import torch
    crop, d = runner.spec["crop"], runner.info["embedding_size"]
    return {
        "format": args.format, "model_file": os.path.basename(out),
        "arch": runner.info["arch"], "embedding_size": d, "l2_norm": runner.info["l2_norm"],
        "input": {"name": INPUT, "shape": ["N", 3, crop, crop], "dtype": "float32"},
        "output": {"name": OUTPUT, "shape": ["N", d], "dtype": "float32"},
        "preprocessing": runner.spec,
        "distance": "Euclidean between embeddings as output (what evaluate.py and scripts/retrieve.py rank by)",
        "checkpoint": os.path.abspath(args.ckpt), "checkpoint_sha256": runner.sha256,
        "crop_size_from": runner.crop_from,
        "check": {"max_abs_difference": diff, "tolerance": TOLERANCE, "on": "L2-normalised embeddings",
                  "images": [os.path.abspath(p) for p in images]},
        "versions": {"torch": torch.__version__, "onnxruntime": onnxruntime.__version__},
    }


def main(args):
    runner = CheckpointRunner(args.ckpt, args.model, args.embedding_size,
                              None if args.target_norm is None else bool(args.target_norm), args.crop_size)
    out = args.out or os.path.splitext(args.ckpt)[0] + EXTENSIONS[args.format]
    images = gather(args.check_images or default_images())[:6]
    batch = check_batch(images, runner.spec)
    # Written under a temporary name and kept only once it has passed the check.
    tmp = os.path.join(os.path.dirname(os.path.abspath(out)), f".exporting-{os.getpid()}-{os.path.basename(out)}")
    os.makedirs(os.path.dirname(tmp), exist_ok=True)
    try:
        export(runner.module, args.format, runner.spec["crop"], tmp)
        exported = OnnxRunner(tmp) if args.format == "onnx" else TorchScriptRunner(tmp)
        diff = require_equal(runner.module, exported, batch, f"the {args.format} export of {args.ckpt}")
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    save_json(metadata(args, runner, out, diff, images), sidecar(out))
    params = inference_parameters(runner.net)
    print(f"exported {runner.name} as {args.format}: {out} ({os.path.getsize(out) / 2**20:.1f} MiB, "
          f"{params / 1e6:.2f} M parameters); input {INPUT} (N, 3, {runner.spec['crop']}, {runner.spec['crop']}) "
          f"[crop size from {runner.crop_from}]")
    print(f"checked on {len(batch)} real images at batch 1 and {len(batch)}: max |difference| {diff:.2e} "
          f"(unit-norm embeddings, tolerance {TOLERANCE:g}); preprocessing and metadata in {sidecar(out)}")
    with open(sidecar(out)) as f:
        return out, json.load(f)


if __name__ == "__main__":
    run_cli(main, get_args_parser())
