"""Fig. 4: the loss-weight sweep, four metrics per configuration normalised to their maximum.

    rows = plot_loss_weight_sweep(records, "loss_weights.png")

For each configuration ``(λ₁, λ₂, λ₃)`` (one record, or several merged by model name):

* ``clean``        clean accuracy;
* ``noise``        mean accuracy over the eight corruptions of Table I (each the mean over
                   its severities);
* ``adversarial``  mean accuracy over the ten white-box numbers of Table II (FGSM, PGD, BIM,
                   APGD, Jitter at 8/255 and 16/255);
* ``overall``      the mean of the three above (the paper does not define its "overall
                   accuracy"; this choice weighs the three families equally).

Each metric is divided by its maximum over the configurations (the paper's "normalised to
maximum values"), in percent.  A configuration lacking a number gets ``None`` for the metrics
that need it.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

from ._common import new_figure, save_png
from .curves import merge_records

__all__ = ["METRICS", "category_scores", "loss_weight_label", "normalise_to_max",
           "plot_loss_weight_sweep"]

METRICS = ("overall", "noise", "adversarial", "clean")
_STYLE = {"overall": ("-", "C0", "overall accuracy"), "noise": ("--", "C1", "noise robustness"),
          "adversarial": ("-.", "C2", "adversarial robustness"),
          "clean": (":", "C3", "clean accuracy")}


def _acc(rec: dict, key: str):
    e = rec.get("results", {}).get(key)
    return None if e is None else e.get("accuracy")


def _mean(vals):
    return None if not vals or any(v is None for v in vals) else sum(vals) / len(vals)


def category_scores(record: dict) -> dict:
    """``{"clean", "noise", "adversarial", "overall"}`` accuracies (fractions) of a record."""
    from ..evaluation.tables import TABLE1_CORRUPTIONS, TABLE2_ATTACKS, TABLE2_EPS
    clean = _acc(record, "clean")
    noise = _mean([_acc(record, f"corruption/{k}") for _, k in TABLE1_CORRUPTIONS])
    adv = _mean([_acc(record, f"{k}@{e}") for _, k in TABLE2_ATTACKS for e in TABLE2_EPS])
    return {"clean": clean, "noise": noise, "adversarial": adv,
            "overall": _mean([clean, noise, adv])}


def loss_weight_label(record: dict) -> str:
    """``"(λ₁, λ₂, λ₃)"`` from the record's configuration, else the model name."""
    loss = (record.get("config") or {}).get("loss") or {}
    if all(k in loss for k in ("lambda_fc", "lambda_con", "lambda_sep")):
        return f"({loss['lambda_fc']:g}, {loss['lambda_con']:g}, {loss['lambda_sep']:g})"
    return (record.get("model") or {}).get("name") or "?"


def normalise_to_max(values: Sequence[float | None]) -> list[float | None]:
    """``100 · v / max(v)`` over the non-missing values (``None`` stays ``None``)."""
    present = [v for v in values if v is not None]
    top = max(present) if present else None
    return [None if (v is None or not top) else 100.0 * v / top for v in values]


def plot_loss_weight_sweep(records: Sequence[dict], path: str | Path,
                           labels: Sequence[str] | None = None) -> list[dict]:
    """Draw Fig. 4 to ``path`` (PNG); return one row per configuration:
    ``{"label", "raw": {metric: fraction}, "normalised": {metric: percent of max}}``."""
    merged = merge_records(records)
    if not merged:
        raise ValueError("plot_loss_weight_sweep needs at least one record")
    labels = list(labels) if labels is not None else [loss_weight_label(r) for r in merged]
    raw = [category_scores(r) for r in merged]
    norm = {m: normalise_to_max([s[m] for s in raw]) for m in METRICS}
    rows = [{"label": lab, "raw": raw[i], "normalised": {m: norm[m][i] for m in METRICS}}
            for i, lab in enumerate(labels)]
    fig, axes = new_figure(1, 1, panel=(max(6.0, 0.9 * len(rows) + 2), 4.2))
    ax = axes[0, 0]
    xs = list(range(len(rows)))
    for m in METRICS:
        style, color, name = _STYLE[m]
        pts = [(x, v) for x, v in zip(xs, norm[m]) if v is not None]
        if pts:
            ax.plot([p[0] for p in pts], [p[1] for p in pts], style, color=color, marker="o",
                    ms=4, label=name)
    ax.set_xticks(xs)
    ax.set_xticklabels(labels, rotation=30, ha="right", fontsize=8)
    ax.set_xlabel("loss weights (λ₁, λ₂, λ₃)")
    ax.set_ylabel("relative performance (% of the best)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title("loss-weight sweep: each metric normalised to its maximum", fontsize=10)
    save_png(fig, path)
    return rows
