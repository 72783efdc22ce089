"""Objectives of the baselines (paper §IV-A; ``docs/baselines.md``): SODEF, LyaNet, FxTS-Net,
and Lipschitz-margin training of the 1-Lipschitz CNN (``docs/certified.md``).

Each is registered with :func:`~zubovnet.training.objectives.register_objective` and is the
``default_objective`` of its model.  The losses are small pure functions (formula in the
docstring) so that the tests can check them on systems with known answers; the objective
classes only gather the states they are evaluated on.

``SODEFObjective`` is phased: call ``objective.set_epoch(epoch)`` (0-based) before each epoch;
the trainer does so for any objective that has the method.  Proj-NODE trains with plain
cross-entropy (``ce``).
"""
from __future__ import annotations

import contextlib
import math
from typing import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import nn

from ..config import Config
from ..losses import directional_derivative
from .objectives import _accuracy, register_objective

__all__ = ["sodef_regularizers", "lyapunov_violation", "fixed_time_violation", "field_jacobian",
           "lipschitz_margin_loss", "SODEFObjective", "LyaNetObjective", "FxTSObjective",
           "LipschitzMarginObjective"]


# --------------------------------------------------------------------------- SODEF
def field_jacobian(field: Callable[[torch.Tensor], torch.Tensor], z: torch.Tensor) -> torch.Tensor:
    """``J[n, i, j] = ∂f_i/∂z_j`` at each point ``z[n]``: ``(N, d)`` → ``(N, d, d)``.

    ``field`` maps ``(N, d)`` to ``(N, d)`` row by row.  Reverse-mode Jacobian, vectorised over
    the points; differentiable w.r.t. the parameters ``field`` closes over.
    """
    def one(p: torch.Tensor) -> torch.Tensor:
        return field(p.unsqueeze(0)).squeeze(0)
    return torch.func.vmap(torch.func.jacrev(one))(z)


def sodef_regularizers(field: Callable[[torch.Tensor], torch.Tensor], z: torch.Tensor,
                       samples: int | None = None, exponent_diag: float = 1.0,
                       shift_diag: float = 1.0, exponent_off: float = 0.1, shift_off: float = 1.0,
                       exponent_f: float = 50.0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """SODEF's three regularisers at feature points ``z`` ``(N, d)`` (Kang et al. 2021, eqs. 3–5
    as implemented in the authors' code), with ``J = ∂f/∂z``::

        R_diag = mean_{n,i} exp( e_d (J_ii + s_d) )                       e_d = 1,   s_d = 1
        R_off  = mean_{n,i} exp( e_o (Σ_{j≠i} |J_ji| − |J_ii| + s_o) )    e_o = 0.1, s_o = 1
        R_f    = mean_{n,i} ( e_f |f_i(z_n)| )²                           e_f = 50

    ``R_diag`` pushes the Jacobian's diagonal negative, ``R_off`` makes each column diagonally
    dominant (Levy–Desplanques: every eigenvalue in the left half-plane), ``R_f`` makes each
    feature point an equilibrium.  The Jacobian terms use the first ``samples`` points (all when
    ``None``; SODEF samples 16 per batch — shuffle the batch for a random subset); ``R_f`` uses
    every point.  Returns ``(R_diag, R_off, R_f)`` as scalars.
    """
    f = field(z)
    reg_f = (exponent_f * f.abs()).pow(2).mean()
    zs = z if samples is None else z[:samples]
    J = field_jacobian(field, zs)
    diag = J.diagonal(dim1=-2, dim2=-1)                        # (S, d): J_ii
    col = J.abs().sum(-2) - 2.0 * diag.abs()                  # Σ_{j≠i} |J_ji| − |J_ii|
    reg_diag = torch.exp(exponent_diag * (diag + shift_diag)).mean()
    reg_off = torch.exp(exponent_off * (col + shift_off)).mean()
    return reg_diag, reg_off, reg_f


@contextlib.contextmanager
def _frozen(module: nn.Module) -> Iterator[None]:
    """Eval mode (BatchNorm statistics frozen) for the block; modes restored afterwards."""
    modes = [(m, m.training) for m in module.modules()]
    module.eval()
    try:
        yield
    finally:
        for m, t in modes:
            m.training = t


@register_objective("sodef")
class SODEFObjective:
    """SODEF's phased training (Kang et al. 2021, §4 and the authors' code), by epoch (0-based)::

        phase 1  epoch < P₁             CE(C φ(x), y)            extractor; C frozen max-cosine
        phase 2  P₁ ≤ epoch < P₁ + P₂   w₁R_diag + w₂R_off + w₃R_f at z = φ(x)   field only
        phase 3  epoch ≥ P₁ + P₂        CE(W h(T) + b, y)        final head only

    ``P₁, P₂ = baseline.sodef.phase1_epochs, baseline.sodef.phase2_epochs``; ``(w₁, w₂, w₃) =
    baseline.sodef.weights``; the Jacobian terms use ``baseline.sodef.jacobian_samples`` random
    points of the batch.  Frozen parts get no gradient (their parameters are skipped by the
    optimiser) and the extractor runs in eval mode in phases 2–3 (SODEF computes the phase-2
    features once, in eval mode).  Phase 2 never integrates the ODE (as SODEF's code).
    """

    def __init__(self, cfg: Config):
        b = cfg.baseline.sodef
        if len(b.weights) != 3:
            raise ValueError(f"baseline.sodef.weights needs 3 values, got {b.weights}")
        self.weights = [float(w) for w in b.weights]
        self.phase1, self.phase2 = b.phase1_epochs, b.phase2_epochs
        self.samples = b.jacobian_samples
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    @property
    def phase(self) -> int:
        if self.epoch < self.phase1:
            return 1
        if self.epoch < self.phase1 + self.phase2:
            return 2
        return 3

    def __call__(self, model, x, y):
        phase = self.phase
        logs: dict = {"phase": float(phase)}
        if phase == 1:
            logits = model.ball_logits(model.features(x))
            loss = F.cross_entropy(logits, y)
            logs["acc"] = _accuracy(logits, y)
        elif phase == 2:
            with torch.no_grad(), _frozen(model.extractor):
                z = model.features(x)
            z = z[torch.randperm(z.shape[0], device=z.device)]
            r_diag, r_off, r_f = sodef_regularizers(model.dynamics.field, z, self.samples)
            w1, w2, w3 = self.weights
            loss = w1 * r_diag + w2 * r_off + w3 * r_f
            logs.update({"R_diag": r_diag.item(), "R_off": r_off.item(), "R_f": r_f.item()})
        else:
            with torch.no_grad(), _frozen(model.extractor):
                hT = model.trajectory(x)[-1]
            logits = model.fc(hT)
            loss = F.cross_entropy(logits, y)
            logs["acc"] = _accuracy(logits, y)
        logs["loss"] = loss.item()
        return loss, logs


# --------------------------------------------------------------------------- LyaNet
def lyapunov_violation(V: torch.Tensor, V_dot: torch.Tensor, kappa: float) -> torch.Tensor:
    """LyaNet's pointwise violation ``relu(V̇ + κ · stopgrad(V))`` (Rodriguez et al. 2022, eq. 9).

    Zero exactly where ``V̇ ≤ −κV`` (exponential decay at rate ``κ``); ``V`` is detached, so the
    gradient only lowers ``V̇``.  Shapes of ``V``.
    """
    return F.relu(V_dot + kappa * V.detach())


def _trajectory_samples(traj: torch.Tensor, y: torch.Tensor, detach: bool = True):
    """States ``h(t_0..t_Γ)`` (detached unless ``detach=False``), their labels and contexts ``h(0)`` (not detached)."""
    G, B, d = traj.shape
    states = (traj.detach() if detach else traj).reshape(G * B, d)
    labels = y.repeat(G)
    context = traj[0].unsqueeze(0).expand(G, B, d).reshape(G * B, d)
    return states, labels, context


@register_objective("lyanet")
class LyaNetObjective:
    """``L = w_ce CE(W h(T) + b, y) + w_lya mean_{h∈S} relu(V̇ + κ stopgrad(V))``.

    ``V(h; y) = CE(W h + b, y)`` per state, ``V̇ = ∇V·f(h; h(0))`` by one JVP; ``S`` = the
    trajectory states ``h(t_0..t_Γ)`` (detached samples of the state space, as LyaNet's
    path-integral sampling).  ``κ, w_lya, w_ce = baseline.lyanet.kappa, weight,
    ce_weight``.
    """

    def __init__(self, cfg: Config):
        b = cfg.baseline.lyanet
        self.kappa, self.weight, self.ce_weight = b.kappa, b.weight, b.ce_weight

    def __call__(self, model, x, y):
        out = model.forward_all(x)
        ce = F.cross_entropy(out.logits, y)
        states, labels, context = _trajectory_samples(out.trajectory, y)
        f = model.field(states, context)
        V, V_dot = directional_derivative(
            lambda h: F.cross_entropy(model.fc(h), labels, reduction="none"), states, f)
        viol = lyapunov_violation(V, V_dot, self.kappa)
        loss = self.ce_weight * ce + self.weight * viol.mean()
        return loss, {"loss": loss.item(), "L_ce": ce.item(), "L_lya": viol.mean().item(),
                      "violating": (viol > 0).float().mean().item(),
                      "acc": _accuracy(out.logits, y), "nfe": float(model.ode.last_nfe)}


# --------------------------------------------------------------------------- FxTS-Net
def fixed_time_violation(V: torch.Tensor, V_dot: torch.Tensor, a: float = 3.0, b: float = 3.0,
                         p: float = 0.5, q: float = 2.0, k: float = 1.0,
                         v_min: float = 1e-12) -> torch.Tensor:
    """FxTS hinge ``relu(V̇ + (a V^p + b V^q)^k)`` (Luo et al. 2025; Polyakov 2012).

    Zero exactly where the fixed-time condition ``V̇ ≤ −(aV^p + bV^q)^k`` holds.  ``V ≥ 0`` is
    clamped below at ``v_min`` inside the powers (``V^p`` with ``p < 1`` has an infinite slope
    at 0).  Shapes of ``V``.
    """
    Vc = V.clamp_min(v_min)
    return F.relu(V_dot + (a * Vc.pow(p) + b * Vc.pow(q)).pow(k))


@register_objective("fxts")
class FxTSObjective:
    """``L = CE(W h(T) + b, y) + w mean_{h∈S} relu(V̇_y + (aV_y^p + bV_y^q)^k)``.

    ``V_y(h) = ½‖h − h*_y‖²`` with the model's class anchors, so ``V̇_y = (h − h*_y)·f(h; h(0))``
    exactly; ``S`` = the trajectory states ``h(t_0..t_Γ)``: the hinge's gradient moves them,
    through the flow and the extractor, towards their anchors, unless
    ``baseline.fxts.detach_states`` (then it constrains the field alone).  ``a, b, p, q, k, w``
    = ``baseline.fxts.*``; ``pk < 1 < qk`` is checked here.
    """

    def __init__(self, cfg: Config):
        from ..models.baselines.fxts import settling_time_bound
        b = cfg.baseline.fxts
        self.params = dict(a=b.a, b=b.b, p=b.p, q=b.q, k=b.k)
        self.T_max = settling_time_bound(**self.params)
        self.weight = b.weight
        self.detach_states = b.detach_states

    def __call__(self, model, x, y):
        out = model.forward_all(x)
        ce = F.cross_entropy(out.logits, y)
        states, labels, context = _trajectory_samples(out.trajectory, y, self.detach_states)
        f = model.field(states, context)
        diff = states - model.anchors[labels].to(states.dtype)
        V = 0.5 * diff.pow(2).sum(-1)
        V_dot = (diff * f).sum(-1)
        viol = fixed_time_violation(V, V_dot, **self.params)
        loss = ce + self.weight * viol.mean()
        return loss, {"loss": loss.item(), "L_ce": ce.item(), "L_fxts": viol.mean().item(),
                      "violating": (viol > 0).float().mean().item(), "V_mean": V.mean().item(),
                      "acc": _accuracy(out.logits, y), "nfe": float(model.ode.last_nfe)}


# --------------------------------------------------------------------------- Lipschitz margin
def lipschitz_margin_loss(logits: torch.Tensor, y: torch.Tensor, margin: float,
                          temperature: float, lipschitz: float = 1.0) -> torch.Tensor:
    """Lipschitz-margin training (Tsuzuku, Sato & Sugiyama 2018), with a temperature::

        L = CE( τ (ℓ + √2 · L · m · (1 − e_y)), y ) / τ

    For logits that are ``L``-Lipschitz in L2, a margin ``ℓ_y − ℓ_j ≥ √2 L m`` for every
    ``j ≠ y`` certifies the L2 ball of radius ``m``; the loss asks for it.  ``logits``:
    ``(B, K)``; ``y``: ``(B,)``."""
    shift = (math.sqrt(2.0) * lipschitz * margin) * (1.0 - F.one_hot(y, logits.shape[1]).to(
        logits.dtype))
    return F.cross_entropy(temperature * (logits + shift), y) / temperature


@register_objective("lipschitz_margin")
class LipschitzMarginObjective:
    """:func:`lipschitz_margin_loss` with ``baseline.lipschitz.margin`` and ``temperature``, on
    the model's logits; ``L`` is the model's construction bound when it has one
    (``extractor.lipschitz_by_construction("l2")``), else 1."""

    def __init__(self, cfg: Config):
        b = cfg.baseline.lipschitz
        self.margin, self.temperature = b.margin, b.temperature

    def __call__(self, model, x, y):
        logits = model(x)
        ext = getattr(model, "extractor", None)
        L = ext.lipschitz_by_construction("l2") if hasattr(ext, "lipschitz_by_construction") \
            else 1.0
        loss = lipschitz_margin_loss(logits, y, self.margin, self.temperature, L)
        with torch.no_grad():
            top2 = logits.topk(2, dim=1).values
            logs = {"loss": loss.item(), "acc": _accuracy(logits, y),
                    "margin_mean": (top2[:, 0] - top2[:, 1]).mean().item()}
        return loss, logs
