"""Cross-entropy losses on the Lyapunov logits and on the auxiliary linear head."""
from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["classification_loss", "auxiliary_loss"]


def classification_loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``L_cla = −log ŷ_y`` with ``ŷ = softmax(ℓ)``, ``ℓ_i = ln(W_i⁻¹ − α)`` at ``h(T)``.

    ``softmax(ℓ)`` is the paper's ``(W⁻¹ − α) / 1ᵀ(W⁻¹ − α)``.  ``logits``: ``(B, L)``.
    """
    return F.cross_entropy(logits, y)


def auxiliary_loss(aux_logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``L_FC = CE(ψ(h(T)), y)`` with the auxiliary head ``ψ(h) = C h``."""
    return F.cross_entropy(aux_logits, y)
