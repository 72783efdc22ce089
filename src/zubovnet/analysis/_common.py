"""Shared helpers of the figures: figures without pyplot, class colours, PNG output.

Figures are built with :class:`matplotlib.figure.Figure` directly (the Agg canvas), never
through ``pyplot``: no global backend is switched, nothing is shown, and figures are freed
when they go out of scope.
"""
from __future__ import annotations

from pathlib import Path

__all__ = ["new_figure", "save_png", "class_colors", "is_png"]

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def new_figure(nrows: int, ncols: int, panel: tuple[float, float] = (4.0, 3.4), **kwargs):
    """``(fig, axes)`` with ``axes`` a 2-D numpy array of shape ``(nrows, ncols)``.

    ``panel`` is the size of one panel in inches; the figure is ``ncols·w × nrows·h``, laid
    out by matplotlib's constrained layout (titles, labels and legends do not overlap).
    """
    import numpy as np
    from matplotlib.figure import Figure
    kwargs.setdefault("layout", "constrained")
    fig = Figure(figsize=(panel[0] * ncols, panel[1] * nrows), **kwargs)
    axes = fig.subplots(nrows, ncols, squeeze=False)
    return fig, np.asarray(axes)


def save_png(fig, path: str | Path, dpi: int = 110) -> Path:
    """Write ``fig`` as a PNG to ``path`` (parent folders created); return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi, format="png", bbox_inches="tight")
    return path


def class_colors(num_classes: int) -> list[tuple[float, float, float, float]]:
    """One RGBA colour per class: ``tab10`` up to 10 classes, ``tab20`` up to 20, then a
    sampled ``hsv`` map (cyclic, evenly spaced)."""
    from matplotlib import colormaps
    if num_classes <= 10:
        cmap = colormaps["tab10"]
        return [cmap(i) for i in range(num_classes)]
    if num_classes <= 20:
        cmap = colormaps["tab20"]
        return [cmap(i) for i in range(num_classes)]
    cmap = colormaps["hsv"]
    return [cmap(i / num_classes) for i in range(num_classes)]


def is_png(path: str | Path) -> bool:
    """True when ``path`` exists and starts with the 8-byte PNG signature."""
    path = Path(path)
    if not path.is_file():
        return False
    with open(path, "rb") as fh:
        return fh.read(8) == PNG_SIGNATURE
