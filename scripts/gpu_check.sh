#!/usr/bin/env bash
# The first-GPU checks (tests on CUDA, step and loader benchmarks, determinism, DDP with NCCL) in one
# command, about 8 minutes on one GPU; writes misc/gpu_report.md. See scripts/gpu_check.py.
cd "$(dirname "$0")/.." || exit 1
PY=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
exec "$PY" scripts/gpu_check.py "$@"
