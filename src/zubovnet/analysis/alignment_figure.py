"""The alignment figure from evaluation records: ``AR`` against the horizon, per shell of
``W_y`` and per class, one colour per model.

    records = load_records(["docs/results/x/zubovnet_alignment.json", ...])
    plot_alignment(records, "alignment.png")

A record of the ``alignment`` suite (:mod:`zubovnet.evaluation.suites`) keeps the whole report
of :func:`zubovnet.analysis.alignment.alignment_report` under ``record["alignment"]``: per
horizon (``"1T"``, ``"3T"``, ``"10T"``) the alignment rate ``aligned``, its *nearest* variant,
``per_shell`` (``W_range``, sample count ``n``, ``aligned`` or ``None`` for an empty shell) and
``per_class``.  Three panels:

1. ``AR(ρ, H, τ)`` (solid) and the nearest-equilibrium rate (dashed) against ``H / T``;
2. ``AR`` per equal-width shell of ``W_y`` in ``[0, ρ)`` at the longest horizon, each bar
   labelled with its sample count — in high dimension the radial law ``u^{1/d}`` puts almost
   every sample in the outermost shell (``docs/alignment.md``), and the counts show it;
3. ``AR`` per class at the longest horizon.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

from ..evaluation.records import merge_records
from ._common import new_figure, save_png

__all__ = ["alignment_profile", "plot_alignment"]


def _horizon_key(key: str) -> float:
    return float(key[:-1]) if key.endswith("T") else float("inf")


def alignment_profile(record: dict) -> dict | None:
    """The numbers of the figure for one record, or ``None`` without an alignment report.

    Returns ``{"horizons": [(H/T, aligned, nearest), ...]`` sorted by ``H``, ``"last"``: the
    longest horizon's key, ``"shells": [(W_lo, W_hi, n, aligned or None), ...]`` and
    ``"classes": [(class, aligned), ...]`` at that horizon, ``"rho"``, ``"n"``}.  Rates are
    fractions in [0, 1].
    """
    rep = record.get("alignment")
    if not rep or not rep.get("horizons"):
        return None
    keys = sorted(rep["horizons"], key=_horizon_key)
    last = rep["horizons"][keys[-1]]
    return {
        "horizons": [(_horizon_key(k), rep["horizons"][k]["aligned"],
                      rep["horizons"][k].get("nearest")) for k in keys],
        "last": keys[-1],
        "shells": [(s["W_range"][0], s["W_range"][1], s["n"], s["aligned"])
                   for s in last.get("per_shell", [])],
        "classes": sorted((int(c), a) for c, a in (last.get("per_class") or {}).items()),
        "rho": rep.get("rho"), "n": rep.get("n"),
    }


def plot_alignment(records: Sequence[dict], path: str | Path) -> dict:
    """Draw the three panels (module docstring) for every record with an alignment report.

    Records of one model are merged by name first.  Returns ``{model: alignment_profile}``.
    Raises ``ValueError`` when no record holds an alignment report.
    """
    profiles = {}
    for rec in merge_records(records):
        prof = alignment_profile(rec)
        if prof is not None:
            profiles[(rec.get("model") or {}).get("name") or "?"] = prof
    if not profiles:
        raise ValueError("no alignment report (record['alignment']) in the records")
    fig, axes = new_figure(1, 3, panel=(4.2, 3.3))
    ax_h, ax_s, ax_c = axes[0]
    m = len(profiles)
    width = 0.8 / m
    for j, (model, p) in enumerate(profiles.items()):
        col = f"C{j % 10}"
        hs = [h for h, _, _ in p["horizons"]]
        ax_h.plot(hs, [100 * a for _, a, _ in p["horizons"]], marker="o", color=col, label=model)
        near = [(h, b) for h, _, b in p["horizons"] if b is not None]
        if near:
            ax_h.plot([h for h, _ in near], [100 * b for _, b in near], ls="--", marker="x",
                      color=col, alpha=0.7)
        for i, (lo, hi, n, a) in enumerate(p["shells"]):
            x = i + (j - (m - 1) / 2) * width
            ax_s.bar(x, 0 if a is None else 100 * a, width, color=col,
                     label=model if i == 0 else None)
            ax_s.text(x, 2, f"n={n}", ha="center", va="bottom", fontsize=6, rotation=90)
        for i, (c, a) in enumerate(p["classes"]):
            ax_c.bar(i + (j - (m - 1) / 2) * width, 100 * a, width, color=col)
    first = next(iter(profiles.values()))
    ax_h.set_xscale("log")
    ax_h.set_xticks([h for h, _, _ in first["horizons"]],
                    [f"{h:g}T" for h, _, _ in first["horizons"]])
    ax_h.set_xlabel("horizon H")
    ax_h.set_ylabel("rate (%)")
    ax_h.set_title("AR(ρ, H, τ) (solid), nearest c_k = c_y (dashed)", fontsize=9)
    ax_h.legend(fontsize=7)
    ax_s.set_xticks(range(len(first["shells"])),
                    [f"{lo:.2f}–{hi:.2f}" for lo, hi, _, _ in first["shells"]], fontsize=7)
    ax_s.set_xlabel("shell of W_y(h) in [0, ρ)")
    ax_s.set_ylabel(f"AR at {first['last']} (%)")
    ax_s.set_title("AR per shell of W_y (bar label: samples)", fontsize=9)
    ax_c.set_xticks(range(len(first["classes"])), [str(c) for c, _ in first["classes"]])
    ax_c.set_xlabel("class y")
    ax_c.set_ylabel(f"AR at {first['last']} (%)")
    ax_c.set_title("AR per class", fontsize=9)
    for ax in (ax_h, ax_s, ax_c):
        ax.set_ylim(0, 112)
        ax.grid(alpha=0.3)
    fig.suptitle("PRoA–RoA alignment: do points of {W_y < ρ} flow to c_y?", fontsize=11)
    save_png(fig, path)
    return profiles
