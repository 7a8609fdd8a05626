#!/usr/bin/env bash
# Source network: resnet50, 512-d, Proxy-Anchor on cars (the released checkpoint's recipe).
# Writes pretrained_source/resnet50/cars_resnet50_512dim_Proxy_Anchor_ckpt.pth. Extra flags pass through.
cd "$(dirname "$0")/.." || exit 1
"${PYTHON:-python}" code/train_source.py --gpu-id 0 --loss Proxy_Anchor --model resnet50 --embedding-size 512 \
    --dataset cars --batch-size 120 --epochs 60 --lr 1e-4 --warm 5 --bn-freeze 1 --l2-norm 1 --save 1 --lr-decay-step 10 "$@"
