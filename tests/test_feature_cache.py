"""--freeze-below and --feature-cache (the converged miniature's regime): the cached activations
are the frozen part's forward pass, the cache is rebuilt when an image changes and refused when
made with other settings, only the stages above the split learn, and both trainers run on it end
to end with loader workers on (EfficientNet-Lite, ImageNet weights, 32 px)."""
import importlib.util
import os
import types

import numpy as np
import PIL.Image
import pytest
import torch

from embedding_transfer import train_source
from embedding_transfer import train_target
from embedding_transfer.cached_data import cached_splits
from embedding_transfer.dataset import build_dataset, build_transform, load_image
from embedding_transfer.errors import UserError
from embedding_transfer.loaders import image_options
from embedding_transfer.models import build_model

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LITE = "efficientnet_lite0"


def cache_args(tmp_path, data, **over):
    args = dict(dataset="cub", DATA_DIR=str(data), crop_size=32, freeze_below="stage6", feature_cache=str(tmp_path / "cache"),
                cache_views=3, cache_seed=5, workers=2, model=LITE, loss="Proxy_Anchor")
    return types.SimpleNamespace(**{**args, **over})


def split_net(stage="stage6", name=LITE):
    return build_model(name, 16, pretrained=True).freeze_below(stage, cached_input=True).eval()


def build(args, net, mode="train", views=2):
    split = build_dataset("cub", args.DATA_DIR, mode)
    return cached_splits(args, [split], [(args.model, net)], views, image_options(args))[0]


def test_cached_features_are_the_frozen_forward_pass(textured_cub, tmp_path):
    args, net = cache_args(tmp_path, textured_cub), split_net()
    cached = build(args, net)
    store = cached.stores[0]
    n = len(cached)
    assert store["train"].shape == (n, 3, 192, 1, 1) and store["eval"].shape == (n, 192, 1, 1)
    opts = image_options(args)
    train_tf, eval_tf = build_transform(LITE, True, **opts), build_transform(LITE, False, **opts)
    seeds = torch.randint(2**62, (n, 3), generator=torch.Generator().manual_seed(5))  # the views' documented seeds
    for i in (0, n // 2, n - 1):
        im = load_image(cached.im_paths[i])
        views = []
        for s in seeds[i].tolist():
            torch.manual_seed(s)
            views.append(train_tf(im))
        with torch.no_grad():
            direct = net.bottom(torch.stack(views + [eval_tf(im)]))
        # Float noise only: the cache runs other batch sizes, and on one AVX2 thread oneDNN picks
        # other kernels for them (2e-5 apart); two views of an image are 1e-2 and more apart.
        assert (direct[0] - direct[1]).abs().max() > 1e-2
        torch.testing.assert_close(store["train"][i], direct[:3], rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(store["eval"][i], direct[3], rtol=1e-4, atol=1e-4)
        # The whole network on the image embeds it as the split network does from the cache.
        full = build_model(LITE, 16, pretrained=True).eval()
        full.model.embedding.load_state_dict(net.model.embedding.state_dict())
        with torch.no_grad():
            torch.testing.assert_close(net(store["eval"][i:i + 1])[1], full(eval_tf(im)[None])[1], rtol=1e-4, atol=1e-5)
    # An item: 2 of the 3 cached views, drawn from the batch sampler's seed; the same seed, the same pair.
    x, y, index = cached[(4, 123)]
    assert x.shape == (2, 192, 1, 1) and y == cached.ys[4] and index == 4
    assert torch.equal(x, cached[(4, 123)][0]) and not torch.equal(x[0], x[1])
    assert any(torch.equal(x[0], store["train"][4, v]) for v in range(3))


def test_reused_and_rebuilt_when_an_image_changes(small_textured_cub, tmp_path, capsys):
    data = small_textured_cub
    args, net = cache_args(tmp_path, data), split_net()
    first = build(args, net, "eval").stores[0]["eval"].clone()
    (path,) = os.listdir(tmp_path / "cache")
    stamp = os.stat(tmp_path / "cache" / path).st_mtime_ns
    capsys.readouterr()
    build(args, net, "eval")                                      # unchanged images: read, not rebuilt
    assert "feature cache" not in capsys.readouterr().out
    assert os.stat(tmp_path / "cache" / path).st_mtime_ns == stamp
    split = build_dataset("cub", str(data), "eval")
    PIL.Image.fromarray(np.full((16, 16, 3), 200, np.uint8)).save(split.im_paths[1], "JPEG")
    again = build(args, net, "eval").stores[0]["eval"]
    assert "images changed since it was built; rebuilding" in capsys.readouterr().out
    assert not torch.equal(again[1], first[1])
    assert torch.equal(again[0], first[0]) and torch.equal(again[2:], first[2:])
    assert os.listdir(tmp_path / "cache") == [path]               # the same key, rewritten in place


def test_a_cache_made_with_other_settings_is_an_error(tiny_cub, tmp_path):
    args, net = cache_args(tmp_path, tiny_cub), split_net()
    build(args, net, "eval")
    (path,) = [tmp_path / "cache" / p for p in os.listdir(tmp_path / "cache")]
    entry = torch.load(path, weights_only=True)
    entry["key"]["crop"] = 64                                      # e.g. a file copied from a 64 px run
    torch.save(entry, path)
    with pytest.raises(UserError, match=r"made with other settings: crop=64 \(this run: 32\)"):
        build(args, net, "eval")
    path.write_bytes(b"not a cache")
    with pytest.raises(UserError, match="cannot be read"):
        build(args, net, "eval")
    # Other weights below the split are another cache (a source fine-tuned below it, say), never this one.
    other = split_net()
    with torch.no_grad():
        other.model._conv_stem.weight.mul_(0.5)
    os.remove(path)
    build(args, net, "eval")
    build(args, other, "eval")
    assert len(os.listdir(tmp_path / "cache")) == 2
    with pytest.raises(UserError, match="--view 4 needs at least 4 cached views"):
        build(args, net, "train", views=4)


def test_only_the_stages_above_the_split_learn(tiny_cub, tmp_path):
    net = build_model(LITE, 16, pretrained=True).freeze_below("stage5", cached_input=True).train()
    trunk = net.model
    above = {f"model._blocks.{i}." for i in range(net.split, len(trunk._blocks))} | {"model._conv_head.", "model._bn1.",
                                                                                       "model.embedding."}
    names = [n for n, _ in net.trainable_parameters()]
    assert names and all(n.startswith(tuple(above)) for n in names)
    assert {n for n, p in net.named_parameters() if n.startswith(tuple(above))} == set(names)
    assert net.feature_strides == [32] and net.feature_channels == [1280]
    frozen_stats = {k: v.clone() for k, v in net.state_dict().items() if "running" in k and "_blocks.3." in k}
    h = torch.randn(6, 112, 2, 2)
    _, emb = net(h)
    emb.pow(2).sum().backward()
    for n, p in net.named_parameters():
        if n.startswith("model._fc."):
            continue
        assert (p.grad is not None and p.grad.abs().sum() > 0) == (n in names), n
    assert all(torch.equal(net.state_dict()[k], v) for k, v in frozen_stats.items())
    assert not trunk._blocks[3]._bn1.training and trunk._blocks[12]._bn1.training
    with pytest.raises(UserError, match="valid: stage0, stage1, .*, head"):
        build_model(LITE, 16).freeze_below("stage9")
    with pytest.raises(UserError, match="only the EfficientNet-Lite networks"):
        build_model("resnet18", 16).freeze_below("head")


def trainer_flags(data, tmp_path, workers="2"):
    return ["--dataset", "cub", "--DATA_DIR", str(data), "--crop-size", "32", "--workers", workers, "--wandb",
            "disabled", "--batch-size", "12", "--freeze-below", "head", "--feature-cache", str(tmp_path / "cache"),
            "--cache-views", "3"]


@pytest.mark.e2e
def test_both_trainers_run_on_the_cache_with_workers(tiny_cub, tmp_path):
    # Sources in the cached regime (Lite0 and Lite2), then self-transfer and compression targets on it.
    ckpts = {}
    for net in ("efficientnet_lite0", "efficientnet_lite2"):
        argv = trainer_flags(tiny_cub, tmp_path) + [
            "--model", net, "--embedding-size", "32", "--l2-norm", "1", "--epochs", "2", "--lr-schedule", "cosine",
            "--IPC", "2", "--save", "1", "--LOG_DIR", str(tmp_path / "src"), "--val-classes", "0.5"]
        best = train_source.main(train_source.get_args_parser().parse_args(argv))
        assert best is not None and "val/R@1" in best[1]
        ckpts[net] = str(tmp_path / "src" / net / f"cub_{net}_32dim_Proxy_Anchor_ckpt.pth")
        saved = torch.load(ckpts[net], weights_only=True)["model_state_dict"]
        imagenet = build_model(net, 32, pretrained=True).state_dict()
        assert torch.equal(saved["model._blocks.2._depthwise_conv.weight"], imagenet["model._blocks.2._depthwise_conv.weight"])
        assert not torch.equal(saved["model._conv_head.weight"], imagenet["model._conv_head.weight"])
    assert len(os.listdir(tmp_path / "cache")) == 4               # two networks x (train, eval) splits
    for source, loss in (("efficientnet_lite0", "Relaxed_Contra"), ("efficientnet_lite2", "FitNet"),
                         ("efficientnet_lite2", "Relaxed_MS")):
        argv = trainer_flags(tiny_cub, tmp_path) + [
            "--model", LITE, "--embedding-size", "16", "--loss", loss, "--source-ckpt", ckpts[source],
            "--source-model", source, "--source-embedding-size", "32", "--epochs", "2", "--IPC", "2",
            "--LOG_DIR", str(tmp_path / "tgt"), "--save", "1", "--remark", f"_{source}"]
        best, recalls = train_target.main(train_target.get_args_parser().parse_args(argv))
        assert set(recalls) >= {"R@1", "MAP@R"}
    assert len(os.listdir(tmp_path / "cache")) == 4               # the targets reused the sources' caches
    # The saved target is an ordinary network: evaluate.py scores it on the images as training did.
    spec = importlib.util.spec_from_file_location("evaluate_cli", os.path.join(ROOT, "evaluate.py"))
    evaluate_cli = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(evaluate_cli)
    run = next(p for p in (tmp_path / "tgt" / "logs_cub").iterdir() if "Relaxed_MS" in p.name)
    got = evaluate_cli.main(evaluate_cli.get_args_parser().parse_args(
        ["--dataset", "cub", "--DATA_DIR", str(tiny_cub), "--crop-size", "32", "--workers", "0",
         "--ckpt", str(run / f"cub_{LITE}_best.pth")]))
    assert got == pytest.approx(recalls, abs=1e-6)


@pytest.mark.e2e
def test_frozen_bottom_without_a_cache_trains_on_images(tiny_cub, tmp_path, source_ckpt):
    argv = ["--dataset", "cub", "--DATA_DIR", str(tiny_cub), "--crop-size", "32", "--workers", "2", "--wandb",
            "disabled", "--batch-size", "12", "--IPC", "2", "--model", LITE, "--embedding-size", "16",
            "--freeze-below", "stage6", "--epochs", "1", "--LOG_DIR", str(tmp_path), "--loss", "Proxy_Anchor",
            "--save", "1"]
    train_target.main(train_target.get_args_parser().parse_args(argv))
    saved = torch.load(next((tmp_path / "logs_cub").iterdir()) / f"cub_{LITE}_best.pth", weights_only=True)
    imagenet = build_model(LITE, 16, pretrained=True).state_dict()
    for name in ("model._blocks.14._project_conv.weight", "model._blocks.14._bn2.running_mean"):
        assert torch.equal(saved["model_state_dict"][name], imagenet[name])
    assert not torch.equal(saved["model_state_dict"]["model._blocks.15._project_conv.weight"],
                           imagenet["model._blocks.15._project_conv.weight"])


@pytest.mark.parametrize("flags, message", [
    (["--feature-cache", "c"], "give --freeze-below STAGE too"),
    (["--freeze-below", "head", "--random-init"], "drop --random-init"),
    (["--freeze-below", "head", "--model", "resnet18"], "only the EfficientNet-Lite networks"),
])
def test_flag_errors(flags, message, tiny_cub, tmp_path):
    argv = ["--dataset", "cub", "--DATA_DIR", str(tiny_cub), "--model", LITE, "--workers", "0", "--wandb", "disabled",
            "--LOG_DIR", str(tmp_path), "--crop-size", "32", *flags]
    with pytest.raises(UserError, match=message):
        train_source.main(train_source.get_args_parser().parse_args(argv))


@pytest.mark.parametrize("crop, views, side", [(96, 2, 3), (32, 32, 1)])
def test_larger_images_and_more_views_make_their_own_cache(small_textured_cub, tmp_path, crop, views, side):
    """The levels of the regime ladder: 96 px images (a 3x3 map above stage6, stride 32) and 32 fixed
    views a training image; each is a cache of its own, and every view is its own augmentation."""
    args = cache_args(tmp_path, small_textured_cub, crop_size=crop, cache_views=views, workers=0)
    store = build(args, split_net()).stores[0]
    n = len(build_dataset("cub", str(small_textured_cub), "train"))
    assert store["train"].shape == (n, views, 192, side, side) and store["eval"].shape == (n, 192, side, side)
    first = store["train"][0].flatten(1)                                    # (views, 192 * side * side)
    assert len({tuple(v.tolist()) for v in first}) == views
    (name,) = os.listdir(tmp_path / "cache")   # named by its settings, so that other settings get another file
    assert f"_{crop}px_{views}views_" in name
