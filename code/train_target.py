"""Train a target embedding network from a frozen source network (embedding transfer).

    python code/train_target.py --gpu-id 0 --loss Relaxed_Contra --model bn_inception \
        --embedding-size 512 --dataset cub \
        --source-ckpt pretrained_source/bn_inception/cub_bn_inception_512dim_Proxy_Anchor_ckpt.pth

The paper's command, kept where the paper runs it; the code is embedding_transfer.train_target.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # the package beside this file

from embedding_transfer.runtime import run_cli  # noqa: E402
from embedding_transfer.train_target import get_args_parser, main  # noqa: E402

if __name__ == "__main__":
    run_cli(main, get_args_parser())
