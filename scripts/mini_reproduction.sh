#!/usr/bin/env bash
# Mini reproduction of the paper's three settings on the CPU, in the paper's regime: ImageNet-
# pretrained networks fine-tuned on the emoji data until their validation recall stops improving
# (docs/mini_reproduction.md).
#
#   setting          paper (CUB/Cars/SOP)              here (emoji, EfficientNet-Lite, ImageNet weights)
#   self-transfer    BN-Inception-512 -> BN-Inc.-512   Lite0-512 -> Lite0-512
#   dim. reduction   BN-Inception-512 -> BN-Inc.-64    Lite0-512 -> Lite0-64
#   compression      ResNet-50-512 -> ResNet-18-128    Lite2-512 -> Lite0-128
#
# Sources: Proxy-Anchor, trained to a plateau (at most SOURCE_EPOCHS, stopped after SOURCE_PATIENCE
# epochs without a better R@1 on the classes held out of the training split, --val-classes VAL).
# Targets: the paper's recipe (AdamW, cosine schedule, 30 classes x 3 images x 2 views per batch),
# at most EPOCHS, stopped after PATIENCE epochs without a better validation R@1; FitNet, Attention
# and CRD add Proxy-Anchor, as in the reference. Every run reports the test scores of its best
# validation epoch. Baseline: each target network trained on Proxy-Anchor alone (L2-normalised,
# like the source) for the wall-clock time of its setting's Relaxed_Contra run, with the same
# EPOCHS (so the same schedule); the table reads it twice, at that wall-clock and at the epochs the
# Relaxed_Contra run trained (code/reporting/baselines.py).
#
# Time on 2 CPU cores: about 24 minutes for the two sources, then about an hour per seed (FULL=1:
# about 75 minutes more per seed). Writes misc/mini_reproduction.{md,csv,png}. Rerunning skips
# finished runs and resumes an interrupted one. Settings through the environment:
#   METHODS (Relaxed_Contra Relaxed_MS RKD; FULL=1: all eight), SEEDS (0 1 2), SETTINGS
#   (self_transfer dim_reduction compression), EPOCHS (3), PATIENCE (1), SOURCE_EPOCHS (8),
#   SOURCE_PATIENCE (1), VAL (0.2), CROP (48), LR (5e-4), OUT (logs/mini_reproduction), MISC (misc),
#   DATA_DIR (data), DATASET (emoji), WORKERS (2), PYTHON (python).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
if [ "${FULL:-0}" = 1 ]; then
    METHODS=${METHODS:-Relaxed_Contra Relaxed_MS RKD PKT DarkRank FitNet Attention CRD}
else
    METHODS=${METHODS:-Relaxed_Contra Relaxed_MS RKD}
fi
SEEDS=${SEEDS:-0 1 2}
SETTINGS=${SETTINGS:-self_transfer dim_reduction compression}
EPOCHS=${EPOCHS:-3}
PATIENCE=${PATIENCE:-1}
SOURCE_EPOCHS=${SOURCE_EPOCHS:-8}
SOURCE_PATIENCE=${SOURCE_PATIENCE:-1}
OUT=${OUT:-logs/mini_reproduction}
MISC=${MISC:-misc}
DATA_DIR=${DATA_DIR:-data}
DATASET=${DATASET:-emoji}
COMMON=(--dataset "$DATASET" --DATA_DIR "$DATA_DIR" --crop-size "${CROP:-48}" --lr "${LR:-5e-4}"
        --batch-size 90 --val-classes "${VAL:-0.2}" --workers "${WORKERS:-2}" --wandb disabled)
# Extra flags for every run (e.g. --random-init for a quick check without ImageNet weights).
read -r -a EXTRA <<< "${EXTRA_FLAGS:-}"
SOURCE_DIR=$OUT/pretrained_source

# run FOLDER SCRIPT FLAGS...: one training run in its own folder; skipped once finished, resumed
# from its checkpoint.pth when an earlier attempt was interrupted.
run() {
    local dir=$1 script=$2 ckpt=""
    shift 2
    if [ -f "$dir/FINISHED" ]; then echo "== done already: $dir"; return; fi
    if [ -d "$dir" ]; then ckpt=$(find "$dir" -name checkpoint.pth | head -n 1); fi
    echo "== $dir"
    "$PY" "$script" --LOG_DIR "$dir" "${COMMON[@]}" "${EXTRA[@]}" "$@" ${ckpt:+--resume "$ckpt"}
    touch "$dir/FINISHED"
}

# Seconds the run under FOLDER trained and evaluated (its metrics.jsonl).
wall_clock() {
    "$PY" - "$1" <<'PYEOF'
import sys
sys.path.insert(0, "code")
from reporting.baselines import wall_clock
from reporting.runs import find_runs
print(max(1.0, round(wall_clock(find_runs([sys.argv[1]])[0]), 1)))   # --time-budget 0 would mean no budget
PYEOF
}

# setting: source network, target network, target embedding size (sources are 512-d).
declare -A SETTING=([self_transfer]="efficientnet_lite0 efficientnet_lite0 512"
                    [dim_reduction]="efficientnet_lite0 efficientnet_lite0 64"
                    [compression]="efficientnet_lite2 efficientnet_lite0 128")
for name in $SETTINGS; do
    if [ -z "${SETTING[$name]:-}" ]; then
        echo "error: unknown setting '$name' in SETTINGS; valid: self_transfer dim_reduction compression" >&2
        exit 2
    fi
done
case " $METHODS " in
    *" Relaxed_Contra "*) ;;
    *) echo "error: METHODS must include Relaxed_Contra: the baselines are matched to its runs" >&2; exit 2 ;;
esac

start=$(date +%s)
if [ "$DATASET" = emoji ]; then "$PY" scripts/prepare_emoji.py --data-dir "$DATA_DIR"; fi

for name in $SETTINGS; do
    read -r source model dim <<< "${SETTING[$name]}"
    run "$OUT/source_$source" code/train_source.py --model "$source" --embedding-size 512 \
        --epochs "$SOURCE_EPOCHS" --patience "$SOURCE_PATIENCE" --warm 1 --l2-norm 1 --seed 0 \
        --save 1 --save-dir "$SOURCE_DIR"
done

for seed in $SEEDS; do
    for name in $SETTINGS; do
        read -r source model dim <<< "${SETTING[$name]}"
        ckpt=$SOURCE_DIR/$source/${DATASET}_${source}_512dim_Proxy_Anchor_ckpt.pth
        for loss in $METHODS; do
            run "$OUT/$name/${loss}_seed$seed" code/train_target.py --loss "$loss" --model "$model" \
                --embedding-size "$dim" --epochs "$EPOCHS" --patience "$PATIENCE" --IPC 3 --view 2 \
                --seed "$seed" --source-ckpt "$ckpt" --source-model "$source" --source-embedding-size 512
        done
        run "$OUT/$name/Proxy_Anchor_seed$seed" code/train_target.py --loss Proxy_Anchor --model "$model" \
            --embedding-size "$dim" --epochs "$EPOCHS" --IPC 0 --view 1 --target-norm 1 --seed "$seed" \
            --time-budget "$(wall_clock "$OUT/$name/Relaxed_Contra_seed$seed")"
    done
done

mkdir -p "$MISC"
"$PY" scripts/results_table.py "$OUT" --matched-baselines --title "Mini reproduction on $DATASET" \
    --markdown "$MISC/mini_reproduction.md" --csv "$MISC/mini_reproduction.csv" \
    --figure "$MISC/mini_reproduction.png"
echo "mini reproduction finished in $(( ($(date +%s) - start) / 60 )) min; table and figure in $MISC/"
