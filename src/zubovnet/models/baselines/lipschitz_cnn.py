"""The 1-Lipschitz CNN: the certified-robustness baseline of ``docs/certified.md``.

The small CNN's family made 1-Lipschitz (:class:`~zubovnet.models.extractors.LipschitzCNN`:
AOL convolutions, MaxMin, an AOL map to ``d``) followed by an AOL linear head, so that the
logit vector is ``1/min(std)``-Lipschitz in L2.  Trained with Lipschitz-margin training
(Tsuzuku, Sato & Sugiyama, NeurIPS 2018; objective ``lipschitz_margin``).  Its certificate is
the margin one: ``ε*(x) = min_{j≠y} (ℓ_y − ℓ_j) / (L_φ ‖w_y − w_j‖₂)`` with the head's exact
effective rows ``w`` (:func:`zubovnet.analysis.certify.margin_radius`).
"""
from __future__ import annotations

import torch
from torch import nn

from ...config import Config
from ..extractors import build_extractor
from ..lipschitz import AOLLinear
from ..output import ModelOutput
from ..registry import register_model

__all__ = ["LipschitzClassifier", "build_lipschitz_cnn"]


class LipschitzClassifier(nn.Module):
    """``x ↦ φ(x) ↦ W_eff φ(x) + b`` with ``‖W_eff‖₂ ≤ 1`` (AOL).  Input ``(B, C, H, W)`` in
    [0, 1]; output logits ``(B, L)``."""

    default_objective = "lipschitz_margin"

    def __init__(self, extractor: nn.Module, num_classes: int, dim: int):
        super().__init__()
        self.extractor = extractor
        self.fc = AOLLinear(dim, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.extractor(x)

    def linear_head(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(W_eff, b)`` with ``model(x) = W_eff φ(x) + b`` (the margin certificate)."""
        return self.fc.effective_weight(), self.fc.bias

    def forward_all(self, x: torch.Tensor) -> ModelOutput:
        h = self.features(x)
        return ModelOutput(trajectory=h.unsqueeze(0), logits=self.fc(h))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x))


@register_model("lipschitz_cnn")
def build_lipschitz_cnn(cfg: Config) -> LipschitzClassifier:
    """The 1-Lipschitz CNN; ``cfg.model.extractor`` is set to ``lipschitz_cnn`` in place, so the
    configuration saved with a checkpoint says what was built."""
    cfg.model.extractor = "lipschitz_cnn"
    m = cfg.model
    return LipschitzClassifier(build_extractor(m), m.num_classes, m.state_dim)
