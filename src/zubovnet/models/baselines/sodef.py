"""SODEF: stable Neural ODE with a frozen max-cosine head, trained in three phases.

Source: Kang, Song, Ding & Tay, "Stable Neural ODE with Lyapunov-Stable Equilibrium Points for
Defending Against Adversarial Attacks", NeurIPS 2021, and the authors' public code.

* Field.  SODEF's own field is ``f(z) = sin(−(W z + b))`` (one linear layer, ``d → d``).  The
  Zubov-Net paper compares every method with the same 2-layer MLP field (hidden 256) and notes
  that "SODEF uses sin as activation", so the default (``baseline.sodef.form = mlp``) is::

      f(z) = W₂ sin(−(W₁ z + b₁)) + b₂

  and ``baseline.sodef.form = single`` gives SODEF's original ``sin(−(W z + b))``.
* Head.  Phase 1 trains the extractor through a *frozen* linear head whose rows are ``L``
  vectors with minimal maximum pairwise cosine (SODEF's "max row distance" matrix; here
  :func:`~zubovnet.models.lyapunov.make_equilibria`).  Phase 3 trains the final linear head on
  ``h(T)``; it starts from the same matrix (SODEF starts it from a random initialisation; starting
  from the phase-1 matrix keeps the model accurate at every phase boundary).
* Regularisers and phases: :class:`zubovnet.training.baseline_objectives.SODEFObjective`.
"""
from __future__ import annotations

import torch
from torch import nn

from ...config import Config
from ..extractors import build_extractor
from ..lyapunov import equilibria_from_config
from ..ode import Dynamics, ODEBlock
from ..registry import register_model
from ..output import ModelOutput

__all__ = ["NegSin", "SineDynamics", "SODEF", "build_sodef"]


class NegSin(nn.Module):
    """``u ↦ sin(−u)`` (SODEF's activation)."""

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        return torch.sin(-u)


class SineDynamics(Dynamics):
    """SODEF's field; ``form = "mlp"``: ``W₂ sin(−(W₁h + b₁)) + b₂`` (hidden ``hidden``),
    ``form = "single"``: ``sin(−(W h + b))``.  ``h``: ``(..., d)`` → ``(..., d)``."""

    def __init__(self, dim: int, hidden: int = 256, form: str = "mlp"):
        super().__init__(dim, hidden, "tanh")
        if form == "mlp":
            self.net = nn.Sequential(nn.Linear(dim, hidden), NegSin(), nn.Linear(hidden, dim))
        elif form == "single":
            self.net = nn.Sequential(nn.Linear(dim, dim), NegSin())
        else:
            raise ValueError(f"unknown SODEF field {form!r}; choose mlp or single")
        self.form = form


class SODEF(nn.Module):
    """``x ↦ φ(x) = h(0) ↦ h(T) ↦ W h(T) + b`` with the sine field.

    Input ``(B, C, H, W)`` in [0, 1]; ``forward`` returns the logits of the final head ``fc``
    ``(B, L)``.  ``ball`` ``(L, d)`` is the frozen max-cosine matrix of phase 1;
    :meth:`ball_logits` applies it to any state.
    """

    default_objective = "sodef"

    def __init__(self, extractor: nn.Module, ode: ODEBlock, ball: torch.Tensor):
        super().__init__()
        self.extractor, self.ode = extractor, ode
        self.register_buffer("ball", ball.clone())
        L, d = ball.shape
        self.fc = nn.Linear(d, L)
        with torch.no_grad():
            self.fc.weight.copy_(ball)
            self.fc.bias.zero_()

    @property
    def dynamics(self) -> SineDynamics:
        return self.ode.dynamics

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.extractor(x)

    def trajectory(self, x: torch.Tensor) -> torch.Tensor:
        return self.ode(self.features(x))

    def ball_logits(self, h: torch.Tensor) -> torch.Tensor:
        """Frozen head ``h ↦ C h`` (no bias): ``(B, d)`` → ``(B, L)``."""
        return h @ self.ball.t()

    def forward_all(self, x: torch.Tensor) -> ModelOutput:
        traj = self.trajectory(x)
        return ModelOutput(trajectory=traj, logits=self.fc(traj[-1]),
                           aux_logits=self.ball_logits(traj[0]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.trajectory(x)[-1])


@register_model("sodef")
def build_sodef(cfg: Config) -> SODEF:
    """SODEF with the field form of ``baseline.sodef.form`` and the max-cosine matrix of
    ``model.equilibria`` (norm, steps, lr, seed)."""
    m, e = cfg.model, cfg.model.equilibria
    dyn = SineDynamics(m.state_dim, m.ode.hidden, cfg.baseline.sodef.form)
    ball = equilibria_from_config(m)
    return SODEF(build_extractor(m), ODEBlock(dyn, m.ode), ball)
