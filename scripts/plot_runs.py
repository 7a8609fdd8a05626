"""Loss and R@1 per epoch of several runs in one figure.

    python scripts/plot_runs.py logs/logs_cub/RUN_A logs/logs_cub/RUN_B --out compare.png
    python scripts/plot_runs.py logs/mini_reproduction/dim_reduction --out dim_reduction.png

Each run folder also gets its own curves.png while it trains.
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "code"))

from embedding_transfer.errors import UserError  # noqa: E402
from embedding_transfer.reporting.plots import plot_runs  # noqa: E402
from embedding_transfer.reporting.runs import find_runs  # noqa: E402
from embedding_transfer.runtime import run_cli  # noqa: E402


def get_args_parser():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                allow_abbrev=False)
    p.add_argument("runs", nargs="+", metavar="RUN_DIR", help="run folders, or folders containing them")
    p.add_argument("--out", default="runs.png", metavar="FILE.png")
    p.add_argument("--title", default="runs compared")
    return p


def main(args):
    runs = [r for r in find_runs(args.runs) if r.epochs]
    if not runs:
        raise UserError(f"no run under {', '.join(args.runs)} has finished an epoch yet.")
    path = plot_runs(runs, args.out, args.title)
    print(f"{len(runs)} runs plotted in {path}")
    return path


if __name__ == "__main__":
    run_cli(main, get_args_parser())
