"""Convexity of the classifier networks in x, for every conditioning c."""
import pytest
import torch

from zubovnet.models.convex import ICNN, PIACNN, PICNN

D, L = 6, 5


def _nets():
    torch.manual_seed(0)
    return [PIACNN(D, [16, 16, 1], [12, 12]).double(), PICNN(D, [16, 16, 1], [12, 12]).double(),
            ICNN(D, L, [16, 16, 1]).double()]


def _midpoint_gap(net, C, n=2000, scale=3.0):
    """max over random segments of g((a+b)/2) - (g(a)+g(b))/2 (<= 0 for convex g)."""
    g = torch.Generator().manual_seed(1)
    cls = torch.randint(0, L, (n,), generator=g)
    a = scale * torch.randn(n, D, generator=g, dtype=torch.float64)
    b = scale * torch.randn(n, D, generator=g, dtype=torch.float64)
    cond = net.condition(C)
    lam = torch.rand(n, 1, generator=g, dtype=torch.float64)
    mid = net(lam * a + (1 - lam) * b, cond, cls)
    chord = lam.squeeze(1) * net(a, cond, cls) + (1 - lam.squeeze(1)) * net(b, cond, cls)
    return (mid - chord).max().item()


@pytest.mark.parametrize("idx", [0, 1, 2], ids=["piacnn", "picnn", "icnn"])
def test_convex_in_x_for_random_c(idx):
    net = _nets()[idx]
    C = 2 * torch.randn(L, D, dtype=torch.float64)
    assert _midpoint_gap(net, C) <= 1e-10


@pytest.mark.parametrize("idx", [0, 1, 2], ids=["piacnn", "picnn", "icnn"])
def test_convex_after_steps_pushing_raw_weights_negative(idx):
    net = _nets()[idx]
    raws = [p for n, p in net.named_parameters() if "raw" in n]
    assert raws, "non-negative weights must be reparameterised"
    opt = torch.optim.SGD(net.parameters(), lr=5.0)
    C = torch.randn(L, D, dtype=torch.float64)
    for _ in range(5):   # a loss that rewards large raw weights' negatives
        opt.zero_grad()
        (sum(r.sum() for r in raws) + 0.0 * net(torch.randn(4, L, D, dtype=torch.float64),
                                                 net.condition(C)).sum()).backward()
        opt.step()
    assert min(r.min().item() for r in raws) < -5        # the raw values did go negative
    assert _midpoint_gap(net, C) <= 1e-10                 # ... and g is still convex in x


def test_all_pairs_equals_per_class_evaluation():
    for net in _nets():
        C = torch.randn(L, D, dtype=torch.float64)
        x = torch.randn(7, L, D, dtype=torch.float64)
        cond = net.condition(C)
        full = net(x, cond)
        for l in range(L):
            cls = torch.full((7,), l)
            assert torch.allclose(full[:, l], net(x[:, l], cond, cls))


def test_piacnn_attention_depends_on_c_and_picnn_is_uniform():
    torch.manual_seed(0)
    piacnn = PIACNN(D, [16, 16, 1], [12, 12])
    C = torch.randn(L, D)
    cond = piacnn.condition(C)
    ax = cond[0][1]
    assert ax.shape == (L, D) and torch.allclose(ax.sum(-1), torch.full((L,), float(D)))
    assert not torch.allclose(ax[0], ax[1])              # attention differs between classes
    assert all(a is None for layer in PICNN(D, [16, 16, 1], [12, 12]).condition(C) for a in layer[:2])
