#!/usr/bin/env bash
# Mini reproduction of the paper's three settings with all eight transfer methods, on the CPU and
# the emoji data (docs/mini_reproduction.md). About 29 minutes on 2 CPU cores with one seed;
# each further seed adds about 27.
#
#   setting          paper (CUB/Cars/SOP)            here (emoji, 32 px, from scratch)
#   self-transfer    BN-Inception-512 -> BN-Inc.-512  resnet_narrow-512 -> resnet_narrow-512
#   dim. reduction   BN-Inception-512 -> BN-Inc.-64   resnet_narrow-512 -> resnet_narrow-64
#   compression      ResNet-50-512 -> ResNet-18-128   resnet_narrow-512 -> resnet_tiny-128
#
# One source (Proxy-Anchor) teaches every target. Each target network is also trained with
# Proxy-Anchor alone (no source), the baseline a transfer has to beat, twice: for the same epochs
# as a target, and for the source's and a target's epochs together (the training a transferred
# target embodies). Like the source, the baselines are L2-normalised (--target-norm 1):
# Proxy-Anchor learns cosines, and Euclidean retrieval on its raw embeddings lost a third of its
# R@1 here. Every transfer method runs the paper's recipe (AdamW, cosine schedule, 30 classes x 3
# images x 2 views per batch) for the same number of epochs, and the best epoch is picked by R@1
# on the test classes (the paper's protocol).
# Writes misc/mini_reproduction.{md,csv,png}. Rerunning skips finished runs and resumes an
# interrupted one. Settings through the environment:
#   EPOCHS (3), SOURCE_EPOCHS (10), METHODS (all eight), SETTINGS (self_transfer dim_reduction
#   compression), SEEDS (0; more seeds of the targets are averaged in the table, e.g. SEEDS="0 1 2"),
#   OUT (logs/mini_reproduction), MISC (misc), DATA_DIR (data), DATASET (emoji), CROP (32),
#   WORKERS (1), PYTHON (python).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
EPOCHS=${EPOCHS:-3}
SOURCE_EPOCHS=${SOURCE_EPOCHS:-10}
METHODS=${METHODS:-Relaxed_Contra Relaxed_MS RKD PKT DarkRank FitNet Attention CRD}
OUT=${OUT:-logs/mini_reproduction}
MISC=${MISC:-misc}
DATA_DIR=${DATA_DIR:-data}
DATASET=${DATASET:-emoji}
CROP=${CROP:-32}
SETTINGS=${SETTINGS:-self_transfer dim_reduction compression}
SEEDS=${SEEDS:-0}
# The long baseline trains as many epochs as the source and a target together.
LONG_EPOCHS=$((SOURCE_EPOCHS + EPOCHS))
COMMON=(--dataset "$DATASET" --DATA_DIR "$DATA_DIR" --random-init --crop-size "$CROP" --bn-freeze 0
        --warm 0 --lr 3e-4 --batch-size 90 --workers "${WORKERS:-1}" --wandb disabled)
SOURCE_DIR=$OUT/pretrained_source
SOURCE=$SOURCE_DIR/resnet_narrow/${DATASET}_resnet_narrow_512dim_Proxy_Anchor_ckpt.pth

# run FOLDER SCRIPT FLAGS...: one training run in its own folder; skipped once finished, resumed
# from its checkpoint.pth when an earlier attempt was interrupted.
run() {
    local dir=$1 script=$2 ckpt=""
    shift 2
    if [ -f "$dir/FINISHED" ]; then echo "== done already: $dir"; return; fi
    if [ -d "$dir" ]; then ckpt=$(find "$dir" -name checkpoint.pth | head -n 1); fi
    echo "== $dir"
    "$PY" "$script" --LOG_DIR "$dir" "${COMMON[@]}" "$@" ${ckpt:+--resume "$ckpt"}
    touch "$dir/FINISHED"
}

# setting: target network and embedding size (the source is resnet_narrow-512 throughout).
declare -A TARGET=([self_transfer]="resnet_narrow 512" [dim_reduction]="resnet_narrow 64"
                   [compression]="resnet_tiny 128")
for name in $SETTINGS; do
    if [ -z "${TARGET[$name]:-}" ]; then
        echo "error: unknown setting '$name' in SETTINGS; valid: self_transfer dim_reduction compression" >&2
        exit 2
    fi
done

start=$(date +%s)
if [ "$DATASET" = emoji ]; then "$PY" scripts/prepare_emoji.py --data-dir "$DATA_DIR"; fi

run "$OUT/source" code/train_source.py --model resnet_narrow --embedding-size 512 \
    --epochs "$SOURCE_EPOCHS" --l2-norm 1 --save 1 --save-dir "$SOURCE_DIR" --seed 0

for name in $SETTINGS; do
    read -r model dim <<< "${TARGET[$name]}"
    for seed in $SEEDS; do
        suffix=$([ "$seed" = 0 ] || echo "_seed$seed")
        for loss in $METHODS; do
            run "$OUT/$name/$loss$suffix" code/train_target.py --loss "$loss" --model "$model" \
                --embedding-size "$dim" --epochs "$EPOCHS" --IPC 3 --view 2 --seed "$seed" \
                --source-ckpt "$SOURCE" --source-model resnet_narrow --source-embedding-size 512
        done
        for epochs in "$EPOCHS" "$LONG_EPOCHS"; do
            run "$OUT/$name/Proxy_Anchor_${epochs}ep$suffix" code/train_target.py --loss Proxy_Anchor \
                --model "$model" --embedding-size "$dim" --epochs "$epochs" --IPC 0 --view 1 --target-norm 1 \
                --seed "$seed"
        done
    done
done

mkdir -p "$MISC"
"$PY" scripts/results_table.py "$OUT" --title "Mini reproduction on $DATASET" \
    --markdown "$MISC/mini_reproduction.md" --csv "$MISC/mini_reproduction.csv" \
    --figure "$MISC/mini_reproduction.png"
echo "mini reproduction finished in $(( ($(date +%s) - start) / 60 )) min; table and figure in $MISC/"
