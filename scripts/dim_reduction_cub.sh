#!/usr/bin/env bash
# Paper experiment: dim reduction on cub: bn_inception-64 target from the bn_inception-512 source,
# relaxed contrastive loss. Get the source with scripts/download_pretrained_source_models.sh or
# scripts/source_bn_inception_cub.sh. Extra flags pass through (e.g. --loss RKD, --LOG_DIR ...).
cd "$(dirname "$0")/.." || exit 1
"${PYTHON:-python}" code/train_target.py --gpu-id 0 --loss Relaxed_Contra --model bn_inception --embedding-size 64 \
    --batch-size 90 --IPC 3 --view 2 --sigma 1 --delta 1 --dataset cub --epochs 90 --lr 1e-4 --save 1 \
    --source-ckpt ./pretrained_source/bn_inception/cub_bn_inception_512dim_Proxy_Anchor_ckpt.pth "$@"
