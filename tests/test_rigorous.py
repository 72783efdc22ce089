"""The rigorous protocol: masked models are flagged, an undefended model passes."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from digits_helpers import stack
from zubovnet.evaluation import EvalSettings, RigorousSettings, evaluate
from zubovnet.evaluation.rigorous import (CHECKS, cosine_per_example, gradient_checks,
                                          run_rigorous, solver_checks)

N = 48                     # the fixtures ``mlp`` and ``test_set`` are in conftest.py


def _fast(**kw) -> EvalSettings:
    """The rigorous protocol with small budgets (the checks' logic is unchanged)."""
    r = dict(square_queries=300, aa_square_queries=100, pgd_steps=20, pgd_restarts=2,
             large_eps_steps=20, grad_n=32)
    r.update(kw)
    return EvalSettings(rigorous=RigorousSettings(**r))


def _verdicts(record, suite="rigorous"):
    return {v["check"]: v for v in record["verdicts"] if v["suite"] == suite}


class Rounded(nn.Module):
    """Masked toy model: inputs rounded to 5 grey levels inside forward (zero gradients)."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        return self.net(torch.round(x * 4) / 4)


class Detached(nn.Module):
    """Masked toy model: ``detach`` inside forward (no gradient reaches the input)."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        return self.net(x.detach())


class StraightThrough(nn.Module):
    """Rounding with a straight-through gradient: non-zero but non-informative gradients."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        q = torch.round(x * 4) / 4
        return self.net(x + (q - x).detach())


class Brittle(nn.Module):
    """Fails like a stiff ODE solve on any input off the 1/16 grid of the clean digits."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        from zubovnet.models import StepSizeUnderflowError
        if ((x * 16 - (x * 16).round()).abs() > 1e-4).any():
            raise StepSizeUnderflowError("step size fell below min_step")
        return self.net(x)


def test_solver_failures_count_as_fooled_and_void_nothing(mlp, test_set):
    """Every adversarial input of this model is one the 'solver' cannot integrate: each is
    re-run alone, counted as not robust, and the stage still has a number."""
    settings = _fast(autoattack=False)
    settings.paper_eps = (8 / 255,)
    settings.white_box = ("fgsm",)
    rec = evaluate(Brittle(mlp), test_set, ["attacks", "rigorous"], n=16, progress=False,
                   settings=settings)
    res = rec["results"]
    assert res["clean"]["accuracy"] > 0.5
    assert res["fgsm@8/255"]["accuracy"] == 0.0 and res["fgsm@8/255"]["solver_failures"] == 16
    assert res["rigorous/pgd_margin"]["accuracy"] == 0.0
    assert res["rigorous/worst_case"]["accuracy"] == 0.0     # nothing voided, nothing rises
    v = _verdicts(rec)
    assert v["solver_failures"]["status"] == "FLAG"
    # the margin PGD leaves misclassified images untouched (on the grid): the rest fail
    assert v["solver_failures"]["numbers"]["failures"]["pgd_margin"] == res["clean"]["correct"]
    assert _verdicts(rec, "attacks")["solver_failures"]["status"] == "FLAG"
    clean = evaluate(mlp, test_set, ["attacks"], n=16, progress=False, settings=settings)
    assert _verdicts(clean, "attacks")["solver_failures"]["status"] == "pass"


def test_cosine_known_answers():
    a = torch.tensor([[1.0, 0.0], [1.0, 1.0], [0.0, 0.0]])
    b = torch.tensor([[2.0, 0.0], [-1.0, -1.0], [1.0, 0.0]])
    cos, valid = cosine_per_example(a, b)
    assert cos[0].item() == pytest.approx(1.0) and cos[1].item() == pytest.approx(-1.0)
    assert valid.tolist() == [True, True, False] and torch.isnan(cos[2])


def test_undefended_model_falls_at_large_eps_and_passes(mlp, test_set):
    rec = evaluate(mlp, test_set, "rigorous", n=N, progress=False, model_name="mlp",
                   settings=_fast(aa_square_queries=None))          # the reference AutoAttack
    v = _verdicts(rec)
    assert set(v) == set(CHECKS)
    assert rec["results"]["rigorous/large_eps"]["accuracy"] <= 0.05
    for check in ("solver_gradients", "adjoint_gradients", "rk4_attack"):
        assert v[check]["status"] == "n/a"            # no ODE block
    bad = {k: x["reason"] for k, x in v.items() if x["status"] not in ("pass", "n/a")}
    assert not bad, bad
    # the worst case is at most every attack's accuracy, and at most clean accuracy
    res = rec["results"]
    worst = res["rigorous/worst_case"]["accuracy"]
    for key in ("rigorous/autoattack", "rigorous/pgd_margin", "rigorous/pgd_cw", "rigorous/apgd",
                "rigorous/square", "rigorous/pgd_paper"):
        assert worst <= res[key]["accuracy"] + 1e-12
    assert res["rigorous/autoattack"]["attack_settings"]["reference"] is True


def test_worst_case_takes_in_the_paper_attacks_at_the_same_eps(mlp, test_set):
    """With the attacks suite in the same evaluation, its 8/255 white-box masks join the worst
    case (and its PGD-10 is reused as the paper PGD)."""
    s = _fast(autoattack=False)
    rec = evaluate(mlp, test_set, ["attacks", "rigorous"], n=N, progress=False, settings=s)
    res = rec["results"]
    over = res["rigorous/worst_case"]["over"]
    assert {"fgsm@8/255", "bim@8/255", "pgd@8/255", "apgd@8/255", "jitter@8/255"} <= set(over)
    assert "fgsm@16/255" not in over and "rigorous/pgd_paper" not in res
    for k in ("fgsm@8/255", "jitter@8/255"):
        assert res["rigorous/worst_case"]["accuracy"] <= res[k]["accuracy"] + 1e-12


def test_rounding_model_is_flagged(mlp, test_set):
    rec = evaluate(Rounded(mlp), test_set, "rigorous", n=N, progress=False,
                   settings=_fast(eps=0.1, autoattack=False))
    v = _verdicts(rec)
    assert v["zero_gradients"]["status"] == "FLAG"
    assert v["zero_gradients"]["numbers"]["frac_zero_margin"] == 1.0
    assert v["gradient_informative"]["status"] == "FLAG"   # the test cannot be made: FLAG
    assert v["large_eps"]["status"] == "FLAG"        # gradient attacks cannot move it
    assert rec["results"]["rigorous/large_eps"]["accuracy"] > 0.05


def test_detach_model_is_flagged_not_crashing(mlp, test_set):
    rec = evaluate(Detached(mlp), test_set, "rigorous", n=32, progress=False,
                   settings=_fast(eps=0.1, autoattack=False))
    v = _verdicts(rec)
    assert v["zero_gradients"]["status"] == "FLAG"
    assert v["large_eps"]["status"] == "FLAG"
    # the black-box attack finds what the (blind) white-box attack cannot
    assert v["square_vs_apgd"]["status"] == "FLAG"
    assert v["square_vs_apgd"]["numbers"]["fraction"] > 0.03


def test_straight_through_gradients_are_flagged_as_uninformative(mlp, test_set):
    x, y = stack(test_set, 32)
    v = {d["check"]: d for d in gradient_checks(StraightThrough(mlp).eval(), x, y)}
    assert v["zero_gradients"]["status"] == "pass"
    assert v["gradient_informative"]["status"] == "FLAG"
    plain = {d["check"]: d for d in gradient_checks(mlp, x, y)}
    assert plain["gradient_informative"]["status"] == "pass"
    assert plain["gradient_informative"]["numbers"]["median_ratio"] == pytest.approx(1, abs=0.2)


def test_randomness_in_forward_is_flagged(mlp, test_set):
    class Noisy(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = mlp

        def forward(self, x):
            return self.net(x + 0.02 * torch.randn_like(x))
    rec = evaluate(Noisy(), test_set, "clean", n=32, progress=False)
    assert _verdicts(rec, "sanity")["determinism"]["status"] == "FLAG"
    rec = evaluate(mlp, test_set, "clean", n=32, progress=False)
    assert _verdicts(rec, "sanity")["determinism"]["status"] == "pass"


# --------------------------------------------------------------------------- ODE models
@pytest.fixture(scope="module")
def tiny_zubovnet():
    from zubovnet.config import Config
    from zubovnet.models import build_model
    cfg = Config()
    cfg.model.state_dim = 8
    cfg.model.cnn_widths = [8, 8, 8]
    cfg.model.ode.hidden = 16
    cfg.model.lyapunov.z_widths = [16, 16, 1]
    cfg.model.lyapunov.u_widths = [16, 16]
    cfg.model.equilibria.steps = 20
    torch.manual_seed(0)
    return build_model(cfg).eval()


def test_ode_solver_checks_and_eval_tolerance(tiny_zubovnet, test_set):
    from zubovnet.models import ode_blocks
    model = tiny_zubovnet
    x, y = stack(test_set, 16)
    seen = []
    hook = ode_blocks(model)[0].register_forward_pre_hook(
        lambda mod, args: seen.append((mod.training, mod.tolerances, mod.solver)))
    try:
        res = run_rigorous(model, x, y, torch.ones(16, dtype=torch.bool),
                           settings=RigorousSettings(autoattack=False, square_queries=20,
                                                     pgd_steps=3, pgd_restarts=1, apgd_steps=3,
                                                     large_eps_steps=3, grad_n=8))
    finally:
        hook.remove()
    v = {d["check"]: d for d in res.verdicts}
    # every forward pass ran in eval mode; the model's own solver at the eval tolerance 1e-3,
    # and the RK4 reference of the rigorous checks
    assert seen and all(not training for training, _, _ in seen)
    assert {tol for _, tol, s in seen if s == "dopri5"} == {(1e-3, 1e-3)}
    assert {s for _, _, s in seen} == {"dopri5", "rk4"}
    assert v["solver_gradients"]["status"] == "pass"
    assert v["solver_gradients"]["numbers"]["q5_cos_clean"] > 0.99
    assert v["solver_gradients"]["numbers"]["q5_cos_adversarial"] > 0.99
    assert v["adjoint_gradients"]["status"] == "pass"
    # the RK4 stage has the budget of the adaptive one, and the verdict counts per example
    e = {x["role"]: x for x in res.entries if "role" in x}
    for k in ("steps", "restarts", "loss"):
        assert e["pgd_margin_rk4"]["attack_settings"][k] == e["pgd_margin"]["attack_settings"][k]
    only = int((res.masks["pgd_margin"] & ~res.masks["pgd_margin_rk4"]).sum())
    assert v["rk4_attack"]["numbers"]["rk4_only"] == only
    assert ode_blocks(model)[0].solver == "dopri5"        # overrides were undone


def test_solver_checks_na_without_ode(mlp, test_set):
    x, y = stack(test_set, 8)
    assert [d["status"] for d in solver_checks(mlp, x, y)] == ["n/a", "n/a"]


def test_rigorous_settings_reject_an_unknown_autoattack_component_when_built():
    from zubovnet.evaluation.rigorous import RigorousSettings
    assert RigorousSettings(aa_attacks=["apgd-t", "apgd-ce"]).aa_attacks == ("apgd-ce", "apgd-t")
    with pytest.raises(ValueError, match="'fab'"):
        RigorousSettings(aa_attacks=["fab"])
