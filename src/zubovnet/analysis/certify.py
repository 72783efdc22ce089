"""The certified radius of Proposition 6, with sound Lipschitz bounds.

Proposition 6 (with the PRoA level ``ρ`` in place of 1): if ``h(0) = φ(x)`` lies in
``D_{W_y} = {W_y < ρ}`` and ``‖x' − x‖ < ε*``, then ``φ(x')`` lies in ``D_{W_y}`` too, where

    ε* = (ρ − W_y(φ(x))) / (L_φ · L_W)

with ``L_φ`` a Lipschitz constant of the extractor from the attack norm (L∞ on the image) to
the Euclidean norm of the state, and ``L_W`` one of ``W_y`` on the part of the state space the
perturbed features can reach.  Both must be **upper** bounds for the radius to be sound; a
power-iteration or gradient estimate is a lower bound and would overstate ``ε*``.

* :func:`extractor_lipschitz` composes per-layer bounds: the first linear/convolutional layer
  from L∞ to L2 (``√(Σ_rows (Σ_j |A_ij|)²)``, or ``√n · ‖A‖₂``, whichever is smaller), every
  later one in L2 (a linear layer: its spectral norm by SVD; a zero-padded convolution: the
  largest singular value of its kernel's 2-D DFT on a grid as large as the padded input, which
  bounds it because the zero-padded operator is a compression of that circular convolution);
  BatchNorm (eval) is folded into the preceding layer, the in-model normalisation into the first;
  ReLU and max-pooling are 1-Lipschitz, global average pooling over ``n`` positions ``1/√n``; a
  residual block ``x ↦ F(x) + S(x)`` has ``L_F + L_S``.
* :func:`lyapunov_lipschitz` bounds ``‖∇_x g(x, c_y)‖`` of the PIACNN/PICNN by the recursion
  ``L_{z_{i+1}} ≤ ‖A_i^(z) diag(a_i^(z))‖₂ L_{z_i} + ‖A_i^(x) diag(a_i^(x))‖₂`` (exact spectral
  norms; softplus is 1-Lipschitz), per class.  Then ``‖∇W_y(h)‖ = e^{−V}‖∇V‖ ≤ L_g + 2δ‖h − c_y‖``
  (``σ' ∈ [0, 1]``), so on the ball ``‖h − h(0)‖ ≤ r``: ``L_W(r) = L_g + 2δ(‖h(0) − c_y‖ + r)``.
* :func:`certified_radius` solves ``W_y(h(0)) + r L_W(r) = ρ`` for the feature radius ``r``
  (a quadratic) and returns ``ε* = r / L_φ``: ``L_W`` is evaluated on exactly the ball it certifies.

What is certified is membership of ``φ(x')`` in the prescribed region.  That this makes the
prediction ``y`` needs what Propositions 3–5 assume: the region is forward invariant and flows
to ``c_y`` (the alignment rate measures it) and no other region overlaps it.  The certificate
is reported with that condition and the measured alignment beside it (``docs/alignment.md``).
"""
from __future__ import annotations

import math
from typing import Iterable

import torch
from torch import nn

__all__ = ["UnsupportedLayerError", "extractor_lipschitz", "lyapunov_lipschitz",
           "certified_radius", "empirical_lipschitz", "conv_spectral_bound",
           "linear_inf_to_2_bound"]


class UnsupportedLayerError(TypeError):
    """The extractor has a layer for which no sound Lipschitz bound is implemented."""


# --------------------------------------------------------------------------- layer bounds
def linear_inf_to_2_bound(A: torch.Tensor) -> float:
    """Upper bound of ``‖A‖_{∞→2}`` for a matrix ``A (m, n)``: ``min(√(Σ_i (Σ_j |A_ij|)²),
    √n ‖A‖₂)``."""
    A = A.detach().double()
    rows = A.abs().sum(1).pow(2).sum().sqrt()
    spec = torch.linalg.matrix_norm(A, ord=2) * math.sqrt(A.shape[1])
    return float(min(rows, spec))


def conv_spectral_bound(K: torch.Tensor, size: tuple[int, int]) -> float:
    """Upper bound of the L2 operator norm of a zero-padded 2-D convolution (any stride) with
    kernel ``K (c_out, c_in, k_h, k_w)`` on inputs of spatial ``size``.

    The stride-1 zero-padded operator is a compression of the circular convolution on a grid of
    ``size + k − 1`` (embed, convolve without wrap-around, crop), whose norm is the largest
    singular value of the kernel's DFT over that grid (Sedghi et al. 2019); striding only drops
    rows.
    """
    K = K.detach().double()
    n_h, n_w = size[0] + K.shape[2] - 1, size[1] + K.shape[3] - 1
    F = torch.fft.fft2(K, s=(n_h, n_w))                     # (c_out, c_in, n_h, n_w)
    M = F.permute(2, 3, 0, 1)                               # (n_h, n_w, c_out, c_in)
    return float(torch.linalg.matrix_norm(M, ord=2).max())


def _conv_inf_to_2_bound(K: torch.Tensor, out_size: tuple[int, int], in_numel: int,
                         size: tuple[int, int]) -> float:
    """``‖conv‖_{∞→2}`` bound: every output row's absolute sum is at most the kernel's, so
    ``√(H_out W_out Σ_o (Σ |K_o|)²)``; or ``√n`` times the L2 bound."""
    K = K.detach().double()
    rows = math.sqrt(out_size[0] * out_size[1] * float(K.abs().sum((1, 2, 3)).pow(2).sum()))
    return min(rows, math.sqrt(in_numel) * conv_spectral_bound(K, size))


def _bn_scale(bn: nn.BatchNorm2d | nn.BatchNorm1d) -> torch.Tensor:
    if bn.training:
        raise UnsupportedLayerError("BatchNorm in training mode has no fixed Lipschitz constant; "
                                    "call model.eval() first")
    s = 1.0 / torch.sqrt(bn.running_var.double() + bn.eps)
    if bn.weight is not None:
        s = s * bn.weight.detach().double()
    return s


def _flatten_modules(m: nn.Module) -> list[nn.Module]:
    if isinstance(m, nn.Sequential):
        out: list[nn.Module] = []
        for c in m:
            out += _flatten_modules(c)
        return out
    return [m]


def _basic_block(block: nn.Module, shape: tuple, first: bool) -> tuple[float, tuple]:
    """torchvision's ``BasicBlock``: ``relu(bn2(conv2(relu(bn1(conv1 x)))) + shortcut(x))``."""
    main = [block.conv1, block.bn1, nn.ReLU(), block.conv2, block.bn2]
    L_main, out_shape = _chain(main, shape, first)
    if block.downsample is not None:
        L_short, _ = _chain(_flatten_modules(block.downsample), shape, first)
    else:
        L_short = 1.0
    return L_main + L_short, out_shape


def _chain(mods: Iterable[nn.Module], shape: tuple, first: bool, pre_scale=None
           ) -> tuple[float, tuple]:
    """Lipschitz bound of ``mods`` applied in order to inputs of ``shape`` (without batch).

    ``first``: the input norm is L∞ (the image); after the first linear map it is L2.
    ``pre_scale``: per-input-channel scaling folded into the next linear layer (normalisation).
    """
    mods = list(mods)
    total = 1.0
    i = 0
    while i < len(mods):
        m = mods[i]
        nxt = mods[i + 1] if i + 1 < len(mods) else None
        if type(m).__name__ == "Normalize":
            s = 1.0 / m.std.detach().double().flatten()
            pre_scale = s if pre_scale is None else pre_scale * s
            i += 1
            continue
        if isinstance(m, nn.Conv2d):
            if m.groups != 1 or m.dilation != (1, 1):
                raise UnsupportedLayerError("grouped or dilated convolutions are not supported")
            K = m.weight.detach().double()
            if pre_scale is not None:
                K = K * pre_scale.view(1, -1, 1, 1)
                pre_scale = None
            skip = 1
            if isinstance(nxt, nn.BatchNorm2d):
                K = K * _bn_scale(nxt).view(-1, 1, 1, 1)
                skip = 2
            c, h, w = shape
            pad = m.padding if isinstance(m.padding, tuple) else (m.padding, m.padding)
            oh = (h + 2 * pad[0] - K.shape[2]) // m.stride[0] + 1
            ow = (w + 2 * pad[1] - K.shape[3]) // m.stride[1] + 1
            if first:
                total *= _conv_inf_to_2_bound(K, (oh, ow), c * h * w, (h, w))
                first = False
            else:
                total *= conv_spectral_bound(K, (h, w))
            shape = (K.shape[0], oh, ow)
            i += skip
            continue
        if isinstance(m, nn.Linear):
            A = m.weight.detach().double()
            if pre_scale is not None:
                reps = A.shape[1] // pre_scale.numel()
                A = A * pre_scale.repeat_interleave(reps).view(1, -1)
                pre_scale = None
            skip = 1
            if isinstance(nxt, nn.BatchNorm1d):
                A = A * _bn_scale(nxt).view(-1, 1)
                skip = 2
            if first:
                total *= linear_inf_to_2_bound(A)
                first = False
            else:
                total *= float(torch.linalg.matrix_norm(A, ord=2))
            shape = (A.shape[0],)
            i += skip
            continue
        if isinstance(m, (nn.BatchNorm2d, nn.BatchNorm1d)):
            s = _bn_scale(m)
            if first:
                pre_scale = s if pre_scale is None else pre_scale * s
            else:
                total *= float(s.abs().max())
            i += 1
            continue
        if isinstance(m, (nn.ReLU, nn.Identity, nn.Dropout, nn.Flatten)):
            if isinstance(m, nn.Flatten):
                shape = (int(math.prod(shape)),)
            i += 1
            continue
        if isinstance(m, nn.MaxPool2d):
            k = m.kernel_size if isinstance(m.kernel_size, int) else m.kernel_size[0]
            st = m.stride if isinstance(m.stride, int) else m.stride[0]
            if st < k and not first:          # overlapping windows: each input in ⌈k/s⌉² outputs
                total *= math.ceil(k / st)
            pad = m.padding if isinstance(m.padding, int) else m.padding[0]
            c, h, w = shape
            shape = (c, (h + 2 * pad - k) // st + 1, (w + 2 * pad - k) // st + 1)
            i += 1
            continue
        if isinstance(m, nn.AdaptiveAvgPool2d):
            osz = m.output_size if isinstance(m.output_size, tuple) else (m.output_size,) * 2
            if tuple(osz) != (1, 1):
                raise UnsupportedLayerError("only global average pooling is supported")
            c, h, w = shape
            if not first:
                total *= 1.0 / math.sqrt(h * w)
            shape = (c, 1, 1)
            i += 1
            continue
        if type(m).__name__ == "BasicBlock":
            L, shape = _basic_block(m, shape, first)
            total *= L
            first = False
            i += 1
            continue
        if isinstance(m, nn.Sequential):
            L, shape = _chain(_flatten_modules(m), shape, first, pre_scale)
            total *= L
            first = False
            pre_scale = None
            i += 1
            continue
        raise UnsupportedLayerError(f"no sound Lipschitz bound for layer {type(m).__name__}")
    if pre_scale is not None:                 # a scaling never folded (identity extractor)
        total *= float(pre_scale.abs().max())
    return total, shape


def _extractor_layers(extractor: nn.Module) -> list[nn.Module]:
    name = type(extractor).__name__
    if name == "SmallCNN":
        return [extractor.normalize, *_flatten_modules(extractor.features), extractor.pool,
                nn.Flatten(), extractor.fc]
    if name == "MLPExtractor":
        return [extractor.normalize, *_flatten_modules(extractor.net)]
    if name == "IdentityExtractor":
        return [extractor.normalize, nn.Flatten()]
    if name == "ResNet18Extractor":
        net = extractor.net
        return [extractor.normalize, net.conv1, net.bn1, nn.ReLU(), net.maxpool,
                *[b for layer in (net.layer1, net.layer2, net.layer3, net.layer4) for b in layer],
                net.avgpool, nn.Flatten(), net.fc]
    if isinstance(extractor, nn.Sequential):
        return _flatten_modules(extractor)
    raise UnsupportedLayerError(f"no sound Lipschitz bound for extractor {name}")


@torch.no_grad()
def extractor_lipschitz(extractor: nn.Module, input_shape: tuple[int, int, int]) -> float:
    """Sound upper bound of ``sup ‖φ(x) − φ(x')‖₂ / ‖x − x'‖∞`` for images of ``input_shape``
    ``(C, H, W)`` (module docstring).  The extractor must be in eval mode."""
    layers = _extractor_layers(extractor)
    if type(extractor).__name__ == "IdentityExtractor":
        s = 1.0 / extractor.normalize.std.detach().double().flatten()
        n = int(math.prod(input_shape))
        # ‖D δ‖₂ ≤ ‖s‖-weighted: √(Σ_i s_i²) per channel block
        per_channel = n // s.numel()
        return float(torch.sqrt((s.pow(2) * per_channel).sum()))
    L, _ = _chain(layers, tuple(input_shape), first=True)
    return L


@torch.no_grad()
def lyapunov_lipschitz(head: nn.Module) -> torch.Tensor:
    """Upper bound of ``sup_x ‖∇_x g(x, c_k)‖₂`` per class ``k`` for the PIACNN/PICNN ``g``:
    ``(L,)`` (module docstring).  ICNN heads are bounded the same way per class."""
    convex = head.convex
    C = head.C.detach()
    name = type(convex).__name__
    if name in ("PIACNN", "PICNN"):
        cond = convex.condition(C)
        Lz = None
        for i, (az, ax, _bias) in enumerate(cond):
            Ax = convex.x_layers[i].weight.detach().double()            # (out, d)
            axd = ax.detach().double() if ax is not None else torch.ones(C.shape[0], Ax.shape[1],
                                                                          dtype=torch.float64)
            Mx = Ax.unsqueeze(0) * axd.unsqueeze(1)                     # (L, out, d)
            nx = torch.linalg.matrix_norm(Mx, ord=2)
            if i == 0:
                Lz = nx
                continue
            Az = convex.z_layers[i - 1].weight.detach().double()        # (out, in)
            azd = az.detach().double() if az is not None else torch.ones(C.shape[0], Az.shape[1],
                                                                          dtype=torch.float64)
            Mz = Az.unsqueeze(0) * azd.unsqueeze(1)
            Lz = torch.linalg.matrix_norm(Mz, ord=2) * Lz + nx
        return Lz.float()
    if name == "ICNN":
        out = []
        for k in range(C.shape[0]):
            Lz = None
            for i in range(convex.k):
                nx = float(torch.linalg.matrix_norm(convex.wx[i][k].detach().double(), ord=2))
                if i == 0:
                    Lz = nx
                    continue
                Wz = torch.nn.functional.softplus(convex.wz_raw[i - 1][k].detach().double())
                Lz = float(torch.linalg.matrix_norm(Wz, ord=2)) * Lz + nx
            out.append(Lz)
        return torch.tensor(out)
    raise UnsupportedLayerError(f"no Lipschitz bound for Lyapunov network {name}")


def certified_radius(W0: torch.Tensor, dist0: torch.Tensor, L_g: torch.Tensor, delta: float,
                     L_phi: float, rho: float) -> torch.Tensor:
    """``ε*`` per point (module docstring): ``W0 = W_y(h(0))``, ``dist0 = ‖h(0) − c_y‖``,
    ``L_g`` the bound of ``‖∇g(·, c_y)‖``; zero where ``W0 ≥ ρ``.

    Solves ``2δ r² + (L_g + 2δ·dist0) r = ρ − W0`` for the feature radius ``r``.
    """
    gap = (rho - W0.double()).clamp_min(0.0)
    b = L_g.double() + 2 * delta * dist0.double()
    a = 2 * delta
    r = (-b + torch.sqrt(b * b + 4 * a * gap)) / (2 * a) if a > 0 else gap / b
    return (r / L_phi).float()


def empirical_lipschitz(extractor: nn.Module, x: torch.Tensor, iters: int = 20,
                        eps: float = 1e-3, generator: torch.Generator | None = None) -> float:
    """A **lower** estimate of ``L_φ`` (L∞ → L2): the largest ``‖φ(x + ε s) − φ(x)‖₂ / ε`` over
    sign vectors ``s`` improved by ``s ← sign(Jᵀ J s)`` at each point of ``x``."""
    extractor.eval()
    best = 0.0
    for xi in x:
        xi = xi.unsqueeze(0)
        s = torch.sign(torch.randn(xi.shape, generator=generator))
        for _ in range(iters):
            s = s.detach().requires_grad_(False)
            with torch.enable_grad():
                xx = xi.clone().requires_grad_(True)
                _, Js = torch.func.jvp(extractor, (xi,), (s,))
                g = torch.autograd.grad(extractor(xx), xx, grad_outputs=Js)[0]
            s = torch.sign(g)
            s[s == 0] = 1.0
            with torch.no_grad():
                ratio = float((extractor(xi + eps * s) - extractor(xi)).norm() / eps)
            best = max(best, ratio)
    return best
