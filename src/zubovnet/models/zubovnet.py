"""The assembled Zubov-Net: extractor φ → Neural ODE → Lyapunov classifier ψ̃ (+ head ψ = C h)."""
from __future__ import annotations

import torch
from torch import nn

from .lyapunov import InvariantDynamics, LyapunovHead
from .ode import Dynamics, ODEBlock
from .output import ModelOutput

__all__ = ["ZubovNet"]


class ZubovNet(nn.Module):
    """Zubov-Net (paper §III-A, Fig. 1).  ``forward(x)`` maps images ``(B, C, H, W)`` in [0, 1]
    to the log-space logits ``ℓ`` ``(B, L)`` — a single tensor, so attack libraries attack
    ``L_cla``.

    ``forward_all(x)`` returns a :class:`ModelOutput` with the trajectory, energies and the
    auxiliary logits; :meth:`energy` / :meth:`lyapunov` evaluate ``V`` / ``W`` at any state.
    ``proa_level`` is the level ``ρ`` of the prescribed regions ``{W_y < ρ}`` (``loss.rho``);
    ``invariant`` says whether they are forward invariant by construction
    (:class:`~zubovnet.models.lyapunov.InvariantDynamics`), ``region_geometry`` gives the
    numbers behind it (:func:`~zubovnet.models.lyapunov.region_geometry`; ``None`` when off).
    """

    default_objective = "zubov"

    def __init__(self, extractor: nn.Module, ode: ODEBlock, head: LyapunovHead,
                 proa_level: float = 0.9):
        super().__init__()
        self.extractor = extractor
        self.ode = ode
        self.head = head
        self.proa_level = float(proa_level)
        self.region_geometry: dict | None = None

    @property
    def invariant(self) -> bool:
        """True when the regions are forward invariant by construction."""
        return isinstance(self.ode.dynamics, InvariantDynamics)

    # --- parts -------------------------------------------------------------------------
    @property
    def dynamics(self) -> Dynamics:
        return self.ode.dynamics

    @property
    def equilibria(self) -> torch.Tensor:
        return self.head.C

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """``h(0) = φ(x)``: ``(B, d)``."""
        return self.extractor(x)

    def trajectory(self, x: torch.Tensor) -> torch.Tensor:
        """``h(t_0..t_Γ)``: ``(Γ+1, B, d)``."""
        return self.ode(self.features(x))

    def aux_logits(self, h: torch.Tensor) -> torch.Tensor:
        """Auxiliary linear head ``ψ(h) = C h``: ``(B, L)``."""
        return h @ self.head.C.t()

    def energy(self, h: torch.Tensor, cls: torch.Tensor | None = None) -> torch.Tensor:
        return self.head.energy(h, cls)

    def lyapunov(self, h: torch.Tensor, cls: torch.Tensor | None = None, beta: float = 1.0):
        return self.head.lyapunov(h, cls, beta)

    # --- passes -------------------------------------------------------------------------
    def forward_all(self, x: torch.Tensor) -> ModelOutput:
        traj = self.trajectory(x)
        hT = traj[-1]
        V = self.head.energy(hT)
        return ModelOutput(trajectory=traj, logits=self.head.logits(V), energy=V,
                           aux_logits=self.aux_logits(hT))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.ode(self.features(x))[-1])
