"""The regime ladder (docs/mini_reproduction.md, "The regime ladder"): which of the CPU miniature's
departures from the paper turn its claims around. Each level is a spec of the experiment runner,
scripts/specs/ladder/LEVEL.toml, that changes one flag of default.toml; this script runs the levels
in order (the default first: the others pair with it, and some learn from its sources) and writes
misc/regime_ladder.{md,csv,png}.

    python scripts/regime_ladder.py run --lanes 2                    # every level; skips finished runs
    python scripts/regime_ladder.py run --levels default,sigma2      # some of them
    python scripts/regime_ladder.py status
    python scripts/regime_ladder.py report                           # misc/regime_ladder.*, finished or not

Ctrl-C stops the runs at their last whole epoch; the same command again goes on.
"""
import argparse
import os
import shlex
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "code"))

from embedding_transfer.errors import UserError  # noqa: E402
from embedding_transfer.experiments import commands, spec as specs  # noqa: E402
from embedding_transfer.reporting import ladder  # noqa: E402
from embedding_transfer.runtime import run_cli  # noqa: E402

SPECS = os.path.join(specs.ROOT, "scripts", "specs", "ladder")


def get_args_parser():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                allow_abbrev=False)
    p.add_argument("command", choices=("run", "status", "report"))
    p.add_argument("--levels", default="", help="comma-separated level names (default: every level whose spec is "
                   f"in --specs): {', '.join(lv.name for lv in ladder.LEVELS)}")
    p.add_argument("--specs", default=SPECS, help="folder of the level specs (LEVEL.toml)")
    p.add_argument("--lanes", type=int, default=2, help="runs side by side (CPU lanes; GPUs when visible)")
    p.add_argument("--out", default=os.path.join(specs.ROOT, "misc"), help="where report writes regime_ladder.*")
    return p


def chosen_levels(args):
    known = {lv.name: lv for lv in ladder.LEVELS}
    names = [n for n in args.levels.split(",") if n] if args.levels else \
        [lv.name for lv in ladder.LEVELS if os.path.isfile(os.path.join(args.specs, lv.name + ".toml"))]
    for n in names:
        if n not in known:
            raise UserError(f"--levels: unknown level {n!r}; valid: {', '.join(known)}")
        if not os.path.isfile(os.path.join(args.specs, n + ".toml")):
            raise UserError(f"level {n}: no spec {os.path.join(args.specs, n + '.toml')}")
    return [known[n] for n in names]


def evaluate(ckpt, run_args):
    """Test R@1 (a fraction) of a source file that no level's run selected, e.g. an epoch's checkpoint."""
    from embedding_transfer import evaluate_checkpoint
    argv = ["--ckpt", ckpt, "--dataset", run_args["dataset"], "--DATA_DIR", specs.absolute(run_args["DATA_DIR"]),
            "--crop-size", str(run_args["crop_size"]), "--workers", "0", "--gpu-id", "0"]
    return evaluate_checkpoint.main(evaluate_checkpoint.get_args_parser().parse_args(argv))["R@1"]


def main(args):
    levels = chosen_levels(args)
    if args.command == "report":   # every level there is, whatever --levels says
        levels = [lv for lv in ladder.LEVELS if os.path.isfile(os.path.join(args.specs, lv.name + ".toml"))]
    loaded = {lv.name: specs.load(os.path.join(args.specs, lv.name + ".toml")) for lv in levels}
    if args.command == "report":
        command = shlex.join(["python", "scripts/regime_ladder.py", "run", "--lanes", str(args.lanes)])
        print(ladder.write(levels, loaded, args.out, evaluate, command))
        print(f"written: {os.path.join(args.out, 'regime_ladder.md')}, .csv and .png")
        return 0
    status = 0
    for lv in levels:
        print(f"== level {lv.name} ({lv.factor}: {lv.label}): {loaded[lv.name].path}", flush=True)
        sub = commands.get_args_parser().parse_args([args.command, loaded[lv.name].path, "--lanes", str(args.lanes)]
                                                    if args.command == "run" else [args.command, loaded[lv.name].path])
        status = commands.main(sub) or status
        if status == 130:     # stopped: the same command goes on from here
            return status
    return status


if __name__ == "__main__":
    sys.exit(run_cli(main, get_args_parser()))
