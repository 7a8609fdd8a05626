"""The networks against the reference implementation's golden values (tests/data/reference_public.pt,
a copy of ../shared/reference/public.pt): state_dict keys and shapes, feature shapes, and the
embedding of a fixed input under fixed deterministic weights (the checker's model cases)."""
import math
import os
import zlib

import pytest
import torch
import torchvision

from embedding_transfer.models import build_model, load_checkpoint_weights

GOLDEN = os.path.join(os.path.dirname(__file__), "..", "data", "reference_public.pt")
CASES = torch.load(GOLDEN, weights_only=True)["models"]


def det_init(model):
    """Weights derived from each key's name, as in the reference checker."""
    sd = {}
    for k, v in model.state_dict().items():
        if not v.is_floating_point():
            sd[k] = v
            continue
        gen = torch.Generator().manual_seed(zlib.crc32(k.encode()))
        if k.endswith("running_var"):
            w = 1 + 0.1 * torch.rand(v.shape, generator=gen, dtype=torch.float64)
        elif k.endswith("running_mean"):
            w = 0.1 * torch.randn(v.shape, generator=gen, dtype=torch.float64)
        elif v.dim() == 1:
            w = (1.0 if k.endswith("weight") else 0.0) + 0.05 * torch.randn(v.shape, generator=gen, dtype=torch.float64)
        else:
            w = torch.randn(v.shape, generator=gen, dtype=torch.float64) * math.sqrt(2.0 / v[0].numel())
        sd[k] = w.to(v.dtype)
    model.load_state_dict(sd)


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c['name']}-{c['embedding_size']}")
def test_golden_model(case):
    m = build_model(case["name"], embedding_size=case["embedding_size"])
    keys = {k: tuple(v.shape) for k, v in m.state_dict().items()}
    assert keys == {k: tuple(v) for k, v in case["keys"].items()}
    m = m.float().eval()
    det_init(m)
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(case["x_seed"])) * case["x_scale"]
    assert abs(float(x.double().sum()) - case["x_sum"]) < 1e-3
    with torch.no_grad():
        feats, emb = m(x)
    assert [tuple(f.shape) for f in feats] == [tuple(s) for s in case["feat_shapes"]]
    exp = case["emb"].double()
    atol = 2e-3 * float(exp.abs().mean())
    assert torch.allclose(emb.double(), exp, rtol=2e-3, atol=atol), (emb.double() - exp).abs().max()


def test_golden_order_of_keys():
    # Same order too: a reader comparing with the reference sees the same listing.
    for case in CASES:
        with torch.device("meta"):
            m = build_model(case["name"], case["embedding_size"])
        assert list(m.state_dict()) == list(case["keys"]), case["name"]


def test_resnet101_keys():
    with torch.device("meta"):
        m = build_model("resnet101", 512)
        tv = torchvision.models.resnet101()
    expect = {"model." + k: tuple(v.shape) for k, v in tv.state_dict().items()}
    expect.update({"model.embedding.weight": (512, 2048), "model.embedding.bias": (512,)})
    assert {k: tuple(v.shape) for k, v in m.state_dict().items()} == expect


@pytest.mark.parametrize("case", [c for c in CASES if c["name"] in ("bn_inception", "resnet18")],
                         ids=lambda c: c["name"])
def test_released_checkpoint_layout_loads_strictly(case, tmp_path):
    """A file laid out like the released Proxy-Anchor checkpoints ({'model_state_dict': ...} with
    the reference's keys and shapes, no num_batches_tracked) loads into build_model's network."""
    gen = torch.Generator().manual_seed(0)
    sd = {k: torch.randn(tuple(s), generator=gen) for k, s in case["keys"].items()
          if not k.endswith("num_batches_tracked")}
    path = tmp_path / "ckpt.pth"
    torch.save({"model_state_dict": sd}, path)
    m = build_model(case["name"], case["embedding_size"])
    load_checkpoint_weights(m, str(path))
    got = m.state_dict()
    assert all(torch.equal(got[k], v) for k, v in sd.items())
