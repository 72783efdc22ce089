"""The rigorous protocol: stronger attacks and gradient-masking checks (``docs/evaluation.md``).

Robustness claims on Neural ODEs are often gradient masking (Huang et al. 2022): the adaptive
solver, saturating heads or a non-differentiable step inside ``forward`` hide the adversarial
directions from gradient attacks while black-box attacks and larger budgets still find them.
At ``eps = 8/255`` (L∞) by default this runs, each stage on every image of the sample:

* reference AutoAttack (standard);
* PGD on the DLR margin and PGD on the CW margin, 50 steps × 5 random restarts each, worst
  iterate per example (:class:`~zubovnet.evaluation.attacks.MarginPGD`) — the DLR margin is
  scale-invariant but degenerates on logits whose foreign entries saturate at one value (the
  Zubov-Net's log-space logits do: its denominator ``z_π1 − z_π3`` is then tiny for the runner-up
  pair), the CW margin does not, so both run;
* APGD-CE (100 steps) and Square (black box, 5,000 queries);
* ODE models: the DLR margin PGD crafted through a fixed-step RK4 solve with the **same** steps
  and restarts, evaluated under the model's own solver;
* the CW margin PGD at ``eps = 0.5``, where every classifier must fall;

and takes the per-example worst case over all of them and over the paper protocol's white-box
attacks at the same ``eps`` (when the ``attacks`` suite ran).  The verdicts are the functions of
:mod:`zubovnet.evaluation.checks`.

Input contract: ``x`` ``(n, C, H, W)`` in [0, 1] and ``y`` ``(n,)`` on the CPU (batches move to
``device``); the model is in eval mode (asserted by every attack).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import torch
from torch import nn

from . import checks
from .attacks import (PAPER_STEP_FRACTION, PAPER_STEPS, SOLVER_ERRORS, SQUARE_QUERIES,
                      MarginPGD, assert_eval_mode, eps_label, input_gradient, make_attack,
                      run_attack)
from .records import result_entry

__all__ = ["SOLVER_ERRORS", "RigorousSettings", "RigorousResult", "cosine_per_example",
           "gradient_checks", "solver_checks", "run_rigorous", "CHECKS"]

cosine_per_example = checks.cosine_per_example

CHECKS = ("solver_failures", "gradients_finite", "zero_gradients", "gradient_informative",
          "large_eps", "square_vs_apgd", "weak_vs_strong", "autoattack", "autoattack_labels",
          "solver_gradients", "adjoint_gradients", "rk4_attack")
"""Checks of the rigorous protocol, in the order they are reported."""



@dataclass
class RigorousSettings:
    """Every constant of the rigorous protocol (defaults are the documented protocol)."""
    eps: float = 8 / 255                 # budget of the rigorous attacks (L∞)
    autoattack: bool = True              # run reference AutoAttack standard at eps
    aa_square_queries: Optional[int] = None  # None: reference 5,000 (override: not reference)
    aa_attacks: Optional[tuple] = None   # None: the standard's four; a subset: not reference
    pgd_steps: int = 50                  # margin PGD: iterations per restart
    pgd_restarts: int = 5                # margin PGD: random restarts (worst case kept)
    pgd_losses: tuple = ("dlr", "cw")    # one margin PGD per loss, all in the worst case
    pgd_step_size: Optional[float] = None  # None: 2.5 eps / steps
    weak_steps: int = PAPER_STEPS        # the paper-protocol PGD compared with (CE, step eps/8)
    weak_gap_threshold: float = 0.05     # weak_vs_strong: FLAG above this gap
    apgd_steps: int = 100                # white-box APGD-CE of the Square comparison
    square_queries: int = SQUARE_QUERIES  # black-box Square of the comparison
    square_gap_threshold: float = 0.03   # square_vs_apgd: FLAG if Square-only breaks exceed this share
    large_eps: float = 0.5               # budget at which accuracy must be ~0
    large_eps_steps: int = 50
    large_eps_restarts: int = 1
    large_eps_loss: str = "cw"
    large_eps_threshold: float = 0.05    # large_eps: FLAG if more clean-correct images survive
    rk4_attack: bool = True              # ODE models: margin PGD crafted through RK4
    rk4_step: float = 0.05               # fixed step of the RK4 reference solver
    rk4_gap_threshold: float = 0.02      # rk4_attack: FLAG if RK4-only breaks exceed this share
    grad_n: int = 64                     # examples used by the gradient checks
    zero_grad_threshold: float = 0.0     # zero_gradients: FLAG above this share
    fd_step: float = 1 / 255             # step of the first-order (informativeness) test
    fd_ratio_band: float = 2.0           # actual/predicted decrease counts as agreeing in [1/b, b]
    fd_agree_threshold: float = 0.5      # gradient_informative: FLAG below this share
    cos_quantile: float = 0.05           # solver/adjoint checks: the quantile of the cosine tested
    solver_cos_threshold: float = 0.9    # solver_gradients: FLAG below
    adjoint_cos_threshold: float = 0.9   # adjoint_gradients: FLAG below
    adv_check_steps: int = 20            # PGD steps giving the adversarial points of those checks

    def __post_init__(self):
        if self.aa_attacks is not None:     # a bad name fails here, not mid-evaluation
            from .autoattack import _check_components
            self.aa_attacks = tuple(_check_components(self.aa_attacks))


@dataclass
class RigorousResult:
    entries: list                        # result entries, keys "rigorous/<role>"
    verdicts: list                       # verdict dicts
    masks: dict                          # role -> robust mask (n,) bool
    failures: dict = field(default_factory=dict)   # role -> solver failures


# --------------------------------------------------------------------------- gradient checks
def gradient_checks(model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                    settings: RigorousSettings | None = None) -> list[dict]:
    """``gradients_finite``, ``zero_gradients``, ``gradient_informative`` on ``(x, y)`` (on
    the model's device).  A solve that fails FLAGs all three."""
    s = settings or RigorousSettings()
    try:
        g_m = input_gradient(model, x, y, "cw")
        g_ce = input_gradient(model, x, y, "ce")
        return [checks.check_gradients_finite(g_m, g_ce),
                checks.check_zero_gradients(g_m, g_ce, s.zero_grad_threshold),
                checks.check_gradient_informative(model, x, y, g_m, s.fd_step, s.fd_ratio_band,
                                                  s.fd_agree_threshold)]
    except SOLVER_ERRORS as err:
        return [checks.solver_check_error(c, err)
                for c in ("gradients_finite", "zero_gradients", "gradient_informative")]


def solver_checks(model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                  settings: RigorousSettings | None = None, seed: int = 0) -> list[dict]:
    """``solver_gradients`` and ``adjoint_gradients`` (``n/a`` without ODE blocks).

    Compares ``∇_x CE`` under the model's solver with a fixed-step RK4 solve (step
    ``rk4_step``; when the model already uses a fixed-grid solver, with dopri5 at
    ``rtol = atol = 1e-5``), and adjoint with direct backpropagation, by the per-example cosine
    at the clean points and at adversarial points (a short CW-margin PGD at ``eps``); the low
    quantile ``cos_quantile`` of each is tested (:func:`checks.check_solver_gradients`).
    """
    from ..models import ode_blocks, solver_override
    from ..models.ode import is_adaptive
    from .records import verdict

    s = settings or RigorousSettings()
    blocks = ode_blocks(model)
    if not blocks:
        return [verdict("solver_gradients", "n/a", "model has no ODE block"),
                verdict("adjoint_gradients", "n/a", "model has no ODE block")]
    own = blocks[0].describe()
    ref = ({"solver": "rk4", "step_size": s.rk4_step} if is_adaptive(own["solver"]) else
           {"solver": "dopri5", "rtol": 1e-5, "atol": 1e-5})

    def grads(points, **over):
        with solver_override(model, **over):
            return input_gradient(model, points, y, "ce")

    try:
        pgd = MarginPGD(model, s.eps, steps=s.adv_check_steps, restarts=1, loss="cw", seed=seed)
        x_adv = pgd(x, y)
    except SOLVER_ERRORS:
        x_adv = None
    out = []
    for name, a_over, b_over, thr, fn in (
            ("solver_gradients", {}, {**ref, "adjoint": False}, s.solver_cos_threshold,
             checks.check_solver_gradients),
            ("adjoint_gradients", {"adjoint": False}, {"adjoint": True}, s.adjoint_cos_threshold,
             checks.check_adjoint_gradients)):
        try:
            cos_c, _ = checks.cosine_per_example(grads(x, **a_over), grads(x, **b_over))
            cos_a = None
            if x_adv is not None:
                cos_a, _ = checks.cosine_per_example(grads(x_adv, **a_over), grads(x_adv, **b_over))
        except Exception as err:   # a solve that fails under either setting is a finding
            out.append(checks.solver_check_error(name, err))
            continue
        out.append(fn(cos_c, cos_a, s.cos_quantile, thr, model_solver=own,
                      reference_solver=ref if name == "solver_gradients" else None,
                      n=len(x)))
    return out


# --------------------------------------------------------------------------- protocol
def run_rigorous(model: nn.Module, x: torch.Tensor, y: torch.Tensor, clean_correct: torch.Tensor,
                 *, settings: RigorousSettings | None = None, batch_size: int = 256,
                 device: str | torch.device = "cpu", seed: int = 0, num_classes: int | None = None,
                 solver: list | None = None, masks: dict | None = None, state=None,
                 tick: Callable[[int], Any] | None = None,
                 stage: Callable[[str], Any] | None = None) -> RigorousResult:
    """Run the rigorous protocol on ``(x, y)`` (``(n, C, H, W)`` in [0, 1], ``(n,)``, CPU).

    ``clean_correct``: ``(n,)`` bool.  ``masks``: robust masks of the paper protocol's stages
    (``"pgd@8/255"`` is reused as the paper PGD; every white-box ``"<attack>@<eps>"`` at this
    ``eps`` joins the worst case).  ``state``: an :class:`~zubovnet.evaluation.state.EvalState`
    (finished batches and checks are read back).  ``solver``: the ODE blocks' ``describe()``.
    """
    from ..models import ode_blocks

    s = settings or RigorousSettings()
    masks = dict(masks or {})
    dev = torch.device(device)
    assert_eval_mode(model)
    num_classes = num_classes or int(model(x[:1].to(dev)).shape[1])
    lab = eps_label(s.eps)
    entries, verdicts, robust, failures = [], [], {}, {}
    has_ode = bool(ode_blocks(model))

    def run_stage(role, atk, extra=None):
        if stage:
            stage(role)
        t0 = time.perf_counter()
        cache = state.stage(f"rigorous/{role}") if state is not None else None
        out = run_attack(model, atk, x, y, batch_size, dev, tick, cache=cache)
        rob = clean_correct & out.correct
        failures[role] = out.failures
        e = result_entry(f"rigorous/{role}", "rigorous", "rigorous", int(rob.sum()), len(rob),
                         attack=atk.describe(), solver=solver, wall_time_s=time.perf_counter() - t0,
                         role=role, accuracy_adv_only=float(out.correct.float().mean())
                         if len(rob) else None, solver_failures=out.failures,
                         **(extra or {}))
        entries.append(e)
        robust[role] = rob
        return e, rob, out

    # 1. the paper-protocol PGD at eps (reused from the attacks suite when it ran)
    if f"pgd@{lab}" in masks and s.weak_steps == PAPER_STEPS:
        weak = masks[f"pgd@{lab}"]
    else:
        _, weak, _ = run_stage("pgd_paper", make_attack(
            "pgd", model, s.eps, steps=s.weak_steps, step_size=s.eps * PAPER_STEP_FRACTION,
            seed=seed))
    # 2. reference AutoAttack
    aa = aa_out = None
    if s.autoattack:
        aa_state = state.aux_path("autoattack") if state is not None else None
        aa = make_attack("autoattack", model, s.eps, seed=seed, num_classes=num_classes,
                         square_queries=s.aa_square_queries, attacks=s.aa_attacks,
                         batch_size=batch_size,
                         state_path=str(aa_state) if aa_state else None)
        _, _, aa_out = run_stage("autoattack", aa)
    # 3. margin PGD with restarts, one per loss
    for loss in s.pgd_losses:
        role = "pgd_margin" if loss == "dlr" else f"pgd_{loss}"
        run_stage(role, MarginPGD(model, s.eps, steps=s.pgd_steps, restarts=s.pgd_restarts,
                                  step_size=s.pgd_step_size, loss=loss, seed=seed))
    # 4. white-box APGD-CE and black-box Square
    _, r_apgd, _ = run_stage("apgd", make_attack("apgd", model, s.eps, steps=s.apgd_steps,
                                                 seed=seed))
    _, r_sq, _ = run_stage("square", make_attack("square", model, s.eps, seed=seed,
                                                 n_queries=s.square_queries))
    # 5. ODE models: the same margin PGD crafted through a fixed-step RK4 solve
    r_rk4 = None
    loss0 = s.pgd_losses[0]
    role0 = "pgd_margin" if loss0 == "dlr" else f"pgd_{loss0}"
    if has_ode and s.rk4_attack:
        _, r_rk4, _ = run_stage("pgd_margin_rk4", MarginPGD(
            model, s.eps, steps=s.pgd_steps, restarts=s.pgd_restarts, step_size=s.pgd_step_size,
            loss=loss0, seed=seed, solver={"solver": "rk4", "step_size": s.rk4_step,
                                           "adjoint": False}))
    # worst case at eps over every attack above and the paper's white-box attacks at eps
    worst = clean_correct.clone()
    over = sorted(robust)
    for m in robust.values():
        worst &= m
    paper = sorted(k for k in masks if k.endswith(f"@{lab}") and not k.startswith(
        ("vnifgsm", "square", "autoattack")))
    for k in paper:
        worst &= masks[k]
    n = len(worst)
    entries.append(result_entry("rigorous/worst_case", "rigorous", "rigorous", int(worst.sum()),
                                n, solver=solver, role="worst_case", eps=s.eps, eps_label=lab,
                                norm="Linf", over=over + paper, seed=seed))
    worst_acc = float(worst.float().mean()) if n else 0.0
    # 6. large eps
    _, r_big, _ = run_stage("large_eps", MarginPGD(
        model, s.large_eps, steps=s.large_eps_steps, restarts=s.large_eps_restarts,
        loss=s.large_eps_loss, seed=seed))
    robust.pop("large_eps", None)
    robust["worst_case"] = worst

    # ---- verdicts
    verdicts.append(checks.check_solver_failures(failures, n))
    verdicts.append(checks.check_large_eps(r_big, clean_correct, s.large_eps,
                                           s.large_eps_threshold))
    verdicts.append(checks.check_square_vs_apgd(r_apgd, r_sq, s.square_gap_threshold))
    verdicts.append(checks.check_weak_vs_strong(float(weak.float().mean()), worst_acc,
                                                s.weak_steps, s.weak_gap_threshold))
    if aa is None:
        from .records import verdict
        verdicts.append(verdict("autoattack", "n/a", "AutoAttack not run (settings)"))
    else:
        verdicts.append(checks.check_autoattack(aa.describe()))
        verdicts.append(checks.check_autoattack_labels(aa_out.disagreements, n))
    if r_rk4 is None:
        from .records import verdict
        verdicts.append(verdict("rk4_attack", "n/a", "model has no ODE block" if not has_ode
                                else "disabled in the settings"))
    else:
        verdicts.append(checks.check_rk4_attack(robust[role0], r_rk4, s.rk4_gap_threshold))
    # gradient and solver checks on the first grad_n examples (cached as one stage)
    def grad_checks() -> list:
        if stage:
            stage("gradients")
        xg, yg = x[:s.grad_n].to(dev), y[:s.grad_n].to(dev)
        from .records import to_jsonable
        return to_jsonable(gradient_checks(model, xg, yg, s) + solver_checks(model, xg, yg, s, seed))

    cached = (state.compute("rigorous/gradient_checks", grad_checks) if state is not None
              else grad_checks())
    verdicts.extend(cached)
    order = {c: i for i, c in enumerate(CHECKS)}
    verdicts.sort(key=lambda v: order.get(v["check"], len(order)))
    return RigorousResult(entries=entries, verdicts=verdicts, masks=robust, failures=failures)
