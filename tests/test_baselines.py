"""Baselines (paper §IV-A, docs/baselines.md): each model's defining property, and one training step of every registry
entry through the trainer and the checkpoint (plus the Table V ablations of Zubov-Net)."""
import argparse
import copy
import math

import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import TensorDataset

from zubovnet import load_checkpoint
from zubovnet.config import Config
from zubovnet.data import build_datasets
from zubovnet.data.registry import DatasetSplits
from zubovnet.losses import directional_derivative
from zubovnet.models import available_models, build_model
from zubovnet.models.baselines.fxts import settling_time_bound
from zubovnet.models.baselines.projnode import ConvexLyapunov, ProjectedDynamics, project_field
from digits_helpers import tiny_config
from zubovnet.training import build_objective, train
from zubovnet.training.baseline_objectives import (FxTSObjective, LyaNetObjective, SODEFObjective,
                                                   fixed_time_violation, lyapunov_violation,
                                                   sodef_regularizers)
from zubovnet.training.trainer import fill_data_fields


def tiny_cfg(name: str, tmp_path=None) -> Config:
    cfg = tiny_config(name)
    cfg.data.name = "digits"
    cfg.data.batch_size = 32
    cfg.train.epochs = 1
    cfg.train.max_steps_per_epoch = 1
    cfg.train.eval_every = 0
    if tmp_path is not None:
        cfg.train.out_dir = str(tmp_path / name)
    return cfg


def digits_batch(cfg, n=32):
    splits = build_datasets(cfg.data)
    fill_data_fields(cfg, splits)
    xs, ys = zip(*[splits.test[i] for i in range(n)])
    return torch.stack(xs), torch.as_tensor([int(v) for v in ys])


# --------------------------------------------------------------------------- Proj-NODE
def _projected_field(dim=4, a=0.01):
    torch.manual_seed(0)
    V = ConvexLyapunov(dim, z_widths=[16, 16, 1], eps=0.01)
    return ProjectedDynamics(dim, V, hidden=16, a=a).double()


def test_projnode_lyapunov_is_positive_definite():
    dyn = _projected_field()
    V = dyn.lyapunov
    h = torch.randn(200, 4, dtype=torch.float64) * 3
    assert V(torch.zeros(1, 4, dtype=torch.float64)).abs().item() < 1e-12
    assert (V(h) >= 0.01 * h.pow(2).sum(-1) - 1e-12).all()


def test_projnode_field_decreases_V_at_rate_a():
    a = 0.01
    dyn = _projected_field(a=a)
    with torch.no_grad():                       # make the nominal field violate the condition often
        dyn.net[2].weight.mul_(5.0)
    h = torch.randn(500, 4, dtype=torch.float64) * 3
    hh = h.clone().requires_grad_(True)
    V = dyn.lyapunov(hh)
    gV, = torch.autograd.grad(V.sum(), hh)
    f = dyn.field(h)
    V_dot = (gV * f).sum(-1)
    assert (V_dot <= -a * V.detach() + 1e-9 * (1 + V.detach())).all()
    fhat = dyn.nominal(h)
    nominal_ok = (gV * fhat).sum(-1) <= -a * V.detach()
    assert 0 < (~nominal_ok).sum() < len(h)          # the test exercises both branches
    assert torch.allclose(f[nominal_ok], fhat[nominal_ok].detach())
    assert torch.allclose(V_dot[~nominal_ok], -a * V.detach()[~nominal_ok], atol=1e-9)


def test_project_field_formula():
    fhat = torch.tensor([[1.0, 0.0], [-1.0, 0.0]], dtype=torch.float64)
    gV = torch.tensor([[2.0, 0.0], [2.0, 0.0]], dtype=torch.float64)
    V = torch.tensor([1.0, 1.0], dtype=torch.float64)
    f = project_field(fhat, V, gV, a=0.5)
    # row 0: s = 2 + 0.5 > 0 -> f = fhat - gV * 2.5 / 4 ; row 1: s = -2 + 0.5 < 0 -> unchanged
    assert torch.allclose(f, torch.tensor([[1.0 - 1.25, 0.0], [-1.0, 0.0]], dtype=torch.float64))


def test_projnode_forward_under_no_grad_and_differentiable_input():
    cfg = tiny_cfg("projnode")
    x, _ = digits_batch(cfg, 6)
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    with torch.no_grad():
        out_ng = model(x)
    assert not out_ng.requires_grad
    with torch.inference_mode():
        out_inf = model(x)
    assert torch.allclose(out_ng, out_inf, atol=1e-6)
    xr = x.clone().requires_grad_(True)
    out = model(xr)
    assert torch.allclose(out_ng, out.detach(), atol=1e-5)
    g, = torch.autograd.grad(out[:, 0].sum(), xr)
    assert torch.isfinite(g).all() and g.abs().sum() > 0


# --------------------------------------------------------------------------- SODEF
def test_sodef_regularizers_on_a_linear_system():
    A = torch.tensor([[-2.0, 0.5], [1.0, -0.3]], dtype=torch.float64)
    b = torch.tensor([0.1, -0.2], dtype=torch.float64)
    field = lambda z: z @ A.t() + b                            # noqa: E731  J = A everywhere
    z = torch.tensor([[0.0, 0.0], [1.0, 2.0], [-1.0, 0.5]], dtype=torch.float64)
    r_diag, r_off, r_f = sodef_regularizers(field, z)
    # diag J = (-2, -0.3): mean exp(J_ii + 1)
    assert r_diag.item() == pytest.approx((math.exp(-1.0) + math.exp(0.7)) / 2, rel=1e-12)
    # columns: i=0: |J_10| - |J_00| = 1 - 2 = -1 ; i=1: |J_01| - |J_11| = 0.5 - 0.3 = 0.2
    assert r_off.item() == pytest.approx((math.exp(0.0) + math.exp(0.1 * 1.2)) / 2, rel=1e-12)
    fz = [[0.1, -0.2], [-2 + 1 + 0.1, 1 - 0.6 - 0.2], [2 + 0.25 + 0.1, -1 - 0.15 - 0.2]]
    expect_f = sum((50 * abs(v)) ** 2 for row in fz for v in row) / 6
    assert r_f.item() == pytest.approx(expect_f, rel=1e-12)
    # the Jacobian terms do not depend on which points are sampled for a linear field
    r_diag1, r_off1, _ = sodef_regularizers(field, z, samples=1)
    assert r_diag1.item() == pytest.approx(r_diag.item()) and r_off1.item() == pytest.approx(r_off.item())


def test_sodef_regularizers_reach_field_parameters():
    cfg = tiny_cfg("sodef")
    torch.manual_seed(0)
    model = build_model(cfg)
    z = torch.randn(5, cfg.model.state_dim)
    r = sum(sodef_regularizers(model.dynamics.field, z, samples=3))
    r.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.dynamics.parameters())


def test_sodef_phases_train_only_their_part():
    cfg = tiny_cfg("sodef")
    cfg.baseline.sodef.phase1_epochs, cfg.baseline.sodef.phase2_epochs = 1, 1
    cfg.baseline.sodef.weights = [1.0, 1.0, 1.0]
    x, y = digits_batch(cfg)
    torch.manual_seed(0)
    model = build_model(cfg).train()
    obj = build_objective(cfg, model)
    assert isinstance(obj, SODEFObjective)
    ball = model.ball.clone()
    groups = {"extractor": model.extractor, "dynamics": model.dynamics, "fc": model.fc}
    expect = {0: ("extractor",), 1: ("dynamics",), 2: ("fc",)}
    for epoch, trained in expect.items():
        obj.set_epoch(epoch)
        assert obj.phase == epoch + 1
        bn = copy.deepcopy({k: v for k, v in model.extractor.state_dict().items() if "running" in k})
        model.zero_grad(set_to_none=True)
        loss, logs = obj(model, x, y)
        loss.backward()
        for name, mod in groups.items():
            has = any(p.grad is not None and p.grad.abs().sum() > 0 for p in mod.parameters())
            assert has == (name in trained), (epoch, name)
        if epoch > 0:    # frozen extractor: BatchNorm statistics unchanged too
            now = {k: v for k, v in model.extractor.state_dict().items() if "running" in k}
            assert all(torch.equal(bn[k], now[k]) for k in bn)
    assert torch.equal(model.ball, ball)
    assert torch.allclose(model.fc.weight, ball)      # the final head starts from the max-cosine matrix


# --------------------------------------------------------------------------- LyaNet
def _lyanet_with_field(kind: str, kappa: float):
    cfg = tiny_cfg("lyanet")
    cfg.baseline.lyanet.kappa = kappa
    x, _ = digits_batch(cfg, 8)
    cfg.model.num_classes = 3
    torch.manual_seed(0)
    model = build_model(cfg).train()
    y = torch.zeros(len(x), dtype=torch.long)

    def V0(h):
        return F.cross_entropy(model.fc(h), torch.zeros(h.shape[0], dtype=torch.long), reduction="none")

    def field(h, context=None):
        with torch.enable_grad():
            hh = h.detach().requires_grad_(True)
            V = V0(hh)
            g, = torch.autograd.grad(V.sum(), hh)
        if kind == "decay":      # V̇ = −2κ V: exponentially stable at twice the rate asked for
            return -(2 * kappa) * V.detach().unsqueeze(-1) * g / g.pow(2).sum(-1, keepdim=True)
        return g                 # V̇ = ‖∇V‖² > 0: unstable
    model.field = field
    return cfg, model, x, y


def test_lyanet_violation_formula():
    V = torch.tensor([1.0, 2.0, 0.5])
    V_dot = torch.tensor([-3.0, -1.0, 0.2])
    assert torch.allclose(lyapunov_violation(V, V_dot, 2.0), torch.tensor([0.0, 3.0, 1.2]))


def test_lyanet_loss_zero_for_exponentially_stable_system():
    cfg, model, x, y = _lyanet_with_field("decay", kappa=2.0)
    loss, logs = LyaNetObjective(cfg)(model, x, y)
    assert logs["L_lya"] == pytest.approx(0.0, abs=1e-6)
    assert logs["violating"] == 0.0
    assert loss.item() == pytest.approx(logs["L_ce"], abs=1e-5)
    cfg, model, x, y = _lyanet_with_field("grow", kappa=2.0)
    _, logs = LyaNetObjective(cfg)(model, x, y)
    assert logs["L_lya"] > 0.1 and logs["violating"] == 1.0


def test_lyanet_vdot_is_the_directional_derivative():
    torch.manual_seed(0)
    W = torch.nn.Linear(4, 3).double()
    h = torch.randn(6, 4, dtype=torch.float64)
    v = torch.randn(6, 4, dtype=torch.float64)
    y = torch.randint(0, 3, (6,))
    V, V_dot = directional_derivative(lambda z: F.cross_entropy(W(z), y, reduction="none"), h, v)
    eps = 1e-6
    fd = (F.cross_entropy(W(h + eps * v), y, reduction="none")
          - F.cross_entropy(W(h - eps * v), y, reduction="none")) / (2 * eps)
    assert torch.allclose(V_dot, fd, atol=1e-7)


# --------------------------------------------------------------------------- FxTS-Net
def test_fixed_time_violation_zero_iff_condition_holds():
    a, b, p, q, k = 1.0, 1.0, 0.5, 2.0, 1.0
    V = torch.tensor([0.01, 0.5, 1.0, 4.0, 0.25], dtype=torch.float64)
    V_dot = -2.0 * V                             # V̇ = −2V against −(√V + V²)
    rate = (a * V.sqrt() + b * V.pow(2)).pow(k)
    holds = V_dot <= -rate
    viol = fixed_time_violation(V, V_dot, a, b, p, q, k)
    assert holds.any() and (~holds).any()
    assert (viol[holds] == 0).all() and (viol[~holds] > 0).all()
    assert torch.allclose(viol[~holds], (V_dot + rate)[~holds])


def test_settling_time_bound():
    assert settling_time_bound(3.0, 3.0, 0.5, 2.0, 1.0) == pytest.approx(1.0)
    assert settling_time_bound(1.0, 1.0, 0.5, 2.0, 1.0) == pytest.approx(3.0)
    with pytest.raises(ValueError, match="pk < 1 < qk"):
        settling_time_bound(1.0, 1.0, 1.5, 2.0, 1.0)


@pytest.mark.parametrize("kind", ["fixed_time", "still"])
def test_fxts_objective_on_known_fields(kind):
    cfg = tiny_cfg("fxts")
    x, y = digits_batch(cfg, 8)
    torch.manual_seed(0)
    model = build_model(cfg).train()
    obj = FxTSObjective(cfg)
    P = obj.params
    labels_of = {}

    def field(h, context=None):
        # every state of the objective belongs to the label of its sample: recover it from the
        # objective's own layout (states are h(t_0..t_Γ) of the batch, labels y repeated)
        lab = y.repeat(h.shape[0] // len(y))
        labels_of["n"] = len(lab)
        d = h - model.anchors[lab]
        V = 0.5 * d.pow(2).sum(-1, keepdim=True)
        rate = (P["a"] * V.pow(P["p"]) + P["b"] * V.pow(P["q"])).pow(P["k"])
        if kind == "fixed_time":
            return -1.5 * rate * d / d.pow(2).sum(-1, keepdim=True)   # V̇ = −1.5 (aV^p + bV^q)^k
        return torch.zeros_like(h)                                       # V̇ = 0
    model.field = field
    loss, logs = obj(model, x, y)
    assert labels_of["n"] == (cfg.model.ode.gamma + 1) * len(y)
    if kind == "fixed_time":
        assert logs["L_fxts"] == 0.0 and logs["violating"] == 0.0
    else:
        assert logs["L_fxts"] > 0 and logs["violating"] == 1.0


@pytest.mark.parametrize("detach", [True, False])
def test_fxts_hinge_reaches_the_extractor_only_through_undetached_states(detach):
    # without modulation the field never sees the extractor; the hinge can then move the
    # extractor only through the states it is evaluated on, i.e. only when they are not detached
    cfg = tiny_cfg("fxts")
    cfg.baseline.fxts.modulation = False
    cfg.baseline.fxts.detach_states = detach
    x, y = digits_batch(cfg, 8)
    grads = {}
    for w in (0.0, 1.0):
        torch.manual_seed(0)
        model = build_model(cfg).train()
        cfg.baseline.fxts.weight = w
        loss, logs = FxTSObjective(cfg)(model, x, y)
        assert logs["L_fxts"] > 0
        loss.backward()
        grads[w] = torch.cat([p.grad.flatten() for p in model.extractor.parameters()])
    assert torch.equal(grads[0.0], grads[1.0]) == detach


def test_modulated_field_needs_its_context():
    cfg = tiny_cfg("lyanet")
    torch.manual_seed(0)
    model = build_model(cfg)
    h = torch.randn(3, cfg.model.state_dim)
    with pytest.raises(RuntimeError, match="context"):
        model.dynamics.field(h)
    with torch.no_grad():
        model.dynamics.modulation.weight.normal_()
    f1 = model.field(h, torch.zeros_like(h))
    f2 = model.field(h, torch.ones_like(h))
    assert not torch.allclose(f1, f2)
    cfg.baseline.lyanet.modulation = False
    plain = build_model(cfg)
    assert plain.dynamics.modulation is None and plain.field(h).shape == h.shape


# --------------------------------------------------------------------------- training, one step each
def _largest_parameter_move(cfg, trained) -> float:
    """max |θ_trained − θ_init| over the parameters, the initial model rebuilt from the seed."""
    torch.manual_seed(cfg.train.seed)
    fresh = build_model(copy.deepcopy(cfg))
    b = dict(trained.named_parameters())
    return max((p.detach() - b[k].detach().cpu()).abs().max().item() for k, p in fresh.named_parameters())


def _train_and_reload(cfg, splits=None, n=32):
    result = train(cfg, splits=splits)
    # one Adam step from the seeded initialisation moves each parameter by at most lr
    move = _largest_parameter_move(result.cfg, result.model)
    assert 0 < move <= cfg.train.lr * (1 + 1e-3), move
    assert math.isfinite(result.history[-1]["train_loss"])
    model, cfg2, meta = load_checkpoint(result.run_dir)
    assert meta["epoch"] == 1 and cfg2.model.name == cfg.model.name
    if splits is None:
        splits = build_datasets(cfg2.data)
    xs, ys = zip(*[splits.test[i] for i in range(min(n, len(splits.test)))])
    x, y = torch.stack(xs), torch.as_tensor([int(v) for v in ys])
    with torch.no_grad():
        logits = model(x)
        ref = result.model.eval()(x)
    assert logits.shape == (len(x), cfg2.model.num_classes) and torch.isfinite(logits).all()
    assert torch.allclose(logits, ref, atol=1e-4)
    acc = (logits.argmax(1) == y).float().mean().item()
    assert 0.0 <= acc <= 1.0
    return result, acc


REGISTRY = ["zubovnet", "neural_ode", "feedforward", "projnode", "sodef", "fxts", "lyanet"]


def test_registry_lists_every_model():
    assert set(REGISTRY + ["resnet18"]) <= set(available_models())


@pytest.mark.parametrize("name", REGISTRY)
def test_every_model_trains_one_step_and_reloads(name, tmp_path):
    _train_and_reload(tiny_cfg(name, tmp_path))


def test_resnet18_trains_one_step_on_rgb_32px(tmp_path):
    g = torch.Generator().manual_seed(0)
    x = torch.rand(12, 3, 32, 32, generator=g)
    y = torch.arange(12) % 10
    ds = TensorDataset(x, y)
    splits = DatasetSplits(train=ds, val=None, test=ds, num_classes=10, in_channels=3,
                           image_size=32, mean=[0.5] * 3, std=[0.25] * 3)
    cfg = tiny_cfg("resnet18", tmp_path)
    cfg.data.batch_size = 4
    result, _ = _train_and_reload(cfg, splits=splits, n=4)
    from zubovnet.models.extractors import ResNet18Extractor
    assert isinstance(result.model.extractor, ResNet18Extractor)
    assert result.cfg.model.extractor == "resnet18"


ABLATIONS = {   # Table V rows (configuration only)
    "cla_fc_only": {"loss.lambda_con": 0.0, "loss.lambda_sep": 0.0},
    "wo_con": {"loss.lambda_con": 0.0},
    "wo_sep": {"loss.lambda_sep": 0.0},
    "wo_sep_ineq": {"loss.lambda_sep": 0.0, "loss.consistency": "inequality"},
    "icnn": {"model.lyapunov.classifier": "icnn"},
    "picnn": {"model.lyapunov.classifier": "picnn"},
}


@pytest.mark.parametrize("ablation", sorted(ABLATIONS))
def test_zubovnet_ablations_train_one_step(ablation, tmp_path):
    cfg = tiny_cfg("zubovnet", tmp_path)
    cfg.loss.counterexample_steps = 1
    for key, value in ABLATIONS[ablation].items():
        sec, *rest = key.split(".")
        node = getattr(cfg, sec)
        for r in rest[:-1]:
            node = getattr(node, r)
        setattr(node, rest[-1], value)
    result, _ = _train_and_reload(cfg)
    row = result.history[-1]
    assert ("L_con" in row) == (cfg.loss.lambda_con > 0)
    assert ("L_sep" in row) == (cfg.loss.lambda_sep > 0)
    from zubovnet.models.convex import ICNN, PIACNN
    convex = result.model.head.convex
    if ablation == "icnn":
        assert isinstance(convex, ICNN)
    elif ablation == "picnn":
        assert isinstance(convex, PIACNN) and not convex.attention


def test_eval_cli_clean_suite_on_a_baseline_checkpoint(tmp_path):
    cli = pytest.importorskip("zubovnet.evaluation.cli")
    cfg = tiny_cfg("lyanet", tmp_path)
    result = train(cfg)
    parser = cli.add_eval_arguments(argparse.ArgumentParser())
    out = tmp_path / "eval_clean.json"
    args = parser.parse_args([str(result.run_dir), "--suite", "clean", "--n", "16", "--device", "cpu",
                              "--no-progress", "--out", str(out)])
    assert cli.run_eval(args) == 0
    assert out.exists()


def test_modulated_adjoint_gradient_matches_direct_backprop():
    """The context m = h(0) rides along the adjoint state, so its gradient path is not lost."""
    from zubovnet.models.ode import solver_override
    cfg = tiny_cfg("fxts")
    cfg.model.ode.rtol_eval = cfg.model.ode.atol_eval = 1e-7
    x, _ = digits_batch(cfg, 4)
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    with torch.no_grad():
        model.dynamics.modulation.weight.normal_(0, 0.5)

    def input_grad(adjoint):
        xr = x.clone().requires_grad_(True)
        with solver_override(model, adjoint=adjoint):
            out = model(xr)
        return out.detach(), torch.autograd.grad(out[:, 0].sum(), xr)[0]
    o1, g1 = input_grad(False)
    o2, g2 = input_grad(True)
    assert torch.allclose(o1, o2, atol=1e-5)
    assert torch.allclose(g1, g2, atol=1e-5 * g1.abs().max().item())
