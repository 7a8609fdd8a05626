"""Run a spec's grid of experiments (scripts/specs/*.toml), follow it, and report on it.

    python scripts/experiments.py run scripts/specs/paper.toml --dry-run    # every command, device-hours
    python scripts/experiments.py run scripts/specs/paper.toml              # on the visible GPUs (or --lanes N CPUs)
    python scripts/experiments.py run scripts/specs/paper.toml --launcher slurm --partition gpu
    python scripts/experiments.py status scripts/specs/paper.toml
    python scripts/experiments.py report scripts/specs/paper.toml

The library is code/embedding_transfer/experiments/; docs/experiments.md describes it.
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "code"))

from embedding_transfer.experiments.commands import get_args_parser, main  # noqa: E402
from embedding_transfer.runtime import run_cli  # noqa: E402

if __name__ == "__main__":
    sys.exit(run_cli(main, get_args_parser()))
