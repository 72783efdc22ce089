"""Sampling the state space: boundary points (Algorithm 1), directions, counterexamples.

Everything here is batched over points and classes: one evaluation of ``W`` per iteration for
all directions of all sampled classes, no Python loop over directions.

``W_fn(points, cls) -> (N,)`` is the per-point Lyapunov value ``W_{cls}(point)`` (for Zubov-Net,
``model.lyapunov``); it must be radially increasing about ``c_cls`` (true for ``W = 1 − e^{−V}``
with ``V`` strongly convex and minimal at ``c``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

__all__ = ["BoundaryResult", "boundary_directions", "boundary_points", "radial_projection",
           "counterexamples"]

WFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass
class BoundaryResult:
    """Output of :func:`boundary_points` (``M`` directions)."""
    points: torch.Tensor      # (M, d)  c_cls + s q̂
    lengths: torch.Tensor     # (M,)    s
    values: torch.Tensor      # (M,)    W at the last evaluated point of each direction
    converged: torch.Tensor   # (M,)    bool, |W − ρ| ≤ ε
    cls: torch.Tensor         # (M,)    class of each direction
    iterations: int           # iterations run (≤ max_iters)


def boundary_directions(C: torch.Tensor, classes: torch.Tensor, variants: int = 20,
                        radius_max: float = 0.5, generator: torch.Generator | None = None
                        ) -> tuple[torch.Tensor, torch.Tensor]:
    """Search directions of SPEC §3 for every class in ``classes``.

    Primaries ``p = (c_j − c_i)/‖c_j − c_i‖`` for ``j ≠ i``; each is kept and augmented by
    ``variants`` random directions ``normalise(p + r u/‖u‖)``, ``r ~ U[0, radius_max]``,
    ``u ~ N(0, I)``.  ``C``: ``(L, d)``; ``classes``: ``(K,)`` long.
    Returns ``(directions (M, d), cls (M,))`` with ``M = K (L − 1)(variants + 1)``.
    """
    L, d = C.shape
    K = classes.numel()
    ci = C[classes].unsqueeze(1)                              # (K, 1, d)
    diff = C.unsqueeze(0) - ci                                # (K, L, d)
    others = torch.ones(K, L, dtype=torch.bool, device=C.device)
    others[torch.arange(K, device=C.device), classes] = False
    prim = torch.nn.functional.normalize(diff[others].view(K, L - 1, d), dim=-1)
    u = torch.randn(K, L - 1, variants, d, generator=generator, device=C.device, dtype=C.dtype)
    r = radius_max * torch.rand(K, L - 1, variants, 1, generator=generator, device=C.device,
                                dtype=C.dtype)
    var = torch.nn.functional.normalize(
        prim.unsqueeze(2) + r * torch.nn.functional.normalize(u, dim=-1), dim=-1)
    dirs = torch.cat([prim.unsqueeze(2), var], dim=2)           # (K, L-1, variants+1, d)
    cls = classes.view(K, 1, 1).expand(K, L - 1, variants + 1)
    return dirs.reshape(-1, d), cls.reshape(-1)


@torch.no_grad()
def boundary_points(W_fn: WFn, C: torch.Tensor, directions: torch.Tensor, cls: torch.Tensor,
                    rho: float = 0.9, tol: float = 1e-2, max_iters: int = 30,
                    init_step: float = 1.0, rule: str = "bisection") -> BoundaryResult:
    """Algorithm 1 (parallel boundary sampling): points ``c + s q̂`` with ``|W(c + s q̂) − ρ| ≤ ε``.

    Per direction keep a length ``s`` (init 0) and a signed step ``a`` (init ``init_step``);
    each iteration, on the active set only::

        s += a;  w = W(c + s q̂)
        M = +1 (w < ρ − ε), −1 (w > ρ + ε), 0 otherwise
        Λ = (|M + sign(a)| + 2) / 4;   a = |a| Λ M          (keep going, or halve and reverse)
        drop directions with M = 0

    ``rule="paper"`` applies that Λ literally.  ``rule="bisection"`` (default) applies it until
    the first reversal (the outward exploration) and ``Λ = ½`` at every iteration after it, so
    that once the level set is bracketed each evaluation is the midpoint of the bracket.  The
    literal rule keeps the step after a move in the same direction, which re-evaluates points
    already known to lie on one side and needs up to twice as many iterations; both return a
    point with ``|W − ρ| ≤ ε``.

    ``directions``: ``(M, d)`` unit vectors; ``cls``: ``(M,)`` class of each (``c = C[cls]``).
    With ``W`` radially increasing and ``rule="bisection"``, a direction whose boundary lies
    within the first step converges after at most ``⌈log₂(init_step · Lip / ε)⌉ + 1`` iterations
    (``Lip``: the slope of ``W`` along the ray).
    """
    if rule not in ("bisection", "paper"):
        raise ValueError(f"rule must be 'bisection' or 'paper', got {rule!r}")
    M = directions.shape[0]
    dev, dt = directions.device, directions.dtype
    s = torch.zeros(M, device=dev, dtype=dt)
    a = torch.full((M,), float(init_step), device=dev, dtype=dt)
    values = torch.full((M,), float("nan"), device=dev, dtype=dt)
    active = torch.ones(M, dtype=torch.bool, device=dev)
    bracketed = torch.zeros(M, dtype=torch.bool, device=dev)
    centres = C[cls].to(dt)
    it = 0
    for it in range(1, max_iters + 1):
        idx = active.nonzero().squeeze(1)
        if idx.numel() == 0:
            it -= 1
            break
        s[idx] += a[idx]
        w = W_fn(centres[idx] + s[idx, None] * directions[idx], cls[idx]).to(dt)
        m = (w < rho - tol).to(dt) - (w > rho + tol).to(dt)
        lam = ((m + torch.sign(a[idx])).abs() + 2.0) / 4.0
        if rule == "bisection":
            br = bracketed[idx] | (lam == 0.5)
            bracketed[idx] = br
            lam = torch.where(br, torch.full_like(lam, 0.5), lam)
        a[idx] = a[idx].abs() * lam * m
        values[idx] = w
        active[idx] = m != 0
    return BoundaryResult(points=centres + s[:, None] * directions, lengths=s, values=values,
                          converged=~active, cls=cls, iterations=it)


@torch.no_grad()
def radial_projection(W_fn: WFn, C: torch.Tensor, points: torch.Tensor, cls: torch.Tensor,
                      rho: float = 0.9, iters: int = 20) -> torch.Tensor:
    """Project ``points`` into ``{W_cls ≤ ρ}`` radially toward ``c_cls`` (batched bisection).

    Points already inside are returned unchanged; for the others, bisection on
    ``t ∈ [0, 1]`` along ``c + t (p − c)`` keeps the inner end ``lo`` (``W ≤ ρ`` by invariant),
    so every returned point satisfies ``W_cls ≤ ρ`` exactly.
    """
    out = points.clone()
    outside = W_fn(points, cls) > rho
    if not bool(outside.any()):
        return out
    p, k = points[outside], cls[outside]
    c = C[k].to(points.dtype)
    lo = torch.zeros(p.shape[0], 1, device=p.device, dtype=p.dtype)
    hi = torch.ones_like(lo)
    for _ in range(iters):
        mid = (lo + hi) / 2
        inside = (W_fn(c + mid * (p - c), k) <= rho).unsqueeze(1)
        lo = torch.where(inside, mid, lo)
        hi = torch.where(inside, hi, mid)
    out[outside] = c + lo * (p - c)
    return out


def counterexamples(l_con_fn: WFn, W_fn: WFn, C: torch.Tensor, states: torch.Tensor,
                    cls: torch.Tensor, steps: int = 5, step_size: float = 1.2, rho: float = 0.9,
                    projection_iters: int = 20) -> torch.Tensor:
    """States of ``D_{W_y} = {W_y ≤ ρ}`` where the Zubov residual is large (SPEC §2).

    From each state (first projected into the region), ``steps`` iterations of projected
    gradient **ascent** on ``l_con^y``::

        h ← Proj_{D_{W_y}}( h + η ∇l_con / ‖∇l_con‖ )

    keeping, per point, the iterate with the largest ``l_con`` seen (so the result never has a
    smaller ``l_con`` than its projected start).  ``l_con_fn(h, cls) -> (N,)``.  Returns detached
    ``(N, d)`` points inside the region.  Gradients are taken w.r.t. the states only.
    """
    h = radial_projection(W_fn, C, states.detach(), cls, rho, projection_iters)
    best = h.clone()
    best_val = torch.full((h.shape[0],), -float("inf"), device=h.device, dtype=h.dtype)
    for step in range(steps + 1):
        with torch.enable_grad():
            x = h.detach().requires_grad_(step < steps)
            val = l_con_fn(x, cls)
            grad = torch.autograd.grad(val.sum(), x)[0] if step < steps else None
        val = val.detach()
        better = val > best_val
        best = torch.where(better.unsqueeze(1), h, best)
        best_val = torch.where(better, val, best_val)
        if grad is None:
            break
        g = grad / grad.norm(dim=1, keepdim=True).clamp_min(1e-12)
        h = radial_projection(W_fn, C, h + step_size * g, cls, rho, projection_iters)
    return best.detach()
