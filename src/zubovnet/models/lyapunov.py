"""Equilibria, the per-class energy ``V``, the Lyapunov values ``W`` and the logits.

::

    V(x, c) = σ( g(x − c, c) − g(0, c) ) + δ ‖x − c‖²        (strongly convex, V(c, c) = 0)
    σ(z)    = 0 (z ≤ 0);  z²/(2a) (0 < z < a);  z − a/2 (z ≥ a)
    W_i(h)  = 1 − exp(−V(h, c_i)),     W_i^β(h) = 1 − exp(−β V(h, c_i))
    ℓ_i     = ln(W_i⁻¹ − α) = log1p(−α W_i) − log(−expm1(−V_i)),   V_i clamped at v_min

``softmax(ℓ)`` is the paper's normalised ``(W⁻¹ − α) / 1ᵀ(W⁻¹ − α)``; ``argmax ℓ = argmin V``.
The prescribed region of attraction of class ``i`` is the sub-level set ``{W_i < ρ}``.
"""
from __future__ import annotations

import contextlib
from typing import Iterator

import torch
from torch import nn

__all__ = ["make_equilibria", "equilibria_from_config", "smooth_relu", "LyapunovHead",
           "logits_from_energy"]


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
    return make_equilibria(model_cfg.num_classes, model_cfg.state_dim, e.norm, e.steps, e.lr,
                           e.seed, e.temperature)


def smooth_relu(z: torch.Tensor, a: float = 1.0) -> torch.Tensor:
    """``0 (z ≤ 0); z²/(2a) (0 < z < a); z − a/2 (z ≥ a)`` — C¹, convex, non-decreasing."""
    zc = z.clamp(min=0.0)
    return torch.where(zc < a, zc * zc / (2 * a), zc - a / 2)


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

    def lyapunov(self, h: torch.Tensor, cls: torch.Tensor | None = None, beta: float = 1.0):
        """``W^β = 1 − exp(−β V)`` (``β = 1``: ``W``), same shapes as :meth:`energy`."""
        return -torch.expm1(-beta * self.energy(h, cls))

    def logits(self, V: torch.Tensor) -> torch.Tensor:
        return logits_from_energy(V, self.alpha, self.v_min)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        """Logits ``ℓ`` of shape ``(B, L)``."""
        return self.logits(self.energy(h))
