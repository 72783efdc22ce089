"""Every verdict of the evaluation, one function per check (``docs/evaluation.md`` lists them).

A check returns ``{check, status: pass|FLAG|n/a, reason, numbers}``
(:func:`~zubovnet.evaluation.records.verdict`).  FLAG means the number beside it should not be
trusted as it stands (or, for the alignment and certificate checks, that a premise of the
paper's propositions does not hold); n/a means the check does not apply (no ODE block, no
equilibria).  A check that could not be computed is a FLAG, never an n/a.  Thresholds are
fields of :class:`~zubovnet.evaluation.rigorous.RigorousSettings` and
:class:`~zubovnet.evaluation.suites.EvalSettings`; :data:`CHECKS` maps each check to its
suite and to what it detects.
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from .records import verdict

__all__ = ["CHECKS", "cosine_per_example", "check_determinism",
           "check_solver_failures", "check_gradients_finite", "check_zero_gradients",
           "check_gradient_informative", "check_large_eps", "check_square_vs_apgd",
           "check_weak_vs_strong", "check_autoattack", "check_autoattack_labels",
           "check_solver_gradients", "check_adjoint_gradients", "check_rk4_attack",
           "check_aligned_stability", "check_lipschitz_bound", "check_certificate_condition",
           "check_certified_vs_empirical", "check_certificate_attacked"]

CHECKS: dict[str, dict] = {
    "determinism": {"suite": "sanity", "detects": "randomness in the forward pass"},
    "solver_failures": {"suite": "attacks, strong, rigorous",
                        "detects": "inputs the ODE solver cannot integrate (counted as fooled)"},
    "gradients_finite": {"suite": "rigorous", "detects": "NaN/Inf input gradients"},
    "zero_gradients": {"suite": "rigorous", "detects": "masked (all-zero) margin gradients"},
    "gradient_informative": {"suite": "rigorous",
                             "detects": "gradients that do not describe the function"},
    "large_eps": {"suite": "rigorous", "detects": "attacks that cannot break the model at "
                  "a budget where every classifier breaks"},
    "square_vs_apgd": {"suite": "rigorous", "detects": "images a black-box attack breaks "
                       "that the white-box one does not (masked gradients)"},
    "weak_vs_strong": {"suite": "rigorous", "detects": "how much the paper's PGD-10 "
                       "overstates robustness"},
    "autoattack": {"suite": "strong, rigorous", "detects": "AutoAttack's own warnings, or a "
                   "run that is not the reference implementation"},
    "autoattack_labels": {"suite": "strong, rigorous", "detects": "AutoAttack's labels "
                          "disagreeing with the re-evaluation (batch-coupled solver)"},
    "solver_gradients": {"suite": "rigorous", "detects": "attack gradients that depend on "
                         "the adaptive solver (obfuscation)"},
    "adjoint_gradients": {"suite": "rigorous", "detects": "adjoint gradients that disagree "
                          "with backpropagation"},
    "rk4_attack": {"suite": "rigorous", "detects": "images an attack through a fixed-step "
                   "solver breaks that the same attack through the model's solver does not"},
    "aligned_stability": {"suite": "alignment", "detects": "prescribed regions that do not "
                          "flow to their equilibrium (Props. 3-5 do not hold)"},
    "lipschitz_bound": {"suite": "certify", "detects": "a Lipschitz 'bound' below an "
                        "empirical estimate (unsound radii)"},
    "certificate_condition": {"suite": "certify", "detects": "a premise of the certificate "
                              "that is only sampled (and measured to fail) or violated"},
    "certified_vs_empirical": {"suite": "certify", "detects": "points certified at the "
                               "rigorous eps that the rigorous attacks break (a bound or an "
                               "attack is wrong)"},
    "certificate_attacked": {"suite": "certify", "detects": "points an L2 PGD breaks inside "
                             "their own certified radius (an unsound certificate)"},
}


def _pct(v: float) -> str:
    return f"{100 * v:.1f}%"


def cosine_per_example(a: torch.Tensor, b: torch.Tensor, eps: float = 1e-12):
    """Cosine similarity of the flattened rows of ``a`` and ``b`` ``(B, ...)``.

    Returns ``(cos (B,), valid (B,) bool)``; rows where either vector is zero are invalid
    (their cosine is NaN).
    """
    a, b = a.flatten(1).double(), b.flatten(1).double()
    na, nb = a.norm(dim=1), b.norm(dim=1)
    valid = (na > eps) & (nb > eps)
    cos = (a * b).sum(1) / (na * nb).clamp_min(eps)
    return torch.where(valid, cos, torch.full_like(cos, float("nan"))), valid


# --------------------------------------------------------------------------- sanity
@torch.no_grad()
def check_determinism(model: nn.Module, x: torch.Tensor, rtol: float = 1e-5) -> dict:
    """``determinism``: FLAG if two forward passes on the same input differ by more than
    ``rtol · max(1, max|logit|)`` or disagree in an argmax — randomness in ``forward`` needs an
    expectation-over-transformation attack (AutoAttack's ``rand`` version)."""
    z0, z1 = model(x), model(x)
    diff = float((z1 - z0).abs().max()) if z0.numel() else 0.0
    scale = float(z0.abs().max()) if z0.numel() else 0.0
    agree = bool((z0.argmax(1) == z1.argmax(1)).all())
    tol = rtol * max(1.0, scale)
    ok = diff <= tol and agree
    return verdict("determinism", "pass" if ok else "FLAG",
                   "two forward passes agree" if ok else
                   "two forward passes on the same input differ: randomness in forward (attack "
                   "with expectation over transformation, AutoAttack 'rand')",
                   max_abs_diff=diff, scale=scale, argmax_agree=agree, tolerance=tol)


def check_solver_failures(failures: dict[str, int], n: int) -> dict:
    """``solver_failures``: FLAG if any adversarial (or clean) input could not be integrated by
    the ODE solver.  Such an input is counted as **not robust** in its stage (an input the model
    cannot classify is one it gets wrong), so no number rises; the FLAG says that the model
    fails on inputs of the threat model."""
    bad = {k: v for k, v in failures.items() if v}
    if not bad:
        return verdict("solver_failures", "pass", "every input was integrated", failures={},
                       n=n)
    return verdict("solver_failures", "FLAG",
                   "the ODE solver could not integrate " + ", ".join(
                       f"{v} input(s) of {k}" for k, v in bad.items()) +
                   "; they are counted as not robust", failures=bad, n=n)


# --------------------------------------------------------------------------- gradients
def check_gradients_finite(g_margin: torch.Tensor, g_ce: torch.Tensor) -> dict:
    """``gradients_finite``: FLAG if an input gradient (CW margin or CE) holds NaN/Inf —
    attacks that follow it are meaningless."""
    ok = bool(torch.isfinite(g_margin).all() and torch.isfinite(g_ce).all())
    return verdict("gradients_finite", "pass" if ok else "FLAG",
                   "input gradients are finite" if ok else
                   "NaN/Inf in input gradients: attacks following them are meaningless",
                   n=len(g_margin))


def check_zero_gradients(g_margin: torch.Tensor, g_ce: torch.Tensor,
                         threshold: float = 0.0) -> dict:
    """``zero_gradients``: FLAG if the share of examples whose CW-margin gradient is exactly
    zero exceeds ``threshold`` (``detach``, rounding or a constant region inside ``forward``).
    All-zero CE gradients alone (a saturated softmax) pass, with a note: margin attacks do not
    stall there."""
    g_m = torch.nan_to_num(g_margin, nan=0.0, posinf=0.0, neginf=0.0)
    zero_m = g_m.flatten(1).abs().sum(1) == 0
    zero_ce = torch.nan_to_num(g_ce).flatten(1).abs().sum(1) == 0
    fm, fc = zero_m.float().mean().item(), zero_ce.float().mean().item()
    n = len(g_margin)
    if fm > threshold:
        st, why = "FLAG", (f"{int(zero_m.sum())}/{n} examples have an all-zero margin gradient: "
                           "masked gradients (detach, rounding or a constant region in forward)")
    elif fc > 0:
        st, why = "pass", (f"margin gradients non-zero; {int(zero_ce.sum())}/{n} CE gradients are "
                           "zero (saturated softmax): CE attacks stall there, margin attacks do "
                           "not")
    else:
        st, why = "pass", "no example has an all-zero input gradient"
    return verdict("zero_gradients", st, why, frac_zero_margin=fm, frac_zero_ce=fc,
                   threshold=threshold, n=n)


@torch.no_grad()
def _margin_of(model, x, y):
    from .attacks import margin
    return margin(model(x), y, "cw")


def check_gradient_informative(model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                               g_margin: torch.Tensor, step: float = 1 / 255,
                               band: float = 2.0, threshold: float = 0.5) -> dict:
    """``gradient_informative``: with ``x' = clip(x − h sign ∇m)`` (``h = step``), the ratio of
    the actual margin decrease ``m(x) − m(x')`` to its first-order prediction ``−∇m·(x' − x)``
    is ≈ 1 for a smooth model and ≈ 0 or ≫ 1 when the gradient does not describe the function
    (straight-through rounding, shattered gradients).  FLAG if it lies in ``[1/band, band]``
    for fewer than ``threshold`` of the examples with a non-zero gradient; FLAG too if no
    example has one (the test cannot be made)."""
    g = torch.nan_to_num(g_margin)
    keep = g.flatten(1).abs().sum(1) > 0
    if keep.sum() == 0:
        return verdict("gradient_informative", "FLAG", "no example has a non-zero margin "
                       "gradient: the first-order test cannot be made (see zero_gradients)", n=0)
    xk, yk, gk = x[keep], y[keep], g[keep]
    x1 = (xk - step * gk.sign()).clamp(0, 1)
    predicted = -(gk * (x1 - xk)).flatten(1).sum(1)
    actual = _margin_of(model, xk, yk) - _margin_of(model, x1, yk)
    ok = predicted > 1e-12
    if ok.sum() == 0:
        return verdict("gradient_informative", "FLAG", "the gradient step leaves no pixel free "
                       "to move: the first-order test cannot be made", n=0)
    ratio = actual[ok] / predicted[ok]
    agree = ((ratio >= 1 / band) & (ratio <= band)).float().mean().item()
    status = "pass" if agree >= threshold else "FLAG"
    why = (f"a step along the gradient sign changes the margin as predicted to first order for "
           f"{100 * agree:.0f}% of the examples" if status == "pass" else
           f"the first-order prediction holds for only {100 * agree:.0f}% of the examples: the "
           "gradient does not describe the function (shattered, straight-through or obfuscated "
           "gradients)")
    return verdict("gradient_informative", status, why, frac_agree=agree,
                   median_ratio=float(ratio.median()), min_ratio=float(ratio.min()),
                   n=int(ok.sum()), step=step, band=band, threshold=threshold)


def _low(cos: torch.Tensor, quantile: float) -> Optional[float]:
    v = cos[torch.isfinite(cos)]
    if v.numel() == 0:
        return None
    return float(torch.quantile(v, quantile)) if quantile > 0 else float(v.min())


def _cosine_check(name: str, what: str, cos_sets: dict[str, torch.Tensor], quantile: float,
                  threshold: float, **numbers) -> dict:
    lows = {k: _low(c, quantile) for k, c in cos_sets.items()}
    stats = {f"q{int(100 * quantile)}_cos_{k}": v for k, v in lows.items()}
    stats.update({f"min_cos_{k}": _low(c, 0.0) for k, c in cos_sets.items()})
    if all(v is None for v in lows.values()):
        return verdict(name, "FLAG", f"{what}: every gradient is zero, nothing to compare",
                       threshold=threshold, **numbers)
    worst = min(v for v in lows.values() if v is not None)
    where = ", ".join(f"{k} {v:.3f}" for k, v in lows.items() if v is not None)
    q = "minimum" if quantile == 0 else f"{int(100 * quantile)}% quantile"
    if worst >= threshold:
        return verdict(name, "pass", f"{what} agree ({q} of the per-example cosine: {where})",
                       threshold=threshold, quantile=quantile, **stats, **numbers)
    return verdict(name, "FLAG", f"{what} disagree ({q} of the per-example cosine: {where} < "
                   f"{threshold}): the attack gradient depends on the solver, a sign of "
                   "obfuscated gradients", threshold=threshold, quantile=quantile, **stats,
                   **numbers)


def check_solver_gradients(cos_clean: torch.Tensor, cos_adv: torch.Tensor | None,
                           quantile: float = 0.05, threshold: float = 0.9, **numbers) -> dict:
    """``solver_gradients``: per-example cosine of ``∇_x CE`` under the model's solver and a
    fixed-step RK4 reference, at clean points and at adversarial points; FLAG if its low
    ``quantile`` (5 %) at either falls below ``threshold`` — a median hides the examples on which
    the adaptive solver's gradient is wrong."""
    sets = {"clean": cos_clean} if cos_adv is None else {"clean": cos_clean, "adversarial": cos_adv}
    return _cosine_check("solver_gradients", "gradients under the model's solver and the RK4 "
                         "reference", sets, quantile, threshold, **numbers)


def check_adjoint_gradients(cos_clean: torch.Tensor, cos_adv: torch.Tensor | None,
                            quantile: float = 0.05, threshold: float = 0.9, **numbers) -> dict:
    """``adjoint_gradients``: the same test for the adjoint method against backpropagation
    through the solver."""
    sets = {"clean": cos_clean} if cos_adv is None else {"clean": cos_clean, "adversarial": cos_adv}
    return _cosine_check("adjoint_gradients", "adjoint and direct gradients", sets, quantile,
                         threshold, **numbers)


def solver_check_error(name: str, err: Exception) -> dict:
    """A solver check whose gradients could not be computed: FLAG (never n/a)."""
    return verdict(name, "FLAG", f"the gradients could not be computed "
                   f"({type(err).__name__}: {err})")


# --------------------------------------------------------------------------- attacks
def check_large_eps(robust_large: torch.Tensor, clean_correct: torch.Tensor, eps: float,
                    threshold: float = 0.05) -> dict:
    """``large_eps``: at ``eps`` (0.5) every classifier falls; FLAG if the attack leaves more
    than ``threshold`` of the **clean-correct** images correct (a success rate, so a near-chance
    model cannot pass by having little to break)."""
    from .attacks import eps_label
    n_clean = int(clean_correct.sum())
    if n_clean == 0:
        return verdict("large_eps", "n/a", "no image is classified correctly clean", eps=eps)
    survive = float((robust_large & clean_correct).sum()) / n_clean
    ok = survive <= threshold
    return verdict("large_eps", "pass" if ok else "FLAG",
                   f"at eps={eps_label(eps)} {_pct(survive)} of the {n_clean} clean-correct images "
                   "survive" + ("" if ok else f" > {_pct(threshold)}: an attack that cannot break "
                                "the model at this budget is not finding the adversarial "
                                "examples that exist"),
                   survival=survive, clean_correct=n_clean, eps=eps, threshold=threshold)


def check_square_vs_apgd(robust_apgd: torch.Tensor, robust_square: torch.Tensor,
                         threshold: float = 0.03) -> dict:
    """``square_vs_apgd``: count the images the black-box Square breaks that white-box APGD
    does not; FLAG if they exceed ``threshold`` of the sample — gradients are masked where a
    gradient-free attack does better than a gradient attack."""
    n = len(robust_apgd)
    only = int((robust_apgd & ~robust_square).sum())
    frac = only / n if n else 0.0
    ok = frac <= threshold
    return verdict("square_vs_apgd", "pass" if ok else "FLAG",
                   f"Square breaks {only}/{n} images APGD does not" +
                   ("" if ok else f" (> {_pct(threshold)}): the black-box attack finds what the "
                    "gradient misses, gradients are masked"),
                   square_only=only, n=n, fraction=frac, threshold=threshold,
                   square=float(robust_square.float().mean()),
                   apgd=float(robust_apgd.float().mean()))


def check_weak_vs_strong(weak_acc: float, worst_acc: float, steps: int,
                         threshold: float = 0.05) -> dict:
    """``weak_vs_strong``: FLAG if the paper protocol's PGD accuracy exceeds the rigorous worst
    case by more than ``threshold`` — the paper's number overstates robustness (a property of
    the protocol, reported so)."""
    gap = weak_acc - worst_acc
    ok = gap <= threshold
    return verdict("weak_vs_strong", "pass" if ok else "FLAG",
                   f"paper PGD-{steps} {_pct(weak_acc)} vs worst case {_pct(worst_acc)}" +
                   ("" if ok else ": the paper protocol overestimates robustness"),
                   pgd_paper=weak_acc, worst_case=worst_acc, gap=gap, threshold=threshold)


def check_autoattack(describe: dict) -> dict:
    """``autoattack``: FLAG if AutoAttack raised one of its own sanity warnings (randomised,
    probability outputs, dynamic defence, zero gradients, Square beating the white-box
    attacks), or if the run is not the reference configuration (the torchattacks fallback, a
    changed Square budget, or a subset of the four components; the reason names what ran) —
    its number is then not the standard AutoAttack's."""
    warns = list(describe.get("warnings", []))
    ref = bool(describe.get("reference"))
    if not ref and not any("reference" in w for w in warns):
        ran = describe.get("components")
        queries = (describe.get("square") or {}).get("queries")
        detail = ", ".join(ran) if ran else "?"
        if ran and "square" in ran and queries is not None:
            detail += f" ({queries} Square queries)"
        warns.append(f"not the reference configuration (ran {detail})")
    ok = not warns
    return verdict("autoattack", "pass" if ok else "FLAG",
                   "AutoAttack (reference, standard) raised no warning" if ok else
                   "AutoAttack: " + "; ".join(warns), warnings=warns, reference=ref,
                   implementation=describe.get("implementation"))


def check_autoattack_labels(disagreements: int, n: int) -> dict:
    """``autoattack_labels``: AutoAttack classifies each adversarial example inside its own
    batches, the evaluator re-classifies them in its batches; with a batch-coupled adaptive
    solver the two can differ.  The evaluator's re-evaluation is the number reported; FLAG if
    any label differs (the count is recorded)."""
    ok = disagreements == 0
    return verdict("autoattack_labels", "pass" if ok else "FLAG",
                   "AutoAttack's labels equal the re-evaluation" if ok else
                   f"{disagreements}/{n} AutoAttack labels differ from the re-evaluation (the "
                   "adaptive solver couples the examples of a batch); the re-evaluated number is "
                   "reported", disagreements=disagreements, n=n)


def check_rk4_attack(robust_adaptive: torch.Tensor, robust_rk4: torch.Tensor,
                     threshold: float = 0.02) -> dict:
    """``rk4_attack``: the same margin PGD (same steps and restarts) crafted through the model's
    adaptive solver and through fixed-step RK4, evaluated under the model's solver; FLAG if RK4
    breaks more than ``threshold`` of the images the adaptive one does not, per example."""
    n = len(robust_adaptive)
    only = int((robust_adaptive & ~robust_rk4).sum())
    frac = only / n if n else 0.0
    ok = frac <= threshold
    return verdict("rk4_attack", "pass" if ok else "FLAG",
                   f"PGD through RK4 breaks {only}/{n} images the same attack through the model's "
                   "solver does not" + ("" if ok else ": attacking through a fixed-step solver is "
                                        "stronger, the adaptive solver masks gradients"),
                   rk4_only=only, n=n, fraction=frac, threshold=threshold,
                   rk4=float(robust_rk4.float().mean()),
                   adaptive=float(robust_adaptive.float().mean()))


# --------------------------------------------------------------------------- alignment
def check_aligned_stability(report: dict, threshold: float = 0.9) -> dict:
    """``aligned_stability``: FLAG if ``AR`` at the longest horizon is below ``threshold``:
    points of the prescribed regions do not reach their own equilibrium, and Proposition 5 and
    the certificate of Proposition 6 assume they do."""
    keys = list(report["horizons"])
    last = report["horizons"][keys[-1]]
    eq = report["equilibria"]
    ok = last["aligned"] >= threshold
    reason = (f"AR@{keys[-1]} = {last['aligned']:.3f} (nearest {last['nearest']:.3f}, max "
              f"||f(c_i)|| {eq['max_f_norm']:.3g}, max Re eig J_f(c_i) "
              f"{eq['max_re_eig_max']:+.3g})" + (" >= " if ok else " < ") + f"{threshold:g}: " +
              ("the PRoAs flow to their equilibria" if ok else
               "points of the PRoAs do not reach their own equilibrium; Prop. 5 and the certified "
               "radius of Prop. 6 assume they do"))
    geo = report.get("construction")
    if geo:      # regions invariant by construction: the sampled rate is a check of the code
        reason += (f" (invariant by construction: AR = 1 at every horizon >= "
                   f"{geo['aligned_horizon']:.3g} for the exact flow)")
    return verdict("aligned_stability", "pass" if ok else "FLAG", reason, ar=last["aligned"],
                   threshold=threshold, nearest=last["nearest"], max_f_norm=eq["max_f_norm"],
                   guaranteed_from=geo["aligned_horizon"] if geo else None)


def check_lipschitz_bound(bounds: dict, empirical: dict) -> dict:
    """``lipschitz_bound``: FLAG if the extractor's Lipschitz bound in any norm (``{"l2": …,
    "linf": …}``) is below an empirical (lower) estimate — the bound is not a bound and the
    certified radii are not sound."""
    bad = [nm for nm in bounds if bounds[nm] < empirical[nm] * (1 - 1e-4)]
    desc = ", ".join(f"{nm}: L_phi = {bounds[nm]:.4g} vs estimate {empirical[nm]:.4g}"
                     for nm in bounds)
    return verdict("lipschitz_bound", "FLAG" if bad else "pass",
                   (f"the 'bound' is below an empirical estimate in {', '.join(bad)} ({desc}): "
                    "the certified radii are not sound") if bad else
                   f"every bound is above its empirical estimate ({desc})",
                   L_phi=bounds, empirical=empirical)


def check_certificate_condition(premises: dict, ar: Optional[float] = None,
                                threshold: float = 0.9) -> dict:
    """``certificate_condition``: pass when every premise of the certificate holds by
    construction, by a sound bound or exactly; a premise that is only ``sampled`` (forward
    invariance of a region without the projection) passes when the alignment rate is at least
    ``threshold`` — the certificate is then *conditional* — and FLAGs below it or unmeasured; a
    premise ``violated`` (overlapping regions) FLAGs."""
    sources = {k: v.get("source") for k, v in premises.items() if isinstance(v, dict)}
    violated = [k for k, v in sources.items() if v == "violated"]
    sampled = [k for k, v in sources.items() if v == "sampled"]
    if violated:
        return verdict("certificate_condition", "FLAG",
                       f"premise(s) {', '.join(violated)} do not hold: the radii certify region "
                       "membership of h(0) only, not the prediction", sources=sources, ar=ar)
    if not sampled:
        return verdict("certificate_condition", "pass",
                       "unconditional: every premise holds by construction or by a sound bound "
                       "(for the exact flow of the ODE)", sources=sources)
    ok = ar is not None and ar >= threshold
    return verdict("certificate_condition", "pass" if ok else "FLAG",
                   f"conditional on {', '.join(sampled)}: " +
                   (f"AR@10T = {ar:.3f}: " if ar is not None else "no alignment measured: ") +
                   ("the sampled regions flow to their equilibria" if ok else
                    "the regions are not shown to be forward invariant; the certified radii "
                    "certify region membership of h(0) only, not the prediction"),
                   sources=sources, ar=ar, threshold=threshold)


def check_certified_vs_empirical(certified: torch.Tensor, robust: torch.Tensor,
                                 eps: float) -> dict:
    """``certified_vs_empirical``: FLAG if any point certified at ``eps`` (L∞) is broken by the
    rigorous attacks at the same ``eps`` (``robust``: the worst-case robust mask) — a bound or
    an attack is wrong.  ``certified``, ``robust``: ``(n,)`` bool."""
    n = max(int(certified.numel()), 1)
    bad = certified & ~robust
    c_acc, e_acc = float(certified.sum()) / n, float(robust.sum()) / n
    k = int(bad.sum())
    return verdict("certified_vs_empirical", "FLAG" if k else "pass",
                   f"{k} point(s) certified at eps = {eps:.4g} are broken by the rigorous "
                   "attacks: a bound or an attack is wrong" if k else
                   f"every certified point survives the rigorous attacks (certified "
                   f"{_pct(c_acc)} <= empirical worst case {_pct(e_acc)})",
                   certified=c_acc, empirical=e_acc, eps=eps, broken=k,
                   broken_indices=bad.nonzero().squeeze(1).tolist())


def check_certificate_attacked(attacked: int, broken: int, steps: int, restarts: int,
                               broken_indices: list | None = None) -> dict:
    """``certificate_attacked``: FLAG if an L2 PGD (``steps`` × ``restarts``) at a certified
    point's own L2 radius changes its prediction — the certificate is wrong for that point
    (unsound bound, or a premise that does not hold for it)."""
    return verdict("certificate_attacked", "FLAG" if broken else "pass",
                   f"{broken} of {attacked} certified points broken by L2 PGD-{steps} x "
                   f"{restarts} inside their certified radius" if broken else
                   f"L2 PGD-{steps} x {restarts} at each point's own certified radius changed "
                   f"none of {attacked} predictions", attacked=attacked, broken=broken,
                   broken_indices=broken_indices or [])
