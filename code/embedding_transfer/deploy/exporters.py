"""Writing a network (deploy.network.EmbeddingOnly) as ONNX or TorchScript: input `images` (N, 3, crop,
crop) float32 with a dynamic batch axis, output `embeddings` (N, d) float32.

ONNX goes through torch.onnx's exporter from torch.export (the supported one: the TorchScript-based
exporter is deprecated and due for removal), which needs the onnx and onnxscript packages. Spatial
sizes are fixed at the export's crop (EfficientNet-Lite's 'SAME' padding is computed from them),
the batch axis is not. TorchScript is a trace (torch.jit.trace, deprecated by PyTorch but still the
way to get a file that libtorch and C++ load); the trace records the same operations.
"""
import contextlib
import io
import warnings

import torch

from ..errors import UserError

INPUT, OUTPUT = "images", "embeddings"
FORMATS = ("onnx", "torchscript")
EXTENSIONS = {"onnx": ".onnx", "torchscript": ".torchscript.pt"}


def example_batch(crop, n=2):
    # Two images: a batch of one would let the tracer treat the batch axis as a constant 1.
    return torch.randn(n, 3, crop, crop, generator=torch.Generator().manual_seed(0))


def write_onnx(module, crop, path):
    try:
        import onnx  # noqa: F401  (torch.onnx needs it; say so before a long export)
        import onnxscript  # noqa: F401
    except ImportError as e:
        raise UserError(f"ONNX export needs the onnx and onnxscript packages ({e}): "
                        "pip install -r requirements.txt.") from None
    batch = torch.export.Dim("batch", min=1)
    log = io.StringIO()
    try:
        # The exporter narrates every step on stdout; kept for the error message only.
        with contextlib.redirect_stdout(log), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(module, (example_batch(crop),), path, input_names=[INPUT], output_names=[OUTPUT],
                              dynamic_shapes={INPUT: {0: batch}}, dynamo=True, external_data=False)
    except Exception as e:  # noqa: BLE001 - any exporter failure: report it with its log
        raise UserError(f"torch.onnx could not export the network ({type(e).__name__}: {e}). Its log:\n"
                        f"{log.getvalue()[-2000:]}") from None
    return path


def write_torchscript(module, crop, path):
    with torch.no_grad(), warnings.catch_warnings():
        # jit.trace's deprecation notice, and EfficientNet-Lite's padding computed from the input's
        # size in Python (recorded as constants for this crop: the batch axis stays free).
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(module, example_batch(crop))
        torch.jit.save(traced, path)
    return path


WRITERS = {"onnx": write_onnx, "torchscript": write_torchscript}


def export(module, fmt, crop, path):
    if fmt not in WRITERS:
        raise UserError(f"--format {fmt!r}: choose one of {', '.join(FORMATS)}.")
    return WRITERS[fmt](module.eval(), crop, path)
