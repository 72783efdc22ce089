"""PRoA–RoA alignment in any dimension: does every point of ``{W_y < ρ}`` flow to ``c_y``?

The paper's claim of *aligned stability* (Propositions 3–5) is that each prescribed region of
attraction ``D_{W_y} = {h : W_y(h) < ρ}`` lies inside the true basin of ``c_y`` under the
learned flow ``dh/dt = f(h)``.  :func:`alignment_report` measures it for a trained model::

    rep = alignment_report(model, rho=cfg.loss.rho, x=X_test, y=Y_test)
    rep["horizons"]["10T"]["aligned"]     # AR(ρ, 10T, τ)

**Alignment rate** ``AR(ρ, H, τ)`` (the definition is fixed, ``docs/alignment.md``): for each
class ``y`` (all, or a seeded subset of ``K``), ``N`` points

    h = c_y + u^{1/d} s*(q) q,     q uniform on the unit sphere,  u ~ U(0, 1)

with ``s*(q)`` the boundary radius of ``D_{W_y}`` along ``q`` found by Algorithm 1
(:func:`zubovnet.sampling.boundary_points`) — so ``h`` is uniform in the star-shaped region
in the radial sense.  Each is flowed by the model's own field at its evaluation tolerance
(adaptive solver, with the error norm taken **per point**, so no sample rides on the accuracy of
the others) to ``H ∈ {T, 3T, 10T}``; aligned iff ``‖h(H) − c_y‖ ≤ τ`` with
``τ = ¼ min_{i≠j} ‖c_i − c_j‖``.

Reported beside it, per horizon: the *nearest* variant (``argmin_k ‖h(H) − c_k‖ = y``), the
share still inside ``D_{W_y}`` (forward invariance), the mean distance to ``c_y``, and AR per
shell of ``W_y`` (equal-width bins of ``[0, ρ)``); once per model: ``max_i`` / ``mean_i
‖f(c_i)‖``, the largest real part of an eigenvalue of ``∂f/∂h(c_i)`` (a positive value means
``c_i`` repels), the share of samples with ``V̇_y = ∇V_y·f < 0``, and — from test data — the
trajectory-containment rate of Proposition 5 and the mean ``dW_y/dt`` along trajectories of
Table V — and the reverse inclusion (:func:`reverse_inclusion`): of the correctly classified
test points, the share whose ``h(0)`` (and ``h(T)``) lies in their own region, and of the test
points whose ``h(0)`` flows to ``c_y`` by ``10T``, the share that starts in the region — PRoA ⊂
RoA is what AR measures, RoA ⊂ PRoA (Proposition 3's other half) is what this measures.

Input contract: ``model`` exposes ``equilibria (L, d)``, ``energy(h, cls) -> (N,)``,
``lyapunov(h, cls) -> (N,)``, an autonomous ``dynamics.field(h)`` and an ``ode``
(:class:`~zubovnet.models.ODEBlock`) whose solver and evaluation tolerances are used; with
``x, y`` also ``trajectory(x) -> (Γ+1, B, d)``.  A Zubov-Net meets it; so does any model with
equilibria and a Lyapunov function.
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from typing import Callable

import torch
from torch import nn
from torchdiffeq import odeint

from ..sampling import region_points

__all__ = ["AlignmentSettings", "AlignmentError", "check_alignment_model", "proa_samples",
           "flow_states", "capture_radius", "equilibrium_diagnostics", "trajectory_containment",
           "separation_diagnostics", "reverse_inclusion", "alignment_report"]


class AlignmentError(TypeError):
    """The model does not meet the alignment metric's input contract."""


@dataclass
class AlignmentSettings:
    """Every constant of the alignment metric (``docs/alignment.md``)."""
    n_per_class: int = 200            # N points sampled inside each PRoA
    classes: int | None = None        # K classes drawn with ``seed`` (None: all L)
    horizons: tuple = (1.0, 3.0, 10.0)  # H as multiples of the model's T
    rho: float | None = None          # PRoA level; None: the model's training ρ (else 0.9)
    tau_fraction: float = 0.25        # τ = tau_fraction · min_{i≠j} ‖c_i − c_j‖ (fixed: ¼)
    shells: int = 5                   # equal-width bins of W_y in [0, ρ)
    boundary_tol: float = 1e-4        # ε of Algorithm 1 (on W) for the boundary radius s*(q)
    boundary_max_iters: int = 80      # n of Algorithm 1
    per_point_norm: bool = True       # adaptive-step error norm per point (not over the batch)
    batch_size: int = 2048            # points per solve
    seed: int = 0                     # directions, radii and the class subset


def check_alignment_model(model: nn.Module) -> None:
    """Raise :class:`AlignmentError` (one line) unless ``model`` meets the input contract."""
    missing = [a for a in ("equilibria", "energy", "lyapunov", "dynamics", "ode")
               if not hasattr(model, a)]
    if missing:
        raise AlignmentError(
            f"the alignment suite needs a model with equilibria and a Lyapunov function "
            f"({type(model).__name__} lacks {', '.join(missing)})")
    if getattr(model.dynamics, "modulated", False):
        raise AlignmentError(f"{type(model).__name__}'s field depends on the input (feature "
                             "modulation); the alignment suite needs an autonomous field f(h)")


def _W_fn(model: nn.Module) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    return lambda p, k: model.lyapunov(p, k)


def capture_radius(C: torch.Tensor, fraction: float = 0.25) -> float:
    """``τ = fraction · min_{i≠j} ‖c_i − c_j‖`` (``inf`` for a single class)."""
    if C.shape[0] < 2:
        return float("inf")
    D = torch.cdist(C.double(), C.double()) + torch.eye(C.shape[0], dtype=torch.float64) * 1e30
    return fraction * float(D.min())


@torch.no_grad()
def proa_samples(model: nn.Module, classes: torch.Tensor, n_per_class: int, rho: float,
                 generator: torch.Generator, tol: float = 1e-4, max_iters: int = 80):
    """``N`` points per class inside ``D_{W_y}``: ``h = c_y + u^{1/d} s*(q) q``.

    ``q`` uniform on the sphere, ``s*(q)`` the boundary radius along ``q`` (Algorithm 1 to
    ``|W − ρ| ≤ tol``), ``u ~ U(0, 1)``.  The few points a boundary tolerance leaves at
    ``W ≥ ρ`` are projected radially inside.  Returns ``(points (M, d), cls (M,),
    W (M,), radius_fraction (M,), boundary_converged (M,))`` with ``M = K N``.
    """
    C = model.equilibria.detach()
    cls = classes.to(C.device).repeat_interleave(n_per_class)
    W_fn = _W_fn(model)
    pts, frac, conv = region_points(W_fn, C, cls, rho, generator, tol, max_iters)
    return pts, cls, W_fn(pts, cls), frac, conv


def _per_point_rms_max(y: torch.Tensor) -> torch.Tensor:
    """Error norm of the adaptive solver: the worst per-point RMS (every point meets the tolerance)."""
    if y.dim() < 2:
        return y.pow(2).mean().sqrt()
    return y.pow(2).mean(-1).sqrt().max()


@torch.no_grad()
def flow_states(model: nn.Module, h0: torch.Tensor, times: torch.Tensor,
                per_point_norm: bool = True, batch_size: int = 2048
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """``h(t)`` for ``t ∈ times`` from ``h0 (N, d)`` under ``f``, with the model's solver at its
    evaluation tolerance: ``(len(times), N, d)`` and a bool ``(N,)`` of points whose solve failed
    (their states are NaN; a failure is counted as not aligned).

    A batch whose solve fails (step underflow, step budget) is split in halves down to single
    points, so one stiff trajectory does not void the others.
    """
    ode = model.ode
    f = model.dynamics
    rtol, atol = ode.rtol_eval, ode.atol_eval
    method = ode.solver
    options: dict = {}
    from ..models.ode import is_adaptive, is_fixed_grid
    if is_adaptive(method):
        options["max_num_steps"] = ode.max_num_steps
        if per_point_norm:
            options["norm"] = _per_point_rms_max
    elif ode.step_size is not None and is_fixed_grid(method):
        options["step_size"] = ode.step_size
    fn = lambda t, h: f.field(h)   # noqa: E731  (autonomous; no NFE bookkeeping)
    t = times.to(h0.device, h0.dtype)
    out = torch.full((len(t),) + tuple(h0.shape), float("nan"), device=h0.device, dtype=h0.dtype)
    failed = torch.zeros(h0.shape[0], dtype=torch.bool, device=h0.device)

    def solve(lo: int, hi: int) -> None:
        try:
            traj = odeint(fn, h0[lo:hi], t, rtol=rtol, atol=atol, method=method, options=options)
            if not bool(torch.isfinite(traj).all()):
                raise FloatingPointError("non-finite state")
            out[:, lo:hi] = traj
        except (AssertionError, RuntimeError, FloatingPointError):
            if hi - lo == 1:
                failed[lo] = True
                return
            mid = (lo + hi) // 2
            solve(lo, mid)
            solve(mid, hi)

    for i in range(0, h0.shape[0], batch_size):
        solve(i, min(i + batch_size, h0.shape[0]))
    return out, failed


def equilibrium_diagnostics(model: nn.Module) -> dict:
    """``‖f(c_i)‖`` and the spectrum of the Jacobian ``J_i = ∂f/∂h(c_i)`` per class.

    ``max_re_eig``: ``max Re λ(J_i)`` (> 0: ``c_i`` is not locally attracting even if
    ``f(c_i) = 0``); ``max_sym_eig``: ``λ_max(½(J_i + J_iᵀ))`` (< 0: the flow contracts
    distances near ``c_i``).
    """
    C = model.equilibria.detach()
    field_fn = model.dynamics.field
    with torch.no_grad():
        fc = field_fn(C)
    with torch.enable_grad():   # reverse mode per class: also for fields that differentiate inside
        J = torch.stack([torch.autograd.functional.jacobian(
            lambda h: field_fn(h.unsqueeze(0)).squeeze(0), c) for c in C])
    J = J.detach().double()
    eig = torch.linalg.eigvals(J)
    sym = torch.linalg.eigvalsh(0.5 * (J + J.transpose(1, 2)))
    norms = fc.norm(dim=1)
    re = eig.real.max(dim=1).values
    return {"f_norm": norms.tolist(), "max_f_norm": float(norms.max()),
            "mean_f_norm": float(norms.mean()), "max_re_eig": re.tolist(),
            "max_re_eig_max": float(re.max()), "max_sym_eig": sym[:, -1].tolist(),
            "max_sym_eig_max": float(sym[:, -1].max())}


def _lyapunov_derivative(model: nn.Module, h: torch.Tensor, cls: torch.Tensor,
                         batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(V_y(h), V̇_y(h) = ∇V_y·f)`` per point, by one JVP per batch."""
    from ..losses import directional_derivative
    Vs, Vds = [], []
    for i in range(0, h.shape[0], batch_size):
        hb, cb = h[i:i + batch_size].detach(), cls[i:i + batch_size]
        with torch.no_grad():
            fb = model.dynamics.field(hb)
        V, Vd = directional_derivative(lambda z: model.energy(z, cb), hb, fb)
        Vs.append(V.detach())
        Vds.append(Vd.detach())
    return torch.cat(Vs), torch.cat(Vds)


def trajectory_containment(model: nn.Module, x: torch.Tensor, y: torch.Tensor, rho: float,
                           batch_size: int = 256) -> dict:
    """Proposition 5 on test data, and the mean ``dW_y/dt`` along trajectories (Table V).

    For each test point the trajectory ``h(t_0..t_Γ)`` of the model (eval mode); *correct*:
    ``argmin_k V_k(h(T)) = y``; *terminal in PRoA*: ``W_y(h(T)) < ρ``; *contained*: every
    ``W_y(h(t_i)) < ρ``.  ``containment_rate`` = contained / (correct and terminal in PRoA) —
    the share for which Proposition 5's conclusion holds where its premise does.
    ``mean_dW_dt``: mean of ``∇W_y·f = e^{−V_y} V̇_y`` over all states ``h(t_0..t_Γ)``;
    ``l_con_test``: the paper's ``l_con = e^{−2V_y}(V̇_y + Φ_y)²`` (eq. 9) averaged over the test
    trajectory states ``h(t_1..t_Γ)`` — comparable across training options.
    """
    model.eval()
    n_prem = n_cont = n_correct = 0
    dW_sum, dW_n = 0.0, 0
    lcon_sum, lcon_n = 0.0, 0
    for i in range(0, x.shape[0], batch_size):
        xb, yb = x[i:i + batch_size], y[i:i + batch_size]
        with torch.no_grad():
            traj = model.trajectory(xb)                                # (Γ+1, B, d)
        G1, B, d = traj.shape
        states = traj.reshape(-1, d)
        cls = yb.repeat(G1)
        with torch.no_grad():
            Wy = model.lyapunov(states, cls).view(G1, B)
            correct = model.energy(traj[-1]).argmin(1) == yb
        prem = correct & (Wy[-1] < rho)
        cont = (Wy < rho).all(0)
        n_correct += int(correct.sum())
        n_prem += int(prem.sum())
        n_cont += int((prem & cont).sum())
        V, Vd = _lyapunov_derivative(model, states, cls, 4096)
        dW = torch.exp(-V) * Vd
        dW_sum += float(dW.sum())
        dW_n += dW.numel()
        phi = (states - model.equilibria[cls]).pow(2).sum(-1)
        lcon_sum += float((torch.exp(-2 * V) * (Vd + phi).pow(2))[B:].sum())   # t_1..t_Γ
        lcon_n += (G1 - 1) * B
    n = int(x.shape[0])
    return {"n": n, "correct": n_correct, "terminal_in_proa": n_prem, "contained": n_cont,
            "containment_rate": (n_cont / n_prem) if n_prem else None,
            "terminal_in_proa_rate": n_prem / n if n else None,
            "mean_dW_dt": dW_sum / dW_n if dW_n else None,
            "l_con_test": lcon_sum / lcon_n if lcon_n else None}


@torch.no_grad()
def reverse_inclusion(model: nn.Module, x: torch.Tensor, y: torch.Tensor, rho: float,
                      horizon: float = 10.0, tau_fraction: float = 0.25,
                      per_point_norm: bool = True, batch_size: int = 256) -> dict:
    """Do the regions hold the data?  RoA ⊂ PRoA measured on test points ``(x, y)``.

    ``h(0) = φ(x)``, ``h(T)`` the model's trajectory end (eval mode), ``h(H)`` the flow of
    ``h(0)`` to ``H = horizon · T`` (per-point error norm); ``inside`` means ``W_y < ρ``;
    ``correct``: the model's prediction is ``y``; ``in basin``: ``‖h(H) − c_y‖ ≤ τ``.

    * ``h0_inside_correct`` = #(correct ∧ h(0) inside) / #correct — the headline;
    * ``hT_inside_correct`` = #(correct ∧ h(T) inside) / #correct;
    * ``roa_in_proa`` = #(in basin ∧ h(0) inside) / #in basin;
    * ``h0_inside`` = #(h(0) inside) / n, and the median ``‖h(0) − c_y‖`` beside the largest
      radius the region can have, ``√(−ln(1 − ρ)/δ)``;
    overall and per class (``per_class[k]``)."""
    model.eval()
    C = model.equilibria.detach()
    T = float(model.ode.T)
    tau = capture_radius(C, tau_fraction)
    h0s, hTs, preds = [], [], []
    for i in range(0, x.shape[0], batch_size):
        traj = model.trajectory(x[i:i + batch_size])
        h0s.append(traj[0])
        hTs.append(traj[-1])
        preds.append(model.head(traj[-1]).argmax(1) if hasattr(model, "head")
                     else model.energy(traj[-1]).argmin(1))
    h0, hT, pred = torch.cat(h0s), torch.cat(hTs), torch.cat(preds)
    y = y.to(h0.device)
    times = torch.tensor([0.0, horizon * T], dtype=h0.dtype)
    flow, failed = flow_states(model, h0, times, per_point_norm, 2048)
    hH = flow[-1]
    in0 = model.lyapunov(h0, y) < rho
    inT = model.lyapunov(hT, y) < rho
    correct = pred == y
    basin = ~failed & ((hH.nan_to_num(1e30) - C[y]).norm(dim=1) <= tau)
    dist0 = (h0 - C[y]).norm(dim=1)
    delta = float(getattr(getattr(model, "head", None), "delta", float("nan")))

    def counts(m: torch.Tensor) -> dict:
        nc, nb = int((correct & m).sum()), int((basin & m).sum())
        return {"n": int(m.sum()), "correct": nc, "in_basin": nb,
                "h0_inside_correct": int((correct & in0 & m).sum()),
                "hT_inside_correct": int((correct & inT & m).sum()),
                "roa_in_proa_count": int((basin & in0 & m).sum()),
                "h0_inside_count": int((in0 & m).sum()),
                "h0_inside_correct_rate": float((correct & in0 & m).sum()) / nc if nc else None,
                "hT_inside_correct_rate": float((correct & inT & m).sum()) / nc if nc else None,
                "roa_in_proa": float((basin & in0 & m).sum()) / nb if nb else None,
                "h0_inside": float((in0 & m).sum()) / int(m.sum()) if int(m.sum()) else None}

    out = counts(torch.ones_like(correct))
    dyn = getattr(model, "dynamics", None)
    if hasattr(dyn, "learned_flow"):     # regions invariant by construction: what it changes
        with dyn.learned_flow():
            plain = torch.cat([model(x[i:i + batch_size]).argmax(1)
                               for i in range(0, x.shape[0], batch_size)])
        active = dyn.parts(torch.cat([h0, hT]))["correction"] > 0
        out["projection"] = {
            "predictions_changed": int((plain != pred).sum()),
            "correct_with": int(correct.sum()), "correct_without": int((plain == y).sum()),
            "active_at_h0_hT": float(active.float().mean()),
            "definition": "predictions of the test points with the projected field against "
                          "the learned field alone; active: share of h(0), h(T) where the "
                          "correction is non-zero"}
    out.update({
        "horizon": horizon * T, "tau": tau, "rho": rho, "solve_failures": int(failed.sum()),
        "median_h0_distance": float(dist0.median()),
        "region_radius_max": math.sqrt(-math.log1p(-rho) / delta) if delta == delta else None,
        "per_class": {int(k): counts(y == k) for k in torch.unique(y).tolist()},
        "definition": "h0_inside_correct_rate: correct test points whose h(0) lies in "
                      "{W_y < rho}, over correct test points; roa_in_proa: test points whose "
                      "h(0) flows to within tau of c_y by the horizon that start in the region, "
                      "over those that flow there"})
    return out


@torch.no_grad()
def separation_diagnostics(model: nn.Module, rho: float, beta: float = 0.85,
                           variants: int = 20, radius_max: float = 0.5, seed: int = 0) -> dict:
    """Where the separation term ``L_sep = mean Σ_{k≠i} −W_k^β(h_j^(i))`` acts (paper eq. 11).

    At the boundary points ``h_j^(i)`` of every ``D_{W_i}`` (Algorithm 1, the training
    directions): the foreign energies ``V_k`` (``k ≠ i``), ``W_k^β = 1 − e^{−βV_k}``, the share of
    saturated terms (``W_k^β > 0.99``, whose gradient ``β e^{−βV_k} ∇V_k`` is < 1 % of its
    largest value), the value of ``L_sep`` against its floor ``−(L − 1)``, the distance of the
    boundary points from their own and the nearest foreign equilibrium, and the boundary radius.
    """
    from ..sampling import boundary_directions, boundary_points
    C = model.equilibria.detach()
    L = C.shape[0]
    gen = torch.Generator().manual_seed(seed)
    dirs, cls = boundary_directions(C, torch.arange(L, device=C.device), variants, radius_max,
                                    generator=None)
    res = boundary_points(_W_fn(model), C, dirs, cls, rho, 1e-3, 60)
    pts, pc = res.points[res.converged], res.cls[res.converged]
    V = model.energy(pts)                                              # (M, L)
    foreign = torch.ones_like(V, dtype=torch.bool).scatter_(1, pc.unsqueeze(1), False)
    Vf = V[foreign].view(-1, L - 1)
    Wb = -torch.expm1(-beta * Vf)
    dist = torch.cdist(pts, C)
    dfor = dist.masked_fill(~foreign, float("inf")).min(1).values
    del gen
    return {"beta": beta, "rho": rho, "points": int(pts.shape[0]),
            "foreign_V_median": float(Vf.median()), "foreign_V_min": float(Vf.min()),
            "foreign_W_beta_mean": float(Wb.mean()),
            "saturated_share": float((Wb > 0.99).float().mean()),
            "L_sep": float(-Wb.sum(1).mean()), "L_sep_floor": -(L - 1),
            "boundary_radius_median": float(res.lengths[res.converged].median()),
            "nearest_foreign_distance_median": float(dfor.median()),
            "equilibrium_distance_min": float(torch.cdist(C, C).add(
                torch.eye(L, device=C.device) * 1e9).min())}


def _model_rho(model: nn.Module, rho: float | None) -> float:
    """The PRoA level: the one given, else the model's ``proa_level`` attribute, else 0.9
    (the paper's default, ``loss.rho``)."""
    if rho is not None:
        return float(rho)
    return float(getattr(model, "proa_level", 0.9))


@torch.no_grad()
def alignment_report(model: nn.Module, settings: AlignmentSettings | None = None, *,
                     x: torch.Tensor | None = None, y: torch.Tensor | None = None,
                     rho: float | None = None, progress: Callable[[str], None] | None = None,
                     beta: float = 0.85) -> dict:
    """Measure PRoA–RoA alignment of ``model`` (module docstring); return a JSON-ready dict.

    ``settings.rho`` (or ``rho``) is the PRoA level; ``x, y`` (test images in [0, 1] and labels)
    add the trajectory-containment rate and the mean ``dW/dt``; ``beta``: the ``β`` of the
    separation diagnostics (the model's training ``loss.beta``).  Keys: ``settings``, ``rho``,
    ``tau``, ``T``, ``classes``, ``n``, ``solver``, ``horizons`` (``"1T"``, ``"3T"``, ``"10T"``
    → ``aligned``, ``nearest``, ``inside``, ``mean_distance``, ``per_shell``), ``shells``,
    ``vdot_negative``, ``boundary_converged``, ``solve_failures``, ``equilibria``,
    ``containment``, ``reverse_inclusion`` (with ``x, y``), ``construction`` (the region
    geometry when the regions are invariant by construction) and ``wall_time_s``.
    """
    t_start = time.perf_counter()
    s = settings or AlignmentSettings()
    check_alignment_model(model)
    model.eval()
    rho = _model_rho(model, rho if rho is not None else s.rho)
    if not 0.0 < rho < 1.0:
        raise ValueError(f"the PRoA level rho must lie in (0, 1), got {rho}")
    C = model.equilibria.detach()
    L, d = C.shape
    gen = torch.Generator().manual_seed(s.seed)
    if s.classes is not None and s.classes < L:
        classes = torch.randperm(L, generator=gen)[:s.classes].sort().values
    else:
        classes = torch.arange(L)
    say = progress or (lambda _: None)
    say("sampling the PRoAs")
    pts, cls, W0, frac, bconv = proa_samples(model, classes, s.n_per_class, rho, gen,
                                             s.boundary_tol, s.boundary_max_iters)
    tau = capture_radius(C, s.tau_fraction)
    T = float(model.ode.T)
    hmult = sorted(float(h) for h in s.horizons)
    grid = sorted(set([0.0] + hmult))
    times = torch.tensor([g * T for g in grid], dtype=C.dtype)
    say("flowing")
    traj, failed = flow_states(model, pts, times, s.per_point_norm, s.batch_size)
    edges = torch.linspace(0.0, rho, s.shells + 1, dtype=W0.dtype, device=W0.device)
    shell = torch.bucketize(W0, edges[1:-1], right=True)           # 0..shells-1
    horizons = {}
    for hm in hmult:
        hH = traj[grid.index(hm)]
        ok = ~failed
        dist_all = torch.cdist(hH.nan_to_num(1e30), C)
        dist_own = dist_all.gather(1, cls.view(-1, 1)).squeeze(1)
        aligned = ok & (dist_own <= tau)
        nearest = ok & (dist_all.argmin(1) == cls)
        inside = ok.clone()
        inside[ok] = model.lyapunov(hH[ok], cls[ok]) < rho
        per_shell = []
        for b in range(s.shells):
            m = shell == b
            per_shell.append({"W_range": [float(edges[b]), float(edges[b + 1])],
                              "n": int(m.sum()),
                              "aligned": float(aligned[m].float().mean()) if m.any() else None})
        per_class = {int(k): float(aligned[cls == k].float().mean()) for k in classes.tolist()}
        key = f"{hm:g}T"
        horizons[key] = {
            "horizon": hm * T, "aligned": float(aligned.float().mean()),
            "aligned_count": int(aligned.sum()), "nearest": float(nearest.float().mean()),
            "inside": float(inside.float().mean()),
            "mean_distance": float(dist_own[ok].mean()) if ok.any() else None,
            "median_distance": float(dist_own[ok].median()) if ok.any() else None,
            "per_shell": per_shell, "per_class": per_class}
    say("Lyapunov derivative")
    with torch.enable_grad():
        _, Vd = _lyapunov_derivative(model, pts, cls, s.batch_size)
    with torch.enable_grad():
        eq = equilibrium_diagnostics(model)
    report = {
        "definition": "AR(rho, H, tau): share of points h = c_y + u^(1/d) s*(q) q inside "
                      "{W_y < rho} whose flow ends within tau of c_y at H",
        "settings": asdict(s), "rho": rho, "tau": tau, "tau_rule": f"{s.tau_fraction:g} * min "
        "pairwise distance of the equilibria", "T": T, "dim": d,
        "classes": classes.tolist(), "n": int(pts.shape[0]),
        "solver": {"method": model.ode.solver, "rtol": model.ode.rtol_eval,
                   "atol": model.ode.atol_eval, "error_norm": "per point" if s.per_point_norm
                   else "batch RMS"},
        "horizons": horizons,
        "vdot_negative": float((Vd < 0).float().mean()),
        "boundary_converged": float(bconv.float().mean()),
        "solve_failures": int(failed.sum()),
        "sample_W": {"mean": float(W0.mean()), "median_radius_fraction": float(frac.median())},
        "equilibria": eq,
        "construction": getattr(model, "region_geometry", None),
    }
    with torch.enable_grad():
        report["separation"] = separation_diagnostics(model, rho, beta=beta)
    if x is not None and y is not None:
        say("trajectory containment")
        with torch.enable_grad():
            report["containment"] = trajectory_containment(model, x, y, rho)
        say("reverse inclusion")
        report["reverse_inclusion"] = reverse_inclusion(
            model, x, y, rho, max(hmult), s.tau_fraction, s.per_point_norm)
    report["wall_time_s"] = time.perf_counter() - t_start
    return report
