"""The rigorous protocol (SPEC §5): stronger attacks and gradient-masking checks.

Robustness claims on Neural ODEs are often gradient masking (Huang et al. 2022): the adaptive
solver, saturating heads or a non-differentiable step inside ``forward`` hide the adversarial
directions from gradient-based attacks while black-box attacks and larger budgets still find
them.  This module runs, at ``eps = 8/255`` by default:

* reference AutoAttack (standard);
* PGD with a margin loss (DLR by default), 50 steps, 5 random restarts, worst case per
  example (:class:`~zubovnet.evaluation.attacks.MarginPGD`);
* APGD-CE (100 steps) and Square (black box, 5,000 queries) on every example;
* for ODE models, the margin PGD crafted through a fixed-step RK4 solve and evaluated under
  the model's own solver;
* the margin PGD at ``eps = 0.5`` (every classifier must fall to ≈ 0 there),

and the checks below, each returning a verdict ``{check, status: pass|FLAG|n/a, reason,
numbers}`` (:func:`~zubovnet.evaluation.records.verdict`) that the evaluator prints beside the
numbers:

* ``attack_errors``: FLAG if an attack stage failed because the ODE solver could not integrate
  an adversarial input (the stage is recorded with ``accuracy: null`` and excluded from the
  worst case; the checks that need it are n/a).
* ``gradients_finite``: FLAG if an input gradient contains NaN/Inf.
* ``zero_gradients``: FLAG if the fraction of examples whose margin gradient is exactly zero
  exceeds ``zero_grad_threshold`` (0).
* ``gradient_informative``: the ratio of the actual margin decrease along ``−sign ∇m`` (a
  step of ``fd_step`` = 1/255) to its first-order prediction should lie in ``[1/2, 2]``
  (``fd_ratio_band``); FLAG if that holds for fewer than ``fd_agree_threshold`` (50%) of the
  examples.
* ``large_eps``: FLAG if accuracy at ``large_eps`` (0.5) is above ``large_eps_threshold`` (5%).
* ``square_vs_apgd``: FLAG if Square accuracy is below APGD-CE accuracy by more than
  ``square_gap_threshold`` (3 points).
* ``weak_vs_strong``: FLAG if paper-protocol PGD-10 accuracy exceeds the worst case over the
  rigorous attacks by more than ``weak_gap_threshold`` (5 points).
* ``autoattack_flags``: FLAG if the reference AutoAttack raised one of its own sanity warnings.
* ``solver_gradients``: FLAG if the median cosine of ``∇_x CE`` under the model's solver vs a
  fixed-step RK4 solve (step 0.05) is below ``solver_cos_threshold`` (0.9); n/a without ODE.
* ``adjoint_gradients``: FLAG if the median cosine of ``∇_x CE`` with the adjoint method vs
  direct backpropagation is below ``adjoint_cos_threshold`` (0.9); n/a without ODE.
* ``rk4_attack``: FLAG if the margin PGD crafted through RK4 beats the one through the
  model's solver by more than ``weak_gap_threshold``; n/a without ODE.

Input contract: ``x`` ``(n, C, H, W)`` in [0, 1] and ``y`` ``(n,)`` on the CPU (batches move to
``device``); the model is in eval mode (asserted by every attack).
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable, Optional

import torch
from torch import nn

from .attacks import (MarginPGD, PAPER_STEP_FRACTION, assert_eval_mode, eps_label,
                      input_gradient, make_attack, margin, run_attack)
from .records import result_entry, verdict

__all__ = ["SOLVER_ERRORS", "RigorousSettings", "RigorousResult", "cosine_per_example",
           "gradient_checks", "solver_checks", "run_rigorous", "CHECKS"]


def _solver_errors() -> tuple:
    try:
        from ..models import StepSizeUnderflowError
        return (StepSizeUnderflowError,)
    except Exception:  # pragma: no cover
        return ()


SOLVER_ERRORS: tuple = _solver_errors()
"""Exceptions of an ODE solve on an adversarial input; the stage is recorded as failed
(``status: "error: ..."``, accuracy ``null``) and the ``attack_errors`` check FLAGs."""

CHECKS = ("attack_errors", "gradients_finite", "zero_gradients", "gradient_informative",
          "large_eps", "square_vs_apgd", "weak_vs_strong", "autoattack_flags",
          "solver_gradients", "adjoint_gradients", "rk4_attack")
"""Checks of the rigorous protocol, in the order they are reported."""


@dataclass
class RigorousSettings:
    """Every constant of the rigorous protocol (defaults are the documented protocol)."""
    eps: float = 8 / 255                 # budget of the rigorous attacks (L∞)
    autoattack: bool = True              # run reference AutoAttack standard at eps
    aa_square_queries: Optional[int] = None  # None: reference 5,000 (override: not reference)
    pgd_steps: int = 50                  # margin PGD: iterations per restart
    pgd_restarts: int = 5                # margin PGD: random restarts (worst case kept)
    pgd_loss: str = "dlr"                # dlr|cw
    pgd_step_size: Optional[float] = None  # None: 2.5 eps / steps
    weak_steps: int = 10                 # the paper-protocol PGD compared with (CE, step eps/8)
    weak_gap_threshold: float = 0.05     # FLAG: PGD-10 acc − worst-case acc above this
    apgd_steps: int = 100                # white-box APGD-CE of the Square comparison
    square_queries: int = 5000           # black-box Square of the comparison
    square_gap_threshold: float = 0.03   # FLAG: APGD acc − Square acc above this
    large_eps: float = 0.5               # budget at which accuracy must be ~0
    large_eps_steps: int = 50
    large_eps_restarts: int = 1
    large_eps_threshold: float = 0.05    # FLAG: accuracy at large_eps above this
    rk4_attack: bool = True              # ODE models: margin PGD crafted through RK4
    rk4_step: float = 0.05               # fixed step of the RK4 reference solver
    rk4_restarts: int = 1
    grad_n: int = 64                     # examples used by the gradient checks
    zero_grad_threshold: float = 0.0     # FLAG: fraction of all-zero margin gradients above
    fd_step: float = 1 / 255             # step of the first-order (informativeness) test
    fd_ratio_band: float = 2.0           # actual/predicted decrease counts as agreeing in [1/b, b]
    fd_agree_threshold: float = 0.5      # FLAG: fraction of agreeing examples below
    solver_cos_threshold: float = 0.9    # FLAG: median cosine adaptive vs RK4 below
    adjoint_cos_threshold: float = 0.9   # FLAG: median cosine adjoint vs direct below


@dataclass
class RigorousResult:
    entries: list      # result entries (records.result_entry), keys "rigorous/<role>"
    verdicts: list     # verdict dicts
    masks: dict        # role -> robust mask (n,) bool


# --------------------------------------------------------------------------- gradients
def cosine_per_example(a: torch.Tensor, b: torch.Tensor, eps: float = 1e-12):
    """Cosine similarity of the flattened rows of ``a`` and ``b`` ``(B, ...)``.

    Returns ``(cos (B,), valid (B,) bool)``; rows where either vector is zero are invalid
    (their cosine is set to NaN).
    """
    a, b = a.flatten(1).double(), b.flatten(1).double()
    na, nb = a.norm(dim=1), b.norm(dim=1)
    valid = (na > eps) & (nb > eps)
    cos = (a * b).sum(1) / (na * nb).clamp_min(eps)
    return torch.where(valid, cos, torch.full_like(cos, float("nan"))), valid


def _stats(values: torch.Tensor) -> dict:
    v = values[torch.isfinite(values)]
    if v.numel() == 0:
        return {"median": None, "min": None, "mean": None, "n": 0}
    return {"median": v.median().item(), "min": v.min().item(), "mean": v.mean().item(),
            "n": int(v.numel())}


@torch.no_grad()
def _margins(model, x, y, kind="cw"):
    return margin(model(x), y, kind)


def gradient_checks(model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                    settings: RigorousSettings | None = None) -> list[dict]:
    """``gradients_finite``, ``zero_gradients``, ``gradient_informative`` on ``(x, y)``.

    Gradients are those of the CW margin ``m = z_y − max_{k≠y} z_k`` (and of the CE loss)
    wrt the input.  Informativeness: with ``d = −sign ∇m`` and ``x' = clip(x + h d)``, the
    first-order prediction of the decrease is ``−∇m·(x' − x)``; the ratio of the actual
    decrease ``m(x) − m(x')`` to it is ≈ 1 for a smooth model, and ≈ 0 or far above 1 when
    the gradient does not describe the function (straight-through rounding, shattered
    gradients); an example agrees when the ratio lies in ``[1/fd_ratio_band, fd_ratio_band]``.
    ``x`` ``(B, C, H, W)`` in [0, 1] on the model's device.
    """
    s = settings or RigorousSettings()
    g_m = input_gradient(model, x, y, "cw")
    g_ce = input_gradient(model, x, y, "ce")
    out = []
    finite = bool(torch.isfinite(g_m).all() and torch.isfinite(g_ce).all())
    out.append(verdict("gradients_finite", "pass" if finite else "FLAG",
                       "input gradients are finite" if finite else
                       "NaN/Inf in input gradients: attacks following them are meaningless",
                       n=len(x)))
    g_m = torch.nan_to_num(g_m, nan=0.0, posinf=0.0, neginf=0.0)
    zero_m = (g_m.flatten(1).abs().sum(1) == 0)
    zero_ce = (torch.nan_to_num(g_ce).flatten(1).abs().sum(1) == 0)
    frac_m, frac_ce = zero_m.float().mean().item(), zero_ce.float().mean().item()
    if frac_m > s.zero_grad_threshold:
        st, why = "FLAG", (f"{int(zero_m.sum())}/{len(x)} examples have an all-zero margin "
                           "gradient: masked gradients (detach, rounding or a constant region "
                           "inside forward)")
    elif frac_ce > 0:
        st, why = "pass", (f"margin gradients non-zero; {int(zero_ce.sum())}/{len(x)} CE "
                           "gradients are zero (saturated softmax): CE attacks stall there, "
                           "margin attacks do not")
    else:
        st, why = "pass", "no example has an all-zero input gradient"
    out.append(verdict("zero_gradients", st, why, frac_zero_margin=frac_m, frac_zero_ce=frac_ce,
                       threshold=s.zero_grad_threshold, n=len(x)))
    # first-order informativeness
    keep = ~zero_m
    if keep.sum() == 0:
        out.append(verdict("gradient_informative", "n/a",
                           "no example has a non-zero gradient (see zero_gradients)", n=0))
        return out
    xk, yk, gk = x[keep], y[keep], g_m[keep]
    x1 = (xk - s.fd_step * gk.sign()).clamp(0, 1)
    predicted = -(gk * (x1 - xk)).flatten(1).sum(1)
    actual = _margins(model, xk, yk) - _margins(model, x1, yk)
    ok = predicted > 1e-12
    if ok.sum() == 0:
        out.append(verdict("gradient_informative", "n/a",
                           "the gradient step leaves no pixel free to move", n=0))
        return out
    ratio = actual[ok] / predicted[ok]
    st = _stats(ratio)
    agree = ((ratio >= 1 / s.fd_ratio_band) & (ratio <= s.fd_ratio_band)).float().mean().item()
    status = "pass" if agree >= s.fd_agree_threshold else "FLAG"
    why = (f"a step along the gradient sign changes the margin as predicted to first order "
           f"for {100 * agree:.0f}% of the examples" if status == "pass" else
           f"the first-order prediction holds for only {100 * agree:.0f}% of the examples: "
           "the gradient does not describe the function (shattered, straight-through or "
           "obfuscated gradients)")
    out.append(verdict("gradient_informative", status, why, frac_agree=agree,
                       median_ratio=st["median"], min_ratio=st["min"], n=st["n"],
                       step=s.fd_step, band=s.fd_ratio_band, threshold=s.fd_agree_threshold))
    return out


def solver_checks(model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                  settings: RigorousSettings | None = None) -> list[dict]:
    """``solver_gradients`` and ``adjoint_gradients`` (``n/a`` without ODE blocks).

    Compares ``∇_x CE`` under the model's solver with a fixed-step RK4 solve (step
    ``rk4_step``; when the model already uses a fixed-grid solver, with dopri5 at
    ``rtol = atol = 1e-5``), and with the adjoint method vs direct backpropagation through the
    solver, by the per-example cosine similarity (median over examples).
    """
    from ..models import ode_blocks, solver_override

    s = settings or RigorousSettings()
    blocks = ode_blocks(model)
    if not blocks:
        return [verdict("solver_gradients", "n/a", "model has no ODE block"),
                verdict("adjoint_gradients", "n/a", "model has no ODE block")]
    own = blocks[0].describe()
    adaptive = own["solver"] in {"dopri5", "dopri8", "bosh3", "fehlberg2", "adaptive_heun"}
    ref = ({"solver": "rk4", "step_size": s.rk4_step} if adaptive else
           {"solver": "dopri5", "rtol": 1e-5, "atol": 1e-5})
    out = []

    def grads(**over):
        with solver_override(model, **over):
            return input_gradient(model, x, y, "ce")

    def compare(check, a_fn, b_fn, threshold, what, **numbers):
        try:
            ga, gb = a_fn(), b_fn()
        except Exception as e:  # a solve that fails under the reference settings is a finding
            return verdict(check, "FLAG", f"{what}: solve failed ({type(e).__name__}: {e})",
                           **numbers)
        cos, valid = cosine_per_example(ga, gb)
        st = _stats(cos)
        if st["n"] == 0:
            return verdict(check, "n/a", f"{what}: all gradients are zero", **numbers)
        status = "pass" if st["median"] >= threshold else "FLAG"
        why = (f"{what} agree (median cosine {st['median']:.3f})" if status == "pass" else
               f"{what} disagree (median cosine {st['median']:.3f} < {threshold}): the "
               "attack gradient depends on the solver, a sign of obfuscated gradients")
        return verdict(check, status, why, median_cos=st["median"], min_cos=st["min"],
                       mean_cos=st["mean"], n=st["n"], threshold=threshold, **numbers)

    out.append(compare("solver_gradients", lambda: grads(), lambda: grads(**ref, adjoint=False),
                       s.solver_cos_threshold, "gradients under the model's solver and "
                       f"{ref['solver']}", model_solver=own, reference_solver=ref))
    out.append(compare("adjoint_gradients", lambda: grads(adjoint=False),
                       lambda: grads(adjoint=True), s.adjoint_cos_threshold,
                       "adjoint and direct gradients", model_solver=own))
    return out


# --------------------------------------------------------------------------- protocol
def _entry(role, correct_mask, clean_correct, attack_desc, solver, wall, extra=None):
    robust = clean_correct & correct_mask
    return result_entry(f"rigorous/{role}", "rigorous", "rigorous", int(robust.sum()),
                        len(robust), attack=attack_desc, solver=solver, wall_time_s=wall,
                        role=role,
                        accuracy_adv_only=(correct_mask.float().mean().item()
                                           if len(robust) else None),
                        **(extra or {})), robust


def run_rigorous(model: nn.Module, x: torch.Tensor, y: torch.Tensor, clean_correct: torch.Tensor,
                 *, settings: RigorousSettings | None = None, batch_size: int = 256,
                 device: str | torch.device = "cpu", seed: int = 0, num_classes: int | None = None,
                 solver: list | None = None, masks: dict | None = None,
                 tick: Callable[[int], Any] | None = None,
                 stage: Callable[[str], Any] | None = None) -> RigorousResult:
    """Run the rigorous protocol on ``(x, y)`` (``(n, C, H, W)`` in [0, 1], ``(n,)``, CPU).

    ``clean_correct``: ``(n,)`` bool, the clean predictions' correctness.  ``masks``: robust
    masks already computed by the paper protocol (``"pgd@8/255"`` is reused when present).
    ``solver``: the ODE blocks' ``describe()`` (recorded in each entry).  ``tick(k)`` advances
    a progress bar by ``k`` examples per attacked batch; ``stage(name)`` names the stage.
    Returns the entries (keys ``rigorous/<role>``), the verdicts and the robust masks.
    """
    from ..models import ode_blocks

    s = settings or RigorousSettings()
    masks = dict(masks or {})
    dev = torch.device(device)
    assert_eval_mode(model)
    num_classes = num_classes or int(model(x[:1].to(dev)).shape[1])
    lab = eps_label(s.eps)
    entries, verdicts, robust_masks = [], [], {}
    has_ode = bool(ode_blocks(model))

    errors: dict[str, str] = {}

    def attack_stage(role, atk, extra=None):
        if stage:
            stage(role)
        t0 = time.perf_counter()
        try:
            adv_correct = run_attack(model, atk, x, y, batch_size, dev, tick)
        except SOLVER_ERRORS as err:  # an adversarial input the ODE solver cannot integrate
            errors[role] = f"{type(err).__name__}: {err}"
            e = {"key": f"rigorous/{role}", "suite": "rigorous", "protocol": "rigorous",
                 "role": role, "accuracy": None, "correct": None, "n": len(x),
                 "status": f"error: {errors[role]}", "attack_settings": atk.describe(),
                 "eps": atk.eps, "eps_label": eps_label(atk.eps), "solver": solver,
                 "wall_time_s": time.perf_counter() - t0}
            entries.append(e)
            return e, None
        e, rob = _entry(role, adv_correct, clean_correct, atk.describe(), solver,
                        time.perf_counter() - t0, extra)
        entries.append(e)
        robust_masks[role] = rob
        return e, rob

    def failed(check, *roles):
        bad = [r for r in roles if r in errors]
        if bad:
            verdicts.append(verdict(check, "n/a", "attack failed: " +
                                    "; ".join(f"{r}: {errors[r]}" for r in bad)))
        return bool(bad)

    # 1. the paper-protocol PGD at eps (reused from the attacks suite when available)
    if f"pgd@{lab}" in masks and s.weak_steps == 10:
        robust_masks["pgd_paper"] = masks[f"pgd@{lab}"]
        weak_acc = robust_masks["pgd_paper"].float().mean().item()
    else:
        e, _ = attack_stage("pgd_paper", make_attack("pgd", model, s.eps, steps=s.weak_steps,
                                                     step_size=s.eps * PAPER_STEP_FRACTION,
                                                     seed=seed))
        weak_acc = e["accuracy"]
    # 2. reference AutoAttack
    aa = None
    if s.autoattack:
        aa = make_attack("autoattack", model, s.eps, seed=seed, num_classes=num_classes,
                         square_queries=s.aa_square_queries, batch_size=batch_size)
        attack_stage("autoattack", aa)
    # 3. margin PGD with restarts
    pgd = MarginPGD(model, s.eps, steps=s.pgd_steps, restarts=s.pgd_restarts,
                    step_size=s.pgd_step_size, loss=s.pgd_loss, seed=seed)
    e_pgd, _ = attack_stage("pgd_margin", pgd)
    # 4. white-box APGD-CE vs black-box Square
    e_apgd, _ = attack_stage("apgd", make_attack("apgd", model, s.eps, steps=s.apgd_steps,
                                                 seed=seed))
    e_sq, _ = attack_stage("square", make_attack("square", model, s.eps, seed=seed,
                                                 n_queries=s.square_queries))
    # 5. ODE models: craft through a fixed-step RK4 solve
    e_rk4 = None
    if has_ode and s.rk4_attack:
        rk4 = MarginPGD(model, s.eps, steps=s.pgd_steps, restarts=s.rk4_restarts,
                        step_size=s.pgd_step_size, loss=s.pgd_loss, seed=seed,
                        solver={"solver": "rk4", "step_size": s.rk4_step, "adjoint": False})
        e_rk4, _ = attack_stage("pgd_margin_rk4", rk4)
    # worst case at eps over every attack above
    worst = clean_correct.clone()
    for m in robust_masks.values():
        worst &= m
    n = len(worst)
    entries.append(result_entry("rigorous/worst_case", "rigorous", "rigorous",
                                int(worst.sum()), n, solver=solver, role="worst_case",
                                eps=s.eps, eps_label=lab, norm="Linf",
                                over=sorted(robust_masks), seed=seed))
    worst_acc = worst.float().mean().item() if n else 0.0
    # 6. large eps
    big = MarginPGD(model, s.large_eps, steps=s.large_eps_steps, restarts=s.large_eps_restarts,
                    loss=s.pgd_loss, seed=seed)
    e_big, _ = attack_stage("large_eps", big)
    robust_masks.pop("large_eps", None)

    # ---- verdicts
    verdicts.append(verdict(
        "attack_errors", "FLAG" if errors else "pass",
        ("attacks failed (excluded from the worst case): " +
         "; ".join(f"{r}: {m}" for r, m in errors.items())) if errors else
        "every attack ran to completion", failed=sorted(errors)))
    if not failed("large_eps", "large_eps"):
        big_acc = e_big["accuracy"]
        verdicts.append(verdict(
            "large_eps", "pass" if big_acc <= s.large_eps_threshold else "FLAG",
            (f"accuracy at eps={eps_label(s.large_eps)} is {100 * big_acc:.1f}%" +
             ("" if big_acc <= s.large_eps_threshold else
              f" > {100 * s.large_eps_threshold:.0f}%: an attack that cannot break the model "
              "at this budget is not finding the adversarial examples that exist")),
            accuracy=big_acc, eps=s.large_eps, threshold=s.large_eps_threshold))
    if not failed("square_vs_apgd", "apgd", "square"):
        gap = e_apgd["accuracy"] - e_sq["accuracy"]
        verdicts.append(verdict(
            "square_vs_apgd", "pass" if gap <= s.square_gap_threshold else "FLAG",
            (f"black-box Square {100 * e_sq['accuracy']:.1f}% vs white-box APGD "
             f"{100 * e_apgd['accuracy']:.1f}%" +
             ("" if gap <= s.square_gap_threshold else
              ": the black-box attack is stronger than the white-box one, gradients are "
              "masked")),
            square=e_sq["accuracy"], apgd=e_apgd["accuracy"], gap=gap,
            threshold=s.square_gap_threshold))
    if not failed("weak_vs_strong", "pgd_paper"):
        wgap = weak_acc - worst_acc
        verdicts.append(verdict(
            "weak_vs_strong", "pass" if wgap <= s.weak_gap_threshold else "FLAG",
            (f"paper PGD-{s.weak_steps} {100 * weak_acc:.1f}% vs worst case "
             f"{100 * worst_acc:.1f}%" +
             ("" if wgap <= s.weak_gap_threshold else
              ": the paper protocol overestimates robustness")),
            pgd_paper=weak_acc, worst_case=worst_acc, gap=wgap, threshold=s.weak_gap_threshold))
    if aa is None:
        verdicts.append(verdict("autoattack_flags", "n/a", "AutoAttack not run"))
    elif not failed("autoattack_flags", "autoattack"):
        d = aa.describe()
        warns = d.get("warnings", [])
        note = "" if d.get("reference") else " (not the reference configuration)"
        verdicts.append(verdict(
            "autoattack_flags", "FLAG" if warns else "pass",
            ("AutoAttack's own checks: " + "; ".join(warns) if warns else
             "AutoAttack's own checks raised no warning") + note,
            warnings=warns, reference=d.get("reference"), implementation=d.get("implementation")))
    if e_rk4 is None:
        verdicts.append(verdict("rk4_attack", "n/a",
                                "model has no ODE block" if not has_ode else "disabled"))
    elif not failed("rk4_attack", "pgd_margin", "pgd_margin_rk4"):
        rgap = e_pgd["accuracy"] - e_rk4["accuracy"]
        verdicts.append(verdict(
            "rk4_attack", "pass" if rgap <= s.weak_gap_threshold else "FLAG",
            (f"PGD through RK4 {100 * e_rk4['accuracy']:.1f}% vs through the model's solver "
             f"{100 * e_pgd['accuracy']:.1f}%" +
             ("" if rgap <= s.weak_gap_threshold else
              ": attacking through a fixed-step solver is stronger, the adaptive solver masks "
              "gradients")),
            rk4=e_rk4["accuracy"], adaptive=e_pgd["accuracy"], gap=rgap,
            threshold=s.weak_gap_threshold))
    # gradient checks on the first grad_n examples
    if stage:
        stage("gradients")
    xg, yg = x[:s.grad_n].to(dev), y[:s.grad_n].to(dev)
    try:
        verdicts.extend(gradient_checks(model, xg, yg, s))
    except SOLVER_ERRORS as err:
        for check in ("gradients_finite", "zero_gradients", "gradient_informative"):
            verdicts.append(verdict(check, "n/a", f"solve failed: {type(err).__name__}: {err}"))
    verdicts.extend(solver_checks(model, xg, yg, s))
    order = {c: i for i, c in enumerate(CHECKS)}
    verdicts.sort(key=lambda v: order.get(v["check"], len(order)))
    return RigorousResult(entries=entries, verdicts=verdicts, masks=robust_masks)
