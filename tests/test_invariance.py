"""Regions forward invariant by construction (``model.invariance``; docs/certified.md).

The guarantees are checked in float64 on *untrained* models, whose raw field knows nothing of
the regions: the decay ``∇V_y·f̃ ≤ −α V_y`` inside every region, alignment at every horizon,
continuity of the field across the fade, a fixed point at every equilibrium, and the
classification ``argmin V = y`` on region ``y``.  Each has a negative control that fails
without the construction."""
import math

import pytest
import torch

from zubovnet.config import Config, ConfigError, config_from_dict
from zubovnet.models import build_model
from zubovnet.models.lyapunov import InvariantDynamics, region_geometry


def _cfg(invariant=True, classifier="piacnn", **inv) -> Config:
    cfg = Config()
    m = cfg.model
    m.extractor, m.state_dim, m.num_classes, m.cnn_widths = "mlp", 6, 4, [16]
    m.image_size, m.in_channels = 4, 1
    m.lyapunov.classifier = classifier
    m.lyapunov.z_widths, m.lyapunov.u_widths = [16, 16, 1], [16, 16]
    m.equilibria.steps = 200
    m.ode.hidden = 16
    m.invariance.enabled = invariant
    for k, v in inv.items():
        setattr(m.invariance, k, v)
    return cfg


def _model(invariant=True, seed=0, **kw):
    torch.manual_seed(seed)
    model = build_model(_cfg(invariant, **kw)).double().eval()
    with torch.no_grad():            # a raw field that pushes outwards: the projection must act
        model.dynamics.net[2].bias.add_(torch.randn(6, dtype=torch.float64))
    return model


def _region_points(model, n_per_class=200, seed=0, shell=None):
    """Points of every region {V_k < c*}: radius fraction u^(1/d) of the boundary radius, or
    ``shell = (lo, hi)`` fractions."""
    from zubovnet.analysis.alignment import proa_samples
    g = torch.Generator().manual_seed(seed)
    L = model.equilibria.shape[0]
    pts, cls, W, frac, conv = proa_samples(model, torch.arange(L), n_per_class, 0.9, g,
                                           tol=1e-9, max_iters=200)
    assert bool(conv.all())
    if shell is not None:
        C = model.equilibria[cls]
        q = pts - C
        lo, hi = shell
        u = lo + (hi - lo) * torch.rand(pts.shape[0], generator=g, dtype=pts.dtype)
        pts = C + q / frac.clamp_min(1e-12).unsqueeze(1) * u.unsqueeze(1)
    return pts, cls


@pytest.mark.parametrize("classifier", ["piacnn", "picnn", "icnn"])
def test_lyapunov_decay_holds_inside_every_region(classifier):
    model = _model(classifier=classifier)
    dyn = model.dynamics
    pts, cls = _region_points(model)
    c_star = -math.log1p(-0.9)
    with torch.no_grad():
        f_tilde = dyn.field(pts)
        f_raw = dyn.nominal(pts)
    from zubovnet.losses import directional_derivative
    V, vdot = directional_derivative(lambda z: model.energy(z, cls), pts, f_tilde)
    assert float(V.detach().max()) < c_star
    assert bool((vdot <= -dyn.rate * V + 1e-9).all())
    _, vdot_raw = directional_derivative(lambda z: model.energy(z, cls), pts, f_raw)
    assert float((vdot_raw > -dyn.rate * V).float().mean()) > 0.3   # the raw field violates it


def test_every_region_is_aligned_at_every_horizon():
    from zubovnet.analysis.alignment import AlignmentSettings, alignment_report
    s = AlignmentSettings(n_per_class=50, boundary_tol=1e-8, boundary_max_iters=200)
    aligned = _model()
    aligned.ode.rtol_eval = aligned.ode.atol_eval = 1e-7
    rep = alignment_report(aligned, s, rho=0.9)
    geo = aligned.region_geometry
    assert geo["aligned_horizon"] < aligned.ode.T              # the construction guarantees T
    for key in ("1T", "3T", "10T"):
        assert rep["horizons"][key]["aligned"] == 1.0
        assert rep["horizons"][key]["inside"] == 1.0
    plain = _model(invariant=False)                             # the same weights, raw field
    plain.ode.rtol_eval = plain.ode.atol_eval = 1e-7
    rep0 = alignment_report(plain, s, rho=0.9)
    assert rep0["horizons"]["10T"]["aligned"] < 0.5


def _level_radius(model, C, k, q, level, iters=80):
    """Radius along ``q`` from ``c_k`` where ``V_k`` reaches ``level`` (bisection; V is convex
    and 0 at c_k, so it increases along every ray)."""
    lo = torch.zeros(q.shape[0], dtype=q.dtype)
    hi = torch.full_like(lo, 10.0)
    with torch.no_grad():
        for _ in range(iters):
            mid = 0.5 * (lo + hi)
            up = model.energy(C[k] + mid.unsqueeze(1) * q, k) >= level
            hi = torch.where(up, mid, hi)
            lo = torch.where(up, lo, mid)
    return 0.5 * (lo + hi)


def test_field_is_lipschitz_across_the_fade_shell():
    model = _model()
    dyn = model.dynamics
    C = model.equilibria
    g = torch.Generator().manual_seed(1)
    q = torch.nn.functional.normalize(torch.randn(200, 6, generator=g, dtype=C.dtype), dim=1)
    k = torch.arange(200) % C.shape[0]

    def ratio(d, level):
        """Difference quotient of the field across the level set {V_k = level}."""
        s = _level_radius(model, C, k, q, level)
        a = C[k] + (s - 1e-7).unsqueeze(1) * q
        b = C[k] + (s + 1e-7).unsqueeze(1) * q
        with torch.no_grad():
            fa, fb = d.field(a), d.field(b)
        return float(((fa - fb).norm(dim=1) / (a - b).norm(dim=1)).max())

    hard = InvariantDynamics(6, 16, "tanh", c_star=dyn.c_star, c_fade=dyn.c_star * (1 + 1e-12),
                             rate=dyn.rate).double().bind(model.head)
    hard.net.load_state_dict(dyn.net.state_dict())
    inner, outer = ratio(dyn, dyn.c_star), ratio(dyn, dyn.c_fade)
    jump = ratio(hard, dyn.c_star)
    assert max(inner, outer) < 100.0            # bounded across both edges of the fade
    assert jump > 1e4                           # a switch without the fade is a jump


def test_equilibria_are_fixed_points_and_the_field_is_continuous_there():
    model = _model()
    dyn = model.dynamics
    C = model.equilibria
    with torch.no_grad():
        assert float(dyn.field(C).abs().max()) == 0.0
        assert float(dyn.nominal(C).norm(dim=1).min()) > 0.1     # not by luck of the raw field
        for eps in (1e-2, 1e-4, 1e-6):
            h = C + eps * torch.nn.functional.normalize(torch.randn_like(C), dim=1)
            assert float(dyn.field(h).norm(dim=1).max()) < 200 * eps


def test_argmin_energy_is_the_region_class_everywhere_inside_it():
    model = _model()
    pts, cls = _region_points(model, n_per_class=500, shell=(0.9, 0.999999))
    inner, icls = _region_points(model, n_per_class=500, seed=3)
    with torch.no_grad():
        for p, c in ((pts, cls), (inner, icls)):
            V = model.energy(p)
            assert bool((V.gather(1, c.view(-1, 1)).squeeze(1) < -math.log1p(-0.9)).all())
            assert bool((V.argmin(1) == c).all())


def test_prediction_is_the_region_class_for_images_mapped_into_it():
    model = _model()
    x = torch.rand(8, 1, 4, 4, dtype=torch.float64)
    with torch.no_grad():
        h0 = model.features(x)
        k = torch.cdist(h0, model.equilibria).argmin(1)
        # move every feature deep into a region and check the logits follow it
        model.extractor.net[-1].bias.zero_()
        model.extractor.net[-1].weight.zero_()
        for cls in range(4):
            model.extractor.net[-1].bias.copy_(model.equilibria[cls] + 0.3)
            assert bool((model(x).argmax(1) == cls).all())
    del k


def test_geometry_is_validated_when_the_config_loads():
    base = {"model": {"name": "zubovnet", "num_classes": 10, "state_dim": 32,
                      "invariance": {"enabled": True}}}
    cfg = config_from_dict(base)
    geo = region_geometry(cfg.model, cfg.loss.rho)
    assert geo["d_min"] == pytest.approx(3 * math.sqrt(2 * 10 / 9), rel=1e-3)   # simplex
    assert 2 * geo["fade_radius"] < geo["d_min"]
    assert geo["rho"] < geo["fade_rho"] < geo["rho_max"] == pytest.approx(0.918, abs=1e-3)
    with pytest.raises(ConfigError, match="may overlap"):
        config_from_dict({**base, "loss": {"rho": 0.95}})
    with pytest.raises(ConfigError, match="fade_rho"):
        config_from_dict({"model": {**base["model"], "invariance": {"enabled": True,
                                                                    "fade_rho": 0.95}}})
    with pytest.raises(ConfigError, match="learnable"):
        config_from_dict({"model": {**base["model"], "equilibria": {"learnable": True}}})
    with pytest.raises(ConfigError, match="zubovnet"):
        config_from_dict({"model": {**base["model"], "name": "neural_ode"}})
    # a larger delta or norm makes room for a larger rho
    config_from_dict({**base, "loss": {"rho": 0.95}, "model": {**base["model"],
                                                               "equilibria": {"norm": 4.0}}})


def test_a_plain_checkpoint_loads_into_the_invariant_model():
    plain = build_model(_cfg(invariant=False))
    inv = build_model(_cfg(invariant=True))
    assert set(plain.state_dict()) == set(inv.state_dict())
    inv.load_state_dict(plain.state_dict())
    assert inv.invariant and not plain.invariant


def test_the_projection_runs_under_no_grad_and_inference_mode_and_trains():
    model = _model(train=True)
    x = torch.rand(5, 1, 4, 4, dtype=torch.float64)
    with torch.no_grad():
        a = model(x)
    with torch.inference_mode():
        b = model(x)
    assert torch.allclose(a, b)
    model.train()
    assert model.dynamics.projecting
    loss = model(x).logsumexp(1).sum()
    loss.backward()
    head_grads = [p.grad for p in model.head.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in head_grads)
    assert model.dynamics.net[0].weight.grad is not None


def test_adjoint_solve_differentiates_the_head_through_the_projection():
    model = _model()
    model.ode.adjoint = True
    params = model.dynamics.adjoint_parameters()
    assert len(params) == len(list(model.dynamics.parameters())) + len(list(
        model.head.parameters()))


def test_losses_constrain_the_learned_field_not_the_projection():
    from zubovnet.training.objectives import equilibrium_field, zubov_consistency
    inv = _model()
    plain = _model(invariant=False)
    plain.load_state_dict(inv.state_dict())
    pts, cls = _region_points(inv, n_per_class=20)
    assert torch.allclose(zubov_consistency(inv, pts, cls), zubov_consistency(plain, pts, cls))
    assert torch.allclose(equilibrium_field(inv), equilibrium_field(plain))


def test_by_default_the_training_forward_flows_by_the_learned_field():
    inv, plain = _model(), _model(invariant=False)
    plain.load_state_dict(inv.state_dict())
    pts, _ = _region_points(inv, n_per_class=20)
    inv.train()
    plain.train()
    assert not inv.dynamics.projecting
    assert torch.equal(inv.dynamics.field(pts), plain.dynamics.field(pts))
    inv.eval()
    assert inv.dynamics.projecting
    assert not torch.allclose(inv.dynamics.field(pts), plain.dynamics.field(pts))


def test_training_with_the_projection_off_in_train_mode_is_the_default_training(tmp_path):
    """With ``model.invariance.train: false`` (the default) a run trains step for step as the
    plain model does, so the invariant row of the ablation evaluates the default's weights."""
    from digits_helpers import tiny_config
    from zubovnet.training import train
    weights = {}
    for name, inv in (("plain", False), ("inv", True)):
        cfg = tiny_config()
        cfg.model.invariance.enabled = inv
        cfg.loss.rho = 0.8                       # tiny equilibria (d = 8) are closer together
        cfg.train.epochs, cfg.train.milestones = 1, []
        cfg.train.max_steps_per_epoch, cfg.data.batch_size = 2, 16
        cfg.train.out_dir = str(tmp_path / name)
        weights[name] = train(cfg).model.state_dict()
    for k, v in weights["plain"].items():
        assert torch.equal(v, weights["inv"][k]), k


def test_the_alignment_suite_counts_what_the_projection_changes():
    from zubovnet.analysis.alignment import reverse_inclusion
    model = _model()
    x = torch.rand(12, 1, 4, 4, dtype=torch.float64)
    y = torch.arange(12) % 4
    r = reverse_inclusion(model, x, y, 0.9)
    with torch.no_grad():
        with_p = model(x).argmax(1)
        with model.dynamics.learned_flow():
            assert not model.dynamics.projecting
            without = model(x).argmax(1)
    assert model.dynamics.projecting
    assert r["projection"]["predictions_changed"] == int((with_p != without).sum())
    assert r["projection"]["correct_without"] == int((without == y).sum())
    assert 0.0 <= r["projection"]["active_at_h0_hT"] <= 1.0
