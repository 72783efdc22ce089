"""Fig. 5: training dynamics of the loss terms and of ``W_y`` / mean ``W_{k≠y}`` from ``metrics.csv``.

    plot_training_dynamics({"Zubov-Net": "runs/cifar10/zubovnet"}, "dynamics.png")

The trainer writes one row per epoch to ``RUN/metrics.csv`` with the epoch means of every
logged term.  The figure has one panel per term, in the paper's order — ``L_sep``,
``L_cla``, ``L_con``, ``L_FC``, ``W_y`` (the target class's Lyapunov value at ``h(T)``),
mean ``W_{k≠y}`` (the other classes) — plus the total loss and the accuracies (training
batches, and validation when logged), one line per run.  A term a run does not log (the
baselines have no ``L_con``) is left out of that run's panel.
"""
from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Mapping, Sequence

from ._common import new_figure, save_png

__all__ = ["DYNAMICS_PANELS", "read_metrics", "plot_training_dynamics"]

#: ``(title, [(column, line label), ...])`` of each panel, in drawing order.
DYNAMICS_PANELS = (
    ("separation loss $L_{sep}$", [("L_sep", "L_sep")]),
    ("classification loss $L_{cla}$", [("L_cla", "L_cla")]),
    ("consistency loss $L_{con}$", [("L_con", "L_con")]),
    ("auxiliary loss $L_{FC}$", [("L_fc", "L_FC")]),
    ("target class $W_y(h(T))$", [("W_y", "W_y")]),
    ("non-target classes mean $W_{k\\neq y}(h(T))$", [("W_other", "mean W_k≠y")]),
    ("total loss", [("train_loss", "loss")]),
    ("accuracy", [("train_acc", "train (batches)"), ("val_acc", "validation")]),
)


def read_metrics(path: str | Path) -> list[dict[str, float]]:
    """Rows of a run's ``metrics.csv`` as ``{column: float}`` (empty cells → NaN).

    ``path``: the run folder or the CSV file itself.  Raises ``FileNotFoundError`` when there
    is none.
    """
    path = Path(path)
    csv_path = path / "metrics.csv" if path.is_dir() else path
    if not csv_path.is_file():
        raise FileNotFoundError(f"no metrics.csv at {csv_path}")
    rows = []
    with open(csv_path, newline="") as fh:
        for raw in csv.DictReader(fh):
            row = {}
            for k, v in raw.items():
                try:
                    row[k] = float(v) if v not in (None, "") else math.nan
                except ValueError:
                    row[k] = math.nan
            rows.append(row)
    return rows


def _series(rows: list[dict], key: str) -> tuple[list[float], list[float]]:
    xs, ys = [], []
    for i, r in enumerate(rows):
        v = r.get(key, math.nan)
        if not math.isnan(v):
            xs.append(r.get("epoch", i + 1))
            ys.append(v)
    return xs, ys


def plot_training_dynamics(runs: Mapping[str, str | Path | list] | Sequence[str | Path] | str | Path,
                           path: str | Path, panels=DYNAMICS_PANELS,
                           title: str | None = None) -> list[str]:
    """Draw the per-epoch curves of ``runs`` to ``path`` (PNG); return the panels drawn.

    ``runs``: a run folder / ``metrics.csv`` path, a list of them (labelled by folder name), or
    ``{label: folder, csv path or list of metric rows}``.  Panels no run logs are dropped.
    """
    if isinstance(runs, (str, Path)):
        runs = [runs]
    if not isinstance(runs, Mapping):
        runs = {(Path(r).parent.name if Path(r).suffix == ".csv" else Path(r).name): r for r in runs}
    data = {label: (r if isinstance(r, list) else read_metrics(r)) for label, r in runs.items()}
    drawn = [(t, cols) for t, cols in panels
             if any(_series(rows, k)[1] for rows in data.values() for k, _ in cols)]
    if not drawn:
        raise ValueError("none of the runs logs any of the plotted terms")
    ncols = min(4, len(drawn))
    nrows = math.ceil(len(drawn) / ncols)
    fig, axes = new_figure(nrows, ncols, panel=(3.8, 3.0))
    styles = ["-", "--", ":", "-."]
    for i, (ptitle, cols) in enumerate(drawn):
        ax = axes[i // ncols, i % ncols]
        for j, (label, rows) in enumerate(data.items()):
            for s, (key, key_label) in enumerate(cols):
                xs, ys = _series(rows, key)
                if ys:
                    name = label if len(cols) == 1 else f"{label}: {key_label}"
                    ax.plot(xs, ys, styles[s % len(styles)], marker="o" if len(xs) < 25 else None,
                            ms=3, color=f"C{j}", label=name)
        ax.set_title(ptitle, fontsize=10)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        if len(data) > 1 or len(cols) > 1:
            ax.legend(fontsize=7)
    for k in range(len(drawn), nrows * ncols):
        axes[k // ncols, k % ncols].set_visible(False)
    fig.suptitle(title or "training dynamics (epoch means)", fontsize=11)
    save_png(fig, path)
    return [t for t, _ in drawn]
