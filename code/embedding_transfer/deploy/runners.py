"""Embedding preprocessed batches with whatever a user holds: a checkpoint (.pth), or an exported model
(.onnx, .torchscript.pt) with the JSON that scripts/export.py wrote beside it (`<model file>.json`).

Every runner has `embed(batch)`: float32 (N, 3, crop, crop) -> float32 (N, d), `spec` (the
preprocessing, deploy/preprocess.py), `info` ({'arch', 'embedding_size', 'l2_norm'}), `name`, and
`identity` (network and checkpoint content, or None: what embeddings files record).
"""
import json
import os
import warnings

import torch

from ..errors import UserError

from .exporters import EXTENSIONS, INPUT, OUTPUT
from .network import EmbeddingOnly, check_crop, crop_size_of, describe, embed_torch, file_sha256, identity, load_network
from .preprocess import check_spec, preprocessing_spec


def sidecar(model_path):
    """Where the export's JSON lies: beside the model, named after the whole file name."""
    return model_path + ".json"


def is_exported(path):
    return path.endswith(tuple(EXTENSIONS.values())) or os.path.isfile(sidecar(path))


class CheckpointRunner:
    def __init__(self, ckpt, arch=None, embedding_size=None, l2_norm=None, crop_size=None):
        self.net, self.info = load_network(ckpt, arch, embedding_size, l2_norm)
        crop, self.crop_from = crop_size_of(ckpt, crop_size)
        check_crop(self.info["arch"], crop)
        self.spec = preprocessing_spec(self.info["arch"], crop)
        self.module = EmbeddingOnly(self.net).eval()
        self.name = f"{describe(self.info)} from {ckpt}"
        self.sha256 = file_sha256(ckpt)
        self.identity = identity(self.info, self.sha256)

    def embed(self, batch):
        return embed_torch(self.module, batch)


class OnnxRunner:
    def __init__(self, path, threads=0):
        import onnxruntime as ort
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads    # 0: onnxruntime's default (all cores)
        options.log_severity_level = 3            # errors only
        try:
            self.session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        except Exception as e:  # noqa: BLE001 - onnxruntime raises its own types for bad files
            raise UserError(f"onnxruntime cannot load {path} ({type(e).__name__}: {e}): export it again "
                            "with scripts/export.py.") from None
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        self.input_shape = list(inputs[0].shape)[1:]
        self.output_dim = outputs[0].shape[-1]
        self.input_name = inputs[0].name

    def embed(self, batch):
        return self.session.run(None, {self.input_name: batch})[0]


class TorchScriptRunner:
    def __init__(self, path):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")   # torch.jit.load's deprecation notice
                self.module = torch.jit.load(path, map_location="cpu").eval()
        except (RuntimeError, ValueError, OSError) as e:
            raise UserError(f"{path} is not a TorchScript file torch.jit.load reads ({str(e).splitlines()[0]}): "
                            "export it again with scripts/export.py --format torchscript.") from None
        self.input_shape, self.output_dim = None, None   # TorchScript does not declare shapes

    def embed(self, batch):
        return embed_torch(self.module, batch)


def open_exported(path, threads=0):
    """The runner of an exported model, with its JSON; a JSON that does not describe the model file
    (another export's, or an edited one) is a UserError."""
    meta_path = sidecar(path)
    if not os.path.isfile(path):
        raise UserError(f"{path} does not exist: pass a checkpoint (.pth) or a model written by scripts/export.py.")
    if not os.path.isfile(meta_path):
        raise UserError(f"{path} has no {os.path.basename(meta_path)} beside it: the preprocessing and the "
                        "network it embeds are recorded there by scripts/export.py; export the model again.")
    try:
        with open(meta_path) as f:
            meta = json.load(f)
        fmt, info = meta["format"], {k: meta[k] for k in ("arch", "embedding_size", "l2_norm")}
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise UserError(f"{meta_path} is not the JSON scripts/export.py writes ({type(e).__name__}: {e}): "
                        "export the model again.") from None
    if fmt not in ("onnx", "torchscript"):
        raise UserError(f"{meta_path}: unknown format {fmt!r}; export the model again.")
    spec = check_spec(meta.get("preprocessing"), meta_path)
    runner = OnnxRunner(path, threads) if fmt == "onnx" else TorchScriptRunner(path)
    want_in, want_out = [3, spec["crop"], spec["crop"]], info["embedding_size"]
    if runner.input_shape is not None and (runner.input_shape != want_in or runner.output_dim != want_out):
        raise UserError(f"{path} takes {runner.input_shape} and gives {runner.output_dim}-d embeddings, but "
                        f"{meta_path} describes {want_in} -> {want_out}-d: the JSON belongs to another export. "
                        "Keep each model with its own JSON, or export again.")
    runner.spec, runner.info, runner.meta = spec, info, meta
    runner.name = f"{describe(info)} ({fmt}) from {path}"
    sha = meta.get("checkpoint_sha256")
    runner.identity = identity(info, sha) if isinstance(sha, str) else None
    return runner


def open_model(path, arch=None, embedding_size=None, l2_norm=None, crop_size=None, threads=0):
    """A checkpoint's runner (flags as evaluate.py's) or an exported model's (its JSON decides)."""
    if is_exported(path):
        if any(v is not None for v in (arch, embedding_size, l2_norm, crop_size)):
            raise UserError(f"{path} is an exported model: its network and preprocessing come from "
                            f"{os.path.basename(sidecar(path))}; drop --model, --embedding-size, --target-norm "
                            "and --crop-size.")
        runner = open_exported(path, threads)
    else:
        runner = CheckpointRunner(path, arch, embedding_size, l2_norm, crop_size)
    # A runner's embedding size is what it produces: checked once on a blank batch.
    got = runner.embed(torch.zeros(1, 3, runner.spec["crop"], runner.spec["crop"]).numpy()).shape
    if got != (1, runner.info["embedding_size"]):
        raise UserError(f"{path} produces embeddings of shape {got[1:]}, but it is recorded as "
                        f"{runner.info['embedding_size']}-d: the model and its record do not match; export again.")
    return runner


__all__ = ["CheckpointRunner", "OnnxRunner", "TorchScriptRunner", "open_exported", "open_model", "sidecar",
           "INPUT", "OUTPUT"]
