"""Certified radii: the Lipschitz bounds are upper bounds, the radii are sound (no perturbation
inside them leaves the region or changes the prediction), hand-built models get their known
radius, and certified accuracy never exceeds the empirical robust accuracy on the same points."""
import math

import pytest
import torch
from torch import nn

from zubovnet.analysis.certify import (UnsupportedLayerError, certify, conv_spectral_bound,
                                       empirical_lipschitz, extractor_lipschitz,
                                       linear_inf_to_2_bound, lyapunov_lipschitz, margin_radius,
                                       region_radius)
from zubovnet.config import Config
from zubovnet.models import build_model
from zubovnet.models.extractors import MLPExtractor, SmallCNN


def _power_iteration_conv(conv: nn.Conv2d, size, iters=200):
    x = torch.randn(1, conv.in_channels, *size, dtype=torch.float64)
    w = conv.weight.double()
    for _ in range(iters):
        y = torch.nn.functional.conv2d(x, w, stride=conv.stride, padding=conv.padding)
        x = torch.nn.grad.conv2d_input(x.shape, w, y, stride=conv.stride, padding=conv.padding)
        x = x / x.norm()
    y = torch.nn.functional.conv2d(x, w, stride=conv.stride, padding=conv.padding)
    return float(y.detach().norm())


def test_linear_inf_to_2_bound_is_exact_on_a_row_of_ones():
    A = torch.ones(1, 7)
    assert linear_inf_to_2_bound(A) == pytest.approx(7.0)
    B = torch.eye(5)
    assert linear_inf_to_2_bound(B) == pytest.approx(math.sqrt(5))   # ‖I‖_{∞→2} = √n


def test_conv_bound_is_an_upper_bound_and_tight():
    torch.manual_seed(0)
    for stride in (1, 2):
        conv = nn.Conv2d(3, 5, 3, stride=stride, padding=1, bias=False)
        bound = conv_spectral_bound(conv.weight, (8, 8))
        est = _power_iteration_conv(conv, (8, 8))
        assert bound >= est * (1 - 1e-6)
        if stride == 1:
            assert bound <= 1.3 * est                                  # tight, not a crude product
    one = nn.Conv2d(4, 6, 1, bias=False)                               # 1×1: the matrix norm
    M = one.weight.detach()[:, :, 0, 0].double()
    assert conv_spectral_bound(one.weight, (5, 5)) == pytest.approx(
        float(torch.linalg.matrix_norm(M, ord=2)), rel=1e-9)


@pytest.mark.parametrize("kind", ["cnn", "mlp"])
def test_extractor_bound_is_above_an_empirical_estimate(kind):
    torch.manual_seed(0)
    if kind == "cnn":
        ext = SmallCNN(1, 8, image_size=8, widths=(8, 16), mean=[0.5], std=[0.25])
        for m in ext.modules():                       # non-trivial BatchNorm statistics
            if isinstance(m, nn.BatchNorm2d):
                m.running_var.uniform_(0.2, 2.0)
                m.weight.data.uniform_(0.5, 1.5)
    else:
        ext = MLPExtractor(64, 8, hidden=32, mean=[0.5], std=[0.25])
    ext.eval()
    x = torch.rand(8, 1, 8, 8)
    bound = extractor_lipschitz(ext, (1, 8, 8))
    est = empirical_lipschitz(ext, x, iters=10)
    assert bound >= est
    assert est > 0


def test_batchnorm_in_training_mode_is_refused():
    ext = SmallCNN(1, 8, image_size=8, widths=(8,)).train()
    with pytest.raises(UnsupportedLayerError, match="training mode"):
        extractor_lipschitz(ext, (1, 8, 8))


def test_lyapunov_gradient_bound_holds_at_random_points():
    torch.manual_seed(0)
    cfg = Config()
    m = cfg.model
    m.extractor, m.state_dim, m.num_classes, m.cnn_widths = "mlp", 6, 3, [16]
    m.image_size, m.in_channels = 4, 1
    m.lyapunov.z_widths, m.lyapunov.u_widths = [16, 16, 1], [16, 16]
    m.equilibria.steps = 50
    model = build_model(cfg).eval()
    Lg = lyapunov_lipschitz(model.head)
    head = model.head
    C = head.C
    for k in range(3):
        h = (C[k] + torch.randn(500, 6) * 2).requires_grad_(True)
        cond = head.convex.condition(C)
        g = head.convex(h - C[k], cond, torch.full((500,), k))
        grad = torch.autograd.grad(g.sum(), h)[0]
        assert float(grad.norm(dim=1).max()) <= float(Lg[k]) * (1 + 1e-5)


def test_region_radius_of_a_ball_is_its_distance_to_the_boundary():
    # g ≡ const (L_g = 0, z0 = 0): the region is the ball of radius √(c*/δ); r* = R − ρ0
    c_star, delta = 2.0, 0.5
    R = math.sqrt(c_star / delta)
    d0 = torch.tensor([0.0, 0.5, 1.9, 2.0, 2.5])
    r = region_radius(torch.zeros(5), d0, torch.zeros(5), delta, c_star, slack=0.0)
    expected = (R - d0).clamp_min(0.0)
    assert torch.allclose(r, expected.double(), atol=1e-9)


def test_region_radius_solves_the_upper_bound_and_is_monotone():
    z0, d0, Lg = torch.tensor([0.3, -1.0]), torch.tensor([1.0, 1.0]), torch.tensor([2.0, 2.0])
    r = region_radius(z0, d0, Lg, 0.5, 2.3, slack=0.0).double()

    def U(rr, z):
        zz = max(z + 2.0 * rr, 0.0)
        sig = zz * zz / 2 if zz < 1 else zz - 0.5
        return 0.5 * (1.0 + rr) ** 2 + sig
    for k in range(2):
        assert U(float(r[k]), float(z0[k])) == pytest.approx(2.3, abs=1e-9)
    assert float(r[1]) > float(r[0])                       # g below g(0): a larger radius
    assert float(region_radius(torch.tensor([5.0]), torch.tensor([1.0]), torch.tensor([1.0]),
                               0.5, 2.3)[0]) == 0.0       # V(h(0)) >= c*: not certified


def test_margin_radius_of_a_linear_classifier_is_the_distance_to_its_decision_boundary():
    W = torch.tensor([[1.0, 0.0], [-1.0, 0.0], [0.0, 3.0]])
    h = torch.tensor([[0.5, 0.0], [2.0, 0.1]])
    logits = h @ W.t()
    r = margin_radius(logits, torch.tensor([0, 0]), W, L_phi=1.0)
    # class 0 vs 1: boundary x = 0; vs 2: x = 3y, distance |x − 3y| / √10
    exp0 = min(0.5, 0.5 / math.sqrt(10))
    exp1 = min(2.0, (2.0 - 0.3) / math.sqrt(10))
    assert torch.allclose(r, torch.tensor([exp0, exp1], dtype=torch.float64), atol=1e-7)
    assert float(margin_radius(logits, torch.tensor([1, 1]), W, 1.0)[0]) == 0.0  # wrong class
    assert float(margin_radius(logits, torch.tensor([0, 0]), W, 2.0)[0]) == pytest.approx(exp0 / 2)


STD = 0.1


def _ball_model(delta=0.5):
    """A hand-built Zubov-Net on the plane: identity extractor ``h = (x − ½)/0.1`` (inputs in
    [0, 1]², ``L_φ = 10`` in L2), a convex net whose gradient vanishes (g constant), so every
    region is the ball of radius ``R = √(c*/δ)``, and the regions invariant by construction.
    The certified L2 radius of ``x`` is ``0.1 (R − ‖h(0) − c_y‖)`` exactly."""
    cfg = Config()
    m = cfg.model
    m.extractor, m.state_dim, m.num_classes, m.image_size, m.in_channels = "identity", 2, 3, 1, 2
    m.mean, m.std = [0.5, 0.5], [STD, STD]
    m.lyapunov.z_widths, m.lyapunov.u_widths = [8, 8, 1], [8, 8]
    m.lyapunov.delta = delta
    m.equilibria.norm, m.equilibria.steps = 4.0, 300
    m.invariance.enabled = True
    m.ode.solver, m.ode.step_size = "rk4", 0.5     # the certificate does not depend on it
    model = build_model(cfg).eval()
    with torch.no_grad():
        for lin in model.head.convex.x_layers:
            lin.weight.zero_()
        for z in model.head.convex.z_layers:
            z.raw.fill_(-60.0)
    return model


def test_a_hand_built_ball_model_gets_its_known_radius():
    model = _ball_model()
    C = model.equilibria
    R = math.sqrt(-math.log1p(-0.9) / 0.5)
    Y = torch.tensor([0, 1, 2, 0])
    offs = torch.tensor([[0.3, 0.0], [0.0, -1.0], [0.5, 0.5], [-1.5, 0.2]])
    X = (0.5 + STD * (C[Y] + offs)).view(4, 2, 1, 1)
    assert float(X.min()) >= 0 and float(X.max()) <= 1
    cert = certify(model, X, Y)
    expected = STD * (R - offs.norm(dim=1)).double()
    assert cert["kind"] == "region" and cert["exact"]
    assert torch.allclose(cert["radius"]["l2"], expected, atol=1e-4)
    assert torch.allclose(cert["radius"]["linf"], expected / math.sqrt(2), atol=1e-4)
    assert cert["premises"]["forward_invariance"]["source"] == "construction"
    assert cert["premises"]["disjoint_regions"]["source"] == "construction"
    assert float(cert["L_g"].max()) < 1e-12


def test_certified_points_of_the_ball_model_survive_l2_and_linf_attacks_inside_the_radius():
    from zubovnet.evaluation.attacks import make_attack, run_attack
    from zubovnet.evaluation.certified import pgd_l2_per_example
    model = _ball_model()
    C = model.equilibria
    g = torch.Generator().manual_seed(0)
    Y = torch.arange(3).repeat(10)
    offs = torch.randn(30, 2, generator=g) * 0.8
    X = (0.5 + STD * (C[Y] + offs)).view(30, 2, 1, 1).clamp(0, 1)
    cert = certify(model, X, Y)
    ok = cert["radius"]["l2"] > 0
    assert int(ok.sum()) >= 20
    broken = pgd_l2_per_example(model, X[ok], Y[ok], cert["radius"]["l2"][ok].float(), steps=100,
                                restarts=5)
    assert not bool(broken.any())
    # 1.5 × the radius: a weaker attack already breaks points (the radius is tight here)
    assert bool(pgd_l2_per_example(model, X[ok], Y[ok], 1.5 * cert["radius"]["l2"][ok].float() +
                                   0.06, steps=20, restarts=1).any())
    eps = float(cert["radius"]["linf"][ok].median())
    cert_e = ok & (cert["radius"]["linf"] >= eps)
    atk = make_attack("pgd", model, eps, steps=20, step_size=eps / 5, seed=0)
    robust = run_attack(model, atk, X, Y, 32, torch.device("cpu")).correct
    assert bool(robust[cert_e].all())


# --------------------------------------------------------------------------- soundness
def _prototype_model():
    """A model whose extractor maps the prototype of class k to c_k (a Linear–ReLU–Linear MLP),
    with the attracting field −(h − c_nearest): the regions are forward invariant and disjoint,
    so the certificate of Proposition 6 certifies the prediction."""
    from test_alignment import NearestField
    torch.manual_seed(0)
    cfg = Config()
    m = cfg.model
    m.extractor, m.state_dim, m.num_classes, m.cnn_widths = "mlp", 6, 4, [16]
    m.image_size, m.in_channels = 4, 1
    m.lyapunov.z_widths, m.lyapunov.u_widths = [16, 16, 1], [16, 16]
    m.equilibria.steps, m.equilibria.norm = 100, 3.0
    model = build_model(cfg).eval()
    C = model.equilibria
    P = torch.zeros(4, 16)
    for k in range(4):
        P[k, 4 * k:4 * k + 4] = 1.0
    lin1, lin2 = model.extractor.net[1], model.extractor.net[3]
    with torch.no_grad():
        lin1.weight.copy_(torch.eye(16))
        lin1.bias.zero_()
        lin2.weight.copy_(C.t() @ P / 4.0)             # φ(p_k) = c_k
        lin2.bias.zero_()
    model.dynamics.net = NearestField(C, -1.0)
    X = (P.view(4, 1, 4, 4).repeat(8, 1, 1, 1) + 0.05 * torch.rand(32, 1, 4, 4)).clamp(0, 1)
    Y = torch.arange(4).repeat(8)
    return model, X, Y


def _radii(model, X, Y):
    return certify(model, X, Y, rho=0.9)["radius"]["linf"].float()


def test_no_perturbation_inside_the_radius_leaves_the_region():
    model, X, Y = _prototype_model()
    eps = _radii(model, X, Y)
    assert float(eps.min()) > 1e-3                   # a meaningful radius on this model
    # PGD maximising W_y(φ(x + δ)) inside the L∞ ball of each point's own radius
    delta = torch.zeros_like(X, requires_grad=True)
    e = eps.view(-1, 1, 1, 1)
    for _ in range(40):
        W = model.lyapunov(model.features(X + delta), Y)
        g = torch.autograd.grad(W.sum(), delta)[0]
        with torch.no_grad():
            delta += 0.25 * e * g.sign()
            delta.copy_(torch.maximum(torch.minimum(delta, e), -e))
    with torch.no_grad():
        W = model.lyapunov(model.features(X + delta), Y)
    assert float(W.max()) < 0.9
    # and the radius is not absurdly loose: at 20× it the attack leaves the region somewhere
    delta = (20 * e * torch.sign(torch.randn_like(X))).requires_grad_(True)
    for _ in range(40):
        W = model.lyapunov(model.features(X + delta), Y)
        g = torch.autograd.grad(W.sum(), delta)[0]
        with torch.no_grad():
            delta += 0.25 * 20 * e * g.sign()
            delta.copy_(torch.maximum(torch.minimum(delta, 20 * e), -20 * e))
    with torch.no_grad():
        assert float(model.lyapunov(model.features(X + delta), Y).max()) > 0.9


def test_certified_accuracy_never_exceeds_empirical_robust_accuracy():
    from zubovnet.evaluation.attacks import make_attack, run_attack
    model, X, Y = _prototype_model()
    eps_all = _radii(model, X, Y)
    with torch.no_grad():
        correct = model(X).argmax(1) == Y
    for eps in (float(eps_all.median()), float(eps_all.max()), 2 * float(eps_all.max())):
        certified = float((correct & (eps_all >= eps)).float().mean())
        atk = make_attack("pgd", model, eps, steps=20, step_size=eps / 4, seed=0)
        robust = run_attack(model, atk, X, Y, 32, torch.device("cpu")).correct
        assert certified <= float((correct & robust).float().mean())


def test_the_certify_suite_checks_its_radii_against_the_attacks_and_flags_inflated_ones(
        monkeypatch):
    """End to end through :func:`evaluate` (clean, rigorous, certify on the ball model, with
    points near the equilibria and near the decision boundaries): the certificate passes its
    checks; radii inflated (by 5 in feature space, so that points outside every region are
    "certified" too) are caught by the per-image comparison with the rigorous worst case and
    by the L2 attack at each point's own radius."""
    import zubovnet.analysis.certify as certmod
    from zubovnet.evaluation import EvalSettings, evaluate
    from zubovnet.evaluation.rigorous import RigorousSettings
    model = _ball_model()
    C = model.equilibria
    g = torch.Generator().manual_seed(0)
    Y = torch.arange(3).repeat(5)
    H = C[Y] + torch.randn(15, 2, generator=g) * 0.8       # around the equilibria
    near = []                                              # and 0.3 from a decision boundary
    for i, j in ((0, 1), (1, 2), (2, 0)):
        u = (C[i] - C[j]) / (C[i] - C[j]).norm()
        near.append((C[i] + C[j]) / 2 + 0.3 * u)
    H = torch.cat([H, torch.stack(near)])
    Y = torch.cat([Y, torch.tensor([0, 1, 2])])
    X = (0.5 + STD * H).view(18, 2, 1, 1)
    data = list(zip(X.clamp(0, 1), Y.tolist()))
    s = EvalSettings(rigorous=RigorousSettings(eps=0.06, pgd_steps=10, pgd_restarts=1,
                                               apgd_steps=5, square_queries=20, autoattack=False,
                                               large_eps_steps=3, large_eps_restarts=1, grad_n=2,
                                               rk4_attack=False),
                     certify_eps=(0.06,), certify_l2=(0.05,), certify_attack_points=6,
                     certify_attack_steps=10, certify_attack_restarts=1,
                     certify_lipschitz_points=2)

    def verdicts():
        rec = evaluate(model, data, ["clean", "rigorous", "certify"], n=18, settings=s,
                       progress=False)
        return {v["check"]: v["status"] for v in rec["verdicts"]}, rec
    v, rec = verdicts()
    assert v["certified_vs_empirical"] == v["certificate_attacked"] == "pass"
    assert v["certificate_condition"] == "pass"
    assert 0 < rec["results"]["rigorous/worst_case"]["accuracy"] < 1    # the attacks bite
    inflated = certmod.region_radius
    monkeypatch.setattr(certmod, "region_radius", lambda *a, **k: inflated(*a, **k) + 5.0)
    v, _ = verdicts()
    assert v["certified_vs_empirical"] == "FLAG" and v["certificate_attacked"] == "FLAG"
