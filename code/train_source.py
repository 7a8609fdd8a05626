"""Train a source embedding network with Proxy-Anchor (or a metric-learning baseline).

    python code/train_source.py --gpu-id 0 --model bn_inception --embedding-size 512 --l2-norm 1 \
        --batch-size 180 --lr 1e-4 --dataset cub --warm 1 --bn-freeze 1 --lr-decay-step 10 --save 1

The paper's command, kept where the paper runs it; the code is embedding_transfer.train_source.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # the package beside this file

from embedding_transfer.runtime import run_cli  # noqa: E402
from embedding_transfer.train_source import get_args_parser, main  # noqa: E402

if __name__ == "__main__":
    run_cli(main, get_args_parser())
