"""The certified radius of Proposition 6: the Lipschitz bounds are upper bounds, the radius is
sound (no perturbation inside it leaves the region), and certified accuracy never exceeds the
empirical robust accuracy on the same points."""
import math

import pytest
import torch
from torch import nn

from zubovnet.analysis.certify import (UnsupportedLayerError, certified_radius,
                                       conv_spectral_bound, empirical_lipschitz,
                                       extractor_lipschitz, linear_inf_to_2_bound,
                                       lyapunov_lipschitz)
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


def test_radius_formula_solves_the_quadratic():
    W0, d0, Lg = torch.tensor([0.2, 0.95]), torch.tensor([0.5, 0.1]), torch.tensor([3.0, 3.0])
    eps = certified_radius(W0, d0, Lg, delta=0.5, L_phi=2.0, rho=0.9)
    r = float(eps[0]) * 2.0
    assert 0.2 + r * (3.0 + 2 * 0.5 * (0.5 + r)) == pytest.approx(0.9, abs=1e-6)
    assert float(eps[1]) == 0.0                        # outside the region: not certified


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
    L_phi = extractor_lipschitz(model.extractor, (1, 4, 4))
    Lg = lyapunov_lipschitz(model.head)
    with torch.no_grad():
        h0 = model.features(X)
        W0 = model.lyapunov(h0, Y)
        d0 = (h0 - model.equilibria[Y]).norm(dim=1)
    return certified_radius(W0, d0, Lg[Y], float(model.head.delta), L_phi, 0.9)


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
