#!/usr/bin/env bash
# Source network: bn_inception, 512-d, Proxy-Anchor on cub (the released checkpoint's recipe).
# Writes pretrained_source/bn_inception/cub_bn_inception_512dim_Proxy_Anchor_ckpt.pth. Extra flags pass through.
cd "$(dirname "$0")/.." || exit 1
"${PYTHON:-python}" code/train_source.py --gpu-id 0 --loss Proxy_Anchor --model bn_inception --embedding-size 512 \
    --dataset cub --batch-size 180 --epochs 60 --lr 1e-4 --warm 1 --bn-freeze 1 --l2-norm 1 --save 1 --lr-decay-step 10 "$@"
