"""What a model's ``forward_all(x)`` returns: :class:`ModelOutput` (Zubov-Net and every
baseline)."""
from __future__ import annotations

from dataclasses import dataclass

import torch

__all__ = ["ModelOutput"]


@dataclass
class ModelOutput:
    """Everything one forward pass computes (training and analysis).

    ``trajectory``: ``(Γ+1, B, d)`` states ``h(t_0..t_Γ)``; ``h0 = trajectory[0]``,
    ``hT = trajectory[-1]``; ``logits``: ``(B, L)``; ``energy``: ``V(h(T), c_i)`` ``(B, L)`` (None
    for models without Lyapunov head); ``aux_logits``: the auxiliary head ``C h(T)`` (or None).
    """
    trajectory: torch.Tensor
    logits: torch.Tensor
    energy: torch.Tensor | None = None
    aux_logits: torch.Tensor | None = None

    @property
    def h0(self) -> torch.Tensor:
        return self.trajectory[0]

    @property
    def hT(self) -> torch.Tensor:
        return self.trajectory[-1]
