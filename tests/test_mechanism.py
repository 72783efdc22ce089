"""The alignment mechanism's options (docs/alignment.md), each against a known answer."""
import math

import pytest
import torch
from torch import nn

from zubovnet.config import Config
from zubovnet.losses import consistency_loss, zubov_target
from zubovnet.models import build_model
from zubovnet.models.assignment import assign_equilibria, assignment_permutation
from zubovnet.training.objectives import (ZubovObjective, equilibrium_field,
                                          equilibrium_jacobians)


def _cfg(**loss) -> Config:
    from digits_helpers import tiny_config
    cfg = tiny_config()
    cfg.loss.lambda_sep = 0.0
    for k, v in loss.items():
        setattr(cfg.loss, k, v)
    return cfg


def _batch(cfg, n=16):
    g = torch.Generator().manual_seed(0)
    x = torch.rand(n, cfg.model.in_channels, cfg.model.image_size, cfg.model.image_size,
                   generator=g)
    y = torch.arange(n) % cfg.model.num_classes
    return x, y


def test_sum_reduction_is_algorithm_2s_per_sample_sum():
    """With all trajectory states and their counterexamples, the per-sample sum over the 2Γ
    states of S₂ averaged over the batch is 2Γ times the mean over all states."""
    cfg = _cfg(consistency_samples=None, counterexample_steps=2)
    torch.manual_seed(0)
    model = build_model(cfg)
    x, y = _batch(cfg)
    logs = {}
    for red in ("mean", "sum"):
        cfg.loss.consistency_reduction = red
        torch.manual_seed(1)
        _, logs[red] = ZubovObjective(cfg)(model, x, y)
    two_gamma = 2 * cfg.model.ode.gamma
    assert logs["sum"]["L_con"] == pytest.approx(two_gamma * logs["mean"]["L_con"], rel=1e-5)


def test_sum_reduction_keeps_its_scale_when_states_are_subsampled():
    cfg = _cfg(consistency_samples=None, counterexample_steps=0, consistency_reduction="sum")
    torch.manual_seed(0)
    model = build_model(cfg)
    x, y = _batch(cfg, 32)
    torch.manual_seed(1)
    full = ZubovObjective(cfg)(model, x, y)[1]["L_con"]
    cfg.loss.consistency_samples = 160                     # half of the Γ·B = 320 states
    vals = []
    for seed in range(20):
        torch.manual_seed(seed)
        vals.append(ZubovObjective(cfg)(model, x, y)[1]["L_con"])
    assert sum(vals) / len(vals) == pytest.approx(full, rel=0.1)   # unbiased estimate


def test_invariance_term_is_the_mean_squared_field_at_the_equilibria_and_pins_them():
    cfg = _cfg(lambda_con=0.0, lambda_fc=0.0, lambda_eq=1.0)
    torch.manual_seed(0)
    model = build_model(cfg)
    x, y = _batch(cfg)
    obj = ZubovObjective(cfg)
    _, logs = obj(model, x, y)
    f_c = equilibrium_field(model).detach()
    assert logs["L_eq"] == pytest.approx(float(f_c.pow(2).sum(1).mean()), rel=1e-5)
    # minimising it alone drives f(c_i) to 0
    opt = torch.optim.Adam(model.dynamics.parameters(), 1e-2)
    for _ in range(100):
        loss = equilibrium_field(model).pow(2).sum(1).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float(equilibrium_field(model).detach().norm(dim=1).max()) < 0.05 * float(f_c.norm(dim=1).max())


def test_stability_term_on_a_linear_field():
    """``f(h) = A(h − c₀)``: every ``J_i = A``; the term is ``relu(λ_max(½(A + Aᵀ)) + m)``."""
    cfg = _cfg(lambda_con=0.0, lambda_stab=1.0, stability_margin=0.1)
    torch.manual_seed(0)
    model = build_model(cfg)
    d = cfg.model.state_dim
    A = torch.randn(d, d) * 0.3 - 0.2 * torch.eye(d)
    lin = nn.Linear(d, d)
    with torch.no_grad():
        lin.weight.copy_(A)
        lin.bias.copy_(-A @ model.equilibria[0])
    model.dynamics.net = lin
    J = equilibrium_jacobians(model)
    assert torch.allclose(J, A.expand_as(J), atol=1e-6)
    x, y = _batch(cfg)
    _, logs = ZubovObjective(cfg)(model, x, y)
    lam = float(torch.linalg.eigvalsh(0.5 * (A + A.t()))[-1])
    assert logs["L_stab"] == pytest.approx(max(lam + 0.1, 0.0), rel=1e-5, abs=1e-7)
    assert logs["sym_eig_max"] == pytest.approx(lam, rel=1e-5)


def test_uniform_weight_drops_exactly_the_zubov_factor():
    V = torch.tensor([0.0, 0.5, 2.3])
    Vd = torch.tensor([-1.0, 0.3, -2.0])
    phi = torch.tensor([0.2, 1.0, 4.0])
    w = consistency_loss(V, Vd, phi, weight="zubov")
    u = consistency_loss(V, Vd, phi, weight="uniform")
    assert torch.allclose(u * torch.exp(-2 * V), w)
    assert torch.allclose(u, (Vd + phi) ** 2)
    with pytest.raises(ValueError, match="consistency weight"):
        consistency_loss(V, Vd, phi, weight="bogus")


def test_zubov_target_of_a_linear_contraction():
    """``f = −(h − c)``: ``Φ(h(t)) = r₀² e^{−2t}``, so ``∫_0^H Φ = r₀²(1 − e^{−2H})/2``."""
    c = torch.zeros(50, 3, dtype=torch.float64)
    h = torch.randn(50, 3, dtype=torch.float64)
    W = zubov_target(lambda z: -z, h, c, horizon=2.0, rtol=1e-8, atol=1e-8)
    r2 = h.pow(2).sum(1)
    assert torch.allclose(W, 1 - torch.exp(-r2 * (1 - math.exp(-4.0)) / 2), atol=1e-6)


def test_trajectory_targets_need_region_states():
    cfg = _cfg(lambda_traj=1.0, region_samples=0)
    torch.manual_seed(0)
    model = build_model(cfg)
    with pytest.raises(ValueError, match="region_samples"):
        ZubovObjective(cfg)(model, *_batch(cfg))


def test_region_states_join_s2_and_every_option_trains():
    cfg = _cfg(region_samples=64, region_radius_power=1.0, lambda_eq=1.0, lambda_stab=1.0,
               lambda_traj=1.0, consistency_weight="uniform", consistency_reduction="sum")
    torch.manual_seed(0)
    model = build_model(cfg)
    x, y = _batch(cfg)
    loss, logs = ZubovObjective(cfg)(model, x, y)
    for k in ("L_con", "L_eq", "L_stab", "L_traj"):
        assert math.isfinite(logs[k])
    loss.backward()
    assert all(p.grad is None or torch.isfinite(p.grad).all() for p in model.parameters())


def test_assignment_recovers_a_hidden_permutation():
    torch.manual_seed(0)
    C = torch.nn.functional.normalize(torch.randn(6, 8), dim=1) * 3
    perm = torch.tensor([3, 0, 5, 1, 4, 2])
    means = C[perm] * 0.4 + 0.05 * torch.randn(6, 8)        # class k's features point at C[perm_k]
    assert torch.equal(assignment_permutation(means, C), perm)


def test_data_assignment_permutes_the_rows_and_leaves_the_model_otherwise_untouched():
    cfg = _cfg()
    cfg.model.equilibria.assignment = "data"
    torch.manual_seed(0)
    model = build_model(cfg)
    C0 = model.equilibria.clone()
    state = {k: v.clone() for k, v in model.state_dict().items() if k != "head.C"}
    x, y = _batch(cfg, 40)
    info = ZubovObjective(cfg).prepare(model, [(x, y)])
    perm = torch.tensor(info["permutation"])
    assert sorted(perm.tolist()) == list(range(cfg.model.num_classes))
    assert torch.equal(model.equilibria, C0[perm])
    assert info["mean_cosine_after"] >= info["mean_cosine_before"] - 1e-6
    for k, v in model.state_dict().items():                # BatchNorm statistics included
        if k != "head.C":
            assert torch.equal(v, state[k]), k


def test_trainer_prepares_a_fresh_run_once_and_resume_keeps_the_assignment(tmp_path):
    from zubovnet import load_checkpoint, train
    cfg = _cfg()
    cfg.model.equilibria.assignment = "data"
    cfg.train.epochs, cfg.train.max_steps_per_epoch = 2, 2
    cfg.train.out_dir = str(tmp_path / "run")
    cfg.train.progress = cfg.train.tensorboard = False
    train(cfg, stop_after=1)
    assert (tmp_path / "run" / "prepare.json").exists()
    m1, _, _ = load_checkpoint(tmp_path / "run")
    (tmp_path / "run" / "prepare.json").unlink()
    train(cfg, resume=True)
    assert not (tmp_path / "run" / "prepare.json").exists()  # not prepared again on resume
    m2, _, _ = load_checkpoint(tmp_path / "run")
    assert torch.equal(m1.equilibria, m2.equilibria)


def _every_search(**loss):
    """A config, model and batch whose step runs every search (region points, counterexamples
    with the secant projection, boundary points with the secant rule)."""
    cfg = _cfg(region_radius_power=1.0, projection="secant", **loss)
    cfg.loss.lambda_sep = 1.0
    cfg.loss.boundary.rule = "secant"
    torch.manual_seed(0)
    model = build_model(cfg)
    return (cfg, model) + _batch(cfg)


def test_frozen_conditioning_gives_the_same_step_as_the_reference():
    """The searches' shared conditioning (LyapunovHead.frozen_conditioning) changes no value:
    the same loss, logs and parameter gradients as recomputing it at every evaluation."""
    cfg, model, x, y = _every_search(region_samples=32, lambda_eq=1.0, lambda_stab=1.0,
                                     consistency_weight="uniform", counterexample_steps=3)
    out = {}
    for freeze in (False, True):
        obj = ZubovObjective(cfg)
        obj.freeze_conditioning = freeze
        torch.manual_seed(3)
        loss, logs = obj(model, x, y)
        model.zero_grad()
        loss.backward()
        out[freeze] = (loss.item(), logs, [p.grad.clone() for p in model.parameters()
                                           if p.grad is not None])
    assert out[True][0] == pytest.approx(out[False][0], rel=1e-5)
    assert out[True][1]["boundary_converged"] == out[False][1]["boundary_converged"]
    assert len(out[True][2]) == len(out[False][2]) > 0
    for a, b in zip(out[True][2], out[False][2]):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)
    assert model.head._frozen is None                     # the context is closed again


@pytest.mark.skipif(__import__("shutil").which("g++") is None,
                    reason="torch.compile on CPU needs a C++ compiler")
def test_compiled_searches_give_the_same_step():
    """``train.compile_searches``: the searches' W through torch.compile, the same loss."""
    cfg, model, x, y = _every_search(region_samples=16, counterexample_steps=2)
    losses = {}
    for compiled in (False, True):
        cfg.train.compile_searches = compiled
        torch.manual_seed(3)
        losses[compiled] = ZubovObjective(cfg)(model, x, y)[0].item()
    assert losses[True] == pytest.approx(losses[False], rel=1e-4)


def test_recomputed_separation_gives_the_same_loss_and_gradients():
    """``loss.boundary.recompute``: activation checkpointing of L_sep changes no number."""
    cfg, model, x, y = _every_search(region_samples=0, counterexample_steps=1)
    grads = {}
    for recompute in (False, True):
        cfg.loss.boundary.recompute = recompute
        torch.manual_seed(3)
        loss, logs = ZubovObjective(cfg)(model, x, y)
        model.zero_grad()
        loss.backward()
        grads[recompute] = (logs["L_sep"], [p.grad.clone() for p in model.parameters()
                                            if p.grad is not None])
    assert grads[True][0] == pytest.approx(grads[False][0], rel=1e-6)
    for a, b in zip(grads[True][1], grads[False][1]):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


def test_inside_term_pulls_correct_points_into_their_region_and_only_those():
    """``L_in`` on the correctly classified points only: its value is the hinge over the batch
    with the other points' terms zero, and minimising it (with the extractor) moves their
    ``h(0)`` into the region."""
    from zubovnet.losses import inside_loss
    cfg = _cfg(lambda_con=0.0, lambda_fc=0.0, lambda_inside=1.0, inside_margin=0.05,
               inside_form="W")
    torch.manual_seed(0)
    model = build_model(cfg)
    x, y = _batch(cfg)
    _, logs = ZubovObjective(cfg)(model, x, y)
    with torch.no_grad():
        out = model.forward_all(x)
        V0 = model.energy(out.trajectory[0], y)
        pick = (out.logits.argmax(1) == y).float()
    assert 0 < pick.sum() < len(y)                       # both kinds of point in the batch
    assert logs["L_inside"] == pytest.approx(inside_loss(V0, 0.9, 0.05, "W", pick).item(),
                                             rel=1e-5)
    cfg.loss.inside_points = "all"
    _, logs_all = ZubovObjective(cfg)(model, x, y)
    assert logs_all["L_inside"] > logs["L_inside"]
    opt = torch.optim.Adam(model.parameters(), 1e-2)
    for _ in range(150):
        V = model.energy(model.features(x), y)
        loss = inside_loss(V, 0.9, 0.05, "V")
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        assert bool((model.lyapunov(model.features(x), y) < 0.9).all())


def test_lipschitz_term_lowers_the_certificates_bound():
    from zubovnet.losses import lipschitz_penalty
    cfg = _cfg(lambda_con=0.0, lambda_lipschitz=1.0, lipschitz_target=0.5)
    torch.manual_seed(0)
    model = build_model(cfg)
    x, y = _batch(cfg)
    _, logs = ZubovObjective(cfg)(model, x, y)
    b0 = model.head.gradient_bound().detach()
    assert logs["L_g_max"] == pytest.approx(float(b0.max()), rel=1e-5)
    assert logs["L_lip"] == pytest.approx(lipschitz_penalty(b0, 0.5).item(), rel=1e-5)
    opt = torch.optim.Adam(model.head.parameters(), 1e-2)
    for _ in range(100):
        loss = lipschitz_penalty(model.head.gradient_bound(), 0.5)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float(model.head.gradient_bound().max()) < 0.5 * float(b0.max())


def test_persistent_counterexamples_carry_their_chains_from_step_to_step():
    """``counterexample_mode: persistent``: the buffer left by one step is where the next
    step's ascent starts (but for the refreshed share), so on a fixed model the Zubov residual
    of a chain never decreases from step to step; a new epoch starts again from the batch."""
    cfg = _cfg(counterexample_mode="persistent", counterexample_steps=1,
               counterexample_refresh=0.25, consistency_samples=32, lambda_fc=0.0)
    torch.manual_seed(0)
    model = build_model(cfg)
    x, y = _batch(cfg)
    obj = ZubovObjective(cfg)
    obj.set_epoch(0)
    from zubovnet.training.objectives import zubov_consistency
    history = []
    for _ in range(4):
        prev = None if obj._buffer is None else (obj._buffer[0].clone(), obj._buffer[1].clone())
        obj(model, x, y)
        pts, cls = obj._buffer
        assert pts.shape[0] == 32
        if prev is not None:
            history.append((prev, pts, cls, zubov_consistency(model, pts, cls).detach()))
    # chains not refreshed: their residual is at least the one they started the step with
    for prev, pts, cls, val in history:
        before = zubov_consistency(model, prev[0], prev[1]).detach()
        same_start = cls == prev[1]
        assert bool((val[same_start] >= before[same_start] - 1e-4).float().mean() >= 0.7)
    obj.set_epoch(1)
    assert obj._buffer is None


def test_zubov_terms_every_k_steps_carry_weight_k():
    cfg = _cfg(counterexample_steps=0, consistency_samples=None)
    torch.manual_seed(0)
    model = build_model(cfg)
    x, y = _batch(cfg)
    base = ZubovObjective(cfg)
    base.set_epoch(0)
    torch.manual_seed(1)
    loss1, logs1 = base(model, x, y)
    cfg.loss.zubov_every = 2
    obj = ZubovObjective(cfg)
    obj.set_epoch(0)
    torch.manual_seed(1)
    loss_a, logs_a = obj(model, x, y)                 # step 0: the terms, weighted 2
    loss_b, logs_b = obj(model, x, y)                 # step 1: without them
    assert "L_con" in logs_a and "L_con" not in logs_b
    extra = cfg.loss.lambda_con * logs1["L_con"]
    assert loss_a.item() - loss_b.item() == pytest.approx(2 * extra, abs=1e-5)
    assert (loss_a.item() + loss_b.item()) / 2 == pytest.approx(loss1.item(), abs=1e-5)
