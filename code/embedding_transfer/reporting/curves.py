"""A run's loss and R@1 per epoch, drawn from its epoch records (records.py's format). matplotlib's
Figure objects draw without pyplot, so no display or backend is needed."""
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from ..records import VAL, best_record
from ..storage import save_file


def save_png(fig, path):
    return save_file(path, lambda f: fig.savefig(f, format="png", dpi=110, bbox_inches="tight"))


def axes(title):
    fig = Figure(figsize=(11, 4))
    ax_loss, ax_r1 = fig.subplots(1, 2)
    ax_loss.set(xlabel="epoch", ylabel="training loss", title="loss")
    ax_r1.set(xlabel="epoch", ylabel="R@1 (%)", title="R@1 (★: selected epoch)")
    for ax in (ax_loss, ax_r1):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    fig.suptitle(title)
    return fig, ax_loss, ax_r1


def draw_curves(ax_loss, ax_r1, records, label=None, color=None):
    ax_loss.plot([e["epoch"] for e in records], [e["loss"] for e in records], color=color, label=label)
    test = [e for e in records if "R@1" in e]
    val = [e for e in records if VAL + "R@1" in e]
    style = "o--" if val else "o-"   # with --val-classes the test split is scored only at improvements
    named = (lambda split: split if label is None else f"{label} ({split})") if val else (lambda split: label)
    ax_r1.plot([e["epoch"] for e in test], [100 * e["R@1"] for e in test], style, ms=3, color=color,
               label=named("test"))
    if val:
        ax_r1.plot([e["epoch"] for e in val], [100 * e[VAL + "R@1"] for e in val], "-", color=color,
                   alpha=0.6, label=named("validation classes"))
    best = best_record(records)
    if best is not None and "R@1" in best:
        ax_r1.plot([best["epoch"]], [100 * best["R@1"]], "*", ms=11, color=color or "C0")


def plot_curves(records, title, path):
    """curves.png of one run: loss and R@1 per epoch, the selected epoch starred."""
    fig, ax_loss, ax_r1 = axes(title)
    draw_curves(ax_loss, ax_r1, records)
    if any(VAL + "R@1" in e for e in records):
        ax_r1.legend(fontsize=8)
    return save_png(fig, path)


def steps_axis(records):
    """Cumulative optimisation steps at the end of each epoch (records without `steps`: epochs)."""
    total, out = 0, []
    for e in records:
        total += e.get("steps", 1)
        out.append(total)
    return out


def plot_convergence(panels, path, title):
    """Held-out R@1 against optimisation steps, one panel per (name, [(label, records)]) of
    `panels`: one line per run, a colour per label, the selected epoch starred."""
    fig = Figure(figsize=(4.2 * len(panels), 3.8))
    axes_ = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (name, runs) in zip(axes_, panels):
        colours = {}
        for label, records in runs:
            first = label not in colours          # one legend entry per label
            colour = colours.setdefault(label, f"C{len(colours) % 10}")
            x, key = steps_axis(records), VAL + "R@1" if any(VAL + "R@1" in e for e in records) else "R@1"
            points = [(s, 100 * e[key]) for s, e in zip(x, records) if key in e]
            ax.plot(*zip(*points), "-", lw=0.9, alpha=0.75, color=colour, label=label if first else None)
            best = best_record(records)
            if best is not None:
                ax.plot([x[records.index(best)]], [100 * best[key]], "*", ms=7, color=colour)
        ax.set(title=name, xlabel="optimisation steps", ylabel="held-out R@1 (%)")
        ax.legend(fontsize=7)
    fig.suptitle(title)
    return save_png(fig, path)
