"""The ``certify`` suite: certified accuracy in L2 and L∞, with the checks that can refute it.

For each point the certificate of :func:`zubovnet.analysis.certify.certify` gives an input
radius per norm (region certificate for Zubov-Net, margin certificate for a classifier affine
in its features); a point is *certified at ε* when it is classified correctly and its radius is
at least ``ε``.  Entries: ``certify/l2@<ε>`` for ``EvalSettings.certify_l2`` and
``certify/linf@<ε>`` for ``EvalSettings.certify_eps``, each with its ``accuracy``; the record's
``certify`` section holds the per-point radii, the Lipschitz bounds (computed and by
construction) beside their empirical lower estimates, and the premises of the certificate with
where each comes from — ``construction``, ``bound``, ``exact`` or ``sampled``.  The certificate
is called ``unconditional`` only when none is sampled (``docs/certified.md``).

Checks (``docs/evaluation.md``): ``lipschitz_bound`` (a bound below an estimate),
``certificate_condition`` (a premise only sampled), ``certified_vs_empirical`` (a point
certified at the rigorous ε that the rigorous attacks break, when that suite ran in the same
evaluation), ``certificate_attacked`` (an L2 PGD with restarts at each sampled point's own
certified radius changes its prediction).
"""
from __future__ import annotations

import time

import torch
from torch import nn

from . import checks
from .attacks import eps_label, margin
from .records import add_result, result_entry, to_jsonable, verdict

__all__ = ["certify_suite", "pgd_l2_per_example"]


def pgd_l2_per_example(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: torch.Tensor,
                       steps: int = 100, restarts: int = 5, seed: int = 0,
                       loss: str = "cw") -> torch.Tensor:
    """L2 PGD with a radius per example: ``(B,)`` bool, True where some iterate of some restart
    inside ``{‖δ‖₂ ≤ eps_i} ∩ [0, 1]`` changes the prediction.

    Each restart starts at a uniform random point of the ball (direction × ``eps·u^{1/n}``) and
    takes ``steps`` steps of ``2.5 eps / steps`` along the L2-normalised gradient of the margin
    (``cw`` by default), each projected back onto the ball and into [0, 1]."""
    g = torch.Generator(device="cpu").manual_seed(seed)
    eps = eps.to(x.dtype).to(x.device).view(-1, *[1] * (x.dim() - 1))
    n = x[0].numel()
    broken = torch.zeros(x.shape[0], dtype=torch.bool, device=x.device)

    def project(xa):
        d = xa - x
        norm = d.flatten(1).norm(dim=1).view_as(eps).clamp_min(1e-30)
        d = d * torch.clamp(eps / norm, max=1.0)
        return (x + d).clamp(0.0, 1.0)

    for _ in range(restarts):
        u = torch.randn(x.shape, generator=g).to(x.device)
        u = u / u.flatten(1).norm(dim=1).view_as(eps)
        r = torch.rand(x.shape[0], generator=g).to(x.device).view_as(eps) ** (1.0 / n)
        xa = project(x + u * r * eps)
        step = 2.5 * eps / steps
        for t in range(steps + 1):
            xa = xa.detach().requires_grad_(True)
            with torch.enable_grad():
                m = margin(model(xa), y, loss)
            broken |= (m.detach() <= 0)
            if t == steps:
                break
            grad = torch.autograd.grad(m.sum(), xa)[0]
            gn = grad.flatten(1).norm(dim=1).view_as(eps).clamp_min(1e-30)
            xa = project(xa.detach() - step * grad / gn)
    return broken


def _na(r, reason: str) -> None:
    r.record["suites"].setdefault("certify", {"keys": [], "wall_time_s": None})
    r.verdict(verdict("certificate_condition", "n/a", reason), "certify")


def _alignment_rate(r, rho: float):
    if "alignment" in r.record:
        horizons = r.record["alignment"]["horizons"]
    else:
        from ..analysis.alignment import AlignmentError, alignment_report
        try:
            horizons = alignment_report(r.model, r.settings.alignment, rho=rho)["horizons"]
        except AlignmentError:
            return None
    return horizons[list(horizons)[-1]]["aligned"]


def certify_suite(r) -> None:
    """Certified accuracy at every radius of ``certify_l2`` and ``certify_eps``, and its checks
    (module docstring).  ``r``: the evaluation's shared state (:mod:`~zubovnet.evaluation.suites`)."""
    from ..analysis.certify import UnsupportedLayerError, certify, empirical_lipschitz
    s, model = r.settings, r.model
    rho, rho_source = r.region_level()
    try:
        cert = certify(model, r.X, r.Y, rho=rho, device=r.device)
    except UnsupportedLayerError as e:
        if r.explicit("certify"):
            from ..errors import SuiteNotApplicableError
            raise SuiteNotApplicableError(f"the certify suite: {e}") from None
        return _na(r, str(e))
    r.bar.stage("certify")
    correct = r.clean_correct
    g = torch.Generator().manual_seed(r.seed)
    pick = torch.randperm(r.n, generator=g)[:s.certify_lipschitz_points]
    emp = {nm: empirical_lipschitz(model.extractor, r.X[pick].to(r.device), generator=g,
                                   norm=nm) for nm in ("l2", "linf")}
    premises = dict(cert["premises"])
    ar = None
    if cert["kind"] == "region" and premises["forward_invariance"]["source"] == "sampled":
        ar = _alignment_rate(r, rho)
        premises["forward_invariance"]["alignment_rate_10T"] = ar
    premises["ode_solve"] = {"source": "numerical", "solver": r.solver,
                             "how": "the certificate is for the exact flow; the prediction is "
                                    "computed with the solver named here"}
    unconditional = bool(cert["exact"])
    status = "unconditional" if unconditional else "conditional"
    radius = {nm: cert["radius"][nm].float() for nm in ("l2", "linf")}
    section = {
        "kind": cert["kind"], "certificate": status, "premises": premises,
        "L_phi": cert["L_phi"], "L_phi_empirical_lower": emp,
        "radius_l2": [round(float(v), 6) for v in radius["l2"]],
        "radius_linf": [round(float(v), 8) for v in radius["linf"]],
        "median_radius_l2_correct": float(radius["l2"][correct].median()) if correct.any()
        else None,
        "median_radius_linf_correct": float(radius["linf"][correct].median()) if correct.any()
        else None}
    if cert["kind"] == "region":
        section.update({"rho": cert["rho"], "rho_source": rho_source, "c_star": cert["c_star"],
                        "delta": cert["delta"], "L_g_max": float(cert["L_g"].max()),
                        "h0_in_region": float(cert["inside"].float().mean()),
                        "h0_in_region_correct": float(cert["inside"][correct].float().mean())
                        if correct.any() else None, "alignment_rate_10T": ar})
    r.record["certify"] = to_jsonable(section)
    for nm, radii, label in (("l2", s.certify_l2, "L2"), ("linf", s.certify_eps, "Linf")):
        for eps in radii:
            ok = correct & (radius[nm] >= eps)
            lab = eps_label(eps) if nm == "linf" else f"{eps:g}"
            add_result(r.record, result_entry(
                f"certify/{nm}@{lab}", "certify", f"certified ({cert['kind']})",
                int(ok.sum()), r.n, solver=r.solver, eps=eps, eps_label=lab,
                norm=label, certificate=status, median_radius=float(radius[nm].median()),
                L_phi=cert["L_phi"][nm]["bound"], L_phi_source=cert["L_phi"][nm]["source"]))
    r.verdict(checks.check_lipschitz_bound(
        {nm: cert["L_phi"][nm]["bound"] for nm in ("l2", "linf")}, emp), "certify")
    r.verdict(checks.check_certificate_condition(
        premises, ar, s.aligned_threshold), "certify")
    worst = r.masks.get("rigorous/worst_case")
    entry = r.record["results"].get("rigorous/worst_case")
    if worst is not None and entry is not None:
        e = float(entry.get("eps") or 0.0)
        cert_e = correct & (radius["linf"] >= e)
        r.verdict(checks.check_certified_vs_empirical(cert_e, worst, e), "certify")
    else:
        r.verdict(verdict("certified_vs_empirical", "n/a", "the rigorous suite did not run in "
                          "this evaluation"), "certify")
    _attack_check(r, radius["l2"], correct)


def _attack_check(r, radius_l2: torch.Tensor, correct: torch.Tensor) -> None:
    """``certificate_attacked``: L2 PGD at each sampled certified point's own radius."""
    s = r.settings
    cand = (correct & (radius_l2 > 0)).nonzero().squeeze(1)
    if s.certify_attack_points <= 0 or cand.numel() == 0:
        r.verdict(verdict("certificate_attacked", "n/a", "no certified point to attack"
                          if cand.numel() == 0 else "disabled (certify_attack_points = 0)"),
                  "certify")
        return
    g = torch.Generator().manual_seed(r.seed + 1)
    idx = cand[torch.randperm(cand.numel(), generator=g)[:s.certify_attack_points]]

    def run() -> dict:
        t0 = time.perf_counter()
        broken = torch.zeros(idx.numel(), dtype=torch.bool)
        for i in range(0, idx.numel(), r.batch_size):
            sl = idx[i:i + r.batch_size]
            broken[i:i + len(sl)] = pgd_l2_per_example(
                r.model, r.X[sl].to(r.device), r.Y[sl].to(r.device), radius_l2[sl],
                steps=s.certify_attack_steps, restarts=s.certify_attack_restarts,
                seed=r.seed).cpu()
        return {"attacked": int(idx.numel()), "broken": int(broken.sum()),
                "broken_indices": idx[broken].tolist(), "wall_time_s": time.perf_counter() - t0}

    res = r.state.compute("certify/attack_check", run)
    r.verdict(checks.check_certificate_attacked(
        res["attacked"], res["broken"], s.certify_attack_steps, s.certify_attack_restarts,
        res["broken_indices"]), "certify")
