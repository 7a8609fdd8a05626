#!/usr/bin/env bash
# The first-GPU checks in one command, at most about 8 minutes on one H200; writes misc/gpu_report.md.
# --dry-run runs every stage on the CPU at toy size. See scripts/gpu_check.py and docs/distributed.md.
cd "$(dirname "$0")/.." || exit 1
PY=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
exec "$PY" scripts/gpu_check.py "$@"
