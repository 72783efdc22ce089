"""Training objectives: ``objective(model, x, y) -> (loss, logs)``.

The trainer knows none of the losses: it asks :func:`build_objective` for the callable named by
``cfg.train.objective`` (``auto`` = the model's ``default_objective``) and minimises what it
returns.  ``logs`` maps names to floats (averaged per epoch and written to the metrics log).
An objective with a ``set_epoch(epoch)`` method (0-based) is told each epoch before it starts.
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from ..config import Config
from ..losses import (auxiliary_loss, classification_loss, consistency_loss,
                      directional_derivative, separation_loss, zubov_phi)
from ..sampling import boundary_directions, boundary_points, counterexamples

__all__ = ["register_objective", "build_objective", "available_objectives", "ZubovObjective",
           "CrossEntropyObjective", "zubov_consistency"]

Objective = Callable[[nn.Module, torch.Tensor, torch.Tensor], tuple[torch.Tensor, dict]]
_OBJECTIVES: dict[str, Callable[[Config], Objective]] = {}


def register_objective(name: str):
    def deco(factory):
        _OBJECTIVES[name] = factory
        return factory
    return deco


def available_objectives() -> list[str]:
    _ensure_loaded()
    return sorted(_OBJECTIVES)


def build_objective(cfg: Config, model: nn.Module) -> Objective:
    """The objective of ``cfg.train.objective`` (``auto``: ``model.default_objective``), wrapped
    in adversarial training when ``cfg.adversarial.method`` is not ``none``."""
    _ensure_loaded()
    name = cfg.train.objective
    if name == "auto":
        name = getattr(model, "default_objective", "ce")
    if name not in _OBJECTIVES:
        raise KeyError(f"unknown objective {name!r}; available: {', '.join(sorted(_OBJECTIVES))}")
    obj = _OBJECTIVES[name](cfg)
    if cfg.adversarial.method != "none":
        if "adversarial" not in _OBJECTIVES:
            raise NotImplementedError("adversarial training is not available in this build")
        obj = _OBJECTIVES["adversarial"](cfg, obj)
    return obj


def _ensure_loaded() -> None:
    import importlib
    for mod in ("baseline_objectives", "adversarial"):   # register themselves when present
        try:
            importlib.import_module(f"{__package__}.{mod}")
        except ModuleNotFoundError as e:
            if e.name != f"{__package__}.{mod}":
                raise


def _accuracy(logits: torch.Tensor, y: torch.Tensor) -> float:
    return (logits.argmax(1) == y).float().mean().item()


@register_objective("ce")
class CrossEntropyObjective:
    """``CE(model(x), y)`` — the plain objective of the baselines."""

    def __init__(self, cfg: Config):
        self.cfg = cfg

    def __call__(self, model, x, y):
        logits = model(x)
        loss = F.cross_entropy(logits, y)
        return loss, {"loss": loss.item(), "acc": _accuracy(logits, y)}


def zubov_consistency(model: nn.Module, h: torch.Tensor, cls: torch.Tensor,
                      inequality: bool = False) -> torch.Tensor:
    """``l_con^y(h) = e^{−2V_y}(∇V_y·f + Φ_y)²`` per point; ``h``: ``(N, d)``, ``cls``: ``(N,)``.

    ``∇V_y·f`` is one JVP of ``h ↦ V(h, c_y)`` along ``f(h)``; ``Φ_y = ‖h − c_y‖²``.
    """
    f = model.dynamics.field(h)
    V, V_dot = directional_derivative(lambda z: model.energy(z, cls), h, f)
    return consistency_loss(V, V_dot, zubov_phi(h, model.equilibria[cls]), inequality)


@register_objective("zubov")
class ZubovObjective:
    """Algorithm 2: ``L = L_cla + λ₁ L_FC + λ₂ mean_{S₂} l_con^y + λ₃ L_sep`` (SPEC §2).

    * ``L_cla``, ``L_FC``: cross-entropy on ``ℓ`` and on ``C h(T)``;
    * ``S₂``: trajectory states ``h(t_1..t_Γ)`` (detached) and their counterexamples (projected
      gradient ascent on ``l_con`` inside ``{W_y ≤ ρ}``);
    * ``L_sep``: boundary points of ``{W_i < ρ}`` (Algorithm 1) for up to ``max_classes``
      classes of the batch.
    A term whose weight is 0 is not computed (the ablations of Table V).
    """

    def __init__(self, cfg: Config):
        self.cfg = cfg
        self.loss = cfg.loss

    def __call__(self, model, x, y):
        lc = self.loss
        out = model.forward_all(x)
        L_cla = classification_loss(out.logits, y)
        L_fc = auxiliary_loss(out.aux_logits, y)
        total = L_cla + lc.lambda_fc * L_fc
        with torch.no_grad():
            W = -torch.expm1(-out.energy)
            onehot = F.one_hot(y, W.shape[1]).bool()
            logs = {"L_cla": L_cla.item(), "L_fc": L_fc.item(),
                    "W_y": W[onehot].mean().item(), "W_other": W[~onehot].mean().item(),
                    "acc": _accuracy(out.logits, y), "nfe": float(model.ode.last_nfe)}
        C = model.equilibria.detach()
        W_fn = lambda p, k: model.lyapunov(p, k)   # noqa: E731

        if lc.lambda_con > 0:
            traj = out.trajectory[1:].detach()                       # (Γ, B, d)
            states = traj.reshape(-1, traj.shape[-1])
            cls = y.repeat(traj.shape[0])
            if lc.consistency_samples is not None and states.shape[0] > lc.consistency_samples:
                pick = torch.randperm(states.shape[0], device=states.device)[:lc.consistency_samples]
                states, cls = states[pick], cls[pick]
            ineq = lc.consistency == "inequality"
            if lc.counterexample_steps > 0:
                ce = counterexamples(lambda p, k: zubov_consistency(model, p, k, ineq), W_fn, C,
                                     states, cls, lc.counterexample_steps,
                                     lc.counterexample_step_size, lc.rho, lc.projection_iters)
                states, cls = torch.cat([states, ce]), torch.cat([cls, cls])
            l_con = zubov_consistency(model, states, cls, ineq).mean()
            total = total + lc.lambda_con * l_con
            logs["L_con"] = l_con.item()

        if lc.lambda_sep > 0:
            b = lc.boundary
            classes = torch.unique(y)
            if classes.numel() > b.max_classes:
                classes = classes[torch.randperm(classes.numel(), device=y.device)[:b.max_classes]]
            dirs, dcls = boundary_directions(C, classes, b.variants, b.radius_max)
            res = boundary_points(W_fn, C, dirs, dcls, lc.rho, b.tol, b.max_iters, b.init_step, b.rule)
            pts, pcls = res.points[res.converged], res.cls[res.converged]
            W_beta = -torch.expm1(-lc.beta * model.energy(pts.detach()))
            L_sep = separation_loss(W_beta, pcls)
            total = total + lc.lambda_sep * L_sep
            logs["L_sep"] = L_sep.item()
            logs["boundary_converged"] = res.converged.float().mean().item()
        logs["loss"] = total.item()
        return total, logs
