"""Zubov consistency and boundary separation (paper §III-B, eqs. (9) and (11)).

Zubov's equation for the region of attraction ``D`` of an equilibrium ``c`` reads
``∇W(h)·f(h) = −Φ(h)(1 − W(h))`` with ``W < 1`` exactly on ``D``.  With ``W = 1 − e^{−V}``,
``∇W = e^{−V}∇V`` and ``1 − W = e^{−V}``, so the pointwise residual is

    ∇W·f + Φ(1 − W) = e^{−V} (∇V·f + Φ)

and ``l_con = e^{−2V}(∇V·f + Φ)²``, computed in that form with ``∇V·f`` by forward-mode AD.
"""
from __future__ import annotations

import math
from typing import Callable

import torch

__all__ = ["directional_derivative", "zubov_phi", "zubov_residual", "consistency_loss",
           "separation_loss", "zubov_target", "trajectory_target_loss", "inside_loss",
           "lipschitz_penalty"]


def directional_derivative(fn: Callable[[torch.Tensor], torch.Tensor], h: torch.Tensor,
                           v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(V(h), ∇V(h)·v)`` for a per-point scalar ``V = fn(h)`` (``h``: ``(N, d)`` → ``(N,)``).

    One forward-mode JVP (``torch.func.jvp``), no Jacobian.  The result stays differentiable
    by reverse mode w.r.t. ``h``, ``v`` and any parameter ``fn`` closes over.
    """
    return torch.func.jvp(fn, (h,), (v,))


def zubov_phi(h: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """``Φ(h) = ‖h − c‖²`` (positive definite about ``c``); ``h, c``: ``(N, d)`` → ``(N,)``."""
    return (h - c).pow(2).sum(-1)


def zubov_residual(V: torch.Tensor, V_dot: torch.Tensor, phi: torch.Tensor) -> torch.Tensor:
    """``r = e^{−V}(V̇ + Φ) = ∇W·f + Φ(1 − W)``: zero where Zubov's equation holds."""
    return torch.exp(-V) * (V_dot + phi)


def consistency_loss(V: torch.Tensor, V_dot: torch.Tensor, phi: torch.Tensor,
                     inequality: bool = False, weight: str = "zubov") -> torch.Tensor:
    """Pointwise Zubov consistency ``l_con = e^{−2V}(∇V·f + Φ)²``, shape of ``V``.

    ``inequality=True`` is the relaxed variant ``e^{−2V} relu(∇V·f + Φ)²`` of
    ``∇W·f ≤ −Φ(1 − W)`` (paper Table V, "Ineq").  ``weight="uniform"`` drops the factor
    ``e^{−2V} = (1 − W)²``: ``(∇V·f + Φ)²`` is the residual of the same equation written for
    ``V`` (``V̇ = −Φ``), with the same zero set, but it does not fade to ``(1 − ρ)² = 0.01`` at
    the boundary of the region (``docs/alignment.md``).
    """
    r = V_dot + phi
    if inequality:
        r = torch.relu(r)
    if weight == "uniform":
        return r * r
    if weight != "zubov":
        raise ValueError(f"consistency weight must be 'zubov' or 'uniform', got {weight!r}")
    return torch.exp(-2.0 * V) * r * r


def separation_loss(W_beta: torch.Tensor, cls: torch.Tensor) -> torch.Tensor:
    """``L_sep = mean_{i,j} Σ_{k≠i} −W_k^β(h_j^(i))``.

    ``W_beta``: ``(M, L)`` values ``W_k^β`` at boundary points ``h_j^(i)`` of ``D_{W_i}``
    (detached points: gradients reach ``θ_W`` only); ``cls``: ``(M,)`` their class ``i``.
    Minimising it raises every foreign ``V_k`` on the boundary of ``D_{W_i}``.
    """
    if W_beta.shape[0] == 0:
        return W_beta.sum() * 0.0
    foreign = torch.ones_like(W_beta).scatter_(1, cls.unsqueeze(1), 0.0)
    return -(W_beta * foreign).sum(1).mean()


@torch.no_grad()
def zubov_target(field: Callable[[torch.Tensor], torch.Tensor], h: torch.Tensor, c: torch.Tensor,
                 horizon: float, method: str = "dopri5", rtol: float = 0.1, atol: float = 0.1
                 ) -> torch.Tensor:
    """Zubov's solution along the flow: ``W*(h) = 1 − exp(−∫_0^H Φ(h(t)) dt)``, ``Φ = ‖h − c‖²``.

    With ``W = 1 − e^{−V}``, Zubov's equation ``∇W·f = −Φ(1 − W)`` reads ``V̇ = −Φ`` along
    trajectories, so its solution is ``V*(h) = ∫_0^∞ Φ(h(t)) dt`` — finite exactly on the basin
    of ``c`` — truncated here at ``H``.  ``h, c``: ``(N, d)``; integrated as the augmented state
    ``(h, v)`` with ``v̇ = Φ(h)`` (no gradient).  Returns ``W* (N,)``.
    """
    from torchdiffeq import odeint

    def aug(_t, z):
        x = z[:, :-1]
        return torch.cat([field(x), (x - c).pow(2).sum(-1, keepdim=True)], dim=1)

    z0 = torch.cat([h, torch.zeros_like(h[:, :1])], dim=1)
    t = torch.tensor([0.0, float(horizon)], dtype=h.dtype, device=h.device)
    zH = odeint(aug, z0, t, rtol=rtol, atol=atol, method=method)[-1]
    return -torch.expm1(-zH[:, -1].clamp_min(0.0))


def trajectory_target_loss(W: torch.Tensor, W_target: torch.Tensor) -> torch.Tensor:
    """``mean (W(h) − W*(h))²``: the Lyapunov function matches Zubov's solution along the
    flow at sampled states (``W_target`` from :func:`zubov_target`, detached)."""
    return (W - W_target.detach()).pow(2).mean()


def inside_loss(V_y: torch.Tensor, rho: float, margin: float, form: str = "V",
                weight: torch.Tensor | None = None) -> torch.Tensor:
    """The data inside their own region: ``W_y(h(0)) ≤ ρ − m`` as a hinge, averaged over the
    batch (``weight``: ``(B,)`` 0/1 per point, e.g. the correctly classified ones; the mean is
    still over all ``B``, so the term grows with the share it applies to).

    ``form="V"``: ``relu(V_y − V_m)`` with ``V_m = −ln(1 − ρ + m)`` (the same constraint on
    ``V``; its gradient ``∇V_y`` does not fade far outside the region); ``form="W"``:
    ``relu(W_y − (ρ − m))`` (gradient ``e^{−V_y}∇V_y``, vanishing where ``V_y`` is large).
    ``V_y``: ``(B,)`` energies of each point's own class at ``h(0)``."""
    level = rho - margin
    if not 0.0 < level < 1.0:
        raise ValueError(f"the target level rho - margin must lie in (0, 1), got {level:g}")
    if form == "V":
        hinge = torch.relu(V_y - (-math.log1p(-level)))
    elif form == "W":
        hinge = torch.relu(-torch.expm1(-V_y) - level)
    else:
        raise ValueError(f"inside form must be 'V' or 'W', got {form!r}")
    return (hinge if weight is None else hinge * weight).mean()


def lipschitz_penalty(bound: torch.Tensor, target: float) -> torch.Tensor:
    """``mean_k relu(L̂_k − target)``: the per-class gradient bound ``L̂`` of the convex network
    (the certificate's own, differentiable) pushed below ``target``."""
    return torch.relu(bound - target).mean()
