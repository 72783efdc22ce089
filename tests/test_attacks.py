"""Attacks of the evaluation protocols: threat model, eval mode, seeding, known answers."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from digits_helpers import stack, train_mlp
from zubovnet.evaluation.attacks import (ATTACKS, SQUARE_QUERIES, Attack, EvaluationModeError,
                                         InputGraph, MarginPGD, PerturbationError, assert_eval_mode,
                                         check_perturbation, eps_label, forward_determinism,
                                         input_gradient, make_attack, margin, predict,
                                         reference_autoattack_available, run_attack)

N_TEST = 48


@pytest.fixture(scope="module")
def batch(test_set):
    """The first ``N_TEST`` digits test images and labels (``mlp``, ``test_set``: conftest.py)."""
    return stack(test_set, N_TEST)


# --------------------------------------------------------------------------- helpers
def test_eps_label():
    assert eps_label(8 / 255) == "8/255"
    assert eps_label(16 / 255) == "16/255"
    assert eps_label(0.5) == "0.5"
    assert eps_label(0.1) == "0.1"


def test_check_perturbation_accepts_boundary_and_rejects_violations():
    x = torch.rand(4, 1, 8, 8)
    eps = 8 / 255
    inside = (x + eps * torch.randn_like(x).sign()).clamp(0, 1)
    assert check_perturbation(x, inside, eps) <= eps + 1e-6
    mid = torch.full((2, 1, 4, 4), 0.5)
    assert check_perturbation(mid, mid + eps + 5e-7, eps) > eps     # within the 1e-6 tolerance
    with pytest.raises(PerturbationError, match="exceeds eps"):
        check_perturbation(mid, mid + eps + 1e-5, eps)
    with pytest.raises(PerturbationError, match=r"leaves \[0, 1\]"):
        check_perturbation(torch.zeros(2, 1, 2, 2), torch.full((2, 1, 2, 2), -eps / 2), eps)
    with pytest.raises(PerturbationError, match="NaN"):
        check_perturbation(x, torch.full_like(x, float("nan")), eps)
    with pytest.raises(PerturbationError, match="shape"):
        check_perturbation(x, x[:2], eps)


def test_margin_known_answers():
    z = torch.tensor([[3.0, 1.0, 0.0], [3.0, 1.0, 0.0]])
    y = torch.tensor([0, 1])
    assert torch.allclose(margin(z, y, "cw"), torch.tensor([2.0, -2.0]))
    # dlr: (z_y - max_{k!=y} z_k) / (z_pi1 - z_pi3)
    assert torch.allclose(margin(z, y, "dlr"), torch.tensor([2 / 3, -2 / 3]))
    # DLR is invariant to shifting and positive scaling of the logits
    assert torch.allclose(margin(5 * z + 7, y, "dlr"), margin(z, y, "dlr"))
    with pytest.raises(ValueError):
        margin(z[:, :2], y, "dlr")


def test_input_gradient_matches_autograd_float64():
    torch.manual_seed(0)
    lin = nn.Sequential(nn.Flatten(), nn.Linear(4, 3)).double().eval()
    x = torch.rand(5, 1, 2, 2, dtype=torch.float64)
    y = torch.tensor([0, 1, 2, 0, 1])
    g = input_gradient(lin, x, y, "cw")
    # margin of a linear model: gradient is W_y - W_k* (k* the runner-up), exactly
    W = lin[1].weight
    z = lin(x)
    other = z.masked_fill(F.one_hot(y, 3).bool(), float("-inf")).argmax(1)
    expected = (W[y] - W[other]).view(5, 1, 2, 2)
    assert torch.allclose(g, expected, atol=1e-12)


def test_assert_eval_mode_and_determinism(mlp, batch):
    x, _ = batch
    assert_eval_mode(mlp)
    mlp.train()
    try:
        with pytest.raises(EvaluationModeError):
            assert_eval_mode(mlp)
    finally:
        mlp.eval()
    det = forward_determinism(mlp, x)
    assert det["max_abs_diff"] == 0 and det["argmax_agree"]

    class Noisy(nn.Module):
        def forward(self, x):
            return mlp(x + 0.05 * torch.randn_like(x))
    noisy = forward_determinism(Noisy().eval(), x)
    assert noisy["max_abs_diff"] > 1e-3


def test_input_graph_is_exact_and_keeps_gradients(mlp, batch):
    x, y = batch

    class Detached(nn.Module):
        def forward(self, x):
            return mlp(x.detach())
    model = Detached().eval()
    assert torch.equal(InputGraph(model)(x), model(x))
    # torchattacks on the detached model: zero gradients, hence no movement, not an exception
    atk = make_attack("bim", model, 16 / 255)
    assert torch.equal(atk(x, y), x)
    assert input_gradient(model, x, y).abs().sum() == 0


# --------------------------------------------------------------------------- threat model
def _attack(name, model, eps, surrogate=None):
    if name == "square":
        return make_attack(name, model, eps, n_queries=50)
    if name == "vnifgsm":
        return make_attack(name, model, eps, surrogate=surrogate, surrogate_name="mlp2")
    if name == "pgd-margin":
        return make_attack(name, model, eps, steps=10, restarts=2)
    return make_attack(name, model, eps)


@pytest.fixture(scope="module")
def surrogate():
    return train_mlp(seed=1, epochs=10)


@pytest.mark.parametrize("eps", [8 / 255, 16 / 255])
@pytest.mark.parametrize("name", [a for a in ATTACKS if a != "autoattack"])
def test_every_attack_stays_in_the_eps_ball_and_image_range(name, eps, mlp, batch, surrogate):
    x, y = batch
    atk = _attack(name, mlp, eps, surrogate)
    x_adv = atk(x, y)                       # the attack checks itself ...
    delta = (x_adv - x).abs().amax()
    assert delta <= eps + 1e-6              # ... and we check independently
    assert x_adv.min() >= 0 and x_adv.max() <= 1
    assert torch.isfinite(x_adv).all()
    if name not in ("square", "vnifgsm"):   # white-box attacks must move some example ...
        assert delta > 0
    if name not in ("vnifgsm",):            # ... and every attack but a transfer from the
        clean = predict(mlp, x) == y        # model itself must break some of them at 16/255
        robust = clean & (predict(mlp, x_adv) == y)
        if eps > 0.05:
            assert robust.sum() < clean.sum()
    d = atk.describe()
    assert d["eps"] == pytest.approx(eps) and d["norm"] == "Linf" and "seed" in d


def test_paper_settings_are_recorded(mlp):
    eps = 8 / 255
    for name in ("bim", "pgd", "jitter"):
        d = make_attack(name, mlp, eps).describe()
        assert d["steps"] == 10 and d["step_size"] == pytest.approx(eps / 8)
    assert make_attack("fgsm", mlp, eps).describe()["steps"] == 1
    apgd = make_attack("apgd", mlp, eps).describe()
    assert apgd["steps"] == 10 and apgd["loss"] == "ce"
    assert SQUARE_QUERIES == 5000                  # Square's budget in AutoAttack (Croce & Hein)
    sq = make_attack("square", mlp, eps).describe()
    assert sq["queries"] == SQUARE_QUERIES and sq["loss"] == "margin"
    with pytest.raises(KeyError):
        make_attack("nope", mlp, eps)
    with pytest.raises(TypeError):
        make_attack("pgd", mlp, eps, bogus=1)


def test_an_attack_leaving_the_ball_is_refused(mlp, batch):
    x, y = batch

    class Cheat(Attack):
        def perturb(self, x, y):
            return (x + 2 * self.eps).clamp(0, 1)
    with pytest.raises(PerturbationError):
        Cheat(mlp, 8 / 255)(x, y)


def test_attacks_require_eval_mode(mlp, batch):
    x, y = batch

    class StuckInTraining(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = mlp

        def train(self, mode=True):      # ignores eval()
            nn.Module.train(self, True)
            return self

        def forward(self, x):
            return self.net(x)
    bad = StuckInTraining()
    bad.eval()
    with pytest.raises(EvaluationModeError):
        make_attack("fgsm", bad, 8 / 255)(x, y)
    mlp.eval()


def test_attacks_are_seeded_and_leave_global_rng_alone(mlp, batch):
    x, y = batch
    state = torch.get_rng_state()
    a = make_attack("pgd", mlp, 16 / 255, seed=3)(x, y)
    b = make_attack("pgd", mlp, 16 / 255, seed=3)(x, y)
    c = make_attack("pgd", mlp, 16 / 255, seed=4)(x, y)
    assert torch.equal(torch.get_rng_state(), state)
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_margin_pgd_keeps_the_worst_case(mlp, batch):
    x, y = batch
    eps = 0.1
    one = MarginPGD(mlp, eps, steps=10, restarts=1, seed=0)(x, y)
    three = MarginPGD(mlp, eps, steps=10, restarts=3, seed=0)(x, y)
    rob1 = predict(mlp, one) == y
    rob3 = predict(mlp, three) == y
    assert not (rob3 & ~rob1).any()          # more restarts never un-fool an example
    # the returned iterate is the lowest margin seen, so at least the clean margin is beaten
    with torch.no_grad():
        assert (margin(mlp(three), y) <= margin(mlp(x), y) + 1e-6).all()


def test_large_eps_breaks_an_undefended_model(mlp, batch):
    x, y = batch
    atk = make_attack("pgd-margin", mlp, 0.5, steps=20, restarts=1)
    acc = (predict(mlp, atk(x, y)) == y).float().mean().item()
    assert acc <= 0.05


def test_run_attack_counts_per_example(mlp, batch):
    x, y = batch
    seen = []
    atk = make_attack("fgsm", mlp, 8 / 255)
    out = run_attack(mlp, atk, x, y, batch_size=20, tick=seen.append)
    assert out.correct.dtype == torch.bool and out.correct.shape == (len(x),)
    assert out.failures == 0 and not bool(out.failed.any())
    assert seen == [20, 20, 8]
    # the same as attacking each batch alone with the batch index as call index
    for b, i in enumerate(range(0, len(x), 20)):
        atk.calls = b
        xa = atk(x[i:i + 20], y[i:i + 20])
        assert torch.equal(out.correct[i:i + 20], predict(mlp, xa) == y[i:i + 20])


def test_run_attack_reads_finished_batches_back():
    """A cache that already holds batch 1 is read, not attacked (resumable evaluation)."""
    class Boom(nn.Module):
        def forward(self, x):
            raise AssertionError("must not be called for cached batches")

    class Cache:
        def __init__(self):
            self.d = {0: (torch.ones(4, dtype=torch.bool), torch.zeros(4, dtype=torch.bool))}

        def get(self, b):
            return self.d.get(b)

        def put(self, b, c, f):
            self.d[b] = (c, f)
    model = Boom().eval()
    out = run_attack(model, make_attack("fgsm", model, 0.1), torch.rand(4, 1, 8, 8),
                     torch.zeros(4, dtype=torch.long), batch_size=4, cache=Cache())
    assert bool(out.correct.all())


def test_a_solver_failure_is_rerun_per_example_and_counted_as_fooled(mlp, batch):
    """One example that the 'solver' cannot integrate voids neither its batch nor the stage."""
    from zubovnet.models import StepSizeUnderflowError
    x, y = batch
    bad = x[3].clone()

    class Fragile(nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = mlp

        def forward(self, z):
            if any(bool(((zi - bad).abs().max() <= 0.1)) for zi in z):
                raise StepSizeUnderflowError("stiff")
            return self.inner(z)
    model = Fragile().eval()
    out = run_attack(model, make_attack("fgsm", model, 0.01), x[:10], y[:10], batch_size=5)
    assert out.failures == 1 and bool(out.failed[3]) and not bool(out.correct[3])
    ref = run_attack(mlp, make_attack("fgsm", mlp, 0.01), x[:10], y[:10], batch_size=5)
    keep = torch.arange(10) != 3
    assert torch.equal(out.correct[keep][5:], ref.correct[keep][5:])   # the other batch


def test_transfer_attack_crafts_on_the_surrogate(mlp, surrogate, batch):
    x, y = batch
    atk = make_attack("vnifgsm", mlp, 16 / 255, surrogate=surrogate, surrogate_name="s")
    direct = make_attack("vnifgsm", surrogate, 16 / 255)
    assert torch.equal(atk(x, y), direct(x, y))       # same seed, same surrogate gradients
    assert atk.describe()["surrogate"] == "s"


def test_reference_autoattack_is_installed():
    assert reference_autoattack_available()       # a core dependency: its test always runs


def test_reference_autoattack_configuration_and_result(mlp, batch):
    x, y = batch
    x, y = x[:16], y[:16]
    atk = make_attack("autoattack", mlp, 0.25, reference=True)
    d = atk.describe()
    assert d["reference"] is True
    assert d["components"] == ["apgd-ce", "apgd-t", "fab-t", "square"]
    assert d["apgd_ce"]["steps"] == 100 and d["apgd_t"]["target_classes"] == 9
    assert d["fab_t"]["target_classes"] == 9 and d["square"]["queries"] == SQUARE_QUERIES
    x_adv = atk(x, y)
    assert (x_adv - x).abs().max() <= 0.25 + 1e-6
    assert (predict(mlp, x_adv) == y).float().mean() <= 0.05
    assert make_attack("autoattack", mlp, 0.25, square_queries=10).describe()["reference"] is False


def test_reference_autoattack_subset_runs_only_those_components_with_standard_parameters(
        mlp, batch, monkeypatch):
    x, y = batch
    x, y = x[:16], y[:16]
    atk = make_attack("autoattack", mlp, 0.02, attacks=("apgd-t", "apgd-ce"))
    d = atk.describe()
    assert d["components"] == ["apgd-ce", "apgd-t"]          # the standard order
    assert d["reference"] is False and d["version"] == "custom"
    assert d["apgd_ce"]["steps"] == 100 and d["apgd_ce"]["restarts"] == 1
    assert d["apgd_t"]["target_classes"] == 9
    def never(*a, **k):
        raise AssertionError("a component outside the subset ran")
    monkeypatch.setattr(atk.aa.fab, "perturb", never)
    monkeypatch.setattr(atk.aa.square, "perturb", never)
    x_adv = atk(x, y)
    assert (x_adv - x).abs().max() <= 0.02 + 1e-6
    assert (predict(mlp, x_adv) == y).any()       # survivors: FAB-T and Square would have run
    # all four, in any order, is the reference configuration
    full = make_attack("autoattack", mlp, 0.02, attacks=("square", "fab-t", "apgd-t", "apgd-ce"))
    assert full.describe()["reference"] is True
    for bad in (("fab",), ()):
        with pytest.raises(ValueError, match="AutoAttack components"):
            make_attack("autoattack", mlp, 0.02, attacks=bad)


def test_component_autoattack_fallback_keeps_a_subset(mlp):
    from zubovnet.evaluation.attacks import ComponentAutoAttack
    atk = ComponentAutoAttack(mlp, 0.25, num_classes=10, attacks=("square", "apgd-ce"))
    assert atk.describe()["components"] == ["apgd-ce", "square"]


def test_component_autoattack_fallback(mlp, batch):
    """AutoAttack's budget from torchattacks components (used without pyautoattack).

    AutoAttack is tested at eps = 0.25, where APGD-CE breaks every example and the later,
    costly components (APGD-T, FAB-T, Square) have nothing left to attack."""
    from zubovnet.evaluation.attacks import ComponentAutoAttack
    x, y = batch
    x, y = x[:16], y[:16]
    atk = ComponentAutoAttack(mlp, 0.25, num_classes=10)
    d = atk.describe()
    assert d["reference"] is False and d["steps"] == 100 and d["target_classes"] == 9
    assert d["warnings"] and "not the reference" in d["warnings"][0]   # never silent
    assert d["square"]["queries"] == SQUARE_QUERIES
    x_adv = atk(x, y)
    assert (x_adv - x).abs().max() <= 0.25 + 1e-6 and 0 <= x_adv.min() and x_adv.max() <= 1
    assert (predict(mlp, x_adv) == y).float().mean() <= 0.05
