"""The losses against golden values from the authors' code (tests/data/reference_public.pt),
run as ../shared/reference/check_reference.py runs them: float64, loss rtol 1e-5, gradient
with respect to the target input rtol 1e-4."""
import os

import pytest
import torch
import torch.nn as nn

from embedding_transfer.losses import LOSSES

GOLDEN = os.path.join(os.path.dirname(__file__), "..", "data", "reference_public.pt")
CASES = torch.load(GOLDEN, weights_only=True)["losses"]


def load_reference_params(m, name, init, params):
    """Copy the weights the golden values were computed with into the module."""
    if name == "FitNet":
        convs = [x for x in m.modules() if isinstance(x, nn.Conv2d)]
        assert len(convs) == len(params["regressor_weights"])
        for conv, w in zip(convs, params["regressor_weights"]):
            conv.weight.copy_(w)
    elif name == "Proxy_Anchor":
        hits = [p for p in m.parameters() if p.shape == params["proxies"].shape]
        assert len(hits) == 1
        hits[0].copy_(params["proxies"])
    elif name == "CRD":
        for lin in (x for x in m.modules() if isinstance(x, nn.Linear)):
            side = {init["t_dim"]: "t", init["s_dim"]: "s"}[lin.in_features]
            lin.weight.copy_(params[f"embed_{side}_weight"])
            lin.bias.copy_(params[f"embed_{side}_bias"])
        mem = [b for b in m.buffers() if b.shape == params["memory"].shape]
        assert len(mem) == 2
        for b in mem:
            b.copy_(params["memory"])


@pytest.mark.parametrize("case", CASES, ids=[f"{c['name']}#{i}" for i, c in enumerate(CASES)])
def test_loss_matches_reference(case):
    name, init, args = case["name"], dict(case["init"]), case["args"]
    if name == "FitNet":
        init["channels"] = [tuple(p) for p in init["channels"]]
    m = LOSSES[name](**init).double()
    with torch.no_grad():
        load_reference_params(m, name, init, case.get("params"))
    if name in ("Attention", "FitNet"):
        t = [x.clone().requires_grad_(True) for x in args[0]]
        loss = m(t, [x.clone() for x in args[1]])
        inputs = t
    else:
        t = args[0].clone().requires_grad_(True)
        loss = m(t, *[x.clone() for x in args[1:]])
        inputs = [t]
    loss.backward()
    assert loss.numel() == 1
    torch.testing.assert_close(loss.detach().reshape(()), torch.as_tensor(case["loss"], dtype=torch.float64),
                               rtol=1e-5, atol=1e-8)
    expected = case["grad"] if isinstance(case["grad"], list) else [case["grad"]]
    assert len(expected) == len(inputs)
    for x, e in zip(inputs, expected):
        assert x.grad is not None
        torch.testing.assert_close(x.grad, e, rtol=1e-4, atol=1e-8)
