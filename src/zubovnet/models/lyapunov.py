"""Equilibria, the per-class energy ``V``, the Lyapunov values ``W`` and the logits.

::

    V(x, c) = σ( g(x − c, c) − g(0, c) ) + δ ‖x − c‖²        (strongly convex, V(c, c) = 0)
    σ(z)    = 0 (z ≤ 0);  z²/(2a) (0 < z < a);  z − a/2 (z ≥ a)
    W_i(h)  = 1 − exp(−V(h, c_i)),     W_i^β(h) = 1 − exp(−β V(h, c_i))
    ℓ_i     = ln(W_i⁻¹ − α) = log1p(−α W_i) − log(−expm1(−V_i)),   V_i clamped at v_min

``softmax(ℓ)`` is the paper's normalised ``(W⁻¹ − α) / 1ᵀ(W⁻¹ − α)``; ``argmax ℓ = argmin V``.
The prescribed region of attraction of class ``i`` is the sub-level set ``{W_i < ρ}``.

**Regions invariant by construction** (``docs/certified.md``).  With ``c* = −ln(1 − ρ)`` the
region is ``{V_i < c*}``; since ``V ≥ δ‖h − c_i‖²`` it lies in the ball ``B(c_i, r(c*))``,
``r(c) = √(c/δ)``.  :class:`InvariantDynamics` replaces the field ``f`` by::

    f̂(h) = f(h) − s(V_k) f(c_k)                                  (pin: c_k a fixed point)
    f̃(h) = f̂(h) − s(V_k) · relu(∇V_k·f̂ + α V_k) / ‖∇V_k‖² · ∇V_k

with ``k`` the class of the equilibrium nearest to ``h`` and ``s`` a C¹ fade, 1 for
``V_k ≤ c*`` and 0 for ``V_k ≥ c'`` (``c' = −ln(1 − ρ')``).  Inside every region
``∇V_k·f̃ ≤ −α V_k`` exactly, so each ``{V_k < c}``, ``c ≤ c*``, is forward invariant and
``V_k(h(t)) ≤ V_k(h(0)) e^{−αt}``.  When ``2 r(c') < d_min`` (checked by
:func:`region_geometry` when the config loads) the balls are disjoint: at most one class's
projection acts anywhere, ``f̃`` is continuous across the Voronoi boundaries (``s = 0`` there)
and ``argmin_k V_k = y`` everywhere inside region ``y``.
"""
from __future__ import annotations

import contextlib
import functools
import math
from typing import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import nn

from ..config import ConfigError
from .ode import Dynamics

__all__ = ["make_equilibria", "equilibria_from_config", "smooth_relu", "LyapunovHead",
           "logits_from_energy", "project_field", "value_and_grad", "fade", "RegionGeometryError",
           "region_geometry", "InvariantDynamics"]


def make_equilibria(num_classes: int, dim: int, norm: float = 3.0, steps: int = 500,
                    lr: float = 0.02, seed: int = 0, temperature: float = 100.0) -> torch.Tensor:
    """``L`` vectors in ``R^d`` minimising the maximum pairwise cosine similarity, scaled to ``norm``.

    Gradient descent (Adam) on the smooth maximum ``logsumexp_{i≠j}(τ cos(c_i, c_j)) / τ``
    (``τ = temperature``; it reaches the same optimum as the hard max in far fewer steps) from
    Gaussian vectors drawn with ``seed``; deterministic.  For ``L ≤ d + 1`` the optimum is the regular simplex,
    ``max cos = −1/(L − 1)``.  Returns ``(L, d)`` float32.
    """
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(num_classes, dim, generator=g, dtype=torch.float64).requires_grad_(True)
    opt = torch.optim.Adam([x], lr=lr)
    mask = torch.eye(num_classes, dtype=torch.bool)
    for _ in range(steps if num_classes > 1 else 0):
        xn = torch.nn.functional.normalize(x, dim=1)
        cos = (xn @ xn.t())[~mask]
        loss = torch.logsumexp(temperature * cos, dim=0) / temperature
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        c = torch.nn.functional.normalize(x, dim=1) * norm
    return c.float()


def equilibria_from_config(model_cfg) -> torch.Tensor:
    """:func:`make_equilibria` with the values of ``model_cfg.equilibria`` (a ModelConfig)."""
    e = model_cfg.equilibria
    return _equilibria_cached(model_cfg.num_classes, model_cfg.state_dim, e.norm, e.steps, e.lr,
                              e.seed, e.temperature).clone()


@functools.lru_cache(maxsize=16)
def _equilibria_cached(*args) -> torch.Tensor:
    return make_equilibria(*args)


class RegionGeometryError(ConfigError):
    """The regions ``{W_y < ρ'}`` are not provably disjoint for the configured geometry."""


def region_geometry(model_cfg, rho: float) -> dict:
    """The numbers behind invariance by construction, for a ModelConfig and the PRoA level ``ρ``.

    ``c* = −ln(1 − ρ)``; ``r(c) = √(c/δ)``; ``d_min = min_{i≠j} ‖c_i − c_j‖``; the disjointness
    limit ``c_max = δ d_min² / 4`` (``ρ_max = 1 − e^{−c_max}``); the fade's outer level ``c'``
    (``model.invariance.fade_rho``, or midway between ``c*`` and ``c_max``); the capture radius
    ``τ = d_min / 4`` of the alignment rate and the horizon ``H* = ln(c*/(δ τ²)) / α`` after
    which every point of a region is within ``τ`` of its equilibrium (AR = 1 at every horizon
    ``≥ H*``, by construction).  Raises :class:`RegionGeometryError` (one line) when
    ``2 r(c') ≥ d_min`` or ``ρ' ≤ ρ``.
    """
    inv, delta = model_cfg.invariance, float(model_cfg.lyapunov.delta)
    C = equilibria_from_config(model_cfg).double()
    L = C.shape[0]
    d_min = float((torch.cdist(C, C) + torch.eye(L, dtype=C.dtype) * 1e30).min()) if L > 1 \
        else float("inf")
    c_star = -math.log1p(-rho)
    c_max = delta * d_min ** 2 / 4
    rho_max = -math.expm1(-c_max)
    if c_max <= c_star:
        raise RegionGeometryError(
            f"the regions {{W_y < rho}} may overlap: 2 r(c*) = {2 * math.sqrt(c_star / delta):.4g} "
            f">= d_min = {d_min:.4g} (rho = {rho:g} must stay below {rho_max:.4g}); lower "
            f"loss.rho, raise model.lyapunov.delta or model.equilibria.norm")
    if inv.fade_rho is None:
        c_fade = 0.5 * (c_star + c_max)
    else:
        c_fade = -math.log1p(-inv.fade_rho)
        if not c_star < c_fade < c_max:
            raise RegionGeometryError(
                f"model.invariance.fade_rho = {inv.fade_rho:g} must lie strictly between "
                f"loss.rho = {rho:g} and the disjointness limit {rho_max:.4g} "
                f"(1 - exp(-delta d_min^2 / 4), d_min = {d_min:.4g})")
    tau = d_min / 4
    h_star = max(0.0, math.log(c_star / (delta * tau ** 2))) / inv.rate
    return {"rho": rho, "c_star": c_star, "fade_rho": -math.expm1(-c_fade), "c_fade": c_fade,
            "rho_max": rho_max, "c_max": c_max, "delta": delta, "d_min": d_min,
            "region_radius": math.sqrt(c_star / delta), "fade_radius": math.sqrt(c_fade / delta),
            "rate": inv.rate, "tau": tau, "aligned_horizon": h_star}


def smooth_relu(z: torch.Tensor, a: float = 1.0) -> torch.Tensor:
    """``0 (z ≤ 0); z²/(2a) (0 < z < a); z − a/2 (z ≥ a)`` — C¹, convex, non-decreasing."""
    zc = z.clamp(min=0.0)
    return torch.where(zc < a, zc * zc / (2 * a), zc - a / 2)


def project_field(fhat: torch.Tensor, V: torch.Tensor, grad_V: torch.Tensor, a: float = 0.01,
                  tiny: float = 1e-12) -> torch.Tensor:
    """``f = f̂ − ∇V · relu(∇V·f̂ + aV) / ‖∇V‖²`` (Kolter & Manek 2019, eq. 14).

    ``fhat``, ``grad_V``: ``(..., d)``; ``V``: ``(...)``.  Returns ``(..., d)`` with
    ``∇V·f = min(∇V·f̂, −aV)``.  Where ``‖∇V‖² ≤ tiny`` (only at the minimiser of a strongly
    convex ``V``) the correction is 0.
    """
    return fhat - grad_V * _correction(fhat, V, grad_V, a, tiny).unsqueeze(-1)


def _correction(fhat, V, grad_V, a, tiny):
    n2 = grad_V.pow(2).sum(-1)
    ok = n2 > tiny
    return torch.where(ok, F.relu((grad_V * fhat).sum(-1) + a * V) / torch.where(ok, n2, 1.0),
                       torch.zeros_like(n2))


def value_and_grad(fn: Callable[[torch.Tensor], torch.Tensor], h: torch.Tensor
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """``(V(h), ∇V(h))`` of a per-point scalar ``V = fn(h)`` (``(N, d)`` → ``(N,)``), inside any
    grad mode: differentiable (``create_graph``) iff gradients are enabled by the caller; under
    ``torch.no_grad()`` the inner gradient is computed anyway and returned detached."""
    outer = torch.is_grad_enabled()
    with torch.enable_grad():
        hh = h if (outer and h.requires_grad) else h.detach().requires_grad_(True)
        V = fn(hh)
        grad_V = torch.autograd.grad(V.sum(), hh, create_graph=outer)[0]
    if not outer:
        V, grad_V = V.detach(), grad_V.detach()
    return V, grad_V


def fade(V: torch.Tensor, inner: float, outer: float) -> torch.Tensor:
    """C¹ fade ``s(V)``: 1 for ``V ≤ inner``, 0 for ``V ≥ outer``, ``3t² − 2t³`` with
    ``t = (outer − V)/(outer − inner)`` between (``|s'| ≤ 1.5/(outer − inner)``)."""
    t = ((outer - V) / (outer - inner)).clamp(0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def logits_from_energy(V: torch.Tensor, alpha: float = 0.5, v_min: float = 1e-6) -> torch.Tensor:
    """``ℓ = ln(1/W − α)`` computed in log space: ``log1p(−αW) − log(−expm1(−V))``."""
    V = V.clamp(min=v_min)
    W = -torch.expm1(-V)
    return torch.log1p(-alpha * W) - torch.log(W)


class LyapunovHead(nn.Module):
    """The Lyapunov classifier ``ψ̃``: energies ``V(h, c_i)`` for all classes and their logits.

    ``C``: ``(L, d)`` equilibria (a buffer unless ``learnable``); ``convex``: a network with the
    :mod:`zubovnet.models.convex` interface.  ``h``: ``(B, d)`` states.
    """

    def __init__(self, C: torch.Tensor, convex: nn.Module, delta: float = 0.5, smooth_a: float = 1.0,
                 alpha: float = 0.5, v_min: float = 1e-6, learnable: bool = False):
        super().__init__()
        if learnable:
            self.C = nn.Parameter(C.clone())
        else:
            self.register_buffer("C", C.clone())
        self.convex = convex
        self.delta, self.smooth_a, self.alpha, self.v_min = delta, smooth_a, alpha, v_min
        self._frozen: tuple | None = None     # (dtype, cond, g0) inside frozen_conditioning()

    @property
    def num_classes(self) -> int:
        return self.C.shape[0]

    def _conditioning(self, C: torch.Tensor) -> tuple:
        cond = self.convex.condition(C)
        g0 = self.convex(torch.zeros_like(C).unsqueeze(0), cond).squeeze(0)   # g(0, c_l): (L,)
        return cond, g0

    @contextlib.contextmanager
    def frozen_conditioning(self) -> Iterator[None]:
        """Inside, every :meth:`energy` call reuses one detached ``(condition(C), g(0, C))``.

        The conditioning depends on the equilibria and the head's parameters only, so while
        neither changes it is the same for every call; computing it once saves a fixed cost
        per call (about 0.7 ms for PIACNN [256, 256, 1] on one CPU core) in the many
        evaluations of the sampling searches (boundary points, projections, counterexample
        ascent).  The values are identical; gradients with respect to ``h`` are unchanged,
        gradients with respect to the head's parameters do not flow through the conditioning
        — so use it only where none are taken (the searches run under ``no_grad`` or
        differentiate with respect to the states only)."""
        if self._frozen is not None:          # nested: the outer one holds
            yield
            return
        with torch.no_grad():
            cond, g0 = self._conditioning(self.C.detach())
        self._frozen = (self.C.dtype, cond, g0)
        try:
            yield
        finally:
            self._frozen = None

    def energy(self, h: torch.Tensor, cls: torch.Tensor | None = None) -> torch.Tensor:
        """``V(h, c_i)``: ``(B, L)`` for every class, or ``(N,)`` for ``cls`` (``(N,)`` long)."""
        C = self.C.to(h.dtype)
        if self._frozen is not None and self._frozen[0] == h.dtype:
            cond, g0 = self._frozen[1], self._frozen[2]
            C = C.detach()
        else:
            cond, g0 = self._conditioning(C)
        if cls is None:
            diff = h.unsqueeze(-2) - C                                         # (B, L, d)
            g = self.convex(diff, cond)
        else:
            diff = h - C[cls]
            g = self.convex(diff, cond, cls)
            g0 = g0[cls]
        return smooth_relu(g - g0, self.smooth_a) + self.delta * diff.pow(2).sum(-1)

    def gradient_bound(self, dtype: torch.dtype | None = None) -> torch.Tensor:
        """``L_g``: an upper bound of ``sup_h ‖∇_h g(h − c_k, c_k)‖₂`` per class, ``(L,)``,
        differentiable w.r.t. the head's parameters (the convex network's
        ``gradient_bound``).  Then ``‖∇V_k(h)‖ ≤ L_g,k + 2δ‖h − c_k‖`` (``σ' ∈ [0, 1]``)."""
        return self.convex.gradient_bound(self.convex.condition(self.C), dtype)

    def lyapunov(self, h: torch.Tensor, cls: torch.Tensor | None = None, beta: float = 1.0):
        """``W^β = 1 − exp(−β V)`` (``β = 1``: ``W``), same shapes as :meth:`energy`."""
        return -torch.expm1(-beta * self.energy(h, cls))

    def logits(self, V: torch.Tensor) -> torch.Tensor:
        return logits_from_energy(V, self.alpha, self.v_min)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        """Logits ``ℓ`` of shape ``(B, L)``."""
        return self.logits(self.energy(h))


class InvariantDynamics(Dynamics):
    """The field ``f̃`` of the module docstring: every region ``{V_k < c*}`` forward invariant,
    with ``∇V_k·f̃ ≤ −rate·V_k`` inside it, by construction.

    Same interface and parameters as :class:`~zubovnet.models.ode.Dynamics` (its ``net`` is
    ``f``; a checkpoint of the plain field loads into it unchanged).  The Lyapunov head is
    bound with :meth:`bind` (a reference, not a sub-module: the head's parameters belong to the
    model).  ``field(h)`` is ``f̃``; ``nominal(h)`` is ``f`` (what the training losses constrain).
    ``∇V_k`` is computed by autograd inside the field, under any grad mode; with gradients
    enabled it is differentiable (training and attacks differentiate through the projection).
    ``h``: ``(..., d)``.
    """

    def __init__(self, dim: int, hidden: int = 256, activation: str = "tanh", *,
                 c_star: float, c_fade: float, rate: float, pin: bool = True,
                 tiny: float = 1e-12, project_in_training: bool = True):
        super().__init__(dim, hidden, activation)
        if not 0 < c_star < c_fade:
            raise ValueError(f"need 0 < c* < c', got {c_star}, {c_fade}")
        self.c_star, self.c_fade, self.rate, self.pin, self.tiny = c_star, c_fade, rate, pin, tiny
        self.project_in_training = project_in_training
        self.__dict__["_off"] = False
        self.__dict__["_head"] = None

    def bind(self, head: "LyapunovHead") -> "InvariantDynamics":
        self.__dict__["_head"] = head
        return self

    def adjoint_parameters(self) -> tuple:
        """Parameters the adjoint solve differentiates: the field's and the bound head's."""
        return tuple(self.parameters()) + tuple(self._head.parameters())

    def describe(self) -> dict:
        return {"c_star": self.c_star, "c_fade": self.c_fade, "rate": self.rate,
                "pin_equilibria": self.pin, "project_in_training": self.project_in_training}

    @property
    def projecting(self) -> bool:
        """Whether :meth:`field` projects now (eval mode, or train mode when asked), and not
        inside :meth:`learned_flow`."""
        return (self.project_in_training or not self.training) and not self._off

    @contextlib.contextmanager
    def learned_flow(self) -> Iterator[None]:
        """Inside, :meth:`field` is the learned ``f`` in every mode (to measure what the
        projection changes)."""
        self.__dict__["_off"] = True
        try:
            yield
        finally:
            self.__dict__["_off"] = False

    def field(self, h: torch.Tensor) -> torch.Tensor:
        if not self.projecting:
            return self.net(h)
        if torch.is_inference_mode_enabled():      # autograd is needed inside: leave it locally
            with torch.inference_mode(False), torch.no_grad():
                return self._projected(h.clone())
        return self._projected(h)

    def parts(self, h: torch.Tensor) -> dict:
        """``k, V_k, ∇V_k, s, f̂, correction`` at ``h (N, d)`` (tests and diagnostics)."""
        return self._projected(h, parts=True)

    def _projected(self, h: torch.Tensor, parts: bool = False):
        head = self._head
        if head is None:
            raise RuntimeError("InvariantDynamics has no Lyapunov head: call bind(head) first")
        shape = h.shape
        h2 = h.reshape(-1, shape[-1])
        C = head.C.to(h2.dtype)
        with torch.no_grad():
            k = torch.cdist(h2.detach(), C.detach()).argmin(1)        # nearest equilibrium
        V, grad_V = value_and_grad(lambda z: head.energy(z, k), h2)
        s = fade(V, self.c_star, self.c_fade)
        f = self.net(h2)
        if self.pin:
            f = f - s.unsqueeze(-1) * self.net(C)[k]
        corr = s * _correction(f, V, grad_V, self.rate, self.tiny)
        out = f - corr.unsqueeze(-1) * grad_V
        if parts:
            return {"k": k, "V": V, "grad_V": grad_V, "s": s, "f_hat": f, "correction": corr,
                    "field": out}
        return out.reshape(shape)
