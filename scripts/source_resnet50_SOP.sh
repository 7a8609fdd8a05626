#!/usr/bin/env bash
# Source network: resnet50, 512-d, Proxy-Anchor on SOP (the released checkpoint's recipe).
# Writes pretrained_source/resnet50/SOP_resnet50_512dim_Proxy_Anchor_ckpt.pth. Extra flags pass through.
cd "$(dirname "$0")/.." || exit 1
"${PYTHON:-python}" code/train_source.py --gpu-id 0 --loss Proxy_Anchor --model resnet50 --embedding-size 512 \
    --dataset SOP --batch-size 120 --epochs 60 --lr 6e-4 --warm 1 --bn-freeze 0 --l2-norm 1 --save 1 --lr-decay-step 20 --lr-decay-gamma 0.25 "$@"
