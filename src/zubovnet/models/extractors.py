"""Feature extractors ``φ: x ↦ h(0)`` with the dataset normalisation inside the model.

Inputs are images in ``[0, 1]`` of shape ``(B, C, H, W)``; normalisation by the dataset mean
and std is the first layer, so attacks and corruptions act in pixel space.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from .lipschitz import AOLConv2d, AOLLinear, MaxMin

__all__ = ["Normalize", "ResNet18Extractor", "SmallCNN", "MLPExtractor", "IdentityExtractor",
           "LipschitzCNN", "build_extractor"]


class Normalize(nn.Module):
    """``(x − mean) / std`` per channel; identity when no statistics are given."""

    def __init__(self, mean=None, std=None, channels: int = 1):
        super().__init__()
        mean = torch.tensor(mean if mean is not None else [0.0] * channels, dtype=torch.float32)
        std = torch.tensor(std if std is not None else [1.0] * channels, dtype=torch.float32)
        self.register_buffer("mean", mean.view(1, -1, 1, 1))
        self.register_buffer("std", std.view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4:
            return (x - self.mean.flatten()) / self.std.flatten()
        return (x - self.mean) / self.std


class ResNet18Extractor(nn.Module):
    """torchvision ResNet-18 with the CIFAR stem (3×3 conv, stride 1, no max-pool), global
    pooling and a linear map 512 → ``d``.  Input ``(B, C, H, W)`` in [0, 1]; output ``(B, d)``."""

    def __init__(self, in_channels: int, dim: int, mean=None, std=None):
        super().__init__()
        from torchvision.models import resnet18
        net = resnet18(weights=None, num_classes=10)
        net.conv1 = nn.Conv2d(in_channels, 64, kernel_size=3, stride=1, padding=1, bias=False)
        net.maxpool = nn.Identity()
        net.fc = nn.Linear(512, dim)
        self.normalize = Normalize(mean, std, in_channels)
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(self.normalize(x))


class SmallCNN(nn.Module):
    """A small CNN for 8×8, 28×28 and 32×32 inputs (CPU-scale runs).

    ``conv3×3 → BN → ReLU`` blocks with widths ``widths``; every block after the first halves
    the resolution while it stays ≥ 4 px; global average pooling; linear map to ``d``.
    """

    def __init__(self, in_channels: int, dim: int, image_size: int = 32, widths=(32, 64, 128),
                 mean=None, std=None):
        super().__init__()
        layers: list[nn.Module] = []
        c, size = in_channels, image_size
        for i, w in enumerate(widths):
            stride = 2 if (i > 0 and size >= 8) else 1
            layers += [nn.Conv2d(c, w, 3, stride=stride, padding=1, bias=False),
                       nn.BatchNorm2d(w), nn.ReLU(inplace=True)]
            size = (size + 1) // stride if stride == 2 else size
            c = w
        self.normalize = Normalize(mean, std, in_channels)
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(c, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.features(self.normalize(x))
        return self.fc(self.pool(z).flatten(1))


class MLPExtractor(nn.Module):
    """Flatten then a 2-layer MLP; also the identity-like extractor of 2-D synthetic data."""

    def __init__(self, in_features: int, dim: int, hidden: int = 128, mean=None, std=None,
                 channels: int = 1):
        super().__init__()
        self.normalize = Normalize(mean, std, channels)
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(in_features, hidden), nn.ReLU(),
                                 nn.Linear(hidden, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(self.normalize(x))


class IdentityExtractor(nn.Module):
    """``h(0) = normalise(x)`` flattened: for 2-D synthetic data drawn in the state plane."""

    def __init__(self, mean=None, std=None, channels: int = 1):
        super().__init__()
        self.normalize = Normalize(mean, std, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.normalize(x).flatten(1)


class LipschitzCNN(nn.Module):
    """The small CNN's family made 1-Lipschitz (``docs/certified.md``): 3×3 AOL convolutions of
    ``widths`` with MaxMin activations (:mod:`zubovnet.models.lipschitz`), no batch norm, and an
    AOL linear map of the flattened map to ``d``:
    ``‖φ(x) − φ(x')‖₂ ≤ ‖x − x'‖₂ / min(std)``.  Where the small CNN halves the resolution
    with a stride-2 convolution, this one uses invertible downsampling (``PixelUnshuffle(2)``:
    each 2×2 block becomes 4 channels, an isometry) before a stride-1 convolution, so that the
    signal is not thinned by ``≈ 1/2`` at every stride of a norm-bounded convolution.  The input
    normalisation counts in the bound (subtracting the mean is an isometry, dividing by ``std``
    multiplies the constant by ``1/min(std)``), so the certified configs leave ``std`` at 1.
    Input ``(B, C, H, W)`` in [0, 1]; output ``(B, d)``; every width even (MaxMin pairs
    channels); the map must stay even while it is halved."""

    def __init__(self, in_channels: int, dim: int, image_size: int = 28, widths=(32, 64, 128),
                 mean=None, std=None):
        super().__init__()
        if any(w % 2 for w in widths):
            raise ValueError(f"LipschitzCNN widths must be even (MaxMin pairs channels), got "
                             f"{list(widths)}")
        layers: list[nn.Module] = []
        c, size = in_channels, image_size
        for i, w in enumerate(widths):
            if i > 0 and size >= 8 and size % 2 == 0:
                layers.append(nn.PixelUnshuffle(2))
                c, size = 4 * c, size // 2
            layers += [AOLConv2d(c, w, 3, stride=1, padding=1), MaxMin()]
            c = w
        self.normalize = Normalize(mean, std, in_channels)
        self.features = nn.Sequential(*layers)
        self.fc = AOLLinear(c * size * size, dim)
        self.input_shape = (in_channels, image_size, image_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(self.normalize(x)).flatten(1))

    def lipschitz_by_construction(self, norm: str = "l2") -> float:
        """``sup ‖φ(x) − φ(x')‖₂ / ‖x − x'‖`` from the construction alone: ``1/min(std)`` in L2
        (every layer ≤ 1), ``√n/min(std)`` from L∞ (``‖δ‖₂ ≤ √n ‖δ‖_∞``, ``n`` input values)."""
        s = 1.0 / float(self.normalize.std.min())
        if norm == "l2":
            return s
        if norm == "linf":
            return s * math.sqrt(math.prod(self.input_shape))
        raise ValueError(f"norm must be 'l2' or 'linf', got {norm!r}")

    def plain_layers(self) -> list[nn.Module]:
        """The same map as plain modules (``Normalize``, ``nn.Conv2d`` with the effective
        kernels, ``MaxMin``, ``nn.Flatten``, ``nn.Linear``), for the computed Lipschitz bounds."""
        out: list[nn.Module] = [self.normalize]
        for m in self.features:
            out.append(m.as_conv2d() if isinstance(m, AOLConv2d) else m)
        lin = nn.Linear(self.fc.weight.shape[1], self.fc.weight.shape[0])
        with torch.no_grad():
            lin.weight.copy_(self.fc.effective_weight())
            lin.bias.copy_(self.fc.bias)
        return out + [nn.Flatten(), lin.to(self.fc.weight.device)]


def build_extractor(cfg) -> nn.Module:
    """Extractor named by ``cfg.extractor`` (``resnet18 | cnn | mlp | identity |
    lipschitz_cnn``) for a ModelConfig."""
    if cfg.extractor == "resnet18":
        return ResNet18Extractor(cfg.in_channels, cfg.state_dim, cfg.mean, cfg.std)
    if cfg.extractor == "cnn":
        return SmallCNN(cfg.in_channels, cfg.state_dim, cfg.image_size, tuple(cfg.cnn_widths),
                        cfg.mean, cfg.std)
    if cfg.extractor == "mlp":
        n = cfg.in_channels * cfg.image_size * cfg.image_size
        return MLPExtractor(n, cfg.state_dim, cfg.cnn_widths[-1] if cfg.cnn_widths else 128,
                            cfg.mean, cfg.std, cfg.in_channels)
    if cfg.extractor == "identity":
        n = cfg.in_channels * cfg.image_size * cfg.image_size
        if n != cfg.state_dim:
            raise ValueError(f"identity extractor needs state_dim == {n} (input size), got {cfg.state_dim}")
        return IdentityExtractor(cfg.mean, cfg.std, cfg.in_channels)
    if cfg.extractor == "lipschitz_cnn":
        return LipschitzCNN(cfg.in_channels, cfg.state_dim, cfg.image_size, tuple(cfg.cnn_widths),
                            cfg.mean, cfg.std)
    raise ValueError(f"unknown extractor {cfg.extractor!r}; choose resnet18, cnn, mlp, identity "
                     "or lipschitz_cnn")
