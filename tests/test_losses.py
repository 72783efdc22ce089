"""Zubov consistency on an analytic system, the JVP, the separation loss."""
import pytest
import torch

from zubovnet.losses import (consistency_loss, directional_derivative, separation_loss,
                             zubov_phi, zubov_residual)
from zubovnet.training.objectives import zubov_consistency

torch.manual_seed(0)


def _analytic(h, c, perturb=0.0):
    f = -(h - c) + perturb * torch.stack([h[:, 1], -h[:, 0]] + [h[:, 0] * 0] * (h.shape[1] - 2), 1)
    V_fn = lambda z: 0.5 * (z - c).pow(2).sum(-1)         # noqa: E731
    V, V_dot = directional_derivative(V_fn, h, f)
    return V, V_dot, zubov_phi(h, c)


def test_zubov_residual_zero_for_analytic_pair():
    # f(h) = −(h − c), V = ½‖h − c‖², Φ = ‖h − c‖²: ∇V·f = −‖h − c‖² = −Φ exactly.
    c = torch.randn(1, 4, dtype=torch.float64)
    h = c + 2 * torch.randn(300, 4, dtype=torch.float64)
    V, V_dot, phi = _analytic(h, c)
    assert torch.allclose(V_dot, -phi)
    assert zubov_residual(V, V_dot, phi).abs().max() < 1e-12
    assert consistency_loss(V, V_dot, phi).max() < 1e-24


def test_zubov_residual_positive_when_field_perturbed():
    c = torch.zeros(1, 4, dtype=torch.float64)
    h = 0.5 + torch.rand(300, 4, dtype=torch.float64)
    f_scaled = -0.5 * (h - c)                              # decays too slowly for this Φ
    V, V_dot = directional_derivative(lambda z: 0.5 * (z - c).pow(2).sum(-1), h, f_scaled)
    l = consistency_loss(V, V_dot, zubov_phi(h, c))
    assert (l > 1e-4).all()
    # the relaxed (inequality) form is zero for a field decaying faster than required ...
    V, V_dot = directional_derivative(lambda z: 0.5 * (z - c).pow(2).sum(-1), h, -2 * (h - c))
    phi = zubov_phi(h, c)
    assert consistency_loss(V, V_dot, phi, inequality=True).max() == 0
    assert consistency_loss(V, V_dot, phi, inequality=False).min() > 0   # ... the equality is not


def test_residual_equals_zubov_form():
    # e^{−V}(∇V·f + Φ) == ∇W·f + Φ(1 − W) with W = 1 − e^{−V}, checked by autograd on W.
    torch.manual_seed(1)
    A = torch.randn(3, 3, dtype=torch.float64)
    Q = A @ A.t() + torch.eye(3, dtype=torch.float64)
    V_fn = lambda z: 0.5 * ((z @ Q) * z).sum(-1)           # noqa: E731
    h = torch.randn(50, 3, dtype=torch.float64, requires_grad=True)
    f = torch.sin(h) - h
    W = 1 - torch.exp(-V_fn(h))
    gradW = torch.autograd.grad(W.sum(), h)[0]
    phi = h.pow(2).sum(-1)
    direct = (gradW * f).sum(-1) + phi * (1 - W)
    V, V_dot = directional_derivative(V_fn, h, f)
    assert torch.allclose(zubov_residual(V, V_dot, phi), direct, atol=1e-12)


def test_jvp_matches_autograd_and_passes_gradcheck(small_cfg):
    from zubovnet.models import build_model
    torch.manual_seed(0)
    m = build_model(small_cfg).double()
    d = small_cfg.model.state_dim
    h = torch.randn(6, d, dtype=torch.float64, requires_grad=True)
    cls = torch.randint(0, 10, (6,))
    f = m.dynamics.field(h)
    _, V_dot = directional_derivative(lambda z: m.energy(z, cls), h, f)
    gV = torch.autograd.grad(m.energy(h, cls).sum(), h, create_graph=True)[0]
    assert torch.allclose(V_dot, (gV * f).sum(-1), atol=1e-10)
    # the consistency loss (which contains the JVP) is differentiable in h: float64 gradcheck
    hh = torch.randn(2, d, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda z: zubov_consistency(m, z, cls[:2]), (hh,))


def test_separation_loss_sums_foreign_classes():
    Wb = torch.tensor([[0.1, 0.5, 0.7], [0.9, 0.2, 0.3]])
    cls = torch.tensor([0, 1])
    # point 0 (class 0): −(0.5 + 0.7); point 1 (class 1): −(0.9 + 0.3); mean
    assert torch.isclose(separation_loss(Wb, cls), torch.tensor(-(1.2 + 1.2) / 2))
    assert separation_loss(Wb[:0], cls[:0]) == 0


def test_inside_loss_is_zero_inside_and_a_hinge_outside():
    import math
    from zubovnet.losses import inside_loss
    level = -math.log1p(-(0.9 - 0.05))                       # V_m of W <= 0.85
    V = torch.tensor([0.5 * level, level, level + 1.0, level + 3.0])
    assert inside_loss(V, 0.9, 0.05, "V").item() == pytest.approx((1.0 + 3.0) / 4)
    W = -torch.expm1(-V)
    assert inside_loss(V, 0.9, 0.05, "W").item() == pytest.approx(
        float(torch.relu(W - 0.85).mean()))
    w = torch.tensor([1.0, 1.0, 0.0, 1.0])                   # a point left out
    assert inside_loss(V, 0.9, 0.05, "V", w).item() == pytest.approx(3.0 / 4)
    Vg = V.clone().requires_grad_(True)
    inside_loss(Vg, 0.9, 0.05, "W").backward()
    # the W form's gradient is e^{-V}: it fades far outside the region
    assert Vg.grad[3] < Vg.grad[2] and Vg.grad[0] == 0
    with pytest.raises(ValueError):
        inside_loss(V, 0.9, 0.95, "V")


def test_lipschitz_penalty_is_a_hinge_on_the_bound():
    from zubovnet.losses import lipschitz_penalty
    b = torch.tensor([0.5, 1.0, 3.0])
    assert lipschitz_penalty(b, 1.0).item() == pytest.approx(2.0 / 3)
