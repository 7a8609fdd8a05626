"""Figures (PNG) of finished runs: several runs' curves side by side, and the bar chart of a results
table (a run's own curves.png is drawn while it trains: reporting/curves.py)."""
import itertools
import os

from matplotlib import colormaps
from matplotlib.figure import Figure

from .curves import axes, draw_curves, save_png
from .tables import _method_order, base_method, dataset_order, group_runs, setting_name, summarise


def _labels(runs):
    """The shortest descriptions that tell the runs apart (the folder name added where they do not)."""
    labels = []
    for run in runs:
        parts = [run.method]
        for differs, part in ((lambda r: r.network, run.network), (lambda r: r.args["dataset"], run.args["dataset"]),
                              (lambda r: r.teacher, f"from {run.teacher}")):
            if len({differs(r) for r in runs}) > 1:
                parts.append(part)
        labels.append(", ".join(p for p in parts if p != "from None"))
    return [f"{lab} [{os.path.basename(r.dir)}]" if labels.count(lab) > 1 else lab for lab, r in zip(labels, runs)]


def plot_runs(runs, out, title="runs compared"):
    """Loss and R@1 per epoch of several runs in one figure."""
    fig, ax_loss, ax_r1 = axes(title)
    cmap = colormaps["tab10" if len(runs) <= 10 else "tab20"]
    for i, (run, label) in enumerate(zip(runs, _labels(runs))):
        draw_curves(ax_loss, ax_r1, run.epochs, label, cmap(i % cmap.N))
    ax_r1.legend(fontsize=7, loc="best")
    return save_png(fig, out)


def plot_bars(runs, out, title="R@1 by method and setting"):
    """The results table as bars: one panel per dataset, one group per setting, one bar per method
    (the source and the no-source baselines in greys)."""
    groups = group_runs(runs)
    datasets = sorted({d for _, _, cells in groups for _, d in cells}, key=dataset_order)
    methods = sorted({m for _, _, cells in groups for m, _ in cells}, key=_method_order)
    fig = Figure(figsize=(max(8, 2.2 * len(groups) + 3), 3.8 * len(datasets)))
    axes = fig.subplots(len(datasets), 1, squeeze=False)
    width = 0.8 / len(methods)
    # Greys for the source and the baselines; the transfer methods take tab10's other colours.
    palette = itertools.cycle([colormaps["tab10"](i) for i in range(10) if i != 7])
    colors, greys = {}, {"source": itertools.cycle(["0.25", "0.4", "0.1"]),
                         "baseline": itertools.cycle(["0.65", "0.8", "0.5"])}
    for m in methods:
        role = "source" if m.startswith("source") else "baseline" if base_method(m).endswith("(no source)") else None
        colors[m] = next(greys[role]) if role else next(palette)
    for ax, dataset in zip(axes[:, 0], datasets):
        for g, (teacher, network, cells) in enumerate(groups):
            for i, m in enumerate(methods):
                s = summarise(cells.get((m, dataset), []), "R@1") if cells.get((m, dataset)) else None
                if s is None:
                    continue
                x = g - 0.4 + (i + 0.5) * width
                ax.bar(x, s[0], width, yerr=s[1], color=colors[m], label=m if g == 0 or m not in
                       ax.get_legend_handles_labels()[1] else None)
                ax.text(x, s[0] + (s[1] or 0), f"{s[0]:.1f}", ha="center", va="bottom", fontsize=6, rotation=90)
        ax.set_xticks(range(len(groups)))
        ax.set_xticklabels([f"{setting_name(t, n)}\n{t + ' → ' if t else ''}{n}" for t, n, _ in groups], fontsize=8)
        ax.set_ylabel(f"{dataset}: R@1 (%)")
        ax.set_ylim(top=ax.get_ylim()[1] * 1.1)  # room for the value labels above the tallest bar
        ax.legend(fontsize=7, ncol=2, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.suptitle(title)
    return save_png(fig, out)
