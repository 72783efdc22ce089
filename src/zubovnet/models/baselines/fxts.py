"""FxTS-Net: a Neural ODE trained to reach a class anchor in fixed time.

Source: Luo, Zou, Li & Huang, "FxTS-Net: Fixed-time stable learning framework for Neural ODEs",
Neural Networks 185 (2025).  No public code exists; what follows is reconstructed from the paper
and written down in ``docs/baselines.md``.

Fixed-time stability (Polyakov 2012): if ``V̇ ≤ −(a V^p + b V^q)^k`` with ``a, b, p, q, k > 0``,
``pk < 1`` and ``qk > 1``, every trajectory reaches ``{V = 0}`` before

    T_max = 1 / (a^k (1 − pk)) + 1 / (b^k (qk − 1))

whatever the initial state.  FxTS-Net uses a supervised Lyapunov function ``V_y(h) = ½‖h − h*_y‖²``
centred on the state ``h*_y`` that is optimal for label ``y``; here ``h*_y`` are fixed class
anchors: ``L`` vectors with minimal maximum pairwise cosine (``model.equilibria``), which are the
minimisers of a cosine/linear classification loss under a norm constraint.  The loss
(:class:`zubovnet.training.baseline_objectives.FxTSObjective`) is cross-entropy at ``h(T)``
plus the hinge ``mean relu(V̇ + (aV^p + bV^q)^k)`` on trajectory states.  The field is the shared
MLP, modulated by the input features as in :mod:`.lyanet` ("input feature modulation").
"""
from __future__ import annotations

import torch
from torch import nn

from ...config import Config
from ..extractors import build_extractor
from ..lyapunov import equilibria_from_config
from ..ode import ODEBlock
from ..registry import register_model
from .lyanet import ModulatedDynamics, ModulatedNODE

__all__ = ["FxTSNet", "settling_time_bound", "build_fxts"]


def settling_time_bound(a: float, b: float, p: float, q: float, k: float) -> float:
    """``T_max = 1/(a^k(1 − pk)) + 1/(b^k(qk − 1))``; requires ``pk < 1 < qk``."""
    if not (p * k < 1.0 < q * k) or min(a, b, p, q, k) <= 0:
        raise ValueError(f"fixed-time stability needs a, b, p, q, k > 0 and pk < 1 < qk; got "
                         f"a={a}, b={b}, p={p}, q={q}, k={k}")
    return 1.0 / (a ** k * (1.0 - p * k)) + 1.0 / (b ** k * (q * k - 1.0))


class FxTSNet(ModulatedNODE):
    """FxTS-Net: the input-modulated Neural ODE with a linear head and class anchors.

    ``anchors`` ``(L, d)`` (buffer) are the centres ``h*_y`` of ``V_y``; :meth:`potential` gives
    ``V_y(h) = ½‖h − h*_y‖²`` for states ``(N, d)`` and labels ``(N,)``.
    """

    default_objective = "fxts"

    def __init__(self, extractor: nn.Module, ode: ODEBlock, anchors: torch.Tensor):
        L, d = anchors.shape
        super().__init__(extractor, ode, L, d)
        self.register_buffer("anchors", anchors.clone())

    def potential(self, h: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return 0.5 * (h - self.anchors[y].to(h.dtype)).pow(2).sum(-1)


@register_model("fxts")
def build_fxts(cfg: Config) -> FxTSNet:
    """FxTS-Net with anchors from ``model.equilibria`` and modulation from ``baseline.fxts.modulation``."""
    m, e = cfg.model, cfg.model.equilibria
    dyn = ModulatedDynamics(m.state_dim, m.ode.hidden, m.ode.activation, cfg.baseline.fxts.modulation)
    anchors = equilibria_from_config(m)
    return FxTSNet(build_extractor(m), ODEBlock(dyn, m.ode), anchors)
