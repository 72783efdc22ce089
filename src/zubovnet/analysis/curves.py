"""Robustness curves from evaluation records: accuracy vs ε and vs corruption severity.

    records = load_records(["runs/cifar10/zubovnet", "runs/cifar10/neural_ode"])
    plot_accuracy_vs_eps(records, "accuracy_vs_eps.png")
    plot_accuracy_vs_severity(records, "accuracy_vs_severity.png")

A record (:mod:`zubovnet.evaluation.records`) stores each attack result under a key
``"<attack>@<eps label>"`` (``"pgd@8/255"``) with its numeric ``eps`` and ``accuracy``, and
each corruption under ``"corruption/<name>"`` with ``per_severity`` accuracies.  Every curve
starts at the clean accuracy (ε = 0, severity 0).  Several records of one model (its
``eval_corruptions.json`` and ``eval_attacks.json``) are merged by model name first.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

from ..evaluation.records import merge_records
from ._common import new_figure, save_png

__all__ = ["merge_records", "accuracy_vs_eps", "accuracy_vs_severity", "plot_accuracy_vs_eps",
           "plot_accuracy_vs_severity"]

_ATTACK_TITLES = {"fgsm": "FGSM", "pgd": "PGD", "bim": "BIM", "apgd": "APGD", "jitter": "Jitter",
                  "square": "Square", "autoattack": "AutoAttack", "vnifgsm": "VNI-FGSM (transfer)"}


def _name(rec: dict) -> str:
    return (rec.get("model") or {}).get("name") or "?"


def _clean(rec: dict):
    e = rec.get("results", {}).get("clean")
    return None if e is None else e.get("accuracy")


def accuracy_vs_eps(record: dict) -> dict[str, list[tuple[float, float]]]:
    """``{attack: [(eps, accuracy), ...]}`` sorted by ``eps``, starting at ``(0, clean)``.

    Attacks are the result keys of the form ``"<attack>@<eps label>"`` with a numeric ``eps``
    and a non-null ``accuracy`` (``"vnifgsm[surrogate]@16/255"`` is its own attack).
    Accuracies are fractions in [0, 1].
    """
    clean = _clean(record)
    out: dict[str, list[tuple[float, float]]] = {}
    for key, e in record.get("results", {}).items():
        if "@" not in key or e.get("accuracy") is None or not isinstance(e.get("eps"), (int, float)):
            continue
        out.setdefault(key.split("@", 1)[0], []).append((float(e["eps"]), float(e["accuracy"])))
    for name, pts in out.items():
        pts.sort()
        if clean is not None:
            pts.insert(0, (0.0, float(clean)))
    return out


def accuracy_vs_severity(record: dict) -> dict[str, list[tuple[int, float]]]:
    """``{corruption: [(severity, accuracy), ...]}`` from ``per_severity``, starting at
    ``(0, clean)``; accuracies are fractions in [0, 1]."""
    clean = _clean(record)
    out: dict[str, list[tuple[int, float]]] = {}
    for key, e in record.get("results", {}).items():
        if not key.startswith("corruption/") or not e.get("per_severity"):
            continue
        pts = sorted((int(s), float(a)) for s, a in e["per_severity"].items() if a is not None)
        if clean is not None:
            pts.insert(0, (0, float(clean)))
        out[key.split("/", 1)[1]] = pts
    return out


def _grid(n: int):
    """``(rows, cols)`` filling a grid of ``n`` panels with few empty cells (at most 4 columns)."""
    ncols = n if n <= 4 else (3 if n in (5, 6, 9) else 4)
    nrows = -(-n // ncols)
    return nrows, ncols


def _plot_panels(curves: dict[str, dict[str, list]], order: list[str], titles: dict, xlabel: str,
                 path, suptitle: str, xscale: float = 1.0):
    nrows, ncols = _grid(len(order))
    fig, axes = new_figure(nrows, ncols, panel=(3.6, 3.0))
    for i, panel in enumerate(order):
        ax = axes[i // ncols, i % ncols]
        for j, (model, per) in enumerate(curves.items()):
            pts = per.get(panel)
            if pts:
                ax.plot([p[0] * xscale for p in pts], [100 * p[1] for p in pts], marker="o",
                        ms=3, color=f"C{j % 10}", label=model)
        ax.set_title(titles.get(panel, panel), fontsize=10)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("accuracy (%)")
        ax.set_ylim(-2, 102)
        ax.grid(alpha=0.3)
    for k in range(len(order), nrows * ncols):
        axes[k // ncols, k % ncols].set_visible(False)
    axes[0, 0].legend(fontsize=7)
    fig.suptitle(suptitle, fontsize=11)
    save_png(fig, path)


def plot_accuracy_vs_eps(records: Sequence[dict], path: str | Path,
                         attacks: Sequence[str] | None = None) -> dict:
    """One panel per attack, accuracy (%) against ε (in units of 1/255), one line per model.

    ``attacks``: the attack names to draw (default: every attack found, Table II order
    first).  Returns ``{model: {attack: [(eps, accuracy), ...]}}``.  Raises ``ValueError``
    when no record holds an attack result.
    """
    curves = {_name(r): accuracy_vs_eps(r) for r in merge_records(records)}
    found = {a for per in curves.values() for a in per}
    if not found:
        raise ValueError("no attack results (keys '<attack>@<eps>') in the records")
    first = [a for a in ("fgsm", "pgd", "bim", "apgd", "jitter") if a in found]
    order = list(attacks) if attacks is not None else first + sorted(found - set(first))
    titles = {a: _ATTACK_TITLES.get(a.split("[")[0], a) + (a[a.index("["):] if "[" in a else "")
              for a in order}
    _plot_panels(curves, order, titles, "ε (×1/255, L∞)", path,
                 "accuracy under attack vs radius (ε = 0: clean)", xscale=255.0)
    return curves


def plot_accuracy_vs_severity(records: Sequence[dict], path: str | Path) -> dict:
    """One panel per corruption plus their mean, accuracy (%) against severity 0–5 (0 =
    clean), one line per model.  Returns ``{model: {corruption: [(severity, accuracy)]}}``
    (the mean under ``"mean"``).  Raises ``ValueError`` without corruption results."""
    curves = {_name(r): accuracy_vs_severity(r) for r in merge_records(records)}
    found = [c for per in curves.values() for c in per]
    if not found:
        raise ValueError("no corruption results (keys 'corruption/<name>') in the records")
    order = list(dict.fromkeys(found))
    for per in curves.values():
        names = [c for c in order if c in per]
        if names and all(len(per[c]) == len(per[names[0]]) for c in names):
            sev = [p[0] for p in per[names[0]]]
            per["mean"] = [(s, sum(per[c][i][1] for c in names) / len(names))
                           for i, s in enumerate(sev)]
    order.append("mean")
    titles = {c: c.replace("_", " ") for c in order}
    titles["mean"] = "mean over corruptions"
    _plot_panels(curves, order, titles, "severity (0 = clean)", path,
                 "accuracy under corruptions vs severity")
    return curves
