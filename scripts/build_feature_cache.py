"""Build the feature caches of a --freeze-below run ahead of training (the mini reproduction does,
so that runs started side by side only read them). Takes train_source.py's flags:

    python scripts/build_feature_cache.py --dataset emoji --model efficientnet_lite2 --crop-size 48 \
        --freeze-below stage6 --feature-cache logs/mini_reproduction/feature_cache --cache-views 8
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "code"))

from embedding_transfer import distributed, train_source  # noqa: E402
from embedding_transfer.errors import UserError  # noqa: E402
from embedding_transfer.loaders import build_loaders, image_splits  # noqa: E402
from embedding_transfer.models import MODELS, build_model  # noqa: E402
from embedding_transfer.options import check_names, check_split_flags, split_network  # noqa: E402
from embedding_transfer.runtime import run_cli  # noqa: E402


def main(args):
    check_names((args.model, MODELS, "--model"))
    if not args.feature_cache:
        raise UserError("give --feature-cache DIR (and --freeze-below STAGE): the folder the caches go to.")
    check_split_flags(args, [MODELS[args.model]])
    device = distributed.init(args.gpu_id)
    splits = image_splits(args, args.model, 1)
    network = build_model(args.model, args.embedding_size, pretrained=True).to(device)
    build_loaders(args, splits, args.seed, [(args.model, split_network(network, args))])


if __name__ == "__main__":
    run_cli(main, train_source.get_args_parser())
