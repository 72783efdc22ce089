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
           "counterexamples", "region_points"]

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
    """Search directions of Algorithm 1 for every class in ``classes``, as the paper's §IV-A
    ("Training Details") constructs them.

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
    point with ``|W − ρ| ≤ ε``.  ``rule="secant"`` finds the same crossing by a safeguarded
    secant search on ``√V = √(−ln(1 − W))``, which is close to linear along the ray (``V`` grows
    like ``s²``): from ``s = init_step`` it extrapolates ``√V`` linearly until the level set is
    bracketed, then takes Illinois secant steps inside the bracket; every evaluated point keeps
    the bracket valid and the same stopping rule ``|W − ρ| ≤ ε`` applies (typically 3–4
    evaluations instead of 8–14).

    ``directions``: ``(M, d)`` unit vectors; ``cls``: ``(M,)`` class of each (``c = C[cls]``).
    With ``W`` radially increasing and ``rule="bisection"``, a direction whose boundary lies
    within the first step converges after at most ``⌈log₂(init_step · Lip / ε)⌉ + 1`` iterations
    (``Lip``: the slope of ``W`` along the ray).
    """
    if rule not in ("bisection", "paper", "secant"):
        raise ValueError(f"rule must be 'bisection', 'paper' or 'secant', got {rule!r}")
    if rule == "secant":
        return _boundary_secant(W_fn, C, directions, cls, rho, tol, max_iters, init_step)
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


def _root_v(w: torch.Tensor) -> torch.Tensor:
    """``√V = √(−ln(1 − W))`` with ``W`` clamped below 1 (float saturation far outside)."""
    w = w.clamp(0.0, 1.0 - 1e-7)
    return (-torch.log1p(-w)).clamp_min(0.0).sqrt()


def _boundary_secant(W_fn: WFn, C: torch.Tensor, directions: torch.Tensor, cls: torch.Tensor,
                     rho: float, tol: float, max_iters: int, init_step: float) -> BoundaryResult:
    """``boundary_points(rule="secant")`` (see there)."""
    M = directions.shape[0]
    dev, dt = directions.device, directions.dtype
    centres = C[cls].to(dt)
    target = float(_root_v(torch.tensor(rho, dtype=torch.float64)))
    lo = torch.zeros(M, device=dev, dtype=dt)
    f_lo = torch.full((M,), -target, device=dev, dtype=dt)
    hi = torch.full((M,), float("inf"), device=dev, dtype=dt)
    f_hi = torch.full((M,), float("inf"), device=dev, dtype=dt)
    last = torch.zeros(M, device=dev, dtype=dt)
    s = torch.full((M,), float(init_step), device=dev, dtype=dt)
    values = torch.full((M,), float("nan"), device=dev, dtype=dt)
    active = torch.ones(M, dtype=torch.bool, device=dev)
    it = 0
    for it in range(1, max_iters + 1):
        idx = active.nonzero().squeeze(1)
        if idx.numel() == 0:
            it -= 1
            break
        l, h, fl, fh, ls = lo[idx], hi[idx], f_lo[idx], f_hi[idx], last[idx]
        if it == 1:
            t = s[idx]
        else:
            open_ = torch.isinf(h)
            # not yet bracketed: extrapolate √V linearly through (0, 0) and (lo, √V(lo))
            grow = l * target / (fl + target).clamp_min(1e-12) * 1.05
            grow = torch.where(grow > 2 * l, grow, 2 * l)          # at least double
            grow = torch.minimum(grow, 16 * l.clamp_min(1e-6))
            sec = (l * fh - h * fl) / (fh - fl).clamp_min(1e-12)
            sec = torch.where((sec > l) & (sec < h), sec, (l + h) / 2)
            t = torch.where(open_, grow, sec)
        w = W_fn(centres[idx] + t.unsqueeze(1) * directions[idx], cls[idx]).to(dt)
        values[idx] = w
        s[idx] = t
        ft = _root_v(w) - target
        done = (w >= rho - tol) & (w <= rho + tol)
        inside = w < rho
        fh = torch.where(inside & (ls > 0) & torch.isfinite(fh), fh / 2, fh)   # Illinois
        fl = torch.where(~inside & (ls < 0), fl / 2, fl)
        lo[idx], f_lo[idx] = torch.where(inside, t, l), torch.where(inside, ft.clamp_max(0), fl)
        hi[idx], f_hi[idx] = torch.where(inside, h, t), torch.where(inside, fh,
                                                                    ft.clamp_min(1e-12))
        last[idx] = torch.where(inside, torch.ones_like(ls), -torch.ones_like(ls))
        active[idx] = ~done
    return BoundaryResult(points=centres + s[:, None] * directions, lengths=s, values=values,
                          converged=~active, cls=cls, iterations=it)


@torch.no_grad()
def radial_projection(W_fn: WFn, C: torch.Tensor, points: torch.Tensor, cls: torch.Tensor,
                      rho: float = 0.9, iters: int = 20, method: str = "bisection",
                      tol: float = 2.0 ** -20) -> torch.Tensor:
    """Project ``points`` into ``{W_cls ≤ ρ}`` radially toward ``c_cls`` (batched).

    Points already inside are returned unchanged; for the others the crossing ``t*`` of
    ``W(c + t (p − c)) = ρ`` on ``t ∈ [0, 1]`` is bracketed by ``[lo, hi]`` with ``W(lo) ≤ ρ <
    W(hi)``; the inner end ``lo`` is returned, so every returned point satisfies ``W_cls ≤ ρ``
    exactly.

    ``method="bisection"`` halves the bracket ``iters`` times (the reference).
    ``method="secant"`` uses that ``V = −ln(1 − W)`` grows like ``t²`` along the ray (it is
    ``≥ δ t²‖p − c‖²`` and strongly convex): each iteration takes the secant step of ``√V``
    across the bracket — exact when ``V`` is quadratic along the ray — and every evaluated point
    replaces the end of the bracket on its side, so the bracket stays valid whatever ``V`` does;
    an end kept twice in a row has its value halved (the Illinois rule), which keeps the
    convergence superlinear where plain regula falsi would stall.  A point stops when its bracket
    is narrower than ``tol`` (``2⁻²⁰``, the width of 20 bisections) or ``√V(lo)`` is within a
    relative ``10⁻⁶`` of ``√v*``; at most ``iters`` iterations.
    """
    if method not in ("bisection", "secant"):
        raise ValueError(f"projection method must be 'bisection' or 'secant', got {method!r}")
    out = points.clone()
    W0 = W_fn(points, cls)
    outside = W0 > rho
    if not bool(outside.any()):
        return out
    p, k = points[outside], cls[outside]
    c = C[k].to(points.dtype)
    lo = torch.zeros(p.shape[0], 1, device=p.device, dtype=p.dtype)
    hi = torch.ones_like(lo)
    if method == "bisection":
        for _ in range(iters):
            mid = (lo + hi) / 2
            inside = (W_fn(c + mid * (p - c), k) <= rho).unsqueeze(1)
            lo = torch.where(inside, mid, lo)
            hi = torch.where(inside, hi, mid)
        out[outside] = c + lo * (p - c)
        return out

    def root_v(w: torch.Tensor) -> torch.Tensor:   # √V with W clamped below 1 (float saturation)
        w = w.clamp(0.0, 1.0 - 1e-7)
        return (-torch.log1p(-w)).clamp_min(0.0).sqrt().unsqueeze(1)

    target = float(root_v(torch.tensor([rho], dtype=p.dtype)))
    f_lo = torch.full_like(lo, -target)             # √V − √v* at the ends (< 0 inside)
    f_hi = root_v(W0[outside]) - target
    last = torch.zeros_like(lo)                     # +1: lo moved last, −1: hi moved last
    active = torch.ones(p.shape[0], dtype=torch.bool, device=p.device)
    for _ in range(iters):
        idx = active.nonzero().squeeze(1)
        if idx.numel() == 0:
            break
        l, h, fl, fh, ls = lo[idx], hi[idx], f_lo[idx], f_hi[idx], last[idx]
        t = (l * fh - h * fl) / (fh - fl).clamp_min(1e-12)
        t = torch.where((t > l) & (t < h), t, (l + h) / 2)
        w = W_fn(c[idx] + t * (p[idx] - c[idx]), k[idx])
        inside = (w <= rho).unsqueeze(1)            # the invariant is decided on W itself
        ft = torch.where(inside, (root_v(w) - target).clamp_max(0.0),
                         (root_v(w) - target).clamp_min(1e-12))
        # Illinois: an end kept twice in a row has its value halved, so the next secant moves it
        fh = torch.where(inside & (ls > 0), fh / 2, fh)
        fl = torch.where(~inside & (ls < 0), fl / 2, fl)
        lo[idx], f_lo[idx] = torch.where(inside, t, l), torch.where(inside, ft, fl)
        hi[idx], f_hi[idx] = torch.where(inside, h, t), torch.where(inside, fh, ft)
        last[idx] = torch.where(inside, torch.ones_like(ls), -torch.ones_like(ls))
        done = ((hi[idx] - lo[idx]) <= tol) | (f_lo[idx] >= -1e-6 * target)
        active[idx] = ~done.squeeze(1)
    out[outside] = c + lo * (p - c)
    # W of one point can differ in the last bit between batches of different shapes: re-check
    # the returned points as one batch and pull the few at W > ρ inward.
    for _ in range(8):
        bad = W_fn(out[outside], k) > rho
        if not bool(bad.any()):
            break
        lo = torch.where(bad.unsqueeze(1), lo * (1 - 1e-5), lo)
        out[outside] = c + lo * (p - c)
    return out


def counterexamples(l_con_fn: WFn, W_fn: WFn, C: torch.Tensor, states: torch.Tensor,
                    cls: torch.Tensor, steps: int = 5, step_size: float = 1.2, rho: float = 0.9,
                    projection_iters: int = 20, projection: str = "bisection") -> torch.Tensor:
    """States of ``D_{W_y} = {W_y ≤ ρ}`` where the Zubov residual is large (paper Algorithm 2,
    lines 8–14; the region ``{W_y ≤ ρ}`` is the project's choice, see docs/design.md).

    From each state (first projected into the region), ``steps`` iterations of projected
    gradient **ascent** on ``l_con^y``::

        h ← Proj_{D_{W_y}}( h + η ∇l_con / ‖∇l_con‖ )

    keeping, per point, the iterate with the largest ``l_con`` seen (so the result never has a
    smaller ``l_con`` than its projected start).  ``l_con_fn(h, cls) -> (N,)``.  Returns detached
    ``(N, d)`` points inside the region.  Gradients are taken w.r.t. the states only.
    """
    h = radial_projection(W_fn, C, states.detach(), cls, rho, projection_iters, projection)
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
        h = radial_projection(W_fn, C, h + step_size * g, cls, rho, projection_iters, projection)
    return best.detach()


@torch.no_grad()
def region_points(W_fn: WFn, C: torch.Tensor, cls: torch.Tensor, rho: float = 0.9,
                  generator: torch.Generator | None = None, tol: float = 1e-2,
                  max_iters: int = 30, radius_power: float | None = None,
                  rule: str = "bisection"
                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Points inside ``D_{W_y} = {W_y < ρ}``, one per entry of ``cls``, spread over the region::

        h = c_y + u^{1/p} s*(q) q,    q uniform on the unit sphere,  u ~ U(0, 1)

    ``s*(q)``: the boundary radius along ``q`` by Algorithm 1 (:func:`boundary_points`, to
    ``|W − ρ| ≤ tol``, with ``rule``); ``p = radius_power`` (default ``d``: the radial law of a uniform point
    of a ball, so most points lie near the boundary in high dimension).  Points a boundary
    tolerance leaves at ``W ≥ ρ`` are projected radially inside.  ``cls``: ``(N,)`` long.
    Returns ``(points (N, d), radius_fraction u^{1/p} (N,), boundary_converged (N,))``.
    """
    d = C.shape[1]
    dev, dt = C.device, C.dtype
    q = torch.randn(cls.numel(), d, generator=generator, device=generator.device
                    if generator is not None else None, dtype=dt).to(dev)
    q = torch.nn.functional.normalize(q, dim=1)
    res = boundary_points(W_fn, C, q, cls, rho, tol, max_iters, init_step=1.0, rule=rule)
    u = torch.rand(cls.numel(), generator=generator, device=generator.device
                   if generator is not None else None, dtype=dt).to(dev)
    frac = u.pow(1.0 / float(radius_power if radius_power is not None else d))
    pts = C[cls] + (frac * res.lengths).unsqueeze(1) * q
    pts = radial_projection(W_fn, C, pts, cls, rho * (1.0 - 1e-6), iters=40)
    return pts, frac, res.converged
