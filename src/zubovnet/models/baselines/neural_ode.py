"""Plain Neural ODE (tanh field, linear head) and ResNet-18 / CNN (extractor + linear head)."""
from __future__ import annotations

import torch
from torch import nn

from ...config import Config
from ..builders import build_ode
from ..extractors import build_extractor
from ..ode import ODEBlock
from ..registry import register_model
from ..output import ModelOutput

__all__ = ["NeuralODE", "FeedForward"]


class NeuralODE(nn.Module):
    """``x ↦ φ(x) = h(0) ↦ h(T) ↦ W h(T) + b``; same extractor and field as Zubov-Net.

    Input ``(B, C, H, W)`` in [0, 1]; output logits ``(B, L)``.
    """

    default_objective = "ce"

    def __init__(self, extractor: nn.Module, ode: ODEBlock, num_classes: int, dim: int):
        super().__init__()
        self.extractor, self.ode = extractor, ode
        self.fc = nn.Linear(dim, num_classes)

    @property
    def dynamics(self):
        return self.ode.dynamics

    def features(self, x):
        return self.extractor(x)

    def trajectory(self, x):
        return self.ode(self.features(x))

    def forward_all(self, x) -> ModelOutput:
        traj = self.trajectory(x)
        return ModelOutput(trajectory=traj, logits=self.fc(traj[-1]))

    def forward(self, x):
        return self.fc(self.trajectory(x)[-1])


class FeedForward(nn.Module):
    """Extractor + linear head, no ODE (the ResNet-18 / plain CNN baseline)."""

    default_objective = "ce"

    def __init__(self, extractor: nn.Module, num_classes: int, dim: int):
        super().__init__()
        self.extractor = extractor
        self.fc = nn.Linear(dim, num_classes)

    def features(self, x):
        return self.extractor(x)

    def linear_head(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(W, b)`` with ``model(x) = W φ(x) + b`` (the margin certificate)."""
        return self.fc.weight, self.fc.bias

    def forward_all(self, x) -> ModelOutput:
        h = self.features(x)
        return ModelOutput(trajectory=h.unsqueeze(0), logits=self.fc(h))

    def forward(self, x):
        return self.fc(self.features(x))


@register_model("neural_ode")
def build_neural_ode(cfg: Config) -> NeuralODE:
    m = cfg.model
    return NeuralODE(build_extractor(m), build_ode(cfg), m.num_classes, m.state_dim)


@register_model("feedforward")
def build_feedforward(cfg: Config) -> FeedForward:
    """ResNet-18 when ``model.extractor = resnet18``; the plain CNN baseline with ``cnn``."""
    m = cfg.model
    return FeedForward(build_extractor(m), m.num_classes, m.state_dim)
