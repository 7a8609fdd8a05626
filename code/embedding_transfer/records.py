"""The format of a run's epoch records (metrics.jsonl), shared by the writer (runlog) and the
reader (reporting.runs): the keys and the rule that selects a run's epoch.

A record: {'epoch', 'loss', 'lr', 'R@k'..., 'MAP@R', 'RP', 'time'}, plus the same scores on the
held-out training classes under VAL keys with --val-classes (the test scores are then present only
at the epochs where the validation R@1 improved)."""

VAL = "val/"                          # prefix of the scores on the --val-classes split
SCORES = ("R@", "MAP@R", "RP", VAL)   # keys shown as percentages


def selection_key(records_have_val):
    """The score that selects the best epoch: R@1 on the held-out training classes with
    --val-classes, else test R@1 (the paper's protocol)."""
    return VAL + "R@1" if records_have_val else "R@1"


def improves(scores, best, key):
    """Whether an epoch's scores beat `best` ((epoch, scores) or None); ties keep the earlier."""
    return best is None or scores[key] > best[1][key]


def best_record(records):
    """The record of the epoch a run selects (the first best one by selection_key), or None when
    no epoch was scored."""
    key = selection_key(any(VAL + "R@1" in r for r in records))
    scored = [r for r in records if key in r]
    return max(scored, key=lambda r: r[key]) if scored else None


def format_scores(scores):
    """'R@1 71.23, R@2 ...' (the scores as percentages)."""
    return ", ".join(f"{k} {100 * v:.2f}" for k, v in scores.items() if k.startswith(SCORES))
