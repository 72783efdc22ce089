"""Builders of Zubov-Net (and its ablation classifiers) for the registry."""
from __future__ import annotations

from ..config import Config
from .convex import build_convex
from .extractors import build_extractor
from .lyapunov import InvariantDynamics, LyapunovHead, equilibria_from_config, region_geometry
from .ode import Dynamics, ODEBlock
from .registry import register_model
from .zubovnet import ZubovNet

__all__ = ["build_ode", "build_zubovnet"]


def build_ode(cfg: Config) -> ODEBlock:
    m = cfg.model
    return ODEBlock(Dynamics(m.state_dim, m.ode.hidden, m.ode.activation), m.ode)


@register_model("zubovnet")
def build_zubovnet(cfg: Config) -> ZubovNet:
    """Zubov-Net; with ``model.invariance.enabled`` its field is :class:`InvariantDynamics`
    (every region ``{W_y < loss.rho}`` forward invariant by construction)."""
    m = cfg.model
    e = m.equilibria
    C = equilibria_from_config(m)
    lc = m.lyapunov
    # the construction order (head, extractor, field) fixes the initialisation of every seeded
    # run: keep it, or earlier runs and records stop being reproducible
    head = LyapunovHead(C, build_convex(lc, m.state_dim, m.num_classes), lc.delta, lc.smooth_a,
                        lc.alpha, lc.v_min, e.learnable)
    extractor = build_extractor(m)
    if m.invariance.enabled:
        geo = region_geometry(m, cfg.loss.rho)
        dyn = InvariantDynamics(m.state_dim, m.ode.hidden, m.ode.activation,
                                c_star=geo["c_star"], c_fade=geo["c_fade"],
                                rate=m.invariance.rate, pin=m.invariance.pin_equilibria,
                                tiny=m.invariance.tiny,
                                project_in_training=m.invariance.train).bind(head)
        ode = ODEBlock(dyn, m.ode)
    else:
        geo = None
        ode = build_ode(cfg)
    model = ZubovNet(extractor, ode, head, proa_level=cfg.loss.rho)
    model.region_geometry = geo
    return model
