"""Estimated device time of a spec, from a table of step costs (scripts/specs/costs.toml) in which
every figure names its origin: a measurement file, or a derivation such as docs/gpu.md's. A run
takes epochs x (steps per epoch x seconds per step + test images x seconds per image), with
steps per epoch = training images // batch, as the samplers draw them. A run that no entry fits
gets no figure, and the total says how many runs it leaves out: nothing is guessed."""
import collections
import tomllib

from ..errors import UserError

def load(path):
    """{'step': [...], 'eval': [...], 'split': {...}} ({} without a table)."""
    if not path:
        return {}
    try:
        with open(path, "rb") as f:
            table = tomllib.load(f)
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise UserError(f"{path}: cannot read the cost table: {e}") from None
    for kind in ("step", "eval"):
        for entry in table.get(kind, []):
            if "origin" not in entry:
                raise UserError(f"{path}: a [[{kind}]] entry without an origin: {entry}; "
                                "say where its figure comes from")
    return table


def step_key(run):
    """What a step's cost depends on; source runs have one view and no source network."""
    a = run.args
    target = run.script == "train_target"
    return {"script": run.script, "model": a.model, "source_model": a.source_model if target else None,
            "crop": a.crop_size, "batch": a.batch_size, "view": a.view if target else 1, "amp": a.amp}


DEFAULTS = {"source_model": None, "view": 1, "amp": "none"}   # what an entry that omits them means


def _find(entries, key):
    for e in entries:
        if all(e.get(k, DEFAULTS.get(k)) == v for k, v in key.items()):
            return e
    return None


Estimate = collections.namedtuple("Estimate", "seconds steps step eval test")


def estimate(run, table):
    """Estimate (seconds of the whole run ...) or None when the table has no figure for it."""
    key = step_key(run)
    step = _find(table.get("step", []), key)
    ev = _find(table.get("eval", []), {"model": key["model"], "crop": key["crop"]})
    split = table.get("split", {}).get(run.dataset)
    if step is None or ev is None or split is None:
        return None
    steps = split["train"] // run.args.batch_size
    seconds = run.args.epochs * (steps * step["seconds"] + split["test"] * ev["seconds_per_image"])
    return Estimate(seconds, steps, step, ev, split["test"])


def describe(run):
    key = step_key(run)
    nets = key["model"] + (f" <- {key['source_model']}" if key["source_model"] else "")
    amp = "" if key["amp"] == "none" else f", --amp {key['amp']}"
    return f"{run.script} {nets}, {key['crop']} px, batch {key['batch']}{amp}, {run.dataset}, {run.args.epochs} epochs"


def summary(runs, table, path, left=()):
    """Lines for the dry run: per group of alike runs, their figure and its origin; the total of
    the whole spec, and of the runs in `left` (names not done yet)."""
    groups = collections.OrderedDict()
    for run in runs:
        groups.setdefault(describe(run), []).append(run)
    lines = [f"estimated device time, one GPU per run (step costs: {path or 'no cost table'}):"]
    total = todo = 0.0
    missing = 0
    for what, group in groups.items():
        est = estimate(group[0], table)
        if est is None:
            missing += len(group)
            lines.append(f"  {len(group):3d} x no figure: {what} (no entry fits it in the cost table)")
            continue
        total += est.seconds * len(group)
        todo += est.seconds * sum(r.name in left for r in group)
        lines.append(f"  {len(group):3d} x {est.seconds / 3600:.2f} h = {est.seconds * len(group) / 3600:.1f} h: "
                     f"{what} x {est.steps} steps")
        lines.append(f"        step {est.step['seconds']:.4g} s from: {est.step['origin']}")
        lines.append(f"        evaluation, {est.test} images x {est.eval['seconds_per_image'] * 1000:.4g} ms from: "
                     f"{est.eval['origin']}")
    counted = len(runs) - missing
    lines.append(f"total: {total / 3600:.1f} device-hours for {counted} of the {len(runs)} runs"
                 + (f" ({missing} without a figure)" if missing else "")
                 + (f"; {todo / 3600:.1f} of them for the runs not done yet" if left else ""))
    return lines
