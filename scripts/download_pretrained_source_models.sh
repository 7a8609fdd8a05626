#!/bin/sh
# The six Proxy-Anchor source networks released with the paper, downloaded from the authors' Google
# Drive (through gdown) into pretrained_source/{bn_inception,resnet50}/, each checked after download:
#   sh scripts/download_pretrained_source_models.sh [bn_inception] [resnet50] [cub] [cars] [SOP]
# SOURCE_MODELS_URL=<base> uses a mirror ({base}/{model}/{file}) instead. Details, checks and exit
# status: scripts/download_sources.py. Python: $PYTHON, else .venv/bin/python, else python3.
cd "$(dirname "$0")/.." || exit 1
if [ -z "${PYTHON:-}" ]; then
  if [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
exec "$PYTHON" scripts/download_sources.py "$@"
