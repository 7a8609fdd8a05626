#!/usr/bin/env bash
# The six Proxy-Anchor source networks released with the paper, in the folders and names that
# code/train_target.py --source-ckpt and the experiment scripts expect:
#   pretrained_source/{bn_inception,resnet50}/{cub,cars,SOP}_{model}_512dim_Proxy_Anchor_ckpt.pth
# Run from the repository root. SOURCE_MODELS_URL overrides the download location (e.g. a mirror).
set -u
cd "$(dirname "$0")/.."
BASE=${SOURCE_MODELS_URL:-https://github.com/tjddus9597/LabelRelaxation-CVPR21/releases/download/v1.0.0}
failed=0
for model in bn_inception resnet50; do
  mkdir -p "pretrained_source/$model"
  for dataset in cub cars SOP; do
    name="${dataset}_${model}_512dim_Proxy_Anchor_ckpt.pth"
    dest="pretrained_source/$model/$name"
    if [ -s "$dest" ]; then echo "have $dest"; continue; fi
    echo "downloading $name"
    if ! curl -fL --retry 3 -o "$dest.part" "$BASE/$name"; then
      rm -f "$dest.part"
      echo "error: could not download $BASE/$name" >&2
      echo "       Check your connection, or download it by hand from the paper's repository" >&2
      echo "       (github.com/tjddus9597/LabelRelaxation-CVPR21) and put it at $dest," >&2
      echo "       or train it yourself: see scripts/source_${model}_${dataset}.sh" >&2
      failed=1
      continue
    fi
    mv "$dest.part" "$dest"
  done
done
[ "$failed" = 0 ] && echo "all six source networks are in pretrained_source/"
exit "$failed"
