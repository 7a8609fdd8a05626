"""What a run records: args.json, metrics.jsonl (one line per epoch), curves.png, the best model
and its results file in the reference's names, and wandb (optional, never blocking)."""
import json
import netrc
import os
import sys
import time

from . import distributed
from . import rundir
from .errors import UserError, warn
from .models import weights_record
from .records import VAL, format_scores
from .reporting.curves import plot_curves
from .storage import append_jsonl, save_json, save_text, save_torch

WANDB_MODES = ("auto", "online", "offline", "disabled")
# curves.png is redrawn after an epoch at most this often (and at the end): drawing takes about
# half a second, a quarter of an epoch in the cached regime.
PLOT_EVERY_S = 30


def _wandb_credentials():
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        return netrc.netrc().authenticators("api.wandb.ai") is not None
    except (OSError, netrc.NetrcParseError):
        return False


def resolve_wandb_mode(mode):
    """--wandb auto (and online) mean online when credentials exist (WANDB_API_KEY or ~/.netrc),
    else offline: wandb never prompts for a key."""
    if mode in ("auto", "online") and not _wandb_credentials():
        if mode == "online":   # wandb would otherwise ask for an API key
            warn("--wandb online without wandb credentials (WANDB_API_KEY or `wandb login`): logging offline.")
        return "offline"
    return "online" if mode == "auto" else mode


def start_wandb(mode, project, run_dir, args):
    """A wandb run, or None. Never a prompt; any wandb failure (missing package, network) only
    warns: training goes on."""
    mode = resolve_wandb_mode(mode)
    if mode == "disabled":
        return None
    os.environ.setdefault("WANDB_SILENT", "true")
    os.environ["WANDB_DISABLE_CODE"] = "true"
    try:
        import wandb   # optional and slow to import: only when a run logs to it
        return wandb.init(project=project, config=vars(args), name=os.path.basename(run_dir),
                          dir=run_dir, mode=mode, reinit="finish_previous",
                          settings=wandb.Settings(console="off", init_timeout=20))
    except Exception as e:  # noqa: BLE001 - any wandb problem must not stop training
        warn(f"wandb could not start ({type(e).__name__}: {e}); continuing without it.")
        return None


def check_writable(folder):
    """Fail before training, not after the first epoch, when results cannot be written."""
    try:
        os.makedirs(folder, exist_ok=True)
        probe = os.path.join(folder, ".write-test")
        with open(probe, "w") as f:
            f.write("ok")
        os.remove(probe)
    except OSError as e:
        raise UserError(f"cannot write to the log folder {folder} ({e.strerror}): pass a writable "
                        "--LOG_DIR.") from e


class RunLog:
    """The run folder and everything written into it. `run_dir` is the authors' folder name; the
    run writes there, or where rundir.claim sends it (a new folder when that one holds a run, the
    checkpoint's folder with --resume)."""

    def __init__(self, run_dir, args, wandb_project):
        self.wandb, self.plots, self.lock, self.records = None, True, None, []
        self.plotted_at, self.plotted = None, 0   # when curves.png was last drawn, and from how many records
        a = vars(args)
        self.title = f"{a.get('loss', '')}: {a.get('model', '')}-{a.get('embedding_size', '')} on {a.get('dataset', '')}"
        self.main = distributed.is_main()   # under torchrun only rank 0 writes and logs
        if self.main:
            check_writable(os.path.dirname(os.path.abspath(run_dir)))
            run_dir, self.lock = rundir.claim(run_dir, getattr(args, "resume", ""))
        self.dir = distributed.from_main(run_dir)
        if not self.main:
            return
        save_json(vars(args), os.path.join(self.dir, "args.json"))
        self.metrics_path = os.path.join(self.dir, "metrics.jsonl")
        self.wandb = start_wandb(args.wandb, wandb_project, self.dir, args)

    def resume_at(self, epoch):
        """Continuing at `epoch`: drop the records of later epochs (written before the interruption
        but not in the checkpoint), so that the table and plots hold each epoch once."""
        if not self.main or not os.path.isfile(self.metrics_path):
            return
        with open(self.metrics_path) as f:
            records = [json.loads(line) for line in f if line.strip()]
        self.records = [r for r in records if r["epoch"] < epoch]
        save_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in self.records), self.metrics_path)

    def epoch(self, record):
        """record: {'epoch', 'loss', 'lr', 'R@k'..., 'time'}; printed, appended and sent to wandb."""
        if not self.main:
            return
        append_jsonl(record, self.metrics_path)
        self.records.append(record)
        if self.plotted_at is None or time.perf_counter() - self.plotted_at >= PLOT_EVERY_S:
            self._plot()
        print(f"epoch {record['epoch']}: loss {record['loss']:.4g}, lr {record['lr']:.3g}, {format_scores(record)} "
              f"({record['time']:.1f} s)", flush=True)
        if self.wandb is not None:
            try:
                self.wandb.log({k: v for k, v in record.items() if k not in ("epoch", "time")},
                               step=record["epoch"])
            except Exception as e:  # noqa: BLE001
                warn(f"wandb.log failed ({e}); continuing without wandb.")
                self.wandb = None

    def _plot(self):
        """curves.png: loss and R@1 so far. A plotting problem only warns: training goes on."""
        if not self.plots or self.plotted == len(self.records):
            return
        try:
            plot_curves(self.records, self.title, os.path.join(self.dir, "curves.png"))
            self.plotted_at, self.plotted = time.perf_counter(), len(self.records)
        except Exception as e:  # noqa: BLE001
            warn(f"could not draw {os.path.join(self.dir, 'curves.png')} ({type(e).__name__}: {e}); "
                 "training goes on without it.")
            self.plots = False

    def save_best(self, model, weights_path, epoch, recalls, results_path=None):
        """The best model as {'model_state_dict': ...} (see models.weights_record) and its results
        file, under the authors' names; results_path defaults to the weights' name with
        `_results.txt` for `.pth`."""
        if not self.main:
            return
        save_torch(weights_record(model), weights_path)
        lines = [f"Best Epoch: {epoch}"] + [f"Best Recall@{k[2:]}: {100 * v:.4f}" for k, v in recalls.items()
                                            if k.startswith("R@")]
        if VAL + "R@1" in recalls:   # --val-classes: the epoch was chosen without the test split
            lines.append(f"Selected by Recall@1 on the held-out training classes: {100 * recalls[VAL + 'R@1']:.4f}")
        save_text("\n".join(lines) + "\n", results_path or os.path.splitext(weights_path)[0] + "_results.txt")

    def finished(self, best):
        """The run's result, (epoch, scores) or None, after saying it."""
        if best is not None:
            print(f"best epoch {best[0]}: {format_scores(best[1])}", flush=True)
        return best

    def finish(self):
        if self.main and self.records:
            self._plot()   # the epochs since the last drawing
        if self.wandb is not None:
            try:
                self.wandb.finish()
            except Exception:  # noqa: BLE001
                pass
        rundir.release(self.lock)
        self.lock = None
        sys.stdout.flush()
