"""Every parameter training may update gets a gradient from the forward pass (DDP waits for each
one); the ImageNet classifier that the forward pass skips stays in the state_dict, untrained."""
import pytest
import torch

from embedding_transfer.models import MODELS, build_model

CROP = {"bn_inception": 64}   # its ceil-mode pooling needs a multiple of 32


@pytest.mark.parametrize("name", list(MODELS))
def test_every_trainable_parameter_gets_a_gradient(name):
    model = build_model(name, 8)
    size = CROP.get(name, 32)
    feats, emb = model(torch.randn(2, 3, size, size))
    (emb.sum() + sum(f.float().mean() for f in feats)).backward()
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {n for n, _ in model.trainable_parameters()}
    missing = sorted(n for n, p in model.named_parameters() if p.requires_grad and p.grad is None)
    assert not missing, f"{name}: trainable but unused by forward: {missing[:5]}"


@pytest.mark.parametrize("name, layer", [("resnet18", "fc"), ("resnet50", "fc"), ("bn_inception", "last_linear")])
def test_the_unused_classifier_keeps_its_keys_but_never_trains(name, layer):
    model = build_model(name, 8, bn_freeze=False)
    keys = model.state_dict().keys()
    assert f"model.{layer}.weight" in keys and f"model.{layer}.bias" in keys
    assert not any(p.requires_grad for p in getattr(model.model, layer).parameters())
    assert not any(n.startswith(f"model.{layer}.") for n, _ in model.trainable_parameters())
