"""--patience: the epoch loop stops once N epochs in a row bring no new best, also across --resume."""
from argparse import Namespace

import pytest

from embedding_transfer.training import EpochLoop


class Log:
    def __init__(self):
        self.records = []

    def epoch(self, record):
        self.records.append(record)

    def resume_at(self, epoch):
        pass

    def finish(self):
        pass

    def finished(self, best):
        self.best = best


class Checkpointer:
    path = "unused"

    def __init__(self, saved=None):
        self.saved = saved

    def save(self, epoch, best, args):
        self.saved = (epoch + 1, best)

    def load(self, path, args):
        return self.saved


class Optimizer:
    param_groups = [{"lr": 0.1}]


def run(r1s, patience, epochs=10, resume=None, min_epochs=0):
    """Epochs scored with the given R@1 in turn; returns the epochs that ran and the best one."""
    args = Namespace(time_budget=0, resume="ckpt" if resume else "", epochs=epochs, patience=patience,
                     min_epochs=min_epochs)
    log, ran = Log(), []
    with EpochLoop(args, Optimizer(), Checkpointer(resume), log, "R@1") as loop:
        for epoch in loop:
            ran.append(epoch)
            loop.record(epoch, 0.0, {"R@1": r1s[epoch]}, False)
    return ran, log.best[0]


@pytest.mark.parametrize("patience, ran", [(0, 6), (1, 3), (2, 4), (3, 5), (4, 6)])
def test_stops_after_patience_epochs_without_a_new_best(patience, ran):
    r1s = [0.1, 0.3, 0.2, 0.25, 0.3, 0.2]   # a tie is no improvement
    assert run(r1s, patience, epochs=6) == (list(range(ran)), 1)


def test_patience_counts_from_the_best_epoch_restored_by_resume():
    # Resumed at epoch 3 with the best at epoch 1: one more epoch without a new best ends it.
    assert run([0.1, 0.3, 0.2, 0.2, 0.9], 2, resume=(3, (1, {"R@1": 0.3}))) == ([3], 1)


@pytest.mark.parametrize("min_epochs, ran", [(0, 3), (3, 3), (5, 5), (6, 9), (12, 10)])
def test_min_epochs_keeps_patience_from_stopping_a_run_in_its_first_dip(min_epochs, ran):
    """A transfer target's held-out R@1 first dips below its first epoch's, then climbs: with
    --patience 2 alone the run ends in the dip; --min-epochs M lets it train M epochs first, and
    the best epoch is still chosen among all of them."""
    r1s = [0.30, 0.27, 0.26, 0.28, 0.29, 0.31, 0.33, 0.32, 0.32, 0.32]
    best = 0 if ran < 6 else 6
    assert run(r1s, 2, min_epochs=min_epochs) == (list(range(ran)), best)
