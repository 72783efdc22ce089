"""Training objectives: ``objective(model, x, y) -> (loss, logs)``.

The trainer knows none of the losses: it asks :func:`build_objective` for the callable named by
``cfg.train.objective`` (``auto`` = the model's ``default_objective``) and minimises what it
returns.  ``logs`` maps names to floats (averaged per epoch and written to the metrics log).
An objective with a ``set_epoch(epoch)`` method (0-based) is told each epoch before it starts;
one with a ``prepare(model, batches) -> dict`` method is called once before the first epoch of
a fresh run (not on resume) with an iterable of training batches ``(x, y)``.

The objectives of the baselines (:mod:`~zubovnet.training.baseline_objectives`) and adversarial
training (:mod:`~zubovnet.training.adversarial`) register themselves when imported;
:mod:`zubovnet.training` imports them right after this module.
"""
from __future__ import annotations

import contextlib
import math
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from ..config import Config
from ..losses import (auxiliary_loss, classification_loss, consistency_loss,
                      directional_derivative, inside_loss, lipschitz_penalty, separation_loss,
                      trajectory_target_loss, zubov_phi, zubov_target)
from ..sampling import boundary_directions, boundary_points, counterexamples, region_points
from .timing import part

__all__ = ["register_objective", "build_objective", "available_objectives", "ZubovObjective",
           "CrossEntropyObjective", "zubov_consistency", "equilibrium_field",
           "equilibrium_jacobians"]

Objective = Callable[[nn.Module, torch.Tensor, torch.Tensor], tuple[torch.Tensor, dict]]
_OBJECTIVES: dict[str, Callable[[Config], Objective]] = {}


def register_objective(name: str):
    def deco(factory):
        _OBJECTIVES[name] = factory
        return factory
    return deco


def available_objectives() -> list[str]:
    """The names of every registered objective, sorted."""
    return sorted(_OBJECTIVES)


def build_objective(cfg: Config, model: nn.Module) -> Objective:
    """The objective of ``cfg.train.objective`` (``auto``: ``model.default_objective``), wrapped
    in adversarial training when ``cfg.adversarial.method`` is not ``none``."""
    name = cfg.train.objective
    if name == "auto":
        name = getattr(model, "default_objective", "ce")
    if name not in _OBJECTIVES:
        raise KeyError(f"unknown objective {name!r}; available: {', '.join(sorted(_OBJECTIVES))}")
    obj = _OBJECTIVES[name](cfg)
    if cfg.adversarial.method != "none":
        obj = _OBJECTIVES["adversarial"](cfg, obj)
    return obj


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
                      inequality: bool = False, weight: str = "zubov") -> torch.Tensor:
    """``l_con^y(h) = e^{−2V_y}(∇V_y·f + Φ_y)²`` per point; ``h``: ``(N, d)``, ``cls``: ``(N,)``.

    ``∇V_y·f`` is one JVP of ``h ↦ V(h, c_y)`` along ``f(h)``; ``Φ_y = ‖h − c_y‖²``.  ``f`` is
    the learned field before any construction (``dynamics.nominal``): with regions invariant by
    construction the losses still train ``f`` itself, the projection only guarantees.
    """
    f = model.dynamics.nominal(h)
    V, V_dot = directional_derivative(lambda z: model.energy(z, cls), h, f)
    return consistency_loss(V, V_dot, zubov_phi(h, model.equilibria[cls]), inequality, weight)


def equilibrium_field(model: nn.Module) -> torch.Tensor:
    """``f(c_i)`` for every equilibrium (the learned field, ``dynamics.nominal``): ``(L, d)``."""
    return model.dynamics.nominal(model.equilibria.detach())


def equilibrium_jacobians(model: nn.Module) -> torch.Tensor:
    """``J_i = ∂f/∂h (c_i)``: ``(L, d, d)``, differentiable w.r.t. the field's parameters.

    One forward-mode pass over the ``L·d`` pairs ``(c_i, e_j)`` (column ``j`` of ``J_i`` is the
    directional derivative along ``e_j``), in core autograd so that it composes with reverse
    mode and with saved-tensor hooks."""
    import torch.autograd.forward_ad as fwAD
    C = model.equilibria.detach()
    L, d = C.shape
    with fwAD.dual_level():
        x = fwAD.make_dual(C.repeat_interleave(d, 0),
                           torch.eye(d, device=C.device, dtype=C.dtype).repeat(L, 1))
        cols = fwAD.unpack_dual(model.dynamics.nominal(x)).tangent    # (L·d, d): J_i e_j
    return cols.view(L, d, -1).transpose(1, 2)


@register_objective("zubov")
class ZubovObjective:
    """Algorithm 2: ``L = L_cla + λ₁ L_FC + λ₂ L_con + λ₃ L_sep (+ λ_eq L_eq + λ_stab L_stab)``.

    * ``L_cla``, ``L_FC``: cross-entropy on ``ℓ`` and on ``C h(T)``;
    * ``L_con``: ``l_con^y`` over ``S₂`` — the trajectory states ``h(t_1..t_Γ)`` (detached), their
      counterexamples (projected gradient ascent on ``l_con`` inside ``{W_y ≤ ρ}``) and, with
      ``loss.region_samples > 0``, states spread over the PRoAs of the batch's classes
      (:func:`zubovnet.sampling.region_points`).  ``loss.consistency_reduction``: ``mean`` over
      the states, or ``sum`` — Algorithm 2's per-sample sum over its ``2Γ`` states, averaged
      over the batch (subsampled trajectory states are re-weighted so that the sum keeps its
      scale);
    * ``L_sep``: boundary points of ``{W_i < ρ}`` (Algorithm 1) for up to ``max_classes``
      classes of the batch;
    * ``L_eq = mean_i ‖f(c_i)‖²``: the equilibria are fixed points of the flow, which Zubov's
      theorem (the paper's Lemma 1) assumes and which ``l_con`` cannot ask for (it vanishes
      identically at ``c_i``, where ``∇V = 0`` and ``Φ = 0``);
    * ``L_stab = mean_i relu(λ_max(½(J_i + J_iᵀ)) + m)``, ``J_i = ∂f/∂h(c_i)``: the flow
      contracts at rate ``m`` near each ``c_i`` (a fixed point can repel; ``l_con`` is fourth
      order in ``h − c_i`` there and does not see it);
    * ``L_in`` (:func:`~zubovnet.losses.inside_loss`): the data inside their own region,
      ``W_y(h(0)) ≤ ρ − m`` (``loss.lambda_inside``, ``inside_margin``, ``inside_form``), on
      the correctly classified points of the batch (``inside_points: correct``): pulling points
      whose features do not yet separate the classes towards ``c_y`` drags them to the
      centroid of the equilibria (measured: ``docs/certified.md``);
    * ``L_lip`` (:func:`~zubovnet.losses.lipschitz_penalty`): the certificate's bound of
      ``‖∇g‖`` per class below ``loss.lipschitz_target`` (``loss.lambda_lipschitz``).
    The Zubov terms constrain the learned field ``f`` (``dynamics.nominal``), also when the
    model's field is projected for invariance by construction (``docs/certified.md``).
    A term whose weight is 0 is not computed (the ablations of Table V).  With
    ``model.equilibria.assignment: data`` the rows of ``C`` are matched to the classes once, at
    the start of training (:meth:`prepare`).  Formulas and measurements: ``docs/alignment.md``.
    """

    def __init__(self, cfg: Config):
        self.cfg = cfg
        self.loss = cfg.loss
        self.timer = None          # a training.timing.PartTimer: wall time per part (benchmarks)
        # the searches (region points, counterexamples, boundary points) reuse one detached
        # conditioning of the Lyapunov head per step (LyapunovHead.frozen_conditioning): same
        # values, fewer calls; False recomputes it at every evaluation (the reference)
        self.freeze_conditioning = True
        self._compiled: tuple | None = None   # (head, torch.compile(head.lyapunov)) if asked
        self._buffer: tuple | None = None     # persistent counterexamples (points, classes)
        self._step = 0                        # steps of this epoch (loss.zubov_every)
        if self.loss.consistency_reduction not in ("mean", "sum"):
            raise ValueError(f"loss.consistency_reduction must be 'mean' or 'sum', got "
                             f"{self.loss.consistency_reduction!r}")
        if cfg.model.equilibria.assignment not in ("maxcos", "data"):
            raise ValueError(f"model.equilibria.assignment must be 'maxcos' or 'data', got "
                             f"{cfg.model.equilibria.assignment!r}")

    def set_epoch(self, epoch: int) -> None:
        """At each epoch: the persistent counterexamples start again from the epoch's first
        batch and the step count of ``loss.zubov_every`` restarts, so that a run resumed at an
        epoch boundary continues exactly as an uninterrupted one (no state to checkpoint)."""
        self._buffer = None
        self._step = 0

    def prepare(self, model: nn.Module, batches) -> dict:
        """Before the first epoch of a fresh run: with ``assignment: data``, permute the rows of
        ``C`` so that class ``k`` gets the max-cosine vector closest in angle to the mean of its
        ``h(0)`` (a linear assignment over ``assignment_batches`` training batches)."""
        e = self.cfg.model.equilibria
        if e.assignment != "data":
            return {}
        from ..models.assignment import assign_equilibria
        return assign_equilibria(model, batches, e.assignment_batches)

    def __call__(self, model, x, y):
        lc, t = self.loss, self.timer
        with part(t, "forward"):
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
        # the sampled terms on one step in k, weighted k: the same objective in expectation
        k = lc.zubov_every
        zubov_now = self._step % k == 0
        self._step += 1
        region = None
        if zubov_now and lc.region_samples > 0 and (lc.lambda_con > 0 or lc.lambda_traj > 0):
            with part(t, "region points"):
                region = self._region_states(model, y)
        if zubov_now and lc.lambda_con > 0:
            total = total + k * lc.lambda_con * self._consistency(model, out, y, region, logs)
        if zubov_now and lc.lambda_traj > 0:
            with part(t, "trajectory targets"):
                total = total + k * lc.lambda_traj * self._trajectory_targets(model, region, logs)
        if lc.lambda_eq > 0 or lc.lambda_stab > 0:
            with part(t, "equilibria"):
                total = total + self._equilibrium_terms(model, logs)
        if zubov_now and lc.lambda_sep > 0:
            total = total + k * lc.lambda_sep * self._separation(model, y, logs)
        if lc.lambda_inside > 0:
            with part(t, "inside"):
                V0 = model.energy(out.trajectory[0], y)
                pick = ((out.logits.detach().argmax(1) == y).to(V0.dtype)
                        if lc.inside_points == "correct" else None)
                L_in = inside_loss(V0, lc.rho, lc.inside_margin, lc.inside_form, pick)
                total = total + lc.lambda_inside * L_in
            logs["L_inside"] = L_in.item()
            logs["h0_inside"] = (V0.detach() < -math.log1p(-lc.rho)).float().mean().item()
        if lc.lambda_lipschitz > 0:
            with part(t, "lipschitz"):
                bound = model.head.gradient_bound()
                L_lip = lipschitz_penalty(bound, lc.lipschitz_target)
                total = total + lc.lambda_lipschitz * L_lip
            logs["L_lip"] = L_lip.item()
            logs["L_g_max"] = bound.detach().max().item()
        logs["loss"] = total.item()
        return total, logs

    def _searching(self, model):
        """The context of the sampling searches: the head's conditioning computed once."""
        head = getattr(model, "head", None)
        if self.freeze_conditioning and hasattr(head, "frozen_conditioning"):
            return head.frozen_conditioning()
        return contextlib.nullcontext()

    def _W_fn(self, model):
        """``W_k(p)`` for the searches; with ``train.compile_searches`` the head's
        :meth:`~zubovnet.models.lyapunov.LyapunovHead.lyapunov` through ``torch.compile``
        (dynamic shapes: the searches' active sets shrink; compiled once per process)."""
        head = getattr(model, "head", None)
        if self.cfg.train.compile_searches and hasattr(head, "lyapunov"):
            if self._compiled is None or self._compiled[0] is not head:
                self._compiled = (head, torch.compile(head.lyapunov, dynamic=True))
            return self._compiled[1]
        return model.lyapunov

    def _region_states(self, model, y):
        """``region_samples`` states over the PRoAs of the batch's classes, and their classes."""
        lc, b = self.loss, self.loss.boundary
        classes = torch.unique(y)
        rcls = classes[torch.randint(classes.numel(), (lc.region_samples,), device=y.device)]
        with self._searching(model):
            pts, _, _ = region_points(self._W_fn(model), model.equilibria.detach(), rcls, lc.rho,
                                      None, b.tol, b.max_iters, lc.region_radius_power, b.rule)
        return pts, rcls

    def _consistency(self, model, out, y, region, logs) -> torch.Tensor:
        """``L_con`` over ``S₂`` (class docstring)."""
        lc, t = self.loss, self.timer
        C = model.equilibria.detach()
        traj = out.trajectory[1:].detach()                           # (Γ, B, d)
        B = y.shape[0]
        states = traj.reshape(-1, traj.shape[-1])
        cls = y.repeat(traj.shape[0])
        n_full = states.shape[0]
        if lc.consistency_samples is not None and n_full > lc.consistency_samples:
            pick = torch.randperm(n_full, device=states.device)[:lc.consistency_samples]
            states, cls = states[pick], cls[pick]
        weight = torch.full((states.shape[0],), n_full / states.shape[0], device=states.device,
                            dtype=states.dtype)
        ineq, cw = lc.consistency == "inequality", lc.consistency_weight
        if lc.counterexample_steps > 0:
            starts, scls = self._counterexample_starts(states, cls)
            with part(t, "counterexamples"), self._searching(model):
                ce = counterexamples(lambda p, k: zubov_consistency(model, p, k, ineq, cw),
                                     self._W_fn(model), C, starts, scls, lc.counterexample_steps,
                                     lc.counterexample_step_size, lc.rho, lc.projection_iters,
                                     lc.projection)
            if lc.counterexample_mode == "persistent":
                self._buffer = (ce, scls)
            states, cls = torch.cat([states, ce]), torch.cat([cls, scls])
            weight = torch.cat([weight, weight])
        if region is not None:
            states, cls = torch.cat([states, region[0]]), torch.cat([cls, region[1]])
            weight = torch.cat([weight, torch.ones(region[1].shape[0], device=weight.device,
                                                   dtype=weight.dtype)])
        with part(t, "consistency"):
            l_con_pts = zubov_consistency(model, states, cls, ineq, cw)
            if cw == "uniform":   # the V form is bounded on the PRoA only: drop states outside
                with torch.no_grad():
                    weight = weight * (model.lyapunov(states, cls) < lc.rho).to(weight.dtype)
            if lc.consistency_reduction == "sum":
                l_con = (weight * l_con_pts).sum() / B
            else:
                l_con = (weight * l_con_pts).sum() / weight.sum().clamp_min(1e-12)
        logs["L_con"] = l_con.item()
        logs["l_con_mean"] = l_con_pts.mean().item()
        return l_con

    def _counterexample_starts(self, states, cls):
        """Where this step's ascent starts: the batch's states (``restart``, Algorithm 2), or the
        persistent buffer with a share ``counterexample_refresh`` of it replaced by the batch's
        states (``persistent``: chains carried across steps, as persistent contrastive
        divergence carries its samples; the first step of an epoch starts from the batch)."""
        lc = self.loss
        if lc.counterexample_mode != "persistent" or self._buffer is None \
                or self._buffer[0].shape[0] != states.shape[0]:
            return states, cls
        pts, pcls = self._buffer[0].clone(), self._buffer[1].clone()
        n = states.shape[0]
        fresh = torch.randperm(n, device=states.device)[:max(1, round(lc.counterexample_refresh
                                                                      * n))]
        pts[fresh], pcls[fresh] = states[fresh], cls[fresh]
        return pts, pcls

    def _trajectory_targets(self, model, region, logs) -> torch.Tensor:
        """``mean (W_y(h) − W*_y(h))²`` on the region states (:func:`zubov_target`)."""
        if region is None:
            raise ValueError("loss.lambda_traj > 0 needs loss.region_samples > 0 (the states "
                             "whose trajectories give the targets)")
        lc, ode = self.loss, model.ode
        pts, rcls = region
        W_star = zubov_target(model.dynamics.field, pts, model.equilibria.detach()[rcls],
                              lc.trajectory_horizon * ode.T, ode.solver, ode.rtol_train,
                              ode.atol_train)
        L_traj = trajectory_target_loss(model.lyapunov(pts, rcls), W_star)
        logs["L_traj"] = L_traj.item()
        logs["W_star_mean"] = W_star.mean().item()
        return L_traj

    def _equilibrium_terms(self, model, logs) -> torch.Tensor:
        """``λ_eq L_eq + λ_stab L_stab`` (class docstring)."""
        lc = self.loss
        total = 0.0
        if lc.lambda_eq > 0:
            f_c = equilibrium_field(model)
            L_eq = f_c.pow(2).sum(1).mean()
            total = total + lc.lambda_eq * L_eq
            logs["L_eq"] = L_eq.item()
            logs["f_c_max"] = f_c.detach().norm(dim=1).max().item()
        if lc.lambda_stab > 0:
            J = equilibrium_jacobians(model)
            lam = torch.linalg.eigvalsh(0.5 * (J + J.transpose(1, 2)))[:, -1]
            L_stab = torch.relu(lam + lc.stability_margin).mean()
            total = total + lc.lambda_stab * L_stab
            logs["L_stab"] = L_stab.item()
            logs["sym_eig_max"] = lam.detach().max().item()
        return total

    def _separation(self, model, y, logs) -> torch.Tensor:
        """``L_sep`` at boundary points of ``{W_i < ρ}`` (Algorithm 1)."""
        lc, b, t = self.loss, self.loss.boundary, self.timer
        C = model.equilibria.detach()
        with part(t, "boundary points"):
            classes = torch.unique(y)
            if classes.numel() > b.max_classes:
                classes = classes[torch.randperm(classes.numel(), device=y.device)[:b.max_classes]]
            dirs, dcls = boundary_directions(C, classes, b.variants, b.radius_max)
            with self._searching(model):
                res = boundary_points(self._W_fn(model), C, dirs, dcls, lc.rho, b.tol,
                                      b.max_iters, b.init_step, b.rule)
        with part(t, "separation"):
            pts, pcls = res.points[res.converged], res.cls[res.converged]

            def w_beta(p):
                return -torch.expm1(-lc.beta * model.energy(p))
            if b.recompute and torch.is_grad_enabled():
                # activation checkpointing: keep only the points; the L energies of each are
                # recomputed in the backward pass (same values and gradients)
                from torch.utils.checkpoint import checkpoint
                W_beta = checkpoint(w_beta, pts.detach(), use_reentrant=False)
            else:
                W_beta = w_beta(pts.detach())
            L_sep = separation_loss(W_beta, pcls)
        logs["L_sep"] = L_sep.item()
        logs["boundary_converged"] = res.converged.float().mean().item()
        return L_sep
