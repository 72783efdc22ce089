"""Adversarial training (PGD-AT, TRADES, MART, Zubov-Net (TRADES)): the crafting contract
(ε-ball, [0, 1], modes restored), the published loss formulas, and one training step each."""
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from zubovnet import load_checkpoint
from zubovnet.config import Config
from zubovnet.models import build_model
from digits_helpers import tiny_config
from zubovnet.training import build_objective, train
from zubovnet.training.adversarial import (MART, PGDAT, TRADES, AdversarialTraining, crafting_mode,
                                           mart_loss, project_linf, sign_ascent, trades_kl)
from zubovnet.training.objectives import CrossEntropyObjective


def tiny_cfg(name: str, method: str = "none", tmp_path=None) -> Config:
    cfg = tiny_config(name)
    m = cfg.model
    m.in_channels, m.image_size = 1, 8
    cfg.loss.counterexample_steps = 1
    cfg.adversarial.method = method
    cfg.adversarial.steps = 2
    cfg.data.batch_size = 32
    cfg.train.epochs = 1
    cfg.train.max_steps_per_epoch = 1
    cfg.train.eval_every = 0
    if tmp_path is not None:
        cfg.train.out_dir = str(tmp_path / f"{name}_{method}")
    return cfg


class Linear(nn.Module):
    """A linear classifier on flattened 2x2 images, with a BatchNorm to watch the modes."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.bn = nn.BatchNorm1d(4)
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        return self.fc(self.bn(x.flatten(1)))


def _images(n=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 1, 2, 2, generator=g)
    x[0] = 0.0                       # corners of the box: the clamp to [0, 1] must bite
    x[1] = 1.0
    return x, torch.randint(0, 3, (n,), generator=g)


# --------------------------------------------------------------------------- crafting
@pytest.mark.parametrize("init", ["uniform", "normal", "zero"])
def test_sign_ascent_stays_in_the_eps_ball_and_the_unit_box(init):
    x, y = _images()
    model = Linear().eval()
    eps = 0.1
    x_adv = sign_ascent(lambda xa: F.cross_entropy(model(xa), y, reduction="sum"), x, eps,
                        steps=7, step_size=0.05, init=init, init_std=0.3)
    assert not x_adv.requires_grad
    assert (x_adv - x).abs().max() <= eps + 1e-7
    assert x_adv.min() >= 0.0 and x_adv.max() <= 1.0
    with torch.no_grad():
        assert F.cross_entropy(model(x_adv), y) > F.cross_entropy(model(x), y)


def test_sign_ascent_leaves_parameter_gradients_alone():
    x, y = _images()
    model = Linear().eval()
    sign_ascent(lambda xa: F.cross_entropy(model(xa), y), x, 0.1, 3, 0.05)
    assert all(p.grad is None for p in model.parameters())


def test_project_linf():
    x = torch.tensor([0.0, 0.5, 1.0])
    xa = torch.tensor([-0.5, 0.9, 0.95])
    assert torch.allclose(project_linf(xa, x, 0.2), torch.tensor([0.0, 0.7, 0.95]))


def test_crafting_mode_restores_state_and_freezes_batchnorm_statistics():
    model = Linear().train()
    model.fc.eval()                                 # a mixed mode must come back as it was
    running = model.bn.running_mean.clone()
    with crafting_mode(model, "train"):
        assert model.bn.training
        model(torch.rand(8, 1, 2, 2))
        assert torch.equal(model.bn.running_mean, running)
    assert model.bn.training and not model.fc.training and model.bn.momentum == 0.1
    with crafting_mode(model, "eval"):
        assert not model.bn.training
    assert model.bn.training and not model.fc.training


def test_crafting_uses_training_tolerances_in_eval_mode():
    cfg = tiny_cfg("neural_ode")
    model = build_model(cfg).train()
    block = model.ode
    with crafting_mode(model, "eval", tolerance="train"):
        assert not block.training and block.tolerances == (block.rtol_train, block.atol_train)
    assert block.rtol_eval == cfg.model.ode.rtol_eval
    with crafting_mode(model, "eval", tolerance="mode"):
        assert block.tolerances == (cfg.model.ode.rtol_eval, cfg.model.ode.atol_eval)


def test_paper_crafting_settings():
    cfg = Config().adversarial
    base = CrossEntropyObjective(Config())
    assert (PGDAT(cfg, base).mode, PGDAT(cfg, base).init) == ("train", "uniform")
    assert (TRADES(cfg, base).mode, TRADES(cfg, base).init) == ("eval", "normal")
    assert (MART(cfg, base).mode, MART(cfg, base).init) == ("eval", "normal")
    cfg.mode, cfg.init = "eval", "zero"
    assert (PGDAT(cfg, base).mode, PGDAT(cfg, base).init) == ("eval", "zero")


# --------------------------------------------------------------------------- loss formulas
def test_trades_kl_formula():
    a = torch.tensor([[1.0, 0.0, -1.0], [0.2, 0.3, 0.1]])
    b = torch.tensor([[0.0, 0.5, 0.0], [0.2, 0.3, 0.1]])
    p, q = a.softmax(1), b.softmax(1)
    expect = (p * (p.log() - q.log())).sum(1).mean()
    assert torch.allclose(trades_kl(a, b), expect)
    assert trades_kl(b, b).abs() < 1e-7


def test_mart_loss_formula():
    nat = torch.tensor([[2.0, 0.0, -1.0], [0.0, 1.0, 0.5]])
    adv = torch.tensor([[0.5, 1.0, 0.0], [0.0, 2.0, 0.0]])
    y = torch.tensor([0, 1])
    margin, robust = mart_loss(nat, adv, y, beta=6.0)
    pa, pn = adv.softmax(1), nat.softmax(1)
    k = [1, 0]                       # largest wrong class: sample 0 -> 1; sample 1 -> 0 (tie 0/2)
    m_expect = -(torch.log(1.0001 - pa[0, k[0]] + 1e-12) + torch.log(1.0001 - pa[1, k[1]] + 1e-12)) / 2
    kl = (pn * (pn.log() - (pa + 1e-12).log())).sum(1)
    r_expect = 6.0 * (kl * (1.0000001 - pn[torch.arange(2), y])).mean()
    assert torch.allclose(margin, m_expect, atol=1e-6)
    assert torch.allclose(robust, r_expect, atol=1e-6)


class _Fixed:
    """Replace crafting by a fixed adversarial batch."""

    def __init__(self, x_adv):
        self.x_adv = x_adv

    def __call__(self, model, x, y):
        return self.x_adv


def _fixed(method_cls, base, x_adv, beta=6.0):
    cfg = Config().adversarial
    cfg.beta = beta
    obj = method_cls(cfg, base)
    obj.craft = _Fixed(x_adv)
    return obj


def test_losses_with_cross_entropy_base_are_the_published_ones():
    x, y = _images()
    x_adv = (x + 0.05).clamp(0, 1)
    model = Linear().eval()
    ce = CrossEntropyObjective(Config())
    ln, la = model(x), model(x_adv)
    loss, _ = _fixed(PGDAT, ce, x_adv)(model, x, y)
    assert torch.allclose(loss, F.cross_entropy(la, y))
    loss, logs = _fixed(TRADES, ce, x_adv)(model, x, y)
    assert torch.allclose(loss, F.cross_entropy(ln, y) + 6.0 * trades_kl(ln, la))
    assert logs["L_kl"] == pytest.approx(trades_kl(ln, la).item())
    loss, _ = _fixed(MART, ce, x_adv)(model, x, y)
    margin, robust = mart_loss(ln, la, y, 6.0)
    assert torch.allclose(loss, F.cross_entropy(la, y) + margin + robust)


def test_zubovnet_trades_adds_kl_on_y_hat_to_the_clean_base_objective():
    """A non-CE base (as Zubov-Net's) is evaluated on the clean batch; TRADES adds β KL(ŷ ‖ ŷ_adv)."""
    x, y = _images()
    x_adv = (x - 0.05).clamp(0, 1)
    model = Linear().eval()
    seen = {}

    def base(m, xb, yb):
        seen["x"] = xb
        return torch.tensor(1.25), {"L_cla": 0.5}
    loss, logs = _fixed(TRADES, base, x_adv, beta=2.0)(model, x, y)
    assert torch.equal(seen["x"], x)
    expect = 1.25 + 2.0 * trades_kl(model(x), model(x_adv))
    assert torch.allclose(loss, expect) and logs["L_cla"] == 0.5
    _fixed(PGDAT, base, x_adv)(model, x, y)
    assert torch.equal(seen["x"], x_adv)              # PGD-AT / MART: base on the adversarial batch


def test_set_epoch_reaches_the_base_objective():
    cfg = tiny_cfg("sodef", "trades")
    cfg.baseline.sodef.phase1_epochs = 1
    model = build_model(cfg)
    obj = build_objective(cfg, model)
    assert isinstance(obj, AdversarialTraining)
    obj.set_epoch(5)
    assert obj.base.epoch == 5 and obj.base.phase == 2


def test_unknown_method_is_a_clear_error():
    cfg = tiny_cfg("neural_ode", "fgsm_at")
    with pytest.raises(KeyError, match="pgd_at"):
        build_objective(cfg, build_model(cfg))


# --------------------------------------------------------------------------- end to end
def test_crafted_batch_during_training_respects_the_threat_model():
    cfg = tiny_cfg("neural_ode", "mart")
    torch.manual_seed(0)
    model = build_model(cfg).train()
    obj = build_objective(cfg, model)
    x = torch.rand(6, 1, 8, 8)
    x[0] = 1.0
    y = torch.arange(6) % 10
    x_adv = obj.craft(model, x, y)
    assert (x_adv - x).abs().max() <= cfg.adversarial.eps + 1e-7
    assert x_adv.min() >= 0 and x_adv.max() <= 1 and model.training


@pytest.mark.parametrize("name,method", [("neural_ode", "pgd_at"), ("neural_ode", "trades"),
                                         ("neural_ode", "mart"), ("zubovnet", "trades")])
def test_adversarial_training_one_step(name, method, tmp_path):
    cfg = tiny_cfg(name, method, tmp_path)
    cfg.data.name = "digits"
    result = train(cfg)
    row = result.history[-1]
    assert math.isfinite(row["train_loss"]) and "train_adv_acc" in row
    if method == "trades":
        assert "L_kl" in row          # L_* logs keep their name in the metrics
    if name == "zubovnet":
        assert {"L_cla", "L_con", "L_sep"} <= set(row)      # the full Zubov objective is kept
    model, cfg2, _ = load_checkpoint(result.run_dir)
    assert cfg2.adversarial.method == method
    with torch.no_grad():
        assert torch.isfinite(model(torch.rand(4, 1, 8, 8))).all()
