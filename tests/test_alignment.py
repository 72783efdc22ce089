"""The alignment metric AR(ρ, H, τ) and the mechanism options, on fields with known answers.

* ``f(h) = −(h − c_nearest(h))``: every point of a PRoA flows to its own equilibrium (the PRoAs
  lie in disjoint balls around the ``c_i``), so AR = 1 at every horizon;
* ``f(h) = +(h − c_nearest(h))``: every point leaves, so AR = 0 at 10T;
* ``f(h) = c_0 − h``: everything flows to ``c_0``: AR = 1 for class 0, 0 for the others;
* a planar model: the grid of :func:`basin_map` and the sampled metric agree per class.
"""
import math

import numpy as np
import pytest
import torch
from torch import nn

from zubovnet.analysis import basin_map
from zubovnet.analysis.alignment import (AlignmentError, AlignmentSettings, alignment_report,
                                         capture_radius, check_alignment_model,
                                         equilibrium_diagnostics, flow_states, proa_samples)
from zubovnet.config import Config
from zubovnet.models import build_model


class NearestField(nn.Module):
    """``f(h) = sign · (h − c_{nearest(h)})`` (``sign = −1``: attract, ``+1``: repel)."""

    def __init__(self, C: torch.Tensor, sign: float):
        super().__init__()
        self.register_buffer("C", C.clone())
        self.sign = sign

    def forward(self, h):
        k = torch.cdist(h, self.C.to(h.dtype)).argmin(-1)
        return self.sign * (h - self.C.to(h.dtype)[k])


class Affine(nn.Module):
    """``f(h) = A h + b``."""

    def __init__(self, A, b):
        super().__init__()
        self.register_buffer("A", A.clone())
        self.register_buffer("b", b.clone())

    def forward(self, h):
        return h @ self.A.t().to(h.dtype) + self.b.to(h.dtype)


class AroundC0(nn.Module):
    """An extractor ``h(0) = c_0 + 3 (x_{1..8} − ½)``: features at distances 0 … 4 from ``c_0``."""

    def __init__(self, c):
        super().__init__()
        self.register_buffer("c", c.clone())

    def forward(self, x):
        return self.c + 3.0 * (x.flatten(1)[:, :8] - 0.5)


def _model(d=8, L=4, field="attract"):
    torch.manual_seed(0)
    cfg = Config()
    m = cfg.model
    m.extractor, m.state_dim, m.num_classes = "mlp", d, L
    m.in_channels, m.image_size, m.cnn_widths = 1, 4, [16]
    m.ode.hidden = 16
    m.lyapunov.z_widths, m.lyapunov.u_widths = [16, 16, 1], [16, 16]
    m.equilibria.steps, m.equilibria.norm = 100, 3.0
    model = build_model(cfg).eval()
    C = model.equilibria
    if field == "attract":
        model.dynamics.net = NearestField(C, -1.0)
    elif field == "repel":
        model.dynamics.net = NearestField(C, +1.0)
    elif field == "to_c0":
        model.dynamics.net = Affine(-torch.eye(d), C[0])
    return model


def test_proa_samples_lie_inside_and_follow_the_radial_law():
    model = _model(d=8)
    g = torch.Generator().manual_seed(0)
    pts, cls, W, frac, conv = proa_samples(model, torch.arange(4), 500, 0.9, g)
    assert pts.shape == (2000, 8) and bool(conv.all())
    assert (W < 0.9).all()
    # radius fraction u^{1/d}: its d-th power is uniform on (0, 1)
    u = frac.pow(8).sort().values
    assert float((u - torch.linspace(0, 1, len(u))).abs().max()) < 0.05
    # the sample is W-increasing along the radius: the outermost points sit near the level set
    assert float(W[frac > 0.99].min()) > 0.8


def test_attracting_field_gives_alignment_one():
    model = _model(d=8, field="attract")
    rep = alignment_report(model, AlignmentSettings(n_per_class=100), rho=0.9)
    for key in ("1T", "3T", "10T"):
        assert rep["horizons"][key]["aligned"] == 1.0
        assert rep["horizons"][key]["nearest"] == 1.0
        assert rep["horizons"][key]["inside"] == 1.0
    assert rep["vdot_negative"] == 1.0
    assert rep["equilibria"]["max_f_norm"] < 1e-6
    assert rep["equilibria"]["max_re_eig_max"] == pytest.approx(-1.0, abs=1e-5)
    assert rep["solve_failures"] == 0
    # distances shrink as e^{-t} (down to the solver tolerance 1e-3)
    m1, m10 = rep["horizons"]["1T"]["mean_distance"], rep["horizons"]["10T"]["mean_distance"]
    assert m1 < math.exp(-1) * math.sqrt(2 * -math.log(0.1) / 0.5) and m10 < 5e-3


def test_repelling_field_gives_alignment_zero():
    model = _model(d=8, field="repel")
    rep = alignment_report(model, AlignmentSettings(n_per_class=100), rho=0.9)
    assert rep["horizons"]["10T"]["aligned"] == 0.0
    assert rep["horizons"]["10T"]["inside"] == 0.0
    assert rep["vdot_negative"] == 0.0
    assert rep["equilibria"]["max_re_eig_max"] == pytest.approx(1.0, abs=1e-5)


def test_field_to_one_equilibrium_aligns_only_that_class():
    model = _model(d=8, field="to_c0")
    rep = alignment_report(model, AlignmentSettings(n_per_class=100), rho=0.9)
    per = rep["horizons"]["10T"]["per_class"]
    assert per[0] == 1.0 and all(per[k] == 0.0 for k in (1, 2, 3))
    assert rep["horizons"]["10T"]["aligned"] == pytest.approx(0.25)
    # f(c_0) = 0, f(c_k) = c_0 − c_k elsewhere
    C = model.equilibria
    assert rep["equilibria"]["max_f_norm"] == pytest.approx(float((C - C[0]).norm(dim=1).max()),
                                                            rel=1e-5)


def test_class_subset_and_settings_are_recorded():
    model = _model(d=8, field="attract")
    s = AlignmentSettings(n_per_class=20, classes=2, seed=3, horizons=(1.0, 2.0))
    rep = alignment_report(model, s, rho=0.8)
    assert len(rep["classes"]) == 2 and rep["n"] == 40
    assert set(rep["horizons"]) == {"1T", "2T"}
    assert rep["settings"]["seed"] == 3 and rep["rho"] == 0.8
    assert rep["tau"] == pytest.approx(capture_radius(model.equilibria))
    again = alignment_report(model, s, rho=0.8)
    assert again["classes"] == rep["classes"]


def test_tau_is_a_quarter_of_the_smallest_distance():
    C = torch.tensor([[0.0, 0.0], [3.0, 0.0], [0.0, 1.0]])
    assert capture_radius(C) == pytest.approx(0.25)


def test_per_point_error_norm_is_not_coupled_to_the_batch():
    """A point solved alone and inside a batch of very different points ends in the same place
    (the per-point norm makes every point meet the tolerance)."""
    model = _model(d=8, field="attract")
    h = torch.randn(64, 8) * 3
    t = torch.tensor([0.0, 2.0])
    alone, _ = flow_states(model, h[:1], t)
    batch, _ = flow_states(model, h, t)
    assert torch.allclose(alone[-1, 0], batch[-1, 0], atol=5e-3)


def test_failed_solves_are_counted_not_aligned():
    model = _model(d=8, field="attract")

    class Blowup(nn.Module):
        def forward(self, h):
            return h.pow(3) * 50.0
    model.dynamics.net = Blowup()
    model.ode.max_num_steps = 50
    out, failed = flow_states(model, torch.randn(6, 8) * 3, torch.tensor([0.0, 10.0]))
    assert bool(failed.all()) and bool(torch.isnan(out[-1]).all())


def test_models_without_equilibria_are_refused_with_one_line():
    cfg = Config()
    cfg.model.name, cfg.model.state_dim, cfg.model.cnn_widths = "neural_ode", 8, [8, 16]
    model = build_model(cfg).eval()
    with pytest.raises(AlignmentError, match="lacks equilibria"):
        check_alignment_model(model)


def test_equilibrium_diagnostics_of_a_linear_field():
    model = _model(d=4, L=3, field=None)
    A = torch.diag(torch.tensor([-1.0, -2.0, 0.5, -0.1]))
    model.dynamics.net = Affine(A, torch.zeros(4))
    eq = equilibrium_diagnostics(model)
    assert eq["max_re_eig_max"] == pytest.approx(0.5, abs=1e-5)
    assert eq["max_sym_eig_max"] == pytest.approx(0.5, abs=1e-5)
    C = model.equilibria
    assert eq["max_f_norm"] == pytest.approx(float((C @ A.t()).norm(dim=1).max()), rel=1e-5)


def _planar_model():
    torch.manual_seed(1)
    cfg = Config()
    m = cfg.model
    m.name, m.extractor, m.state_dim = "zubovnet", "identity", 2
    m.in_channels, m.image_size, m.num_classes = 2, 1, 3
    m.ode.hidden = 16
    m.lyapunov.z_widths, m.lyapunov.u_widths = [16, 16, 1], [16, 16]
    m.equilibria.norm, m.equilibria.steps = 1.5, 100
    model = build_model(cfg).eval()
    C = model.equilibria
    # rotate about the origin while contracting to c_0: classes 1, 2 are partly captured by c_0
    ang = 0.6
    R = torch.tensor([[math.cos(ang), -math.sin(ang)], [math.sin(ang), math.cos(ang)]])
    model.dynamics.net = Affine(0.6 * R - torch.eye(2), C[0] - (0.6 * R) @ C[0])
    return model


def test_planar_basin_map_and_the_sampled_metric_agree_per_class():
    """On a planar model the grid (area measure) and the sampled metric (radial measure) agree
    where alignment is all-or-nothing per class, and both see the same per-class verdict."""
    model = _planar_model()
    rho = 0.9
    rep = alignment_report(model, AlignmentSettings(n_per_class=400), rho=rho)
    bm = basin_map(model, xlim=(-3.5, 3.5), ylim=(-3.5, 3.5), resolution=120, rho=rho,
                   capture_radius=rep["tau"])
    for k in range(3):
        in_k = bm.in_proa[..., k]
        grid_rate = float((bm.basin[in_k] == k).mean())
        ar = rep["horizons"]["10T"]["per_class"][k]
        assert abs(grid_rate - ar) < 0.05, (k, grid_rate, ar)
    assert rep["horizons"]["10T"]["per_class"][0] == 1.0
    assert rep["horizons"]["10T"]["per_class"][1] == 0.0


def test_containment_of_test_trajectories_under_the_attracting_field():
    """``f = −(h − c_nearest)`` moves every state straight toward an equilibrium, and ``V_y`` is
    convex with its minimum there, so ``W_y`` falls monotonically along each trajectory: a
    trajectory ending in ``D_{W_y}`` is contained in it exactly when it starts inside."""
    model = _model(d=8, field="attract")

    model.extractor = AroundC0(model.equilibria[0])
    torch.manual_seed(0)
    x = torch.rand(60, 1, 4, 4)
    with torch.no_grad():
        traj = model.trajectory(x)
        y = model.energy(traj[-1]).argmin(1)
        W0 = model.lyapunov(traj[0], y)
        WT = model.lyapunov(traj[-1], y)
    rep = alignment_report(model, AlignmentSettings(n_per_class=10), x=x, y=y, rho=0.9)
    c = rep["containment"]
    assert c["correct"] == 60
    assert c["terminal_in_proa"] == int((WT < 0.9).sum())
    assert c["contained"] == int(((W0 < 0.9) & (WT < 0.9)).sum())
    assert 0 < c["contained"] < c["terminal_in_proa"]       # both cases occur in this sample
    assert c["mean_dW_dt"] < 0


def test_reverse_inclusion_counts_points_by_where_they_start_and_end():
    """Under ``f = −(h − c_nearest)`` every ``h(0)`` flows to its nearest equilibrium; with
    ``h(0) = c_0 + 3 (x − ½)`` at distances 0–4 from ``c_0``, the labels ``y = 0`` make the
    correct points exactly those whose nearest equilibrium is ``c_0`` at ``T``, the ones in
    the basin those nearest ``c_0`` from the start, and the inside ones those with
    ``W_0(h(0)) < ρ`` — each count is known without the metric."""
    from zubovnet.analysis.alignment import reverse_inclusion
    model = _model(d=8, field="attract")

    model.extractor = AroundC0(model.equilibria[0])
    torch.manual_seed(0)
    x = torch.rand(80, 1, 4, 4)
    y = torch.zeros(80, dtype=torch.long)
    C = model.equilibria
    with torch.no_grad():
        traj = model.trajectory(x)
        h0, hT = traj[0], traj[-1]
        correct = model(x).argmax(1) == 0
        in0 = model.lyapunov(h0, y) < 0.9
        inT = model.lyapunov(hT, y) < 0.9
        basin = torch.cdist(h0, C).argmin(1) == 0
    r = reverse_inclusion(model, x, y, 0.9)
    assert r["correct"] == int(correct.sum()) and r["in_basin"] == int(basin.sum())
    assert r["h0_inside_correct"] == int((correct & in0).sum())
    assert r["hT_inside_correct"] == int((correct & inT).sum())
    assert r["roa_in_proa_count"] == int((basin & in0).sum())
    assert 0 < r["h0_inside_correct"] < r["correct"]           # both cases occur
    assert r["h0_inside_correct_rate"] == pytest.approx(r["h0_inside_correct"] / r["correct"])
    assert r["per_class"][0]["correct"] == r["correct"]
    rep = alignment_report(model, AlignmentSettings(n_per_class=10), x=x, y=y, rho=0.9)
    assert rep["reverse_inclusion"]["roa_in_proa_count"] == r["roa_in_proa_count"]
