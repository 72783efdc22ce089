"""1-Lipschitz layers (``docs/certified.md``); the extractor built from them is
:class:`~zubovnet.models.extractors.LipschitzCNN`.

Almost-orthogonal layers (AOL; Prach & Lampert, ECCV 2022): a weight ``W`` is rescaled, at
every forward pass, by the diagonal ``D = diag(Σ_j |WᵀW|_ij)^{-1/2}``; then ``‖W D‖₂ ≤ 1``
(Schur's test on ``D WᵀW D``), whatever ``W`` is — the bound comes from the construction, not
from training.  For a convolution with kernel ``K (c_out, c_in, k, k)`` the role of ``WᵀW`` is
played by its Gram kernel ``P_ij = Σ_o K_oi ⋆ K_oj`` (``(c_in, c_in, 2k − 1, 2k − 1)``) and
``D`` scales the input channels.  The bound holds for the zero-padded convolution with any
stride: zero padding makes it a compression of the circular convolution on a grid of
``n + k − 1`` pixels (whose ``WᵀW`` is exactly the circular convolution with ``P``), and a
stride only drops output rows.

``MaxMin`` (GroupSort with groups of 2; Anil et al. 2019) sorts channel pairs: 1-Lipschitz and
gradient-norm preserving.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["aol_scale", "aol_weight", "aol_conv_scale", "AOLLinear", "AOLConv2d", "MaxMin"]

_EPS = 1e-12


def aol_scale(W: torch.Tensor) -> torch.Tensor:
    """``(Σ_j |WᵀW|_ij)^{-1/2}`` per input column of ``W (out, in)``: ``(in,)``."""
    return (W.t() @ W).abs().sum(1).clamp_min(_EPS).rsqrt()


def aol_weight(W: torch.Tensor) -> torch.Tensor:
    """``W`` rescaled to spectral norm ≤ 1: ``W D`` (columns, AOL) when ``in ≤ out``, ``D W``
    (rows: AOL on ``Wᵀ``, as ``‖D W‖₂ = ‖Wᵀ D‖₂``) when ``out < in`` — the smaller Gram
    matrix either way (a 32 × 6,272 map costs a 32 × 32 Gram instead of 6,272²)."""
    if W.shape[0] < W.shape[1]:
        return W * aol_scale(W.t()).unsqueeze(1)
    return W * aol_scale(W).unsqueeze(0)


def aol_conv_scale(K: torch.Tensor) -> torch.Tensor:
    """The AOL rescaling of the input channels of a convolution kernel ``K (c_out, c_in, k, k)``:
    ``(Σ_{j, offsets} |P_ij|)^{-1/2}`` with the Gram kernel ``P`` (module docstring): ``(c_in,)``."""
    Kt = K.transpose(0, 1)                                   # (c_in, c_out, k_h, k_w)
    P = F.conv2d(Kt, Kt, padding=(K.shape[2] - 1, K.shape[3] - 1))   # (c_in, c_in, 2k-1, 2k-1)
    return P.abs().sum((1, 2, 3)).clamp_min(_EPS).rsqrt()


class AOLLinear(nn.Module):
    """``y = x W_effᵀ + b`` with ``‖W_eff‖₂ ≤ 1`` (AOL, :func:`aol_weight`).  ``x``: ``(..., in)``."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(out_features, in_features))
        nn.init.orthogonal_(self.weight)
        self.bias = nn.Parameter(torch.zeros(out_features)) if bias else None

    def effective_weight(self) -> torch.Tensor:
        """``W_eff``: ``(out, in)``, spectral norm ≤ 1."""
        return aol_weight(self.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.effective_weight(), self.bias)


class AOLConv2d(nn.Module):
    """A zero-padded 2-D convolution whose operator norm (L2) is ≤ 1 (AOL), any stride.

    Initialised as an orthogonal channel map on the centre tap (an isometry at stride 1 when
    ``c_out ≥ c_in``), the usual start of orthogonal convolutions; a random kernel would start
    the network at a product of layer norms near 0.06."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3,
                 stride: int = 1, padding: int = 1, bias: bool = True):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(out_channels, in_channels, kernel_size,
                                               kernel_size))
        with torch.no_grad():
            Q = torch.empty(out_channels, in_channels)
            nn.init.orthogonal_(Q)
            self.weight[:, :, kernel_size // 2, kernel_size // 2] = Q
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        self.stride, self.padding = stride, padding

    def effective_weight(self) -> torch.Tensor:
        """``K D`` (input channels rescaled): ``(c_out, c_in, k, k)``."""
        return self.weight * aol_conv_scale(self.weight).view(1, -1, 1, 1)

    def as_conv2d(self) -> nn.Conv2d:
        """A plain ``nn.Conv2d`` with the effective kernel (for the Lipschitz bounds)."""
        co, ci, kh, kw = self.weight.shape
        conv = nn.Conv2d(ci, co, (kh, kw), stride=self.stride, padding=self.padding,
                         bias=self.bias is not None)
        with torch.no_grad():
            conv.weight.copy_(self.effective_weight())
            if self.bias is not None:
                conv.bias.copy_(self.bias)
        return conv.to(self.weight.device)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.effective_weight(), self.bias, self.stride, self.padding)


class MaxMin(nn.Module):
    """``(max(a, b), min(a, b))`` of the two halves of the channel axis (dim 1): 1-Lipschitz."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = x.chunk(2, dim=1)
        return torch.cat([torch.maximum(a, b), torch.minimum(a, b)], dim=1)
