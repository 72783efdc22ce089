"""LyaNet, and the input-modulated Neural ODE it shares with FxTS-Net.

Source: Rodriguez, Ames & Yue, "LyaNet: A Lyapunov Framework for Training Neural ODEs", ICML
2022, and the authors' public code.  LyaNet trains the field so that the classification loss is
an exponentially decaying Lyapunov function along the flow::

    V(h; y) = CE(W h + b, y),     V̇ = ∇_h V · f(h)   (one forward-mode JVP)
    L_lya   = mean_{h ∈ S} relu( V̇ + κ · stopgrad(V) )

with ``S`` sampled states (the loss is in
:class:`zubovnet.training.baseline_objectives.LyaNetObjective`).

Input feature modulation.  In LyaNet's code the field sees the input as well as the state
(``ḣ = f(h, x)``, the input features concatenated to the state); the Zubov-Net paper keeps this
"input feature modulation" for LyaNet and FxTS-Net.  With the shared MLP field this is::

    f(h; m) = W₂ σ(W₁ h + U m + b₁) + b₂,     m = h(0) = φ(x)

an extra linear map ``U`` (``d → hidden``, zero at initialisation so the model starts as the
plain Neural ODE) from the extracted features, constant along the trajectory.  It is on by
default (``baseline.lyanet.modulation``); switched off, the field is exactly the shared one.
The gradient reaches ``φ`` through ``m`` as well as through ``h(0)``.  With the adjoint method
the context travels as a constant part of the state (``ṁ = 0``), so the adjoint gradient
includes the path through ``m`` too.
"""
from __future__ import annotations

import torch
from torch import nn

from ...config import Config
from ..extractors import build_extractor
from ..ode import Dynamics, ODEBlock
from ..registry import register_model
from ..output import ModelOutput
from .neural_ode import NeuralODE

__all__ = ["ModulatedDynamics", "ModulatedNODE", "LyaNet", "build_lyanet"]


class ModulatedDynamics(Dynamics):
    """``f(h; m) = W₂ σ(W₁h + U m + b₁) + b₂`` (``modulation=False``: no ``U m`` term).

    ``h``: ``(..., B, d)`` or ``(N, d)``; the context ``m`` (``(B, d)`` or ``(N, d)``, broadcast
    over leading axes) is either passed to :meth:`field` or set with :meth:`set_context` before a
    solve (torchdiffeq calls ``forward(t, h)`` only).
    """

    def __init__(self, dim: int, hidden: int = 256, activation: str = "tanh", modulation: bool = True):
        super().__init__(dim, hidden, activation)
        self.modulation = nn.Linear(dim, hidden, bias=False) if modulation else None
        if self.modulation is not None:
            nn.init.zeros_(self.modulation.weight)
        self.context: torch.Tensor | None = None

    @property
    def modulated(self) -> bool:
        return self.modulation is not None

    def set_context(self, m: torch.Tensor | None) -> None:
        self.context = m

    def forward(self, t: torch.Tensor | None, h: torch.Tensor) -> torch.Tensor:  # noqa: D401
        """``f(h; context)`` for states ``(..., d)``; for augmented states ``[h, m]``
        ``(..., 2d)`` (adjoint solves, also re-evaluated in the backward pass) ``[f(h; m), 0]``."""
        self.nfe += 1
        d = self.net[0].in_features
        if h.shape[-1] == 2 * d:
            return torch.cat([self.field(h[..., :d], h[..., d:]), torch.zeros_like(h[..., d:])], -1)
        return self.field(h)

    def field(self, h: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        """``f(h; m)`` without touching the NFE counter; ``context`` defaults to the one set."""
        pre = self.net[0](h)
        if self.modulation is not None:
            m = context if context is not None else self.context
            if m is None:
                raise RuntimeError("this field is modulated by the input features: pass "
                                   "context= (the h(0) of each state) or call set_context first")
            pre = pre + self.modulation(m)
        return self.net[2](self.net[1](pre))


class ModulatedNODE(NeuralODE):
    """``x ↦ φ(x) = h(0) ↦ h(T)`` under ``f(·; h(0))`` ``↦ W h(T) + b``.

    Input ``(B, C, H, W)`` in [0, 1]; ``forward`` returns logits ``(B, L)``.  :meth:`field`
    evaluates the field at arbitrary states with their context (the ``h(0)`` of the sample they
    belong to).
    """

    def field(self, h: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        """``f(h; context)``: ``h`` and ``context`` ``(N, d)`` (or broadcastable)."""
        return self.dynamics.field(h, context)

    def solve(self, h0: torch.Tensor) -> torch.Tensor:
        """``h(t_0..t_Γ)`` ``(Γ+1, B, d)`` from ``h0`` ``(B, d)``, modulated by ``h0``.

        With the adjoint method (and modulation) the solve runs on the state ``[h, m]``,
        ``ṁ = 0``, so that the adjoint also returns the gradient with respect to ``m``.
        """
        dyn = self.dynamics
        if self.ode.adjoint and dyn.modulated:
            return self.ode(torch.cat([h0, h0], -1))[..., :h0.shape[-1]]
        dyn.set_context(h0)
        try:
            return self.ode(h0)
        finally:
            dyn.set_context(None)

    def trajectory(self, x: torch.Tensor) -> torch.Tensor:
        return self.solve(self.features(x))

    def forward_all(self, x: torch.Tensor) -> ModelOutput:
        traj = self.trajectory(x)
        return ModelOutput(trajectory=traj, logits=self.fc(traj[-1]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.trajectory(x)[-1])


class LyaNet(ModulatedNODE):
    """LyaNet (see the module docstring); trained with the ``lyanet`` objective."""

    default_objective = "lyanet"


@register_model("lyanet")
def build_lyanet(cfg: Config) -> LyaNet:
    """LyaNet with the shared MLP field, modulated by ``h(0)`` when ``baseline.lyanet.modulation``."""
    m = cfg.model
    dyn = ModulatedDynamics(m.state_dim, m.ode.hidden, m.ode.activation, cfg.baseline.lyanet.modulation)
    return LyaNet(build_extractor(m), ODEBlock(dyn, m.ode), m.num_classes, m.state_dim)
