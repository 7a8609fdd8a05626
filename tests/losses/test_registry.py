import inspect

import pytest
import torch
import torch.nn as nn

from embedding_transfer.errors import UserError
from embedding_transfer.losses import INPUT_NAMES, LOSSES, build_loss, call_loss, constructor_parameters, is_batchwise, needs_source
from embedding_transfer.losses.crd import sample_contrast_index

NAMES = ["Relaxed_Contra", "Relaxed_MS", "RKD", "PKT", "DarkRank", "Attention", "FitNet", "CRD",
         "Proxy_Anchor"]


def test_nine_names():
    assert list(LOSSES) == NAMES
    assert all(issubclass(cls, nn.Module) for cls in LOSSES.values())


@pytest.mark.parametrize("name", NAMES)
def test_inputs_from_vocabulary(name):
    inputs = LOSSES[name].inputs
    assert isinstance(inputs, tuple) and inputs
    assert set(inputs) <= set(INPUT_NAMES)


def test_what_each_loss_needs_follows_from_its_inputs():
    assert [n for n in NAMES if needs_source(n)] == NAMES[:-1]                  # all but Proxy_Anchor
    assert [n for n in NAMES if not is_batchwise(LOSSES[n])] == ["Attention", "FitNet"]


@pytest.mark.parametrize("name", NAMES)
def test_options_are_constructor_parameters(name):
    params = constructor_parameters(LOSSES[name])
    assert set(LOSSES[name].options) <= set(params)
    required = {k for k, v in params.items() if v.default is inspect.Parameter.empty}
    assert required <= set(LOSSES[name].options)


def test_building_fails_loudly_on_a_missing_or_unused_argument(monkeypatch):
    with pytest.raises(TypeError, match=r"missing \['delta'\]"):
        build_loss("Relaxed_Contra", sigma=0.5)
    with pytest.raises(TypeError, match=r"not taken \['bandwidth'\]"):
        build_loss("Relaxed_Contra", sigma=0.5, delta=1, bandwidth=2)
    # A constructor parameter renamed without its option: the option's value would be dropped.
    class Renamed(LOSSES["Relaxed_Contra"]):
        def __init__(self, bandwidth=1, delta=1):
            super().__init__(bandwidth, delta)
    monkeypatch.setitem(LOSSES, "Relaxed_Contra", Renamed)
    with pytest.raises(TypeError, match="options names \\['sigma'\\]"):
        build_loss("Relaxed_Contra", sigma=2, delta=1)


def test_unknown_name_lists_valid_ones():
    with pytest.raises(UserError) as e:
        build_loss("Relaxed_Contrastive")
    assert all(n in str(e.value) for n in NAMES)


def test_build_loss_passes_arguments():
    loss = build_loss("Relaxed_MS", sigma=0.5, delta=2)
    assert type(loss) is LOSSES["Relaxed_MS"] and loss.sigma == 0.5 and loss.delta == 2


KWARGS = {
    "FitNet": dict(channels=[(4, 6), (8, 12)]),
    "CRD": dict(t_dim=8, s_dim=12, n_data=16, feat_dim=8, nce_k=5),
    "Proxy_Anchor": dict(nb_classes=4, sz_embed=5, mrg=0.1, alpha=32),
    "Relaxed_Contra": dict(sigma=1, delta=1),
    "Relaxed_MS": dict(sigma=1, delta=1),
}


@pytest.mark.parametrize("name", NAMES)
def test_every_loss_called_alike(name):
    g = torch.Generator().manual_seed(0)
    N = 8
    labels = torch.arange(N) % 4
    index = torch.arange(N)
    batch = {
        "t_emb": torch.randn(N, 5, generator=g, requires_grad=True),
        "s_emb": torch.nn.functional.normalize(torch.randn(N, 7, generator=g), dim=1),
        "labels": labels,
        "t_maps": [torch.randn(N, 4, 4, 4, generator=g), torch.randn(N, 8, 2, 2, generator=g)],
        "s_maps": [torch.randn(N, 6, 4, 4, generator=g), torch.randn(N, 12, 2, 2, generator=g)],
        "t_pool": torch.randn(N, 8, generator=g),
        "s_pool": torch.randn(N, 12, generator=g),
        "index": index,
        "contrast_index": sample_contrast_index(index, torch.arange(16) % 4, 5, generator=g),
    }
    loss = call_loss(build_loss(name, **KWARGS.get(name, {})), batch)
    assert loss.dim() == 0 and torch.isfinite(loss)


def test_call_loss_names_missing_input():
    with pytest.raises(KeyError, match="labels"):
        call_loss(build_loss("DarkRank"), {"t_emb": torch.zeros(2, 2), "s_emb": torch.zeros(2, 2)})
