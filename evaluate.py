"""Evaluate a saved embedding network: Recall@K, MAP@R and R-Precision on the evaluation split of a
dataset; optionally save the embeddings (--save-embeddings) or a picture of retrievals (--visualize).

    python evaluate.py --gpu-id 0 --dataset cub --model bn_inception --embedding-size 512 \
        --ckpt pretrained_source/bn_inception/cub_bn_inception_512dim_Proxy_Anchor_ckpt.pth

The paper's command, kept where the paper runs it; the code (and what each default is) is in
code/embedding_transfer/evaluate_checkpoint.py.
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "code"))  # the package

from embedding_transfer.evaluate_checkpoint import get_args_parser, main  # noqa: E402
from embedding_transfer.runtime import run_cli  # noqa: E402

if __name__ == "__main__":
    run_cli(main, get_args_parser())
