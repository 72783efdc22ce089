"""Builders of Zubov-Net (and its ablation classifiers) for the registry."""
from __future__ import annotations

from ..config import Config
from .convex import build_convex
from .extractors import build_extractor
from .lyapunov import LyapunovHead, equilibria_from_config
from .ode import Dynamics, ODEBlock
from .registry import register_model
from .zubovnet import ZubovNet

__all__ = ["build_ode", "build_zubovnet"]


def build_ode(cfg: Config) -> ODEBlock:
    m = cfg.model
    return ODEBlock(Dynamics(m.state_dim, m.ode.hidden, m.ode.activation), m.ode)


@register_model("zubovnet")
def build_zubovnet(cfg: Config) -> ZubovNet:
    m = cfg.model
    e = m.equilibria
    C = equilibria_from_config(m)
    lc = m.lyapunov
    head = LyapunovHead(C, build_convex(lc, m.state_dim, m.num_classes), lc.delta, lc.smooth_a,
                        lc.alpha, lc.v_min, e.learnable)
    return ZubovNet(build_extractor(m), build_ode(cfg), head)
