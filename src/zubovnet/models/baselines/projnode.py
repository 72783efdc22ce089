"""Proj-NODE: a Neural ODE whose field is projected onto a learned Lyapunov function.

Source: Kolter & Manek, "Learning Stable Deep Dynamics Models", NeurIPS 2019 (eqs. 10–14 and
their public code); used as a classification baseline by the Zubov-Net paper (§IV-A)::

    V(h) = σ( g(h) − g(0) ) + ε ‖h‖²                        (positive definite, convex)
    σ(z) = 0 (z ≤ 0);  z²/(2a) (0 < z < a);  z − a/2 (z ≥ a)  (smooth ReLU, "ReHU")
    f(h) = f̂(h) − ∇V(h) · relu( ∇V(h)ᵀ f̂(h) + α V(h) ) / ‖∇V(h)‖²

``g`` is an input-convex network (non-negative ``z``-path weights ``softplus(raw)``, re-applied at
every forward pass); ``f̂`` is the shared 2-layer MLP field (hidden 256).  By construction
``∇V·f ≤ −α V`` at every state, so ``h = 0`` is globally exponentially stable.  The head is
linear on ``h(T)``.

Evaluating ``f`` needs ``∇V`` — autograd *inside* the forward pass.  :meth:`ProjectedDynamics.field`
enables gradients locally, so the model also runs under ``torch.no_grad()``; when the caller has
gradients enabled the inner gradient is built with ``create_graph=True``, so training and
gradient-based attacks differentiate through the projection (second-order autograd).

Note for evaluation: a forward pass that itself differentiates produces input gradients that
are products of second derivatives of ``V``; gradient-masking checks (AutoAttack's flags,
Square far below APGD) may fire on this model even when nothing is masked.  Read its
robustness numbers beside the black-box ones.
"""
from __future__ import annotations

import torch
from torch import nn

from ...config import Config
from ..convex import ICNN
from ..extractors import build_extractor
from ..lyapunov import project_field, smooth_relu, value_and_grad
from ..ode import Dynamics, ODEBlock
from ..registry import register_model
from .neural_ode import NeuralODE

__all__ = ["ConvexLyapunov", "ProjectedDynamics", "ProjNODE", "project_field", "build_projnode"]


class ConvexLyapunov(nn.Module):
    """``V(h) = σ(g(h) − g(0)) + ε‖h‖²`` from an input-convex network ``g`` (Kolter & Manek).

    ``h``: ``(..., d)`` → ``V``: ``(...)``.  ``g`` is :class:`~zubovnet.models.convex.ICNN` with one
    output (``z``-path weights ``softplus(raw) ≥ 0``, convex non-decreasing activations), so
    ``V`` is convex, ``V(0) = 0`` and ``V(h) ≥ ε‖h‖²``.  ``smooth_a`` is ``a`` of σ.
    """

    def __init__(self, dim: int, z_widths=(256, 256, 1), activation: str = "softplus",
                 eps: float = 0.01, smooth_a: float = 1.0, init_scale: float = 1.0):
        super().__init__()
        self.icnn = ICNN(dim, 1, z_widths, activation, init_scale)
        self.dim, self.eps, self.smooth_a = dim, eps, smooth_a

    def g(self, h: torch.Tensor) -> torch.Tensor:
        """The convex network ``g(h)``: ``(..., d)`` → ``(...)``."""
        return self.icnn(h.unsqueeze(-2)).squeeze(-1)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        g0 = self.g(h.new_zeros(1, self.dim))[0]
        return smooth_relu(self.g(h) - g0, self.smooth_a) + self.eps * h.pow(2).sum(-1)


class ProjectedDynamics(Dynamics):
    """The projected field ``f`` of :func:`project_field` around the MLP ``f̂ = self.net``
    (``nominal(h)``).

    Same interface as :class:`~zubovnet.models.ode.Dynamics` (``forward(t, h)`` counts NFE,
    ``field(h)`` does not).  ``h``: ``(..., d)``.  Works with gradients disabled (the inner
    ``∇V`` is computed under ``torch.enable_grad()`` and the result returned detached).
    """

    def __init__(self, dim: int, lyapunov: nn.Module, hidden: int = 256, activation: str = "tanh",
                 a: float = 0.01, tiny: float = 1e-12):
        super().__init__(dim, hidden, activation)
        self.lyapunov = lyapunov
        self.a, self.tiny = a, tiny

    def energy_and_gradient(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(V(h), ∇V(h))``; differentiable (``create_graph``) iff gradients are enabled."""
        return value_and_grad(self.lyapunov, h)

    def field(self, h: torch.Tensor) -> torch.Tensor:
        if torch.is_inference_mode_enabled():      # autograd is needed inside: leave it locally
            with torch.inference_mode(False), torch.no_grad():
                h = h.clone()
                V, grad_V = self.energy_and_gradient(h)
                return project_field(self.net(h), V, grad_V, self.a, self.tiny)
        V, grad_V = self.energy_and_gradient(h)
        return project_field(self.net(h), V, grad_V, self.a, self.tiny)


class ProjNODE(NeuralODE):
    """Proj-NODE: ``x ↦ φ(x) = h(0) ↦ h(T)`` under the projected field ``↦ W h(T) + b``.

    Input ``(B, C, H, W)`` in [0, 1]; output logits ``(B, L)``.  Trained with plain cross-entropy
    (the stability is structural).  ``lyapunov`` is the learned ``V``.
    """

    default_objective = "ce"

    @property
    def lyapunov(self) -> ConvexLyapunov:
        return self.ode.dynamics.lyapunov


@register_model("projnode")
def build_projnode(cfg: Config) -> ProjNODE:
    """Proj-NODE with ``V``'s ICNN widths / activation from ``model.lyapunov`` and ``a``, ``ε``
    from ``baseline.projnode.a`` / ``baseline.projnode.eps``."""
    m, b, lc = cfg.model, cfg.baseline.projnode, cfg.model.lyapunov
    V = ConvexLyapunov(m.state_dim, lc.z_widths, lc.activation, b.eps, lc.smooth_a,
                       lc.init_scale)
    dyn = ProjectedDynamics(m.state_dim, V, m.ode.hidden, m.ode.activation, b.a)
    return ProjNODE(build_extractor(m), ODEBlock(dyn, m.ode), m.num_classes, m.state_dim)
