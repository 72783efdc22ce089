"""Fig. 1(b) from a trained model: prescribed regions of attraction vs the true basins, in the plane.

    model, cfg, _ = load_checkpoint("runs/synthetic2d/zubovnet")
    bm = plot_basins(model, "basins.png", data=(x_test, y_test), rho=cfg.loss.rho)
    bm.summary()   # {'aligned_fraction': ..., 'overlap_fraction': ..., ...}

For a Zubov-Net whose state space is the plane (``state_dim = 2``, e.g. the ``identity``
extractor on ``synthetic2d``), every point ``h`` of a grid over the state space is examined:

* **prescribed region of attraction** (PRoA) of class ``i``: ``D_{W_i} = {h : W_i(h) < ρ}``
  (the sub-level set of the learned Lyapunov function, see docs/design.md); its boundary ``W_i = ρ`` is
  drawn as a solid line in the class's colour;
* **true basin** (dynamical region of attraction): the flow ``dh/dt = f(h)`` is integrated
  from ``h`` over ``[0, horizon]`` (default ``10 T``, evaluation tolerances) and the point is
  given the class whose equilibrium ``c_i`` the trajectory ends nearest — if it ends within
  ``capture_radius`` of it (default a quarter of the smallest distance between two
  equilibria); otherwise it is *unconverged* (grey).  Basin boundaries are dashed;
* **alignment**: a point inside ``D_{W_i}`` whose basin is not ``i`` is *misaligned* (dark
  shade; light shade = aligned), as in the paper's picture;
* **decision**: the model's prediction ``argmin_i V(h(T), c_i)`` when ``h(0) = h`` (the
  classifier after the model's own horizon ``T``), drawn in a second panel with the data.

Input contract: ``model`` is a :class:`~zubovnet.models.ZubovNet` (or any module with
``equilibria (L, 2)``, ``lyapunov(h) (N, L)``, ``energy(h) (N, L)``, ``ode(h0) ->
(Γ+1, N, 2)`` and ``features(x) -> (N, 2)``).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ._common import class_colors, new_figure, save_png

__all__ = ["BasinMap", "basin_map", "flow", "plot_basins"]


@dataclass
class BasinMap:
    """A grid over the state plane and what the model does at each point.

    ``xs (nx,)``, ``ys (ny,)``: grid coordinates; ``lyapunov (ny, nx, L)``: ``W_i(h)``;
    ``basin (ny, nx)``: class of the equilibrium the trajectory ends nearest, ``-1`` if it
    ends farther than ``capture_radius`` from all; ``decision (ny, nx)``: ``argmin_i
    V(h(T), c_i)``; ``equilibria (L, 2)``; ``endpoints (ny, nx, 2)``: ``h(horizon)``.
    """
    xs: np.ndarray
    ys: np.ndarray
    lyapunov: np.ndarray
    basin: np.ndarray
    decision: np.ndarray
    equilibria: np.ndarray
    endpoints: np.ndarray
    rho: float
    horizon: float
    capture_radius: float
    extra: dict = field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        return self.equilibria.shape[0]

    @property
    def in_proa(self) -> np.ndarray:
        """``(ny, nx, L)`` bool: ``W_i(h) < ρ``."""
        return self.lyapunov < self.rho

    @property
    def misaligned(self) -> np.ndarray:
        """``(ny, nx)`` bool: inside some ``D_{W_i}`` whose class is not the point's basin."""
        L = self.num_classes
        own = self.basin[..., None] == np.arange(L)
        return (self.in_proa & ~own).any(-1)

    def summary(self) -> dict:
        """Area fractions over the grid (every cell weighs the same):

        ``proa_fraction``: cells inside at least one PRoA; ``aligned_fraction``: of those,
        the cells whose every PRoA is their basin's; ``overlap_fraction``: cells inside two
        or more PRoAs; ``unconverged_fraction``: cells whose trajectory reaches no
        equilibrium; ``decision_basin_agreement``: cells where ``decision == basin`` among
        the converged ones.
        """
        inside = self.in_proa.any(-1)
        n_in = int(inside.sum())
        conv = self.basin >= 0
        return {
            "grid": [int(len(self.xs)), int(len(self.ys))],
            "rho": float(self.rho), "horizon": float(self.horizon),
            "capture_radius": float(self.capture_radius),
            "proa_fraction": float(inside.mean()),
            "aligned_fraction": (float((inside & ~self.misaligned).sum() / n_in) if n_in else None),
            "overlap_fraction": float((self.in_proa.sum(-1) >= 2).mean()),
            "unconverged_fraction": float((~conv).mean()),
            "decision_basin_agreement": (float((self.decision[conv] == self.basin[conv]).mean())
                                         if conv.any() else None),
            **self.extra,
        }


def _check_planar(model: nn.Module) -> torch.Tensor:
    C = getattr(model, "equilibria", None)
    if C is None or not hasattr(model, "lyapunov"):
        raise TypeError("basin pictures need a model with equilibria and a Lyapunov classifier "
                        "(a ZubovNet)")
    if C.shape[-1] != 2:
        raise ValueError(f"basin pictures need a planar state space (state_dim = 2), got "
                         f"d = {C.shape[-1]}")
    return C.detach()


@torch.no_grad()
def flow(model: nn.Module, h0: torch.Tensor, horizon: float, points: int = 2,
         batch_size: int = 4096) -> torch.Tensor:
    """States of ``dh/dt = f(h)`` from ``h0 (N, d)`` at ``points`` evenly spaced times of
    ``[0, horizon]``: ``(points, N, d)``.  The model's solver and evaluation tolerances are
    used (eval mode); only ``T`` and ``Γ`` are overridden for the call."""
    from ..models import solver_override
    model.eval()
    out = []
    with solver_override(model, T=float(horizon), gamma=int(points) - 1):
        for i in range(0, len(h0), batch_size):
            out.append(model.ode(h0[i:i + batch_size]))
    return torch.cat(out, dim=1)


def _default_limits(C: torch.Tensor, h_data: torch.Tensor | None, margin: float) -> float:
    pts = C if h_data is None else torch.cat([C, h_data])
    return float(pts.abs().max()) * margin


@torch.no_grad()
def basin_map(model: nn.Module, xlim: tuple[float, float] | None = None,
              ylim: tuple[float, float] | None = None, resolution: int = 150,
              horizon_factor: float = 10.0, rho: float = 0.9,
              capture_radius: float | None = None, data: torch.Tensor | None = None,
              margin: float = 1.35, batch_size: int = 4096) -> BasinMap:
    """Evaluate the PRoAs, the true basins and the decision on a ``resolution²`` grid.

    Args:
        model: planar Zubov-Net (see the module docstring); put in eval mode.
        xlim, ylim: grid extent in state coordinates (default: a square around the origin
            holding the equilibria and the data's ``h(0)``, times ``margin``).
        resolution: grid points per axis.
        horizon_factor: the basin flow runs to ``horizon_factor · T``.
        rho: PRoA level (``cfg.loss.rho``).
        capture_radius: an endpoint this close to ``c_i`` is in basin ``i`` (default: a
            quarter of the smallest distance between two equilibria).
        data: inputs ``x`` whose ``h(0) = features(x)`` should fit in the default extent.
    """
    C = _check_planar(model)
    model.eval()
    h_data = model.features(data) if data is not None else None
    if xlim is None or ylim is None:
        r = _default_limits(C, h_data, margin)
        xlim = xlim or (-r, r)
        ylim = ylim or (-r, r)
    xs = np.linspace(xlim[0], xlim[1], resolution)
    ys = np.linspace(ylim[0], ylim[1], resolution)
    gx, gy = np.meshgrid(xs, ys)
    H = torch.as_tensor(np.stack([gx.ravel(), gy.ravel()], 1), dtype=C.dtype, device=C.device)
    W = torch.cat([model.lyapunov(H[i:i + batch_size]) for i in range(0, len(H), batch_size)])
    T = float(model.ode.T)
    hT = flow(model, H, T, 2, batch_size)[-1]
    V_T = torch.cat([model.energy(hT[i:i + batch_size]) for i in range(0, len(H), batch_size)])
    horizon = horizon_factor * T
    end = flow(model, H, horizon, 2, batch_size)[-1]
    dist = torch.cdist(end, C)
    if capture_radius is None:
        pair = torch.cdist(C, C) + torch.eye(len(C), device=C.device) * 1e9
        capture_radius = 0.25 * float(pair.min()) if len(C) > 1 else float("inf")
    dmin, nearest = dist.min(1)
    basin = torch.where(dmin <= capture_radius, nearest, torch.full_like(nearest, -1))
    shape = (resolution, resolution)
    return BasinMap(xs=xs, ys=ys, lyapunov=W.reshape(*shape, -1).cpu().numpy(),
                    basin=basin.reshape(shape).cpu().numpy(),
                    decision=V_T.argmin(1).reshape(shape).cpu().numpy(),
                    equilibria=C.cpu().numpy(), endpoints=end.reshape(*shape, 2).cpu().numpy(),
                    rho=float(rho), horizon=horizon, capture_radius=float(capture_radius))


def _rgba(labels: np.ndarray, colors, alpha: np.ndarray | float) -> np.ndarray:
    img = np.zeros(labels.shape + (4,))
    grey = (0.55, 0.55, 0.55, 1.0)
    for k in np.unique(labels):
        img[labels == k] = colors[k] if k >= 0 else grey
    img[..., 3] = alpha
    return img


def plot_basins(model: nn.Module, path: str | Path,
                data: tuple[torch.Tensor, torch.Tensor] | None = None, *,
                rho: float = 0.9, resolution: int = 150, horizon_factor: float = 10.0,
                n_trajectories: int = 40, seed: int = 0, bmap: BasinMap | None = None,
                title: str | None = None) -> BasinMap:
    """Draw the two panels of the basin picture to ``path`` (PNG); return the :class:`BasinMap`.

    Left: true basins (light = aligned with the PRoA, dark = misaligned, grey = unconverged),
    PRoA boundaries ``W_i = ρ`` (solid), basin boundaries (dashed; the 0.5 level of each basin's
    indicator averaged over 3×3 cells, so single isolated cells draw no loop; the shading is
    exact), equilibria (stars) and
    ``n_trajectories`` trajectories ``h(t), t ∈ [0, horizon]`` from data points.  Right: the
    decision ``argmin_i V(h(T), c_i)`` over ``h(0)`` with the data's ``h(0)`` coloured by
    label.  ``data = (x, y)``: inputs in the model's input space and labels.
    """
    from matplotlib.lines import Line2D
    x, y = (data if data is not None else (None, None))
    bm = bmap or basin_map(model, resolution=resolution, horizon_factor=horizon_factor, rho=rho,
                           data=x)
    L = bm.num_classes
    colors = class_colors(L)
    extent = (bm.xs[0], bm.xs[-1], bm.ys[0], bm.ys[-1])
    fig, axes = new_figure(1, 2, panel=(6.0, 5.6))
    ax, ax2 = axes[0, 0], axes[0, 1]

    from scipy.ndimage import uniform_filter
    alpha = np.where(bm.misaligned, 0.62, 0.2)
    ax.imshow(_rgba(bm.basin, colors, alpha), origin="lower", extent=extent, interpolation="nearest")
    gx, gy = np.meshgrid(bm.xs, bm.ys)
    for k in range(L):
        Wk = bm.lyapunov[..., k]
        if Wk.min() < bm.rho < Wk.max():
            ax.contour(gx, gy, Wk, levels=[bm.rho], colors=[colors[k]], linewidths=2.2)
        ind = uniform_filter((bm.basin == k).astype(float), size=3, mode="nearest")
        if ind.min() < 0.5 < ind.max():     # 3x3 mean: isolated cells draw no loop
            ax.contour(gx, gy, ind, levels=[0.5], colors="k", linewidths=1.0, linestyles="--")
    if x is not None and n_trajectories > 0:
        g = torch.Generator().manual_seed(seed)
        pick = torch.randperm(len(x), generator=g)[:n_trajectories]
        with torch.no_grad():
            h0 = model.features(x[pick])
        traj = flow(model, h0, bm.horizon, 101).cpu().numpy()
        for j, lab in enumerate(y[pick].tolist()):
            ax.plot(traj[:, j, 0], traj[:, j, 1], "-", color=colors[lab], lw=0.9, alpha=0.9)
            ax.plot(traj[0, j, 0], traj[0, j, 1], "o", color=colors[lab], ms=3, mec="k", mew=0.4)
    C = bm.equilibria
    for a in (ax, ax2):
        for k in range(L):
            a.plot(C[k, 0], C[k, 1], "*", ms=15, color=colors[k], mec="k", mew=1.0)
        a.set_xlim(extent[0], extent[1])
        a.set_ylim(extent[2], extent[3])
        a.set_aspect("equal")
        a.set_xlabel("$h_1$")
        a.set_ylabel("$h_2$")
    s = bm.summary()
    aligned = "n/a" if s["aligned_fraction"] is None else f"{100 * s['aligned_fraction']:.1f}%"
    ax.set_title(f"PRoAs $W_i<\\rho$ (solid, ρ = {bm.rho:g}) vs true basins (dashed)\n"
                 f"aligned {aligned} of the PRoA area, overlap {100 * s['overlap_fraction']:.1f}%, "
                 f"horizon {bm.horizon:g}", fontsize=9)
    handles = [Line2D([], [], color="k", lw=2.2, label="PRoA boundary $W_i = \\rho$"),
               Line2D([], [], color="k", lw=1.0, ls="--", label="basin boundary of $f$"),
               Line2D([], [], color="0.3", lw=0.9, label=f"trajectory, $t \\in [0, {bm.horizon:g}]$"),
               Line2D([], [], ls="", marker="*", ms=11, color="w", mec="k", label="equilibrium $c_i$"),
               Line2D([], [], ls="", marker="s", ms=9, color=(0.5, 0.5, 0.8, 0.25), label="aligned"),
               Line2D([], [], ls="", marker="s", ms=9, color=(0.5, 0.5, 0.8, 0.7), label="misaligned")]
    ax.legend(handles=handles, fontsize=7, loc="lower left", framealpha=0.85)

    ax2.imshow(_rgba(bm.decision, colors, 0.28), origin="lower", extent=extent,
               interpolation="nearest")
    sub = f"decision $\\arg\\min_i V(h(T), c_i)$ for $h(0) = h$ (T = {float(model.ode.T):g})"
    if x is not None:
        with torch.no_grad():
            h0 = model.features(x).cpu().numpy()
            pred = model(x).argmax(1).cpu()
        acc = float((pred == y.cpu()).float().mean())
        for k in range(L):
            m = (y == k).cpu().numpy()
            ax2.scatter(h0[m, 0], h0[m, 1], s=7, color=colors[k], edgecolors="k", linewidths=0.2)
        sub += f"\ndata h(0) by label; accuracy {100 * acc:.1f}% (n = {len(y)})"
        bm.extra["accuracy"] = acc
    ax2.set_title(sub, fontsize=9)
    fig.suptitle(title or "Zubov-Net in the plane: prescribed vs true regions of attraction",
                 fontsize=11)
    save_png(fig, path)
    return bm
