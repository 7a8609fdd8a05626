"""One training step, one epoch, and what an epoch loop needs around them (time budget, resume,
the note printed when a run stops early). The entry points' `main` holds the loop itself."""
import os
import sys
import time

import torch
from tqdm import tqdm

from . import distributed
from .errors import UserError
from .records import improves
from .views import images_in


def train_step(objective, batch, optimizer, scaler=None, clip_value=None):
    """One optimisation step on `batch` (x, labels, index): the networks and the loss
    (objective), backward (scaled under --amp fp16), the loss modules' gradients across
    processes, clipping by value, the optimizer step. Returns the loss (a 0-d tensor). A
    non-finite loss is an error: stepping on it would destroy the weights."""
    loss = objective(*batch)
    if not torch.isfinite(loss):
        raise UserError(f"the loss became {loss.item()}: training diverged. Lower --lr, or check the inputs "
                        "(source checkpoint, data).")
    optimizer.zero_grad(set_to_none=True)
    if scaler is not None:
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)
    else:
        loss.backward()
    objective.sync_grads()
    if clip_value is not None:
        torch.nn.utils.clip_grad_value_([p for g in optimizer.param_groups for p in g["params"]], clip_value)
    if scaler is not None:
        scaler.step(optimizer)
        scaler.update()
    else:
        optimizer.step()
    return loss.detach()


class Deadline:
    """--time-budget: training stops once this many seconds have passed (0: never), on every
    process at the same step; the first time, it says so."""

    def __init__(self, seconds):
        self.seconds, self.said = seconds, False
        self.end = time.perf_counter() + seconds if seconds > 0 else None

    def passed(self):
        if self.end is None or not distributed.any_rank(time.perf_counter() > self.end):
            return False
        if not self.said:
            print(f"--time-budget {self.seconds:g} s reached: evaluating and stopping.", flush=True)
            self.said = True
        return True


def train_one_epoch(objective, loader, optimizer, epoch, deadline, scaler=None, clip_value=None):
    """train_step over `loader`. Returns (mean loss, stopped, steps): stopped when the deadline
    ended the epoch early; steps: the optimisation steps taken."""
    total, steps, seen, t0 = 0.0, 0, 0, time.perf_counter()
    bar = tqdm(loader, desc=f"train epoch {epoch}", leave=False, dynamic_ncols=True, mininterval=1.0,
               disable=None if distributed.is_main() else True)
    stopped = False
    for step, batch in enumerate(bar):
        if deadline.passed():
            stopped = True
            break
        try:
            loss = train_step(objective, batch, optimizer, scaler, clip_value).item()
        except UserError as e:
            raise UserError(f"at epoch {epoch}, step {step}: {e}") from None
        total, steps = total + loss, steps + 1
        seen += images_in(batch[0]) * distributed.world_size()
        bar.set_postfix(loss=f"{loss:.4f}", lr=f"{optimizer.param_groups[0]['lr']:.2e}",
                        img_s=f"{seen / (time.perf_counter() - t0):.0f}")
    bar.close()
    return distributed.mean_across_ranks(total / max(steps, 1)), stopped, steps


class EpochLoop:
    """The bookkeeping around a trainer's epochs, so that its `main` shows only the work:

        with EpochLoop(args, optimizer, checkpointer, log, selection_key(...)) as loop:
            for epoch in loop:                   # from --resume's epoch; stops at --time-budget, --patience
                ...train, step the schedule, score...
                if loop.record(epoch, loss, scores, stopped, steps) and args.save:   # the best so far
                    ...save the best model...

    record() writes the epoch's record and selects; after each epoch the resumable state is saved
    (checkpoint.pth); on an error or an interrupt it says how to continue; at the end the run log
    is closed. `best` is (epoch, scores) or None."""

    def __init__(self, args, optimizer, checkpointer, log, key):
        self.args, self.optimizer, self.checkpointer, self.log, self.key = args, optimizer, checkpointer, log, key
        self.deadline, self.start, self.best, self.stop = Deadline(args.time_budget), 0, None, False
        self.epoch = 0
        if args.resume:
            self.start, self.best = checkpointer.load(args.resume, args)
            log.resume_at(self.start)
            print(f"resumed from {args.resume}: continuing at epoch {self.start}", flush=True)

    def __iter__(self):
        for self.epoch in range(self.start, self.args.epochs):
            if self.stop or self.deadline.passed():
                break
            self.t0, self.lr = time.perf_counter(), self.optimizer.param_groups[0]["lr"]
            yield self.epoch
            self.checkpointer.save(self.epoch, self.best, self.args)

    def record(self, epoch, loss, scores, stopped, steps=None):
        """Log the epoch; True when it is the best so far. stopped: the time budget ended it;
        steps: the optimisation steps it took. With --patience N the loop ends after N epochs in a
        row without a new best, once --min-epochs have been trained."""
        self.stop = stopped
        self.log.epoch({"epoch": epoch, "loss": loss, "lr": self.lr, **scores, "time": time.perf_counter() - self.t0,
                        **({} if steps is None else {"steps": steps})})
        if improves(scores, self.best, self.key):
            self.best = (epoch, scores)
            return True
        patience, trained = self.args.patience, epoch + 1
        if (patience > 0 and self.best is not None and epoch - self.best[0] >= patience
                and trained >= getattr(self.args, "min_epochs", 0)):   # runs from before --min-epochs lack it
            print(f"--patience {patience}: no better {self.key} since epoch {self.best[0]}; stopping.", flush=True)
            self.stop = True
        return False

    def __enter__(self):
        return self

    def __exit__(self, kind, error, tb):
        self.log.finish()
        if kind is None:
            self.log.finished(self.best)
        elif issubclass(kind, (KeyboardInterrupt, UserError)):
            path, n = self.checkpointer.path, self.epoch
            done = os.path.isfile(path) and n > 0
            print(f"\nstopped during epoch {n}. " + (
                f"The state after epoch {n - 1} is in {path}: to continue, run the same command with "
                f"--resume {path}" if done else "No epoch was completed."), file=sys.stderr, flush=True)
