"""The evaluation preprocessing of a network (dataset/transforms.py: Resize, CenterCrop, each network's
input space) written out as plain data, so that a user outside this repository can feed an exported
model, and that data applied with PIL and NumPy alone (no torchvision), as such a user would."""
import numpy as np
import PIL.Image

from ..dataset.transforms import input_space
from ..errors import UserError

STEPS = [
    "decode the image and convert it to RGB",
    "resize (bilinear, as PIL's Image.resize) so that the shorter side is `resize` pixels and the longer "
    "int(resize * longer / shorter)",
    "crop the centre: `crop` x `crop` pixels, top = round((height - crop) / 2), left = round((width - crop) / 2)",
    "reorder the channels as `channel_order` says (BGR: blue, green, red)",
    "float32 values in [0, 1]: pixel / 255; then multiply by `pixel_scale`",
    "per channel (in that channel order): (value - mean) / std",
    "stack images as a float32 NCHW batch of shape (N, 3, crop, crop)",
]


def preprocessing_spec(arch, crop_size):
    """The steps and their numbers for `arch` at `crop_size` (build_transform(arch, train=False))."""
    bgr, scale, mean, std = input_space(arch)
    return {"steps": STEPS, "resize": round(crop_size * 256 / 224), "interpolation": "bilinear",
            "crop": int(crop_size), "channel_order": "BGR" if bgr else "RGB", "pixel_scale": float(scale),
            "mean": [float(m) for m in mean], "std": [float(s) for s in std], "layout": "NCHW",
            "dtype": "float32"}


def check_spec(spec, where):
    """The preprocessing dict of an export's JSON, or a UserError saying what is missing."""
    need = ("resize", "crop", "channel_order", "pixel_scale", "mean", "std")
    missing = [k for k in need if k not in spec] if isinstance(spec, dict) else list(need)
    if missing or spec["channel_order"] not in ("RGB", "BGR") or len(spec["mean"]) != 3 or len(spec["std"]) != 3:
        what = ", ".join(missing) or "channel_order/mean/std"
        raise UserError(f"{where}: the preprocessing lacks or mangles {what}; "
                        "export the model again with scripts/export.py.")
    return spec


class SpecTransform:
    """PIL image -> (3, crop, crop) float32 array, exactly as the spec says (equal to build_transform's
    tensor: the same PIL resize, the same float32 operations)."""

    def __init__(self, spec):
        self.spec = spec
        self.mean = np.asarray(spec["mean"], dtype=np.float32)[:, None, None]
        self.std = np.asarray(spec["std"], dtype=np.float32)[:, None, None]

    def __call__(self, im):
        s = self.spec
        im = im.convert("RGB")
        w, h = im.size
        short, long = (w, h) if w <= h else (h, w)
        new_short, new_long = s["resize"], int(s["resize"] * long / short)
        im = im.resize((new_short, new_long) if w <= h else (new_long, new_short), PIL.Image.BILINEAR)
        w, h = im.size
        c = s["crop"]
        top, left = int(round((h - c) / 2.0)), int(round((w - c) / 2.0))
        im = im.crop((left, top, left + c, top + c))
        x = np.asarray(im, dtype=np.uint8).transpose(2, 0, 1)
        if s["channel_order"] == "BGR":
            x = x[::-1]
        x = x.astype(np.float32) / np.float32(255)
        if s["pixel_scale"] != 1:
            x = x * np.float32(s["pixel_scale"])
        return np.ascontiguousarray((x - self.mean) / self.std, dtype=np.float32)
