"""1-Lipschitz layers (AOL, MaxMin), the Lipschitz CNN extractor and the 1-Lipschitz CNN
baseline: the bounds hold for any weights, they are not vacuous, and the baseline trains."""
import math

import pytest
import torch
from torch import nn

from zubovnet.analysis.certify import empirical_lipschitz, extractor_bounds
from zubovnet.config import Config
from zubovnet.models import build_model
from zubovnet.models.extractors import LipschitzCNN
from zubovnet.models.lipschitz import (AOLConv2d, AOLLinear, MaxMin, aol_conv_scale, aol_weight)


def _op_norm(fn, shape, iters=300):
    """Power iteration on ``fnᵀ fn`` for a linear ``fn`` (float64)."""
    x = torch.randn(shape, dtype=torch.float64)
    for _ in range(iters):
        x = x.detach().requires_grad_(True)
        y = fn(x)
        x = torch.autograd.grad(y, x, grad_outputs=y)[0]
        x = x / x.norm()
    return float(fn(x).norm())


@pytest.mark.parametrize("shape", [(7, 40), (40, 7), (16, 16)])
def test_aol_linear_has_spectral_norm_at_most_one_for_any_weights(shape):
    torch.manual_seed(0)
    for scale in (0.01, 1.0, 100.0):
        W = torch.randn(*shape, dtype=torch.float64) * scale
        s = float(torch.linalg.matrix_norm(aol_weight(W), ord=2))
        assert s <= 1 + 1e-12
        assert s > 0.2                               # not a vacuous rescaling


@pytest.mark.parametrize("stride,size,cin,cout", [(1, 8, 3, 5), (2, 9, 4, 6), (1, 5, 6, 2)])
def test_aol_convolution_is_a_contraction_with_zero_padding_and_any_stride(stride, size, cin,
                                                                            cout):
    torch.manual_seed(stride)
    conv = AOLConv2d(cin, cout, 3, stride=stride, padding=1, bias=False).double()
    with torch.no_grad():
        conv.weight.normal_()                         # any kernel, not the orthogonal start
    K = conv.effective_weight().detach()
    norm = _op_norm(lambda x: torch.nn.functional.conv2d(x, K, stride=stride, padding=1),
                    (1, cin, size, size))
    assert norm <= 1 + 1e-9
    assert norm > 0.1


def test_aol_conv_scale_matches_the_dense_gram_matrix():
    torch.manual_seed(0)
    K = torch.randn(3, 2, 3, 3, dtype=torch.float64)
    # dense operator of the circular convolution on a 7x7 grid (large enough: no aliasing)
    n = 7
    eye = torch.eye(2 * n * n, dtype=torch.float64).view(-1, 2, n, n)
    A = torch.nn.functional.conv2d(torch.nn.functional.pad(eye, (1, 1, 1, 1), mode="circular"),
                                   K).flatten(1).t()                         # (3·49, 2·49)
    G = (A.t() @ A).abs().sum(1).view(2, n * n)
    expected = G[:, 0].rsqrt()                       # every pixel of a channel: the same sum
    assert torch.allclose(aol_conv_scale(K), expected, rtol=1e-10)


def test_maxmin_is_one_lipschitz_and_norm_preserving():
    torch.manual_seed(0)
    a, b = torch.randn(50, 8, 3, 3), torch.randn(50, 8, 3, 3)
    act = MaxMin()
    assert torch.allclose(act(a).flatten(1).norm(dim=1), a.flatten(1).norm(dim=1))
    assert bool(((act(a) - act(b)).flatten(1).norm(dim=1)
                 <= (a - b).flatten(1).norm(dim=1) + 1e-6).all())
    with pytest.raises(ValueError, match="even"):
        LipschitzCNN(1, 4, 8, (3,))


def _trained_looking(ext):
    torch.manual_seed(1)
    with torch.no_grad():
        for p in ext.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return ext.eval()


def test_lipschitz_cnn_bounds_hold_and_the_computed_one_is_at_most_the_construction():
    ext = _trained_looking(LipschitzCNN(1, 8, 12, (8, 16), mean=[0.5], std=[1.0]).double())
    x = torch.rand(6, 1, 12, 12, dtype=torch.float64)
    for norm in ("l2", "linf"):
        b = extractor_bounds(ext, (1, 12, 12), norm)
        assert b["source"] in ("construction", "layer bounds")
        assert b["bound"] == min(b["computed"], b["construction"])
        assert b["bound"] >= empirical_lipschitz(ext, x.float().double(), iters=10, norm=norm)
    assert extractor_bounds(ext, (1, 12, 12), "l2")["construction"] == 1.0
    assert extractor_bounds(ext, (1, 12, 12), "linf")["construction"] == pytest.approx(12.0)
    # random pairs never exceed the construction bound
    y = x + 0.05 * torch.randn_like(x)
    ratio = (ext(x) - ext(y)).norm(dim=1) / (x - y).flatten(1).norm(dim=1)
    assert float(ratio.max()) <= 1.0


def test_the_normalisation_counts_in_the_bound():
    ext = LipschitzCNN(1, 8, 12, (8, 16), mean=[0.5], std=[0.25]).eval()
    assert extractor_bounds(ext, (1, 12, 12), "l2")["construction"] == pytest.approx(4.0)


def _lipschitz_cfg():
    cfg = Config()
    m = cfg.model
    m.name, m.state_dim, m.num_classes, m.cnn_widths = "lipschitz_cnn", 8, 3, [8, 16]
    m.image_size, m.in_channels, m.mean, m.std = 8, 1, [0.5], [1.0]
    return cfg


def test_the_lipschitz_cnn_baseline_builds_certifies_and_trains():
    from zubovnet.training.objectives import build_objective
    cfg = _lipschitz_cfg()
    model = build_model(cfg)
    assert cfg.model.extractor == "lipschitz_cnn"
    obj = build_objective(cfg, model)
    torch.manual_seed(0)
    x = torch.rand(16, 1, 8, 8)
    y = torch.randint(0, 3, (16,))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    first = None
    for _ in range(20):
        loss, logs = obj(model, x, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        first = first if first is not None else loss.item()
    assert loss.item() < first
    W, b = model.linear_head()
    assert float(torch.linalg.matrix_norm(W.double(), ord=2)) <= 1 + 1e-6
    with torch.no_grad():
        assert torch.allclose(model(x), model.features(x) @ W.t() + b, atol=1e-5)


def test_margin_loss_asks_for_the_certified_margin():
    from zubovnet.training.baseline_objectives import lipschitz_margin_loss
    logits = torch.tensor([[2.0, 1.0, 0.0]])
    y = torch.tensor([0])
    # margin 1 / √2 asks for a logit gap of 1: the gap is exactly 1, the loss is ln 2-ish
    at = lipschitz_margin_loss(logits, y, 1 / math.sqrt(2), 100.0)
    assert at.item() == pytest.approx(math.log(2) / 100.0, rel=1e-3)
    more = lipschitz_margin_loss(logits, y, 0.0, 100.0)
    assert more.item() < at.item()
    with pytest.raises(Exception):
        lipschitz_margin_loss(logits, torch.tensor([3]), 0.1, 1.0)


def test_aol_linear_module_applies_its_effective_weight():
    lin = AOLLinear(5, 3)
    x = torch.randn(4, 5)
    assert torch.allclose(lin(x), x @ lin.effective_weight().t() + lin.bias)
    assert isinstance(lin.effective_weight(), torch.Tensor)
    assert nn.Module in type(lin).__mro__
