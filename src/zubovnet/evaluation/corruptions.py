"""Common corruptions at Hendrycks & Dietterich's CIFAR-10-C parameters, batched in torch.

The paper evaluates robustness to eight corruptions of Hendrycks & Dietterich (ICLR 2019),
at the parameters of their CIFAR-10-C generator (severities 1-5; paper §IV-A and Table I, docs/corruptions.md):

======================  =====================================  ===================================
corruption              definition (``x`` in [0, 1])            parameter per severity 1 -> 5
======================  =====================================  ===================================
``gaussian_noise``      ``x + N(0, sigma^2)``                  sigma = .04 .06 .08 .09 .10
``glass_blur``          blur, 8-bit, local shuffles, blur      (sigma, delta, it) = (.05,1,1)
                                                               (.25,1,1) (.4,1,1) (.25,1,2) (.4,1,2)
``shot_noise``          ``Poisson(lam x) / lam``               lam = 500 250 100 75 50
``impulse_noise``       salt & pepper on a fraction ``a``      a = .01 .02 .03 .05 .07
``speckle_noise``       ``x + x N(0, sigma^2)``                sigma = .06 .10 .12 .16 .20
``motion_blur``         ImageMagick motion blur                (radius, sigma) = (6,1) (6,1.5)
                                                               (6,2) (8,2) (9,2.5)
``brightness``          add ``b`` to V in HSV                  b = .05 .10 .15 .20 .30
``contrast``            ``(x - m) c + m``                      c = .75 .50 .40 .30 .15
======================  =====================================  ===================================

Every function takes a batch ``x`` of shape ``(B, C, H, W)`` with ``C`` in {1, 3},
``H, W >= 8`` and values in [0, 1], on any device, and returns a tensor of the same shape,
dtype and device, clipped to [0, 1]. Random corruptions take ``generator``: ``None`` (torch's
global generator), an ``int`` seed (a fresh ``torch.Generator`` on ``x.device``) or a
``torch.Generator`` (used and advanced; drawn on its own device, moved to ``x.device``).
The same seed, batch and device give the same output.

Entry points: :func:`corrupt` (by name and severity), one function per corruption with
explicit parameters, and the :class:`Corruption` module. Every deviation from the original
generator is listed in ``docs/corruptions.md``.
"""

from __future__ import annotations

import math
import operator
from functools import lru_cache
from types import MappingProxyType
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor

__all__ = [
    "CORRUPTIONS",
    "CIFAR10C_PARAMS",
    "MIN_IMAGE_SIZE",
    "Corruption",
    "corrupt",
    "gaussian_noise",
    "glass_blur",
    "shot_noise",
    "impulse_noise",
    "speckle_noise",
    "motion_blur",
    "motion_blur_kernel",
    "brightness",
    "contrast",
]

#: Corruption names in the order of the paper's Table I.
CORRUPTIONS: Tuple[str, ...] = (
    "gaussian_noise",
    "glass_blur",
    "shot_noise",
    "impulse_noise",
    "speckle_noise",
    "motion_blur",
    "brightness",
    "contrast",
)

#: CIFAR-10-C parameters (Hendrycks & Dietterich's CIFAR generator), severity 1 -> 5.
#: Tuple entries are the positional parameters of the corruption's function after ``x``.
CIFAR10C_PARAMS: Mapping[str, tuple] = MappingProxyType(
    {
        "gaussian_noise": (0.04, 0.06, 0.08, 0.09, 0.10),  # sigma
        "glass_blur": (  # (sigma, delta, iterations)
            (0.05, 1, 1),
            (0.25, 1, 1),
            (0.4, 1, 1),
            (0.25, 1, 2),
            (0.4, 1, 2),
        ),
        "shot_noise": (500.0, 250.0, 100.0, 75.0, 50.0),  # lam
        "impulse_noise": (0.01, 0.02, 0.03, 0.05, 0.07),  # amount
        "speckle_noise": (0.06, 0.10, 0.12, 0.16, 0.20),  # sigma
        "motion_blur": ((6, 1.0), (6, 1.5), (6, 2.0), (8, 2.0), (9, 2.5)),  # (radius, sigma)
        "brightness": (0.05, 0.10, 0.15, 0.20, 0.30),  # b
        "contrast": (0.75, 0.50, 0.40, 0.30, 0.15),  # c
    }
)

#: Smallest image side accepted.
MIN_IMAGE_SIZE: int = 8

#: Tolerance, in 8-bit levels, of the truncation ``floor(255 y)``: a value within this many
#: levels below an integer level counts as that level, so that exact levels ``k / 255``
#: survive float rounding (``255 * (k / 255)`` may come out as ``k - 1e-5``).
LEVEL_TOLERANCE: float = 1e-3

GeneratorLike = Union[torch.Generator, int, None]


# --------------------------------------------------------------------------- validation


def _check_images(x: Tensor) -> None:
    """Raise unless ``x`` is a float batch ``(B, C, H, W)``, C in {1, 3}, H, W >= 8, in [0, 1]."""
    if not isinstance(x, Tensor):
        raise TypeError(f"expected a torch.Tensor, got {type(x).__name__}")
    if x.ndim != 4:
        raise ValueError(f"expected images of shape (B, C, H, W), got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise ValueError(
            f"expected a floating-point tensor with values in [0, 1], got dtype {x.dtype} "
            "(convert 8-bit images with x.float() / 255)"
        )
    _, c, h, w = x.shape
    if c not in (1, 3):
        raise ValueError(f"expected 1 or 3 channels, got {c}")
    if h < MIN_IMAGE_SIZE or w < MIN_IMAGE_SIZE:
        raise ValueError(f"images must be at least {MIN_IMAGE_SIZE}x{MIN_IMAGE_SIZE} pixels, got {h}x{w}")
    if x.numel():
        lo, hi = (float(v) for v in torch.aminmax(x))
        if lo >= 0.0 and hi <= 1.0:  # False for NaN
            return
        raise ValueError(f"image values must lie in [0, 1] (finite), got min {lo:g}, max {hi:g}")


def _check_number(name: str, value: float, low: float = -math.inf, low_open: bool = False,
                  high: float = math.inf) -> float:
    """Return ``float(value)`` or raise ValueError if it is not finite and within bounds."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a real number, got {value!r}") from None
    ok = math.isfinite(v) and (v > low if low_open else v >= low) and v <= high
    if not ok:
        bound = f"{'(' if low_open else '['}{low:g}, {high:g}]"
        raise ValueError(f"{name} must be finite and in {bound}, got {value!r}")
    return v


def _check_int(name: str, value: int, low: int) -> int:
    if isinstance(value, bool):
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    try:
        v = operator.index(value)
    except TypeError:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}") from None
    if v < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    return v


def _work(x: Tensor) -> Tensor:
    """``x`` in the dtype computations run in: float32/float64 as given, half types in float32."""
    return x if x.dtype in (torch.float32, torch.float64) else x.float()


# --------------------------------------------------------------------------- randomness


def _generator(generator: GeneratorLike, device: torch.device) -> Optional[torch.Generator]:
    """``None`` -> None (global RNG); ``int`` -> a new Generator on ``device``; Generator -> itself."""
    if generator is None or isinstance(generator, torch.Generator):
        return generator
    if isinstance(generator, bool):
        raise TypeError("generator must be a torch.Generator, an int seed or None, got a bool")
    try:
        seed = operator.index(generator)
    except TypeError:
        raise TypeError(
            f"generator must be a torch.Generator, an int seed or None, got {type(generator).__name__}"
        ) from None
    g = torch.Generator(device=device)
    g.manual_seed(seed)
    return g


def _draw_device(gen: Optional[torch.Generator], device: torch.device) -> torch.device:
    return device if gen is None else gen.device


def _randn(shape: Sequence[int], gen: Optional[torch.Generator], like: Tensor) -> Tensor:
    d = _draw_device(gen, like.device)
    return torch.randn(tuple(shape), generator=gen, device=d, dtype=like.dtype).to(like.device)


def _rand(shape: Sequence[int], gen: Optional[torch.Generator], device: torch.device,
          dtype: torch.dtype) -> Tensor:
    d = _draw_device(gen, device)
    return torch.rand(tuple(shape), generator=gen, device=d, dtype=dtype).to(device)


def _randint(low: int, high: int, shape: Sequence[int], gen: Optional[torch.Generator],
             device: torch.device) -> Tensor:
    d = _draw_device(gen, device)
    return torch.randint(low, high, tuple(shape), generator=gen, device=d).to(device)


# --------------------------------------------------------------------------- noises


def gaussian_noise(x: Tensor, sigma: float, generator: GeneratorLike = None) -> Tensor:
    """Additive Gaussian noise: ``clip(x + sigma * z, 0, 1)``, ``z ~ N(0, 1)`` i.i.d. per value.

    Args:
        x: images ``(B, C, H, W)``, C in {1, 3}, H, W >= 8, float, values in [0, 1].
        sigma: noise standard deviation (>= 0); CIFAR-10-C: .04 .06 .08 .09 .10.
        generator: ``None``, an int seed or a ``torch.Generator`` (see module docstring).

    Returns:
        Tensor of the shape, dtype and device of ``x``, in [0, 1].
    """
    _check_images(x)
    sigma = _check_number("sigma", sigma, low=0.0)
    gen = _generator(generator, x.device)
    w = _work(x)
    y = w + sigma * _randn(w.shape, gen, w)
    return y.clamp_(0.0, 1.0).to(x.dtype)


def shot_noise(x: Tensor, lam: float, generator: GeneratorLike = None) -> Tensor:
    """Shot (Poisson) noise: ``clip(Poisson(lam * x) / lam, 0, 1)`` i.i.d. per value.

    Mean ``x``, variance ``x / lam`` before clipping.

    Args:
        x: images ``(B, C, H, W)``, C in {1, 3}, H, W >= 8, float, values in [0, 1].
        lam: photon count of a white value (> 0); CIFAR-10-C: 500 250 100 75 50.
        generator: ``None``, an int seed or a ``torch.Generator`` (see module docstring).

    Returns:
        Tensor of the shape, dtype and device of ``x``, in [0, 1].
    """
    _check_images(x)
    lam = _check_number("lam", lam, low=0.0, low_open=True)
    gen = _generator(generator, x.device)
    w = _work(x)
    rates = (w * lam).to(_draw_device(gen, w.device))
    counts = torch.poisson(rates, generator=gen).to(w.device)
    return (counts / lam).clamp_(0.0, 1.0).to(x.dtype)


def impulse_noise(x: Tensor, amount: float, generator: GeneratorLike = None,
                  salt_vs_pepper: float = 0.5) -> Tensor:
    """Impulse (salt & pepper) noise with scikit-image's ``random_noise(mode='s&p')`` semantics.

    Each value (every channel of every pixel) is replaced independently with probability
    ``amount``; a replaced value becomes 1 (salt) with probability ``salt_vs_pepper`` and 0
    (pepper) otherwise. Draw order: the replacement mask, then the salt mask.

    Args:
        x: images ``(B, C, H, W)``, C in {1, 3}, H, W >= 8, float, values in [0, 1].
        amount: replacement probability ``a`` in [0, 1]; CIFAR-10-C: .01 .02 .03 .05 .07.
        generator: ``None``, an int seed or a ``torch.Generator`` (see module docstring).
        salt_vs_pepper: probability in [0, 1] that a replaced value is salt (default 0.5).

    Returns:
        Tensor of the shape, dtype and device of ``x``, in [0, 1].
    """
    _check_images(x)
    amount = _check_number("amount", amount, low=0.0, high=1.0)
    q = _check_number("salt_vs_pepper", salt_vs_pepper, low=0.0, high=1.0)
    gen = _generator(generator, x.device)
    w = _work(x)
    flipped = _rand(w.shape, gen, w.device, w.dtype) < amount
    salted = _rand(w.shape, gen, w.device, w.dtype) < q
    y = torch.where(flipped, salted.to(w.dtype), w)
    return y.clamp_(0.0, 1.0).to(x.dtype)


def speckle_noise(x: Tensor, sigma: float, generator: GeneratorLike = None) -> Tensor:
    """Speckle (multiplicative Gaussian) noise: ``clip(x + x * sigma * z, 0, 1)``, ``z ~ N(0, 1)``.

    Args:
        x: images ``(B, C, H, W)``, C in {1, 3}, H, W >= 8, float, values in [0, 1].
        sigma: relative noise standard deviation (>= 0); CIFAR-10-C: .06 .10 .12 .16 .20.
        generator: ``None``, an int seed or a ``torch.Generator`` (see module docstring).

    Returns:
        Tensor of the shape, dtype and device of ``x``, in [0, 1].
    """
    _check_images(x)
    sigma = _check_number("sigma", sigma, low=0.0)
    gen = _generator(generator, x.device)
    w = _work(x)
    y = w + w * (sigma * _randn(w.shape, gen, w))
    return y.clamp_(0.0, 1.0).to(x.dtype)


# --------------------------------------------------------------------------- glass blur


def _gaussian_kernel1d(sigma: float, truncate: float) -> List[float]:
    """scipy.ndimage's Gaussian weights: radius ``int(truncate * sigma + 0.5)``, normalised."""
    radius = int(truncate * sigma + 0.5)
    if radius == 0 or sigma == 0.0:
        return [1.0]
    w = [math.exp(-0.5 * (i / sigma) ** 2) for i in range(-radius, radius + 1)]
    s = math.fsum(w)
    return [v / s for v in w]


def _gaussian_blur(x: Tensor, sigma: float, truncate: float = 4.0) -> Tensor:
    """Separable Gaussian blur of every channel, edges replicated.

    Matches ``skimage.filters.gaussian(x, sigma, mode='nearest', truncate=4.0)`` applied to
    the spatial axes (scipy's ``gaussian_filter``): weights ``exp(-t^2 / (2 sigma^2))`` for
    ``|t| <= int(truncate * sigma + 0.5)``, normalised to sum 1.
    """
    k = _gaussian_kernel1d(sigma, truncate)
    if len(k) == 1:
        return x.clone()
    r = len(k) // 2
    for dim in (2, 3):  # rows, then columns: out = sum_i k_i * shift_i(edge-padded x)
        n = x.shape[dim]
        pad = list(x.shape)
        pad[dim] = r
        z = torch.cat((x.narrow(dim, 0, 1).expand(pad), x, x.narrow(dim, n - 1, 1).expand(pad)), dim)
        out = z.narrow(dim, 0, n) * k[0]
        for i in range(1, len(k)):
            out.add_(z.narrow(dim, i, n), alpha=k[i])
        x = out
    return x


def _quantize_8bit(x: Tensor) -> Tensor:
    """Truncate to 8-bit levels as ``np.uint8(255 * x)`` does: ``floor(255 x) / 255``."""
    return torch.floor(x * 255.0 + LEVEL_TOLERANCE).clamp_(0.0, 255.0) / 255.0


@lru_cache(maxsize=64)
def _wavefronts(h: int, w: int, delta: int) -> Tuple[Tuple[Tensor, Tensor], ...]:
    """Group the steps of the sequential shuffle loop into sets that can run at once.

    Step ``(u, v)`` (the ``u``-th row and ``v``-th column visited, in the loop's order) acts
    on the pixel rows ``u - delta + 1 .. u + delta`` and columns ``v - delta + 1 .. v + delta``
    (counted the same way), so two steps touch a common pixel only if ``|du|, |dv| < 2 delta``.
    Front ``t = 2 delta u + v`` runs steps that touch disjoint pixels, and every pair of steps
    that do share one runs in the loop's order; hence running the fronts for ``t = 0, 1, ...``
    gives exactly the result of the loop.
    """
    hn, wn = h - 2 * delta, w - 2 * delta
    a = 2 * delta
    fronts = []
    for t in range(a * (hn - 1) + wn):
        us = [u for u in range(hn) if 0 <= t - a * u < wn]
        vs = [t - a * u for u in us]
        fronts.append((torch.tensor(us, dtype=torch.long), torch.tensor(vs, dtype=torch.long)))
    return tuple(fronts)


def _shuffle_index(h: int, w: int, delta: int, dy: Tensor, dx: Tensor, mode: str) -> Tensor:
    """Source index map ``(B, H * W)`` of one pass of the glass-blur pixel shuffle.

    The pass is the original generator's loop, with ``dy[b, u, v]``, ``dx[b, u, v]`` in
    ``[-delta, delta - 1]`` the offsets drawn at the ``u``-th visited row and ``v``-th visited
    column (row ``H - delta - u``, column ``W - delta - v``, 0-based; rows and columns run
    from ``H - delta`` down to ``delta + 1``)::

        for h = H - delta, ..., delta + 1:
            for w = W - delta, ..., delta + 1:
                (h', w') = (h + dy, w + dx)
                mode 'swap': exchange pixels (h, w) and (h', w')
                mode 'copy': pixel (h, w) <- pixel (h', w')

    Pixel ``p`` of the result is pixel ``index[b, p]`` of the input. ``'copy'`` with
    ``delta == 1`` reads only pixels the loop has not written yet, so it is one gather;
    otherwise the loop runs front by front (see :func:`_wavefronts`).
    """
    b = dy.shape[0]
    device = dy.device
    hn, wn = h - 2 * delta, w - 2 * delta
    rows = torch.arange(h - delta, delta, -1, device=device)  # visited rows, in loop order
    cols = torch.arange(w - delta, delta, -1, device=device)
    pos = rows[:, None] * w + cols[None, :]  # (hn, wn) flat position of step (u, v)
    off = dy * w + dx  # (B, hn, wn) flat offset of the partner pixel
    index = torch.arange(h * w, device=device).repeat(b, 1)
    if hn <= 0 or wn <= 0:
        return index
    if mode == "copy" and delta == 1:
        index[:, pos.reshape(-1)] = (pos + off).reshape(b, hn * wn)
        return index
    for us, vs in _wavefronts(h, w, delta):
        us, vs = us.to(device), vs.to(device)
        p = pos[us, vs]  # (k,)
        q = p + off[:, us, vs]  # (B, k)
        src = index.gather(1, q)
        if mode == "swap":
            mine = index[:, p]
            index[:, p] = src
            index.scatter_(1, q, mine)
        else:
            index[:, p] = src
    return index


def _local_shuffle(x: Tensor, delta: int, mode: str, gen: Optional[torch.Generator]) -> Tensor:
    """One pass of the glass-blur pixel shuffle with offsets drawn from ``gen`` (dy, then dx)."""
    b, c, h, w = x.shape
    hn, wn = h - 2 * delta, w - 2 * delta
    if hn <= 0 or wn <= 0:
        return x
    dy = _randint(-delta, delta, (b, hn, wn), gen, x.device)
    dx = _randint(-delta, delta, (b, hn, wn), gen, x.device)
    index = _shuffle_index(h, w, delta, dy, dx, mode)
    flat = x.reshape(b, c, h * w)
    return flat.gather(2, index[:, None, :].expand(b, c, h * w)).reshape(b, c, h, w)


def glass_blur(x: Tensor, sigma: float, delta: int, iterations: int,
               generator: GeneratorLike = None, mode: str = "copy",
               truncate: float = 4.0) -> Tensor:
    """Glass blur: Gaussian blur, 8-bit truncation, local pixel shuffles, Gaussian blur, clip.

    ``y = clip(G_sigma(S^iterations(floor(255 G_sigma(x)) / 255)), 0, 1)`` where ``G_sigma`` is
    scipy/scikit-image's Gaussian filter (``truncate`` standard deviations, edges replicated)
    and ``S`` one pass of the original generator's shuffle loop: for rows and then columns
    from ``size - delta`` down to ``delta + 1``, an offset ``(dy, dx)`` uniform on
    ``{-delta, ..., delta - 1}^2`` (numpy's ``randint(-delta, delta)``) and

    * ``mode='copy'`` (default): pixel ``(h, w)`` takes the value of ``(h + dy, w + dx)``,
      which is what the original code does to RGB arrays (its tuple "swap" of numpy views
      copies; see ``docs/corruptions.md``) and so what CIFAR-10-C contains;
    * ``mode='swap'``: the two pixels are exchanged, as the loop was meant to do.

    Both modes run the sequential loop exactly, vectorised over the batch and over sets of
    steps that touch disjoint pixels. All channels of a pixel move together.

    Args:
        x: images ``(B, C, H, W)``, C in {1, 3}, H, W >= 8, float, values in [0, 1].
        sigma: Gaussian standard deviation in pixels (>= 0).
        delta: maximal displacement (int >= 1).
        iterations: number of shuffle passes (int >= 0).
            CIFAR-10-C ``(sigma, delta, iterations)``: (.05,1,1) (.25,1,1) (.4,1,1) (.25,1,2)
            (.4,1,2).
        generator: ``None``, an int seed or a ``torch.Generator`` (see module docstring).
            Draws per pass: ``dy`` then ``dx``, each ``(B, H - 2 delta, W - 2 delta)``.
        mode: ``'copy'`` or ``'swap'``.
        truncate: Gaussian support in standard deviations (scipy's default 4.0).

    Returns:
        Tensor of the shape, dtype and device of ``x``, in [0, 1].
    """
    _check_images(x)
    sigma = _check_number("sigma", sigma, low=0.0)
    delta = _check_int("delta", delta, 1)
    iterations = _check_int("iterations", iterations, 0)
    truncate = _check_number("truncate", truncate, low=0.0)
    if mode not in ("copy", "swap"):
        raise ValueError(f"mode must be 'copy' or 'swap', got {mode!r}")
    gen = _generator(generator, x.device)
    w = _work(x)
    y = _quantize_8bit(_gaussian_blur(w, sigma, truncate))
    for _ in range(iterations):
        y = _local_shuffle(y, delta, mode, gen)
    y = _gaussian_blur(y, sigma, truncate)
    return y.clamp_(0.0, 1.0).to(x.dtype)


# --------------------------------------------------------------------------- motion blur


def _angles(angle: Union[float, Tensor, None], b: int, angle_range: Tuple[float, float],
            gen: Optional[torch.Generator], device: torch.device) -> Tensor:
    """Per-image angles in degrees as a CPU float64 tensor ``(B,)``."""
    if angle is None:
        lo = _check_number("angle_range[0]", angle_range[0])
        hi = _check_number("angle_range[1]", angle_range[1], low=lo)
        u = _rand((b,), gen, device, torch.float32).to("cpu", torch.float64)
        return lo + (hi - lo) * u
    a = torch.as_tensor(angle, dtype=torch.float64).to("cpu").reshape(-1)
    if a.numel() == 1:
        a = a.expand(b)
    if a.shape != (b,):
        raise ValueError(f"angle must be a number or have one entry per image ({b}), got {a.numel()}")
    if not bool(torch.isfinite(a).all()):
        raise ValueError("angle must be finite")
    return a


def _motion_taps(radius: float, sigma: float, angle: Tensor) -> Tuple[List[float], Tensor, Tensor]:
    """ImageMagick's ``MotionBlurImage`` kernel: weights ``(width,)`` and offsets ``(B, width)``.

    ``width = 2 ceil(radius) + 1``; ``k_i = exp(-i^2 / (2 sigma^2))`` for ``i = 0 .. width-1``,
    normalised to sum 1; tap ``i`` reads the pixel at ``(row + oy_i, col + ox_i)`` with
    ``ox_i = ceil(i cos(angle) - 1/2)``, ``oy_i = ceil(i sin(angle) - 1/2)`` (computed, as
    there, as ``i * width * cos / hypot(width * sin, width * cos)``).
    """
    width = int(2 * math.ceil(radius) + 1)
    k = [math.exp(-(i * i) / (2.0 * sigma * sigma)) for i in range(width)]
    s = math.fsum(k)
    weights = [v / s for v in k]
    rad = angle.to(torch.float64) * (math.pi / 180.0)
    px = width * torch.sin(rad)
    py = width * torch.cos(rad)
    hyp = torch.hypot(px, py)[:, None]
    i = torch.arange(width, dtype=torch.float64)[None, :]
    ox = torch.ceil(i * py[:, None] / hyp - 0.5).long()
    oy = torch.ceil(i * px[:, None] / hyp - 0.5).long()
    return weights, ox, oy


def motion_blur_kernel(radius: float, sigma: float, angle: Union[float, Tensor]) -> Tensor:
    """Dense 2-D motion-blur kernels, for inspection and tests.

    Returns ``K`` of shape ``(B, 2P + 1, 2P + 1)``, ``P = width - 1 = 2 ceil(radius)``, float64,
    with ``K[b, P + oy_i, P + ox_i] += k_i`` (see :func:`motion_blur`): the blur of image ``b``
    is ``out(r, c) = sum_{a, d} K[b, a, d] x(r + a - P, c + d - P)`` with edges replicated,
    i.e. ``conv2d`` (a correlation) of the edge-padded image with ``K``. Each kernel sums to 1.

    Args:
        radius: line half-length parameter (> 0); ``width = 2 ceil(radius) + 1`` taps.
        sigma: Gaussian standard deviation of the tap weights (> 0).
        angle: degrees, a number or a 1-D tensor ``(B,)``.
    """
    radius = _check_number("radius", radius, low=0.0, low_open=True)
    sigma = _check_number("sigma", sigma, low=0.0, low_open=True)
    a = torch.as_tensor(angle, dtype=torch.float64).to("cpu").reshape(-1)
    weights, ox, oy = _motion_taps(radius, sigma, a)
    p = len(weights) - 1
    kern = torch.zeros(a.numel(), 2 * p + 1, 2 * p + 1, dtype=torch.float64)
    for i, k in enumerate(weights):
        for b in range(a.numel()):
            kern[b, p + int(oy[b, i]), p + int(ox[b, i])] += k
    return kern


def motion_blur(x: Tensor, radius: float, sigma: float, generator: GeneratorLike = None,
                angle: Union[float, Tensor, None] = None,
                angle_range: Tuple[float, float] = (-45.0, 45.0)) -> Tensor:
    """Motion blur with ImageMagick's ``MotionBlurImage(radius, sigma, angle)`` kernel.

    ``out(r, c) = sum_{i=0}^{width-1} k_i x(r + oy_i, c + ox_i)``, a one-sided line of
    ``width = 2 ceil(radius) + 1`` taps with Gaussian weights ``k_i ~ exp(-i^2 / (2 sigma^2))``
    (normalised to sum 1) and offsets ``ox_i = ceil(i cos(theta) - 1/2)``,
    ``oy_i = ceil(i sin(theta) - 1/2)``; pixels outside the image are the nearest edge pixel
    (ImageMagick's default virtual-pixel method). One angle ``theta`` per image, uniform on
    ``angle_range`` degrees unless given. Result clipped to [0, 1].

    Args:
        x: images ``(B, C, H, W)``, C in {1, 3}, H, W >= 8, float, values in [0, 1].
        radius: (> 0). sigma: (> 0). CIFAR-10-C ``(radius, sigma)``: (6,1) (6,1.5) (6,2) (8,2)
            (9,2.5).
        generator: ``None``, an int seed or a ``torch.Generator`` (see module docstring).
            Draws: the angles, ``(B,)``, when ``angle`` is None.
        angle: fixed angle(s) in degrees (a number or ``(B,)``) instead of random ones.
        angle_range: ``(low, high)`` of the uniform angle in degrees (default (-45, 45)).

    Returns:
        Tensor of the shape, dtype and device of ``x``, in [0, 1].
    """
    _check_images(x)
    radius = _check_number("radius", radius, low=0.0, low_open=True)
    sigma = _check_number("sigma", sigma, low=0.0, low_open=True)
    gen = _generator(generator, x.device)
    w = _work(x)
    b, c, h, wd = w.shape
    theta = _angles(angle, b, angle_range, gen, w.device)
    weights, ox, oy = _motion_taps(radius, sigma, theta)
    ox, oy = ox.to(w.device), oy.to(w.device)
    rows = torch.arange(h, device=w.device)
    cols = torch.arange(wd, device=w.device)
    flat = w.reshape(b, c, h * wd)
    out = torch.zeros_like(flat)
    for i, k in enumerate(weights):
        rr = (rows[None, :] + oy[:, i : i + 1]).clamp_(0, h - 1)  # (B, H)
        cc = (cols[None, :] + ox[:, i : i + 1]).clamp_(0, wd - 1)  # (B, W)
        index = (rr[:, :, None] * wd + cc[:, None, :]).reshape(b, 1, h * wd).expand(b, c, h * wd)
        out.add_(flat.gather(2, index), alpha=k)
    return out.reshape(b, c, h, wd).clamp_(0.0, 1.0).to(x.dtype)


# --------------------------------------------------------------------------- photometric


def _rgb_to_hsv(rgb: Tensor) -> Tensor:
    """RGB -> HSV on dim 1, all in [0, 1], with scikit-image's ``rgb2hsv`` conventions.

    ``V = max``, ``S = (max - min) / V`` (0 where ``max == min``), hue in [0, 1) from the
    maximal channel (ties: blue over green over red), hue 0 for grays.
    """
    r, g, b = rgb.unbind(1)
    v = rgb.amax(1)
    delta = v - rgb.amin(1)
    gray = delta == 0
    safe = torch.where(gray, torch.ones_like(delta), delta)
    s = torch.where(gray, torch.zeros_like(delta), delta / torch.where(gray, torch.ones_like(v), v))
    hue = torch.where(
        b == v, 4.0 + (r - g) / safe, torch.where(g == v, 2.0 + (b - r) / safe, (g - b) / safe)
    )
    hue = torch.remainder(hue / 6.0, 1.0)
    hue = torch.where(gray, torch.zeros_like(hue), hue)
    return torch.stack((hue, s, v), dim=1)


def _hsv_to_rgb(hsv: Tensor) -> Tensor:
    """HSV -> RGB on dim 1 with scikit-image's ``hsv2rgb`` formula (sector ``floor(6 h) mod 6``)."""
    h, s, v = hsv.unbind(1)
    h6 = h * 6.0
    sector = torch.floor(h6)
    f = h6 - sector
    p = v * (1.0 - s)
    q = v * (1.0 - f * s)
    t = v * (1.0 - (1.0 - f) * s)
    idx = torch.remainder(sector, 6).long().unsqueeze(1)  # (B, 1, H, W)
    r = torch.stack((v, q, p, p, t, v), dim=1).gather(1, idx)
    g = torch.stack((t, v, v, q, p, p), dim=1).gather(1, idx)
    b = torch.stack((p, p, t, v, v, q), dim=1).gather(1, idx)
    return torch.cat((r, g, b), dim=1)


def brightness(x: Tensor, b: float) -> Tensor:
    """Brightness: add ``b`` to the HSV value channel, clip it to [0, 1], convert back.

    RGB: ``hsv2rgb(H, S, clip(V + b, 0, 1))`` (scikit-image conventions); one channel: the
    pixel is its own V, so ``clip(x + b, 0, 1)``.

    Args:
        x: images ``(B, C, H, W)``, C in {1, 3}, H, W >= 8, float, values in [0, 1].
        b: brightness shift; CIFAR-10-C: .05 .10 .15 .20 .30.

    Returns:
        Tensor of the shape, dtype and device of ``x``, in [0, 1].
    """
    _check_images(x)
    b = _check_number("b", b)
    w = _work(x)
    if w.shape[1] == 1:
        return (w + b).clamp_(0.0, 1.0).to(x.dtype)
    hsv = _rgb_to_hsv(w)
    hsv = torch.cat((hsv[:, :2], (hsv[:, 2:] + b).clamp(0.0, 1.0)), dim=1)
    return _hsv_to_rgb(hsv).clamp_(0.0, 1.0).to(x.dtype)


def contrast(x: Tensor, c: float) -> Tensor:
    """Contrast: ``clip((x - m) c + m, 0, 1)``, ``m`` the spatial mean per image and channel.

    Args:
        x: images ``(B, C, H, W)``, C in {1, 3}, H, W >= 8, float, values in [0, 1].
        c: contrast factor; CIFAR-10-C: .75 .50 .40 .30 .15.

    Returns:
        Tensor of the shape, dtype and device of ``x``, in [0, 1].
    """
    _check_images(x)
    c = _check_number("c", c)
    w = _work(x)
    m = w.mean(dim=(2, 3), keepdim=True)
    return ((w - m) * c + m).clamp_(0.0, 1.0).to(x.dtype)


# --------------------------------------------------------------------------- dispatch

_RANDOM: Dict[str, Callable[..., Tensor]] = {
    "gaussian_noise": gaussian_noise,
    "glass_blur": glass_blur,
    "shot_noise": shot_noise,
    "impulse_noise": impulse_noise,
    "speckle_noise": speckle_noise,
    "motion_blur": motion_blur,
}
_DETERMINISTIC: Dict[str, Callable[..., Tensor]] = {"brightness": brightness, "contrast": contrast}


def _check_name_severity(name: str, severity: int) -> int:
    if name not in CIFAR10C_PARAMS:
        raise ValueError(f"unknown corruption {name!r}; expected one of {', '.join(CORRUPTIONS)}")
    if isinstance(severity, bool):
        raise ValueError(f"severity must be an integer in 1..5, got {severity!r}")
    try:
        s = operator.index(severity)
    except TypeError:
        raise ValueError(f"severity must be an integer in 1..5, got {severity!r}") from None
    if not 1 <= s <= 5:
        raise ValueError(f"severity must be an integer in 1..5, got {severity!r}")
    return s


def corrupt(x: Tensor, name: str, severity: int, generator: GeneratorLike = None, *,
            quantize: bool = False) -> Tensor:
    """Apply corruption ``name`` at CIFAR-10-C ``severity`` (1..5) to a batch of images.

    Args:
        x: images ``(B, C, H, W)``, C in {1, 3}, H, W >= 8, float, values in [0, 1].
        name: one of :data:`CORRUPTIONS`.
        severity: integer in 1..5; the parameters are ``CIFAR10C_PARAMS[name][severity - 1]``.
        generator: ``None``, an int seed or a ``torch.Generator``; ignored by the deterministic
            ``brightness`` and ``contrast``.
        quantize: if True, truncate the result to 8-bit levels, ``floor(255 y) / 255``, as the
            released CIFAR-10-C arrays are stored (``np.uint8(255 y)``).

    Returns:
        Tensor of the shape, dtype and device of ``x``, in [0, 1].

    Raises:
        ValueError: unknown ``name``, ``severity`` outside 1..5, or ``x`` not a float batch of
            1- or 3-channel images of at least 8x8 pixels with values in [0, 1].
    """
    s = _check_name_severity(name, severity)
    p = CIFAR10C_PARAMS[name][s - 1]
    args = p if isinstance(p, tuple) else (p,)
    if name in _RANDOM:
        y = _RANDOM[name](x, *args, generator=generator)
    else:
        y = _DETERMINISTIC[name](x, *args)
    if quantize:
        y = _quantize_8bit(_work(y)).to(x.dtype)
    return y


class Corruption(torch.nn.Module):
    """``nn.Module`` applying one corruption at one CIFAR-10-C severity (see :func:`corrupt`).

    Input: images ``(B, C, H, W)``, C in {1, 3}, H, W >= 8, float, values in [0, 1]; output of
    the same shape, dtype and device, in [0, 1].

    Args:
        name: one of :data:`CORRUPTIONS`.
        severity: integer in 1..5.
        seed: ``None`` to draw from torch's global generator; an int to draw from a generator
            of this module seeded once per device on first use and advanced by every call
            (a fixed sequence of batches gives a reproducible sequence of outputs).
        quantize: truncate outputs to 8-bit levels (see :func:`corrupt`).
    """

    def __init__(self, name: str, severity: int, seed: Optional[int] = None,
                 quantize: bool = False) -> None:
        super().__init__()
        self.name = name
        self.severity = _check_name_severity(name, severity)
        self.seed = None if seed is None else _check_int("seed", seed, -(2**63))
        self.quantize = bool(quantize)
        self._generators: Dict[str, torch.Generator] = {}

    def forward(self, x: Tensor) -> Tensor:
        gen = None
        if self.seed is not None:
            key = str(x.device)
            if key not in self._generators:
                self._generators[key] = _generator(self.seed, x.device)
            gen = self._generators[key]
        return corrupt(x, self.name, self.severity, gen, quantize=self.quantize)

    def extra_repr(self) -> str:
        return f"name={self.name!r}, severity={self.severity}, seed={self.seed}, quantize={self.quantize}"
