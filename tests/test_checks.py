"""Every check of ``zubovnet.evaluation.checks`` FLAGs a near-miss and passes just inside its
threshold; the model-level tests (masked models, ODE solvers) are in ``test_rigorous.py``."""
import pytest
import torch
from torch import nn

from digits_helpers import digits, stack, train_mlp
from zubovnet.evaluation import checks
from zubovnet.evaluation.checks import CHECKS


def _mask(n, true_idx):
    m = torch.zeros(n, dtype=torch.bool)
    m[list(true_idx)] = True
    return m


def test_every_check_is_documented():
    import pathlib
    doc = (pathlib.Path(__file__).resolve().parents[1] / "docs" / "evaluation.md").read_text()
    for name in CHECKS:
        assert f"`{name}`" in doc, name
        assert getattr(checks, f"check_{name}", None) is not None, name


def test_determinism_flags_a_tiny_random_perturbation():
    mlp = train_mlp()
    x, _ = stack(digits().test, 32)

    class Jitter(nn.Module):                         # noise 1e-3 of the logit scale
        def __init__(self):
            super().__init__()
            self.net = mlp

        def forward(self, z):
            out = self.net(z)
            return out + 1e-3 * out.abs().max() * torch.randn_like(out)
    assert checks.check_determinism(Jitter().eval(), x)["status"] == "FLAG"
    assert checks.check_determinism(mlp, x)["status"] == "pass"


def test_solver_failures_one_is_enough():
    assert checks.check_solver_failures({"pgd@8/255": 1, "fgsm@8/255": 0}, 100)["status"] == "FLAG"
    assert checks.check_solver_failures({"pgd@8/255": 0}, 100)["status"] == "pass"


def test_gradients_finite_one_nan():
    g = torch.zeros(4, 3)
    g[2, 1] = float("nan")
    assert checks.check_gradients_finite(g, torch.ones(4, 3))["status"] == "FLAG"
    assert checks.check_gradients_finite(torch.ones(4, 3), torch.ones(4, 3))["status"] == "pass"


def test_zero_gradients_one_of_64():
    g = torch.randn(64, 10)
    g[7] = 0
    assert checks.check_zero_gradients(g, g)["status"] == "FLAG"
    assert checks.check_zero_gradients(g, g, threshold=1 / 64)["status"] == "pass"
    ce = torch.randn(64, 10)
    ce[3] = 0                                        # a saturated softmax alone passes
    v = checks.check_zero_gradients(torch.randn(64, 10), ce)
    assert v["status"] == "pass" and v["numbers"]["frac_zero_ce"] == pytest.approx(1 / 64)


def test_large_eps_is_a_success_rate_on_clean_correct_images():
    clean = _mask(100, range(20))                    # a near-chance model: 20% clean
    survive = _mask(100, range(4))                   # 4% absolute: the old 5% rule passed it
    v = checks.check_large_eps(survive, clean, 0.5)
    assert v["status"] == "FLAG" and v["numbers"]["survival"] == pytest.approx(0.2)
    assert checks.check_large_eps(_mask(100, [0]), clean, 0.5)["status"] == "pass"   # 1/20
    assert checks.check_large_eps(_mask(100, [0, 1]), clean, 0.5)["status"] == "FLAG"  # 2/20


def test_square_vs_apgd_counts_images_only_square_breaks():
    apgd = _mask(100, range(50))                     # APGD leaves 50 images robust
    # Square leaves 50 too (equal totals: the old comparison of totals passed) but breaks 4
    # images APGD did not
    sq = _mask(100, list(range(4, 50)) + [60, 61, 62, 63])
    v = checks.check_square_vs_apgd(apgd, sq)
    assert v["numbers"]["square_only"] == 4 and v["status"] == "FLAG"
    assert checks.check_square_vs_apgd(apgd, _mask(100, range(3, 50)))["status"] == "pass"


def test_weak_vs_strong_gap():
    assert checks.check_weak_vs_strong(0.30, 0.249, 10)["status"] == "FLAG"
    assert checks.check_weak_vs_strong(0.30, 0.251, 10)["status"] == "pass"


def test_autoattack_warnings_and_the_fallback():
    ok = {"reference": True, "warnings": [], "implementation": "pyautoattack 0.2.0"}
    assert checks.check_autoattack(ok)["status"] == "pass"
    assert checks.check_autoattack({**ok, "warnings": ["there are zero gradients"]})["status"] \
        == "FLAG"
    v = checks.check_autoattack({"reference": False, "warnings": []})
    assert v["status"] == "FLAG" and "reference" in v["reason"]
    # a subset of the components FLAGs and names what ran
    v = checks.check_autoattack({"reference": False, "warnings": [],
                                 "components": ["apgd-ce", "apgd-t"]})
    assert v["status"] == "FLAG" and "ran apgd-ce, apgd-t" in v["reason"]


def test_autoattack_labels_one_disagreement():
    assert checks.check_autoattack_labels(1, 200)["status"] == "FLAG"
    assert checks.check_autoattack_labels(0, 200)["status"] == "pass"


def test_solver_gradients_look_at_the_low_quantile_not_the_median():
    cos = torch.full((64,), 0.99)
    cos[:5] = 0.5                                    # median 0.99: the old rule passed
    assert checks.check_solver_gradients(cos, None)["status"] == "FLAG"
    assert checks.check_solver_gradients(torch.full((64,), 0.95), None)["status"] == "pass"
    adv = torch.full((64,), 0.95)
    adv[:10] = 0.7                                   # wrong only at adversarial points
    v = checks.check_solver_gradients(torch.full((64,), 0.99), adv)
    assert v["status"] == "FLAG" and v["numbers"]["q5_cos_adversarial"] < 0.9
    assert checks.check_adjoint_gradients(cos, None)["status"] == "FLAG"
    assert checks.check_adjoint_gradients(torch.full((8,), 0.999), None)["status"] == "pass"
    nan = torch.full((8,), float("nan"))
    assert checks.check_solver_gradients(nan, None)["status"] == "FLAG"


def test_rk4_attack_per_example():
    adaptive = _mask(100, range(40))
    assert checks.check_rk4_attack(adaptive, _mask(100, range(3, 40)))["status"] == "FLAG"
    assert checks.check_rk4_attack(adaptive, _mask(100, range(2, 40)))["status"] == "pass"
    # equal totals, different images: per example it is 3 images RK4-only
    swapped = _mask(100, list(range(3, 40)) + [90, 91, 92])
    v = checks.check_rk4_attack(adaptive, swapped)
    assert v["status"] == "FLAG" and v["numbers"]["rk4_only"] == 3


def _report(ar):
    return {"horizons": {"10T": {"aligned": ar, "nearest": 1.0}},
            "equilibria": {"max_f_norm": 0.01, "max_re_eig_max": -0.1}}


def test_alignment_and_certificate_checks():
    assert checks.check_aligned_stability(_report(0.899))["status"] == "FLAG"
    assert checks.check_aligned_stability(_report(0.901))["status"] == "pass"
    assert checks.check_lipschitz_bound({"l2": 2.0, "linf": 34.9},
                                        {"l2": 1.0, "linf": 35.0})["status"] == "FLAG"
    assert checks.check_lipschitz_bound({"l2": 0.9, "linf": 35.0},
                                        {"l2": 1.0, "linf": 1.0})["status"] == "FLAG"
    assert checks.check_lipschitz_bound({"l2": 1.0, "linf": 35.0},
                                        {"l2": 1.0, "linf": 35.0})["status"] == "pass"
    sampled = {"forward_invariance": {"source": "sampled"}, "region": {"source": "bound"}}
    exact = {"forward_invariance": {"source": "construction"}, "region": {"source": "bound"}}
    assert checks.check_certificate_condition(sampled, 0.899)["status"] == "FLAG"
    assert checks.check_certificate_condition(sampled, None)["status"] == "FLAG"
    v = checks.check_certificate_condition(sampled, 0.95)
    assert v["status"] == "pass" and "conditional" in v["reason"]
    v = checks.check_certificate_condition(exact, None)
    assert v["status"] == "pass" and "unconditional" in v["reason"]
    overlap = {**exact, "disjoint_regions": {"source": "violated"}}
    assert checks.check_certificate_condition(overlap, 1.0)["status"] == "FLAG"
    robust = _mask(100, range(50))
    # a point certified but broken by the attacks: FLAG, whatever the totals
    cert = _mask(100, list(range(1, 50)) + [70])
    v = checks.check_certified_vs_empirical(cert, robust, 8 / 255)
    assert v["status"] == "FLAG" and v["numbers"]["broken_indices"] == [70]
    assert checks.check_certified_vs_empirical(_mask(100, range(50)), robust,
                                               8 / 255)["status"] == "pass"
    assert checks.check_certificate_attacked(32, 1, 100, 5, [7])["status"] == "FLAG"
    assert checks.check_certificate_attacked(32, 0, 100, 5)["status"] == "pass"


def test_solver_gradients_flag_an_ode_model_at_the_training_tolerance():
    """A Neural ODE with a stiff field: evaluated at 1e-3 its gradients agree with RK4; at the
    training tolerance 0.1 (the near-miss the median used to let through) they do not."""
    from zubovnet.config import Config
    from zubovnet.evaluation.rigorous import RigorousSettings, solver_checks
    from zubovnet.models import build_model
    x, y = stack(digits().test, 64)
    status = {}
    for tol in (1e-3, 0.1):
        cfg = Config()
        cfg.model.name, cfg.model.state_dim, cfg.model.cnn_widths = "neural_ode", 8, [8, 8, 8]
        cfg.model.ode.hidden = 32
        cfg.model.ode.rtol_eval = cfg.model.ode.atol_eval = tol
        torch.manual_seed(0)
        m = build_model(cfg).eval()
        with torch.no_grad():
            m.dynamics.net[0].weight.mul_(4.0)
            m.dynamics.net[2].weight.mul_(4.0)
        status[tol] = {v["check"]: v["status"] for v in solver_checks(m, x, y, RigorousSettings())}
    assert status[1e-3] == {"solver_gradients": "pass", "adjoint_gradients": "pass"}
    assert status[0.1]["solver_gradients"] == "FLAG"
