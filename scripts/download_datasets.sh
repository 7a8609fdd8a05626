#!/bin/sh
# Download and unpack the paper's data sets into DATA_DIR (default ./data) in the layouts the
# loaders read (see docs/data.md), then count the images with scripts/verify_data.py:
#   sh scripts/download_datasets.sh [cub] [cars] [SOP] [Inshop]   (no names: the paper's three)
# Downloads resume, archives are checked (MD5) before unpacking. If every host of a data set fails,
# the message says where to get it by hand; put the archive where it says and run this again
# (In-Shop always needs that: its host is a Google Drive folder).
# Details: scripts/download_data.py. Python: $PYTHON, else .venv/bin/python, else python3.
cd "$(dirname "$0")/.." || exit 1
if [ -z "${PYTHON:-}" ]; then
  if [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
exec "$PYTHON" scripts/download_data.py "$@"
