"""Preparation of the cross-vendor emoji dataset (`python scripts/prepare_emoji.py`).

Kept out of code/embedding_transfer/dataset so that training never imports vendor or rendering code; the dataset
itself (code/embedding_transfer/dataset/emoji.py) only reads what this writes.

  keys.py      class keys: code point sequences, which emoji are left out
  iconify.py   npm `@iconify-json/*` icon sets: SVG icons by name, names -> code points
  vendors.py   where each vendor's drawings come from (PyPI, npm, a Debian font), npm installs
  render.py    rasterising (PNG, colour font, SVG) and normalising the images
  manifest.py  writing classes.tsv and summarising it
  prepare.py   `prepare_emoji(data_dir)`: all of the above
  baseline.py  the raw-pixel retrieval baseline of the demo

Imported with scripts/ on sys.path (a script there has it); puts code/ on sys.path itself.
"""
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
_CODE = os.path.join(ROOT, "code")
if _CODE not in sys.path:
    sys.path.insert(0, _CODE)
