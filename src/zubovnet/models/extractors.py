"""Feature extractors ``φ: x ↦ h(0)`` with the dataset normalisation inside the model.

Inputs are images in ``[0, 1]`` of shape ``(B, C, H, W)``; normalisation by the dataset mean
and std is the first layer, so attacks and corruptions act in pixel space.
"""
from __future__ import annotations

import torch
from torch import nn

__all__ = ["Normalize", "ResNet18Extractor", "SmallCNN", "MLPExtractor", "IdentityExtractor",
           "build_extractor"]


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


def build_extractor(cfg) -> nn.Module:
    """Extractor named by ``cfg.extractor`` (``resnet18 | cnn | mlp | identity``) for a ModelConfig."""
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
    raise ValueError(f"unknown extractor {cfg.extractor!r}; choose resnet18, cnn, mlp or identity")
