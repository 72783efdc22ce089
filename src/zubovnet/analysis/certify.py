"""Certified radii: the region certificate of Zubov-Net (Proposition 6 made sound) and the
margin certificate of a classifier linear in its features (``docs/certified.md``).

**Region certificate.**  With ``c* = −ln(1 − ρ)`` the region of class ``y`` is
``{V_y < c*}``.  For ``h(0) = φ(x)``, ``ρ₀ = ‖h(0) − c_y‖`` and
``z₀ = g(h(0) − c_y, c_y) − g(0, c_y)``, every ``h'`` with ``‖h' − h(0)‖ ≤ r`` has

    V_y(h') ≤ U(r) = δ (ρ₀ + r)² + σ(z₀ + L_g r)

(``σ`` non-decreasing, ``g(·, c_y)`` ``L_g``-Lipschitz), so ``φ(x')`` stays in the region while
``U(‖φ(x') − φ(x)‖) < c*``.  :func:`region_radius` returns the largest such feature radius
``r*`` (bisection on the increasing ``U``, keeping the lower end), and the input radius is
``ε* = r* / L_φ`` in the norm ``L_φ`` is taken from.  That ``φ(x')`` in the region makes the
prediction ``y`` needs (i) forward invariance of the region — exact when the field is
projected (:class:`~zubovnet.models.lyapunov.InvariantDynamics`), otherwise only sampled by the
alignment rate — and (ii) disjoint regions: ``2 r(c*) < d_min`` gives ``argmin_k V_k = y`` on
the whole region (``V_k ≥ δ‖h − c_k‖²``).  The ODE is solved numerically: the certificate is
for the exact flow, the record names the solver and its tolerance.

**Margin certificate.**  For logits ``ℓ = W φ(x) + b``:
``ε*(x) = min_{j≠y} (ℓ_y − ℓ_j) / (L_φ ‖w_y − w_j‖₂)`` (:func:`margin_radius`), with no
further premise.

**Lipschitz bounds** (upper bounds; an estimate would overstate ``ε*``):

* :func:`extractor_bounds` composes per-layer bounds: the first linear/convolutional layer
  from L∞ to L2 (``√(Σ_rows (Σ_j |A_ij|)²)``, or ``√n · ‖A‖₂``, whichever is smaller) or in L2,
  every later one in L2 (a linear layer: its spectral norm by SVD; a zero-padded convolution:
  the largest singular value of its kernel's 2-D DFT on a grid as large as the padded input,
  which bounds it because the zero-padded operator is a compression of that circular
  convolution); BatchNorm (eval) is folded into the preceding layer, the in-model normalisation
  into the first; ReLU, MaxMin and max-pooling are 1-Lipschitz, pixel unshuffling an isometry, global average pooling over
  ``n`` positions ``1/√n``; a residual block ``x ↦ F(x) + S(x)`` has ``L_F + L_S``.  An extractor
  that is 1-Lipschitz by construction (:class:`~zubovnet.models.extractors.LipschitzCNN`) also
  has its construction bound; the smaller of the two sound bounds is used.
* :func:`lyapunov_lipschitz`: ``L_g`` per class from the convex network's recursion
  (:meth:`~zubovnet.models.lyapunov.LyapunovHead.gradient_bound`), in float64.
"""
from __future__ import annotations

import math
from typing import Iterable

import torch
from torch import nn

__all__ = ["UnsupportedLayerError", "NORMS", "extractor_lipschitz", "extractor_bounds",
           "lyapunov_lipschitz", "region_radius", "margin_radius", "region_certificate",
           "margin_certificate", "certify", "empirical_lipschitz", "conv_spectral_bound",
           "linear_inf_to_2_bound"]

NORMS = ("l2", "linf")
"""Input norms of the certified radii: L2, and L∞ (images)."""


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
        if isinstance(m, (nn.ReLU, nn.Identity, nn.Dropout, nn.Flatten)) or \
                type(m).__name__ == "MaxMin":
            if isinstance(m, nn.Flatten):
                shape = (int(math.prod(shape)),)
            i += 1
            continue
        if isinstance(m, nn.PixelUnshuffle):       # a permutation of the entries: an isometry
            f = m.downscale_factor
            c, h, w = shape
            shape = (c * f * f, h // f, w // f)
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
    if name == "LipschitzCNN":
        return extractor.plain_layers()
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


def _check_norm(norm: str) -> None:
    if norm not in NORMS:
        raise ValueError(f"norm must be one of {', '.join(NORMS)}, got {norm!r}")


@torch.no_grad()
def extractor_bounds(extractor: nn.Module, input_shape: tuple[int, int, int],
                     norm: str = "linf") -> dict:
    """Sound upper bounds of ``sup ‖φ(x) − φ(x')‖₂ / ‖x − x'‖`` (``norm``: ``linf`` or ``l2``
    on the image) for images of ``input_shape`` ``(C, H, W)``: ``{"bound", "computed",
    "construction", "source"}`` — ``computed`` from the layers (module docstring),
    ``construction`` where the extractor is Lipschitz by construction (else ``None``), ``bound``
    the smaller, ``source`` which one it is.  The extractor must be in eval mode."""
    _check_norm(norm)
    layers = _extractor_layers(extractor)
    if type(extractor).__name__ == "IdentityExtractor":
        s = 1.0 / extractor.normalize.std.detach().double().flatten()
        n = int(math.prod(input_shape))
        per_channel = n // s.numel()
        computed = float(torch.sqrt((s.pow(2) * per_channel).sum())) if norm == "linf" \
            else float(s.abs().max())
    else:
        computed, _ = _chain(layers, tuple(input_shape), first=(norm == "linf"))
    construction = (float(extractor.lipschitz_by_construction(norm))
                    if hasattr(extractor, "lipschitz_by_construction") else None)
    if construction is not None and construction <= computed:
        return {"bound": construction, "computed": computed, "construction": construction,
                "source": "construction"}
    return {"bound": computed, "computed": computed, "construction": construction,
            "source": "layer bounds"}


def extractor_lipschitz(extractor: nn.Module, input_shape: tuple[int, int, int],
                        norm: str = "linf") -> float:
    """The bound of :func:`extractor_bounds` alone."""
    return extractor_bounds(extractor, input_shape, norm)["bound"]


@torch.no_grad()
def lyapunov_lipschitz(head: nn.Module) -> torch.Tensor:
    """Upper bound of ``sup_x ‖∇_x g(x, c_k)‖₂`` per class ``k`` for the head's convex network
    (PIACNN, PICNN, ICNN): ``(L,)`` float64 (module docstring)."""
    if not hasattr(head, "gradient_bound"):
        raise UnsupportedLayerError(f"no Lipschitz bound for Lyapunov head {type(head).__name__}")
    return head.gradient_bound(torch.float64).detach()


def _smooth_relu64(z: torch.Tensor, a: float) -> torch.Tensor:
    zc = z.clamp(min=0.0)
    return torch.where(zc < a, zc * zc / (2 * a), zc - a / 2)


def region_radius(z0: torch.Tensor, dist0: torch.Tensor, L_g: torch.Tensor, delta: float,
                  c_star: float, smooth_a: float = 1.0, iters: int = 60,
                  slack: float = 1e-5) -> torch.Tensor:
    """Largest feature radius ``r*`` with ``U(r*) < c* − slack`` (module docstring), per point.

    ``z0 = g(h(0) − c_y, c_y) − g(0, c_y)``, ``dist0 = ‖h(0) − c_y‖``, ``L_g`` the bound of
    ``‖∇g(·, c_y)‖`` of each point's class: ``(N,)`` each.  ``U`` increases in ``r``; the
    bisection keeps the lower end of its bracket, so ``U(r*) < c* − slack`` holds for the value
    returned (``slack`` covers the float32 rounding of the model's own ``V``).  Zero where
    ``U(0) = V_y(h(0)) ≥ c* − slack``.  Returns ``(N,)`` float64."""
    z0, d0, Lg = z0.double(), dist0.double(), L_g.double()
    level = c_star - slack

    def U(r):
        return delta * (d0 + r).pow(2) + _smooth_relu64(z0 + Lg * r, smooth_a)

    inside = U(torch.zeros_like(d0)) < level
    lo = torch.zeros_like(d0)
    hi = (math.sqrt(c_star / delta) - d0).clamp_min(0.0)     # δ(ρ₀ + r)² alone reaches c* there
    for _ in range(iters):
        mid = 0.5 * (lo + hi)
        ok = U(mid) < level
        lo = torch.where(ok, mid, lo)
        hi = torch.where(ok, hi, mid)
    return torch.where(inside, lo, torch.zeros_like(lo))


def margin_radius(logits: torch.Tensor, y: torch.Tensor, W: torch.Tensor,
                  L_phi: float) -> torch.Tensor:
    """``min_{j≠y} (ℓ_y − ℓ_j) / (L_φ ‖w_y − w_j‖₂)`` per point, 0 where misclassified: the
    radius within which no input changes the prediction of ``ℓ = W φ(x) + b``.  ``logits``:
    ``(N, K)``; ``W``: ``(K, d)``.  Returns ``(N,)`` float64."""
    lg, W = logits.double(), W.detach().double()
    ly = lg.gather(1, y.view(-1, 1))
    D = torch.cdist(W, W)                                       # ‖w_i − w_j‖
    dy = D[y]                                                   # (N, K)
    ratio = (ly - lg) / (L_phi * dy.clamp_min(1e-30))
    ratio = ratio.masked_fill(torch.nn.functional.one_hot(y, lg.shape[1]).bool(), float("inf"))
    return ratio.min(1).values.clamp_min(0.0)


def _batched(fn, X: torch.Tensor, batch: int, device) -> torch.Tensor:
    return torch.cat([fn(X[i:i + batch].to(device)) for i in range(0, X.shape[0], batch)])


@torch.no_grad()
def region_certificate(model: nn.Module, X: torch.Tensor, Y: torch.Tensor, *,
                       rho: float | None = None, device="cpu", batch_size: int = 512) -> dict:
    """Per-point feature radii ``r*`` of the region certificate and the premises behind them.

    ``model``: a Zubov-Net (``features``, ``head`` with ``gradient_bound``, ``equilibria``);
    ``rho``: the region level (default: ``model.proa_level``).  Returns ``{"feature_radius"
    (N,), "inside" (N,) bool, "L_g" (L,), "premises", "geometry"}``."""
    head = model.head
    rho = float(getattr(model, "proa_level", 0.9) if rho is None else rho)
    c_star = -math.log1p(-rho)
    delta = float(head.delta)
    C = model.equilibria.detach()
    L_g = lyapunov_lipschitz(head)
    h0 = _batched(model.features, X, batch_size, device)
    Yd = Y.to(h0.device)
    cond, g0 = head._conditioning(head.C)
    z0 = head.convex(h0 - C[Yd], cond, Yd) - g0[Yd]
    dist0 = (h0 - C[Yd]).norm(dim=1)
    V0 = head.energy(h0, Yd)
    r = region_radius(z0, dist0, L_g.to(h0.device)[Yd], delta, c_star,
                      float(head.smooth_a)).cpu()
    L = C.shape[0]
    d_min = float((torch.cdist(C.double(), C.double()) +
                   torch.eye(L, dtype=torch.float64, device=C.device) * 1e30).min())
    disjoint = 2 * math.sqrt(c_star / delta) < d_min
    invariant = bool(getattr(model, "invariant", False))
    geo = getattr(model, "region_geometry", None)
    premises = {
        "region_membership": {
            "source": "bound",
            "how": "V_y(h') <= delta (rho0 + r)^2 + sigma(z0 + L_g r) for |h' - h(0)| <= r",
            "L_g_max": float(L_g.max()), "L_g_mean": float(L_g.mean())},
        "forward_invariance": (
            {"source": "construction", "how": "region projection: grad V_y . f <= -rate V_y "
             "inside {V_y < c*} (docs/certified.md)", "rate": geo["rate"] if geo else None}
            if invariant else
            {"source": "sampled", "how": "not guaranteed; the alignment rate samples it"}),
        "disjoint_regions": {
            "source": "construction" if disjoint else "violated",
            "how": "2 r(c*) < d_min, and V_k >= delta |h - c_k|^2, give argmin_k V_k = y on "
                   "region y", "region_diameter": 2 * math.sqrt(c_star / delta),
            "d_min": d_min},
    }
    return {"feature_radius": r, "inside": (V0 < c_star).cpu(), "L_g": L_g.cpu(),
            "premises": premises, "rho": rho, "c_star": c_star, "delta": delta,
            "exact": invariant and disjoint}


@torch.no_grad()
def margin_certificate(model: nn.Module, X: torch.Tensor, Y: torch.Tensor, *, device="cpu",
                       batch_size: int = 512) -> dict:
    """Per-point radii of the margin certificate in feature space (``L_φ = 1``): ``model`` has
    ``features(x)`` and ``linear_head() -> (W, b)`` with ``model(x) = W φ(x) + b`` (checked on
    the first batch).  Returns ``{"feature_radius" (N,), "premises", "exact"}``."""
    W, b = model.linear_head()
    h = _batched(model.features, X, batch_size, device)
    logits = h @ W.t() + b
    direct = model(X[:min(64, X.shape[0])].to(device))
    if not torch.allclose(direct, logits[:direct.shape[0]], rtol=1e-4, atol=1e-4):
        raise UnsupportedLayerError(f"{type(model).__name__}'s logits are not the affine map "
                                    "linear_head() of its features")
    r = margin_radius(logits, Y.to(logits.device), W, 1.0).cpu()
    return {"feature_radius": r, "premises": {"head": {
        "source": "exact", "how": "min_j (l_y - l_j) / |w_y - w_j| for the affine head"}},
        "exact": True}


def certify(model: nn.Module, X: torch.Tensor, Y: torch.Tensor, *, rho: float | None = None,
            device="cpu", batch_size: int = 512) -> dict:
    """The certificate of ``model`` on ``(X, Y)``: input radii per norm of :data:`NORMS`.

    Picks the region certificate for a model with per-class regions (a Lyapunov head) and the
    margin certificate for one with ``linear_head()``; raises :class:`UnsupportedLayerError`
    otherwise.  Returns ``{"kind", "radius": {norm: (N,) float64}, "feature_radius",
    "L_phi": {norm: extractor_bounds(...)}, "premises", "exact", ...}``; ``exact`` is True when
    every premise holds by construction or by a sound bound (the certificate is then
    unconditional, for the exact flow of the ODE)."""
    model.eval()
    shape = tuple(X.shape[1:])
    extractor = getattr(model, "extractor", None)
    if extractor is None or not hasattr(model, "features"):
        raise UnsupportedLayerError(f"{type(model).__name__} exposes no extractor/features")
    head = getattr(model, "head", None)
    if head is not None and hasattr(head, "gradient_bound"):
        out = region_certificate(model, X, Y, rho=rho, device=device, batch_size=batch_size)
        out["kind"] = "region"
    elif hasattr(model, "linear_head"):
        out = margin_certificate(model, X, Y, device=device, batch_size=batch_size)
        out["kind"] = "margin"
    else:
        raise UnsupportedLayerError(f"{type(model).__name__} has neither per-class regions "
                                    "(a Lyapunov head) nor an affine head on its features")
    bounds = {nm: extractor_bounds(extractor, shape, nm) for nm in NORMS}
    out["L_phi"] = bounds
    out["premises"] = {"extractor_lipschitz": {
        "source": bounds["l2"]["source"],
        "l2": bounds["l2"]["bound"], "linf": bounds["linf"]["bound"]}, **out["premises"]}
    out["radius"] = {nm: out["feature_radius"] / bounds[nm]["bound"] for nm in NORMS}
    return out


def empirical_lipschitz(extractor: nn.Module, x: torch.Tensor, iters: int = 20,
                        eps: float = 1e-3, generator: torch.Generator | None = None,
                        norm: str = "linf") -> float:
    """A **lower** estimate of ``L_φ`` (``norm`` → L2): the largest ``‖φ(x + ε s) − φ(x)‖₂ / ε``
    at each point of ``x``, over directions improved by ``s ← sign(Jᵀ J s)`` (L∞, sign vectors)
    or ``s ← Jᵀ J s / ‖Jᵀ J s‖`` (L2, power iteration)."""
    _check_norm(norm)
    extractor.eval()
    best = 0.0
    for xi in x:
        xi = xi.unsqueeze(0)
        s = torch.randn(xi.shape, generator=generator).to(xi.device)
        s = torch.sign(s) if norm == "linf" else s / s.norm()
        for _ in range(iters):
            s = s.detach().requires_grad_(False)
            with torch.enable_grad():
                xx = xi.clone().requires_grad_(True)
                _, Js = torch.func.jvp(extractor, (xi,), (s,))
                g = torch.autograd.grad(extractor(xx), xx, grad_outputs=Js)[0]
            if norm == "linf":
                s = torch.sign(g)
                s[s == 0] = 1.0
            else:
                s = g / g.norm().clamp_min(1e-30)
            with torch.no_grad():
                ratio = float((extractor(xi + eps * s) - extractor(xi)).norm() / eps)
            best = max(best, ratio)
    return best
