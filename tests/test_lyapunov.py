"""V, W and the logits: positive definiteness, strong convexity bound, finite logits."""
import math

import torch

from zubovnet.models import build_model, logits_from_energy, make_equilibria, smooth_relu


def _model(small_cfg, dtype=torch.float64):
    torch.manual_seed(0)
    return build_model(small_cfg).to(dtype)


def test_equilibria_minimise_max_cosine():
    C = make_equilibria(10, 16, norm=3.0, steps=300, seed=0)
    assert torch.allclose(C.norm(dim=1), torch.full((10,), 3.0), atol=1e-5)
    cos = torch.nn.functional.normalize(C, dim=1) @ torch.nn.functional.normalize(C, dim=1).t()
    cos.fill_diagonal_(-2)
    assert cos.max() <= -1 / 9 + 5e-3                    # the regular simplex bound −1/(L−1)
    assert torch.equal(C, make_equilibria(10, 16, norm=3.0, steps=300, seed=0))


def test_smooth_relu_pieces():
    z = torch.tensor([-1.0, 0.0, 0.5, 1.0, 3.0])
    assert torch.allclose(smooth_relu(z, 1.0), torch.tensor([0.0, 0.0, 0.125, 0.5, 2.5]))


def test_energy_zero_at_equilibrium_and_strongly_convex_bound(small_cfg):
    m = _model(small_cfg)
    C = m.equilibria
    V = m.energy(C)                                       # (L, L): V(c_j, c_i)
    assert torch.allclose(V.diagonal(), torch.zeros(C.shape[0], dtype=V.dtype), atol=1e-12)
    h = 3 * torch.randn(500, C.shape[1], dtype=torch.float64)
    V = m.energy(h)
    dist2 = (h.unsqueeze(1) - C).pow(2).sum(-1)
    assert (V >= small_cfg.model.lyapunov.delta * dist2 - 1e-9).all()
    assert (V[dist2 > 1e-6] > 0).all()


def test_logits_match_definition_and_stay_finite_at_equilibria(small_cfg):
    m = _model(small_cfg)
    alpha = small_cfg.model.lyapunov.alpha
    h = torch.cat([m.equilibria, torch.randn(50, m.equilibria.shape[1], dtype=torch.float64)])
    h.requires_grad_(True)
    V = m.energy(h)
    logits = m.head.logits(V)
    assert torch.isfinite(logits).all()
    W = 1 - torch.exp(-V)
    ok = W > 1e-6
    ref = torch.log(1 / W[ok] - alpha)
    assert torch.allclose(logits[ok], ref, rtol=1e-6, atol=1e-8)
    logits.sum().backward()
    assert torch.isfinite(h.grad).all()
    # at h = c_i the class-i logit is the largest one (argmax ℓ = argmin V)
    assert (logits[: m.equilibria.shape[0]].argmax(1) == torch.arange(m.equilibria.shape[0])).all()


def test_logits_from_energy_monotone():
    V = torch.linspace(0, 20, 100, dtype=torch.float64)
    l = logits_from_energy(V, 0.5, 1e-6)
    assert torch.isfinite(l).all() and (l[1:] <= l[:-1]).all()
    assert math.isclose(l[-1].item(), math.log(0.5), rel_tol=1e-6)


def test_energy_at_initialisation_neither_saturated_nor_degenerate():
    from zubovnet.config import Config
    cfg = Config()                                         # paper widths, d = 64
    torch.manual_seed(0)
    m = build_model(cfg).eval()
    x = torch.rand(64, 1, 8, 8)
    with torch.no_grad():
        V = m.forward_all(x).energy
    med = V.median().item()
    assert 0.5 < med < 20, med                           # not W ≡ 1 (V in the thousands), not ≈ 0
    assert V.std().item() > 1e-3


def test_frozen_conditioning_keeps_values_and_state_gradients_and_cuts_parameter_ones():
    from zubovnet.models.convex import PIACNN
    from zubovnet.models.lyapunov import LyapunovHead, make_equilibria
    torch.manual_seed(0)
    head = LyapunovHead(make_equilibria(4, 6), PIACNN(6, (16, 16, 1), (8, 8)))
    h = torch.randn(10, 6, requires_grad=True)
    cls = torch.arange(10) % 4
    ref = head.energy(h, cls)
    g_ref = torch.autograd.grad(ref.sum(), h)[0]
    with head.frozen_conditioning():
        with head.frozen_conditioning():                  # nested: the outer one holds
            got = head.energy(h, cls)
        assert torch.equal(head.energy(h), head.energy(h))
        all_ref = head.energy(h)
        g = torch.autograd.grad(got.sum(), h)[0]
        u_param = next(head.convex.u_layers.parameters())
        assert torch.autograd.grad(got.sum(), u_param, allow_unused=True)[0] is None
    torch.testing.assert_close(got, ref)
    torch.testing.assert_close(g, g_ref)
    torch.testing.assert_close(all_ref, head.energy(h))
    assert head._frozen is None
