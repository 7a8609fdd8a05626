#!/usr/bin/env bash
# Mini reproduction of the paper's three settings on the CPU (docs/mini_reproduction.md).
#
#   setting          paper (CUB/Cars/SOP)              here (emoji, EfficientNet-Lite, ImageNet weights)
#   self-transfer    BN-Inception-512 -> BN-Inc.-512   Lite0-512 -> Lite0-512
#   dim. reduction   BN-Inception-512 -> BN-Inc.-64    Lite0-512 -> Lite0-64
#   compression      ResNet-50-512 -> ResNet-18-128    Lite2-512 -> Lite0-128
#
# REGIME=converged (the default): every network keeps its ImageNet weights below SPLIT, whose
# outputs for VIEWS fixed augmented views of every image are computed once (--feature-cache CACHE,
# reused by every run and seed); sources, targets and baselines train only what lies above. Each
# run has a cosine schedule of EPOCHS epochs (at least the paper's ~5,900 steps) and stops after
# PATIENCE epochs without a better R@1 on the classes held out of the training split (--val-classes
# VAL). One source per network and seed teaches that seed's targets.
# REGIME=short: the whole networks fine-tuned for a few epochs (the earlier miniature; about 3.5 h
# for three seeds), with its own defaults (EPOCHS 3, PATIENCE 1, SOURCE_EPOCHS 8, SEEDS 0 1 2).
#
# Targets: the paper's recipe (AdamW, cosine schedule, 30 classes x 3 images x 2 views per batch);
# FitNet, Attention and CRD add Proxy-Anchor, as in the reference. Every run reports the test
# scores of its best validation epoch. Baseline: each target network trained on Proxy-Anchor alone
# (L2-normalised, like the source) for the wall-clock time of its setting's Relaxed_Contra run and
# the same EPOCHS; the table reads it twice, at that wall-clock and at the epochs (hence steps) the
# Relaxed_Contra run trained (code/embedding_transfer/reporting/baselines.py).
#
# Writes misc/mini_reproduction.{md,csv,png}, the claims (..._claims.md) and the curves
# (..._curves.png). Rerunning skips finished runs and resumes an interrupted one. Settings through
# the environment: METHODS (Relaxed_Contra Relaxed_MS; FULL=1: all eight), SEEDS (0 1 2 3 4),
# SETTINGS (self_transfer dim_reduction compression), EPOCHS (110), PATIENCE (10), SOURCE_EPOCHS
# (= EPOCHS), SOURCE_PATIENCE (= PATIENCE), SPLIT (head), VIEWS (8), CROP (48), LR (5e-4), VAL
# (0.2), JOBS (5: seeds trained side by side, one thread each), OUT (logs/mini_reproduction),
# CACHE (OUT/feature_cache), MISC (misc), DATA_DIR (data), DATASET (emoji), WORKERS (0), PYTHON.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
if [ "${FULL:-0}" = 1 ]; then
    METHODS=${METHODS:-Relaxed_Contra Relaxed_MS RKD PKT DarkRank FitNet Attention CRD}
else
    # RKD's angle term is O(N^3 d) in the batch (180 rows): seconds a step on the CPU, so FULL=1 only.
    METHODS=${METHODS:-Relaxed_Contra Relaxed_MS}
fi
REGIME=${REGIME:-converged}
case $REGIME in
    converged) SEEDS=${SEEDS:-0 1 2 3 4}; EPOCHS=${EPOCHS:-110}; PATIENCE=${PATIENCE:-10}; JOBS=${JOBS:-5}
               OUT=${OUT:-logs/mini_reproduction}; WORKERS=${WORKERS:-0} ;;
    short)     SEEDS=${SEEDS:-0 1 2}; EPOCHS=${EPOCHS:-3}; PATIENCE=${PATIENCE:-1}; JOBS=${JOBS:-1}
               OUT=${OUT:-logs/mini_reproduction_short}; WORKERS=${WORKERS:-2}
               SOURCE_EPOCHS=${SOURCE_EPOCHS:-8}; SOURCE_PATIENCE=${SOURCE_PATIENCE:-1} ;;
    *) echo "error: unknown REGIME '$REGIME'; valid: converged short" >&2; exit 2 ;;
esac
SOURCE_EPOCHS=${SOURCE_EPOCHS:-$EPOCHS}
SOURCE_PATIENCE=${SOURCE_PATIENCE:-$PATIENCE}
SETTINGS=${SETTINGS:-self_transfer dim_reduction compression}
MISC=${MISC:-misc}
DATA_DIR=${DATA_DIR:-data}
DATASET=${DATASET:-emoji}
COMMON=(--dataset "$DATASET" --DATA_DIR "$DATA_DIR" --crop-size "${CROP:-48}" --lr "${LR:-5e-4}"
        --batch-size 90 --val-classes "${VAL:-0.2}" --workers "$WORKERS" --wandb disabled)
if [ "$REGIME" = converged ]; then
    COMMON+=(--freeze-below "${SPLIT:-head}" --feature-cache "${CACHE:-$OUT/feature_cache}" --cache-views "${VIEWS:-8}")
    SOURCE_SCHEDULE=(--lr-schedule cosine)
else
    SOURCE_SCHEDULE=()
fi
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
from embedding_transfer.reporting.baselines import wall_clock
from embedding_transfer.reporting.runs import find_runs
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
mkdir -p "$OUT"
if [ "$DATASET" = emoji ]; then "$PY" scripts/prepare_emoji.py --data-dir "$DATA_DIR"; fi

# source_dir SEED: where that seed's sources go (the short regime has one source per network, seed 0).
source_dir() { if [ "$REGIME" = converged ]; then echo "$SOURCE_DIR/seed$1"; else echo "$SOURCE_DIR"; fi; }

# lane SEED...: every run of these seeds, one after the other.
lane() {
    for seed in "$@"; do
        for name in $SETTINGS; do
            read -r source model dim <<< "${SETTING[$name]}"
            local src_seed=$seed
            [ "$REGIME" = converged ] || src_seed=0
            local sdir
            sdir=$(source_dir "$src_seed")
            run "$OUT/source_${source}$([ "$REGIME" = converged ] && echo "_seed$src_seed")" code/train_source.py \
                --model "$source" --embedding-size 512 --epochs "$SOURCE_EPOCHS" --patience "$SOURCE_PATIENCE" \
                --warm 1 --l2-norm 1 --seed "$src_seed" --save 1 --save-dir "$sdir" "${SOURCE_SCHEDULE[@]}"
            ckpt=$sdir/$source/${DATASET}_${source}_512dim_Proxy_Anchor_ckpt.pth
            for loss in $METHODS; do
                run "$OUT/$name/${loss}_seed$seed" code/train_target.py --loss "$loss" --model "$model" \
                    --embedding-size "$dim" --epochs "$EPOCHS" --patience "$PATIENCE" --IPC 3 --view 2 \
                    --seed "$seed" --source-ckpt "$ckpt" --source-model "$source" --source-embedding-size 512
            done
            run "$OUT/$name/Proxy_Anchor_seed$seed" code/train_target.py --loss Proxy_Anchor --model "$model" \
                --embedding-size "$dim" --epochs "$EPOCHS" --patience "$PATIENCE" --IPC 0 --view 1 --target-norm 1 \
                --seed "$seed" --time-budget "$(wall_clock "$OUT/$name/Relaxed_Contra_seed$seed")"
        done
    done
}

if [ "$REGIME" = converged ]; then
    # The caches first, once per network (sources and targets), with both cores: every later run
    # only reads them.
    for net in $(for name in $SETTINGS; do read -r s m _ <<< "${SETTING[$name]}"; echo "$s $m"; done | tr ' ' '\n' | sort -u); do
        "$PY" scripts/build_feature_cache.py "${COMMON[@]}" --model "$net"
    done
fi
read -r -a seeds <<< "$SEEDS"
if [ "$JOBS" -gt 1 ] && [ "${#seeds[@]}" -gt 1 ]; then
    # Seeds side by side, one thread each: small matrices use two cores poorly, two runs well.
    pids=()
    for ((j = 0; j < JOBS; j++)); do
        mine=()
        for ((i = j; i < ${#seeds[@]}; i += JOBS)); do mine+=("${seeds[$i]}"); done
        [ "${#mine[@]}" -gt 0 ] || continue
        OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 lane "${mine[@]}" > "$OUT/lane$j.log" 2>&1 &
        pids+=($!)
        echo "== lane $j: seeds ${mine[*]} (log: $OUT/lane$j.log)"
    done
    failed=0
    for pid in "${pids[@]}"; do wait "$pid" || failed=1; done
    if [ "$failed" = 1 ]; then echo "error: a lane failed; see $OUT/lane*.log (a rerun resumes)" >&2; exit 1; fi
else
    lane "${seeds[@]}"
fi

mkdir -p "$MISC"
[ "$REGIME" = converged ] && name=mini_reproduction || name=mini_reproduction_short
"$PY" scripts/results_table.py "$OUT" --matched-baselines --flag-rising --title "Mini reproduction on $DATASET" \
    --markdown "$MISC/$name.md" --csv "$MISC/$name.csv" --figure "$MISC/$name.png" \
    --claims "$MISC/${name}_claims.md" --curves "$MISC/${name}_curves.png"
echo "mini reproduction finished in $(( ($(date +%s) - start) / 60 )) min; table and figure in $MISC/"
