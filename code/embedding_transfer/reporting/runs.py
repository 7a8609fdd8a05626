"""Finished runs read back from their folders (args.json + metrics.jsonl), for tables and plots.

A run's result is the epoch its own selection rule picks: the best R@1 on the test split (the
paper's protocol), or with --val-classes the best R@1 on the held-out training classes, whose line
also holds the test scores of that epoch.
"""
import json
import os

from ..errors import UserError
from ..losses import LOSSES, needs_source
from ..records import VAL, best_record, selection_key

# A run is "still rising" when its selected epoch is among its last RISING_WINDOW epochs: it never
# went that long without improving, so nothing shows that it reached a plateau.
RISING_WINDOW = 10


def _read_jsonl(path):
    records = []
    with open(path) as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                # An interrupted write can leave a partial last line; anything else is damage.
                if f.readline():
                    raise UserError(f"{path}, line {n}, is not JSON: the file is damaged.") from None
    return records


class Run:
    """One run folder: `args` (args.json), `epochs` (metrics.jsonl records, in order)."""

    def __init__(self, folder):
        self.dir = folder
        with open(os.path.join(folder, "args.json")) as f:
            self.args = json.load(f)
        self.epochs = _read_jsonl(os.path.join(folder, "metrics.jsonl"))

    @property
    def is_source(self):
        """Trained by train_source (no teacher), as opposed to train_target."""
        return "source_ckpt" not in self.args

    @property
    def uses_source(self):
        loss = self.args.get("loss")
        return not self.is_source and loss in LOSSES and needs_source(loss)

    @property
    def selection(self):
        """'val' when the epoch was chosen on held-out training classes, else 'test'."""
        return "val" if any(VAL + "R@1" in e for e in self.epochs) else "test"

    @property
    def selected(self):
        """The metrics.jsonl record of the selected epoch (the first best one), or None if no epoch
        finished."""
        return best_record(self.epochs)

    @property
    def still_rising(self):
        """Its selected epoch is one of its last RISING_WINDOW epochs (None if no epoch finished)."""
        best = self.selected
        if best is None:
            return None
        key = selection_key(self.selection == "val")
        scored = [e for e in self.epochs if key in e]
        return len(scored) - 1 - scored.index(best) < RISING_WINDOW

    @property
    def network(self):
        return f"{self.args['model']}-{self.args['embedding_size']}"

    @property
    def teacher(self):
        """'model-dim' of the source network this run learnt from, or None."""
        if not self.uses_source:
            return None
        return f"{self.args['source_model']}-{self.args['source_embedding_size']}"

    @property
    def method(self):
        loss = self.args.get("loss", "?")
        if self.is_source:
            return f"source ({loss})"
        return loss if self.uses_source else f"{loss} (no source)"


def find_runs(paths):
    """Every run folder (holding args.json and metrics.jsonl) under the given folders, sorted."""
    found = set()
    for path in paths:
        if not os.path.isdir(path):
            raise UserError(f"{path} is not a folder: pass run folders or folders that contain them "
                            "(e.g. logs/ or logs/mini_reproduction).")
        for folder, _, files in os.walk(path):
            if "args.json" in files and "metrics.jsonl" in files:
                found.add(folder)
    if not found:
        raise UserError(f"no runs under {', '.join(paths)}: a run folder holds args.json and "
                        "metrics.jsonl (written by code/train_target.py and code/train_source.py).")
    return [Run(f) for f in sorted(found)]
