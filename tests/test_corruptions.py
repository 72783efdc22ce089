"""Tests of the batched CIFAR-10-C corruptions (zubovnet.evaluation.corruptions).

Every corruption is checked against its definition on inputs with known answers (mid-gray
images, constant images, exact algebraic identities), the glass-blur shuffle against a plain
sequential loop, and, where ``imagecorruptions`` (the ``imagecorruptions-imaug`` package)
imports, against that implementation of Hendrycks & Dietterich's generator.
"""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from zubovnet.evaluation import corruptions as C
from zubovnet.evaluation.corruptions import (
    CIFAR10C_PARAMS,
    CORRUPTIONS,
    Corruption,
    brightness,
    contrast,
    corrupt,
    gaussian_noise,
    glass_blur,
    impulse_noise,
    motion_blur,
    motion_blur_kernel,
    shot_noise,
    speckle_noise,
)

RANDOM = ("gaussian_noise", "glass_blur", "shot_noise", "impulse_noise", "speckle_noise", "motion_blur")
DETERMINISTIC = ("brightness", "contrast")


def images(b=4, c=3, h=32, w=None, seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(b, c, h, h if w is None else w, generator=g, dtype=dtype)


def smooth_images(b=8, c=3, h=32, seed=0):
    """Random images with spatial correlation (a blurred, rescaled noise field)."""
    x = images(b, c, h, seed=seed, dtype=torch.float64)
    x = F.avg_pool2d(F.pad(x, (2, 2, 2, 2), mode="replicate"), 5, stride=1)
    return 0.15 + 0.7 * (x - x.amin()) / (x.amax() - x.amin())


def gray(value, b=16, c=3, h=32, dtype=torch.float64):
    return torch.full((b, c, h, h), value, dtype=dtype)


# ----------------------------------------------------------------------------- API


def test_names_in_table_order():
    assert CORRUPTIONS == (
        "gaussian_noise", "glass_blur", "shot_noise", "impulse_noise",
        "speckle_noise", "motion_blur", "brightness", "contrast",
    )
    assert set(CIFAR10C_PARAMS) == set(CORRUPTIONS)


def test_cifar10c_parameter_table():
    # docs/corruptions.md / the CIFAR-10-C generator, severities 1 -> 5.
    expected = {
        "gaussian_noise": (0.04, 0.06, 0.08, 0.09, 0.10),
        "glass_blur": ((0.05, 1, 1), (0.25, 1, 1), (0.4, 1, 1), (0.25, 1, 2), (0.4, 1, 2)),
        "shot_noise": (500, 250, 100, 75, 50),
        "impulse_noise": (0.01, 0.02, 0.03, 0.05, 0.07),
        "speckle_noise": (0.06, 0.10, 0.12, 0.16, 0.20),
        "motion_blur": ((6, 1), (6, 1.5), (6, 2), (8, 2), (9, 2.5)),
        "brightness": (0.05, 0.10, 0.15, 0.20, 0.30),
        "contrast": (0.75, 0.50, 0.40, 0.30, 0.15),
    }
    for name, params in expected.items():
        assert len(CIFAR10C_PARAMS[name]) == 5
        assert np.allclose(np.array(CIFAR10C_PARAMS[name], dtype=float), np.array(params, dtype=float))


def test_corrupt_uses_the_table():
    x = images(2, 3, 16)
    for name in CORRUPTIONS:
        for s in range(1, 6):
            p = CIFAR10C_PARAMS[name][s - 1]
            args = p if isinstance(p, tuple) else (p,)
            fn = getattr(C, name)
            direct = fn(x, *args, generator=7) if name in RANDOM else fn(x, *args)
            assert torch.equal(corrupt(x, name, s, generator=7), direct), (name, s)


@pytest.mark.parametrize("name", CORRUPTIONS)
@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("size", [(8, 8), (32, 32), (9, 14)])
def test_range_shape_dtype_every_severity(name, channels, size):
    x = images(3, channels, size[0], size[1], seed=1)
    x[0] = 0.0  # all-black and all-white images reach the clipping bounds
    x[1] = 1.0
    for s in range(1, 6):
        y = corrupt(x, name, s, generator=s)
        assert y.shape == x.shape and y.dtype == x.dtype and y.device == x.device
        assert torch.isfinite(y).all()
        assert y.min() >= 0.0 and y.max() <= 1.0, (name, s)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float16, torch.bfloat16])
def test_dtype_preserved(dtype):
    x = images(2, 3, 8).to(dtype)
    for name in CORRUPTIONS:
        y = corrupt(x, name, 3, generator=0)
        assert y.dtype == dtype and y.min() >= 0 and y.max() <= 1


def test_empty_batch():
    x = torch.zeros(0, 3, 8, 8)
    for name in CORRUPTIONS:
        assert corrupt(x, name, 5, generator=0).shape == x.shape


def test_input_does_not_change():
    x = images(2, 3, 16)
    x0 = x.clone()
    for name in CORRUPTIONS:
        corrupt(x, name, 5, generator=0)
    assert torch.equal(x, x0)


# ----------------------------------------------------------------------------- seeds


@pytest.mark.parametrize("name", RANDOM)
def test_same_seed_same_output_other_seed_other_output(name):
    x = images(4, 3, 16, seed=3)
    a = corrupt(x, name, 3, generator=123)
    assert torch.equal(a, corrupt(x, name, 3, generator=123))
    assert torch.equal(a, corrupt(x, name, 3, generator=torch.Generator().manual_seed(123)))
    assert not torch.equal(a, corrupt(x, name, 3, generator=124))
    # A generator advances: two draws from it differ, and replay from the same seed.
    g = torch.Generator().manual_seed(5)
    first, second = corrupt(x, name, 3, generator=g), corrupt(x, name, 3, generator=g)
    assert not torch.equal(first, second)
    g.manual_seed(5)
    assert torch.equal(first, corrupt(x, name, 3, generator=g))
    # None draws from torch's global generator.
    torch.manual_seed(9)
    b = corrupt(x, name, 3)
    torch.manual_seed(9)
    assert torch.equal(b, corrupt(x, name, 3))


@pytest.mark.parametrize("name", DETERMINISTIC)
def test_deterministic_corruptions_ignore_the_seed(name):
    x = images(4, 3, 16)
    assert torch.equal(corrupt(x, name, 4, generator=1), corrupt(x, name, 4, generator=2))


def test_corruption_module():
    x = images(4, 3, 16)
    m = Corruption("gaussian_noise", 5, seed=11)
    assert isinstance(m, torch.nn.Module) and "gaussian_noise" in repr(m)
    g = torch.Generator().manual_seed(11)
    first = m(x)
    assert torch.equal(first, corrupt(x, "gaussian_noise", 5, generator=g))
    second = m(x)
    assert torch.equal(second, corrupt(x, "gaussian_noise", 5, generator=g))
    assert not torch.equal(first, second)
    assert torch.equal(Corruption("gaussian_noise", 5, seed=11)(x), first)
    with pytest.raises(ValueError):
        Corruption("fog", 1)
    with pytest.raises(ValueError):
        Corruption("contrast", 6)


def test_quantize_truncates_to_8_bit():
    x = images(4, 3, 16)
    for name in CORRUPTIONS:
        y = corrupt(x, name, 2, generator=3)
        q = corrupt(x, name, 2, generator=3, quantize=True)
        levels = q * 255
        assert torch.allclose(levels, levels.round(), atol=1e-4)
        assert torch.allclose(q, torch.floor(y * 255 + C.LEVEL_TOLERANCE) / 255, atol=1e-6)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_stays_on_device_and_is_reproducible():
    x = images(4, 3, 32).cuda()
    for name in CORRUPTIONS:
        a = corrupt(x, name, 5, generator=1)
        assert a.device == x.device and a.min() >= 0 and a.max() <= 1
        assert torch.equal(a, corrupt(x, name, 5, generator=1))
    # A CPU generator also works for CUDA inputs (draws made on the CPU, then moved).
    g = torch.Generator().manual_seed(0)
    assert corrupt(x, "shot_noise", 1, generator=g).device == x.device


# ----------------------------------------------------------------------------- validation


def test_invalid_name_and_severity():
    x = images(1, 3, 8)
    with pytest.raises(ValueError, match="unknown corruption"):
        corrupt(x, "fog", 1)
    for s in (0, 6, -1, 2.0, True, "3", None):
        with pytest.raises(ValueError, match="severity"):
            corrupt(x, "contrast", s)
    assert torch.equal(corrupt(x, "contrast", np.int64(2)), corrupt(x, "contrast", 2))


@pytest.mark.parametrize(
    "bad",
    [
        torch.full((1, 3, 8, 8), 1.5),
        torch.full((1, 3, 8, 8), -0.01),
        torch.full((1, 3, 8, 8), float("nan")),
        torch.rand(3, 8, 8),
        torch.rand(1, 2, 8, 8),
        torch.rand(1, 4, 8, 8),
        torch.rand(1, 3, 7, 8),
        torch.rand(1, 3, 8, 7),
        torch.randint(0, 255, (1, 3, 8, 8), dtype=torch.uint8),
    ],
)
def test_invalid_images(bad):
    for name in CORRUPTIONS:
        with pytest.raises(ValueError):
            corrupt(bad, name, 1)


def test_invalid_parameters():
    x = images(1, 3, 8)
    with pytest.raises(TypeError):
        corrupt(x.numpy(), "contrast", 1)
    with pytest.raises(TypeError):
        gaussian_noise(x, 0.1, generator="seed")
    cases = [
        lambda: gaussian_noise(x, -0.1),
        lambda: speckle_noise(x, float("nan")),
        lambda: shot_noise(x, 0),
        lambda: impulse_noise(x, 1.5),
        lambda: impulse_noise(x, 0.1, salt_vs_pepper=-1),
        lambda: glass_blur(x, 0.4, 0, 1),
        lambda: glass_blur(x, 0.4, 1, -1),
        lambda: glass_blur(x, 0.4, 1.5, 1),
        lambda: glass_blur(x, 0.4, 1, 1, mode="scatter"),
        lambda: motion_blur(x, 0, 1),
        lambda: motion_blur(x, 6, 0),
        lambda: motion_blur(x, 6, 1, angle=torch.zeros(3)),
        lambda: brightness(x, float("inf")),
        lambda: contrast(x, float("nan")),
    ]
    for case in cases:
        with pytest.raises(ValueError):
            case()


# ----------------------------------------------------------------------------- noises


@pytest.mark.parametrize("sigma", CIFAR10C_PARAMS["gaussian_noise"])
def test_gaussian_noise_residual_is_n0_sigma(sigma):
    x = gray(0.5)  # 49,152 values; clipping needs |z| > 5
    r = (gaussian_noise(x, sigma, generator=0) - x).flatten()
    n = r.numel()
    assert abs(float(r.mean())) < 5 * sigma / math.sqrt(n)
    assert float(r.std()) == pytest.approx(sigma, rel=5 / math.sqrt(2 * n))
    # Gaussian tails: P(|z| > 2) = 0.0455
    assert float((r.abs() > 2 * sigma).double().mean()) == pytest.approx(0.0455, abs=0.005)


@pytest.mark.parametrize("lam", CIFAR10C_PARAMS["shot_noise"])
def test_shot_noise_is_poisson_over_lambda(lam):
    x0 = 0.3
    x = gray(x0)
    y = shot_noise(x, lam, generator=0).flatten()
    n = y.numel()
    var = x0 / lam
    assert float(y.mean()) == pytest.approx(x0, abs=5 * math.sqrt(var / n))
    assert float(y.var()) == pytest.approx(var, rel=0.04)
    counts = y * lam  # integer photon counts
    assert torch.allclose(counts, counts.round(), atol=1e-6)


def test_shot_noise_of_black_and_white():
    assert torch.equal(shot_noise(gray(0.0, b=2), 50, generator=0), gray(0.0, b=2))
    y = shot_noise(gray(1.0, b=4), 50, generator=0)  # Poisson(50)/50 clipped: P(<50) ~ 0.48
    assert float((y == 1.0).double().mean()) == pytest.approx(0.52, abs=0.03)


@pytest.mark.parametrize("amount", CIFAR10C_PARAMS["impulse_noise"])
def test_impulse_noise_replaces_a_fraction_a_of_values(amount):
    x = gray(0.5)
    y = impulse_noise(x, amount, generator=0)
    changed = y != x
    n = x.numel()
    frac = float(changed.double().mean())
    assert frac == pytest.approx(amount, abs=5 * math.sqrt(amount * (1 - amount) / n))
    assert set(torch.unique(y[changed]).tolist()) <= {0.0, 1.0}
    salt = float((y[changed] == 1.0).double().mean())
    assert salt == pytest.approx(0.5, abs=5 * math.sqrt(0.25 / changed.sum().item()))
    # Values (not pixels) are replaced independently: P(exactly one of 3 channels) = 3a(1-a)^2.
    one_of_three = float((changed.sum(1) == 1).double().mean())
    assert one_of_three == pytest.approx(3 * amount * (1 - amount) ** 2, rel=0.1)


def test_impulse_noise_salt_vs_pepper():
    x = gray(0.5, b=4)
    y = impulse_noise(x, 1.0, generator=0, salt_vs_pepper=1.0)
    assert torch.equal(y, torch.ones_like(x))
    assert torch.equal(impulse_noise(x, 1.0, generator=0, salt_vs_pepper=0.0), torch.zeros_like(x))
    assert torch.equal(impulse_noise(x, 0.0, generator=0), x)


@pytest.mark.parametrize("sigma", CIFAR10C_PARAMS["speckle_noise"])
def test_speckle_noise_residual_std_is_sigma_x(sigma):
    x = gray(0.5)
    x[:, :, :16] = 0.2  # two gray levels: the residual scales with x
    r = speckle_noise(x, sigma, generator=0) - x
    for level in (0.2, 0.5):
        rr = r[x == level]
        n = rr.numel()
        assert float(rr.std()) == pytest.approx(sigma * level, rel=5 / math.sqrt(2 * n))
        assert abs(float(rr.mean())) < 5 * sigma * level / math.sqrt(n)
    assert torch.equal(speckle_noise(gray(0.0, b=2), sigma, generator=0), gray(0.0, b=2))


# ----------------------------------------------------------------------------- photometric


@pytest.mark.parametrize("c", CIFAR10C_PARAMS["contrast"])
@pytest.mark.parametrize("channels", [1, 3])
def test_contrast_scales_deviations_from_the_mean_by_c(c, channels):
    x = images(4, channels, 16, dtype=torch.float64)
    y = contrast(x, c)
    m = x.mean(dim=(2, 3), keepdim=True)
    # (x - m) c + m is a convex combination of x and m for c in [0, 1]: never clipped.
    assert torch.allclose(y - m, c * (x - m), atol=1e-12)
    assert torch.allclose(y.mean(dim=(2, 3)), m[..., 0, 0], atol=1e-12)


@pytest.mark.parametrize("b", CIFAR10C_PARAMS["brightness"])
def test_brightness_on_gray_is_clipped_addition(b):
    x = images(4, 1, 16, dtype=torch.float64)
    assert torch.allclose(brightness(x, b), (x + b).clamp(0, 1), atol=1e-12)
    # A gray RGB image (r = g = b) has S = 0 and V = the pixel: the same answer.
    x3 = x.expand(-1, 3, -1, -1).contiguous()
    assert torch.allclose(brightness(x3, b), (x3 + b).clamp(0, 1), atol=1e-12)


@pytest.mark.parametrize("b", CIFAR10C_PARAMS["brightness"])
def test_brightness_on_colour_keeps_hue_and_saturation(b):
    x = images(4, 3, 16, dtype=torch.float64)
    x[:, :, 0, 0] = 0.0  # a black pixel becomes (b, b, b)
    y = brightness(x, b)
    v = x.amax(1, keepdim=True)
    v_new = (v + b).clamp(max=1.0)
    # Only V changes, so every channel scales by V'/V.
    nonblack = (v > 0).expand_as(x)
    assert torch.allclose(y[nonblack], (x * v_new / v)[nonblack], atol=1e-12)
    assert torch.allclose(y[:, :, 0, 0], torch.full_like(y[:, :, 0, 0], b), atol=1e-12)
    hsv_x, hsv_y = C._rgb_to_hsv(x), C._rgb_to_hsv(y)
    keep = (v[:, 0] > 0) & (hsv_x[:, 1] > 0)
    assert torch.allclose(hsv_x[:, :2].permute(1, 0, 2, 3)[:, keep],
                          hsv_y[:, :2].permute(1, 0, 2, 3)[:, keep], atol=1e-9)


def test_hsv_round_trip_and_known_values():
    x = images(4, 3, 16, dtype=torch.float64)
    assert torch.allclose(C._hsv_to_rgb(C._rgb_to_hsv(x)), x, atol=1e-12)
    rgb = torch.tensor([[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0], [0.5, 0.5, 0.5], [0, 0, 0]],
                       dtype=torch.float64).T.reshape(1, 3, 6, 1)
    hsv = C._rgb_to_hsv(rgb)[0, :, :, 0].T
    expected = torch.tensor([[0, 1, 1], [1 / 3, 1, 1], [2 / 3, 1, 1], [1 / 6, 1, 1],
                             [0, 0, 0.5], [0, 0, 0]], dtype=torch.float64)
    assert torch.allclose(hsv, expected, atol=1e-12)


# ----------------------------------------------------------------------------- motion blur


@pytest.mark.parametrize("radius,sigma", CIFAR10C_PARAMS["motion_blur"])
def test_motion_blur_kernel_is_a_normalised_one_sided_line(radius, sigma):
    angles = torch.tensor([-45.0, -20.0, 0.0, 13.0, 45.0])
    k = motion_blur_kernel(radius, sigma, angles)
    width = 2 * radius + 1
    p = width - 1
    assert k.shape == (5, 2 * p + 1, 2 * p + 1)
    assert torch.allclose(k.sum(dim=(1, 2)), torch.ones(5, dtype=torch.float64), atol=1e-12)
    taps = np.exp(-np.arange(width) ** 2 / (2 * sigma**2))
    taps /= taps.sum()
    # Angle 0: a horizontal line to the right of the pixel, weights exp(-i^2 / 2 sigma^2).
    assert torch.allclose(k[2, p, p:], torch.from_numpy(taps), atol=1e-12)
    assert float(k[2].sum() - k[2, p, p:].sum()) == 0.0
    for b in range(5):
        assert float(k[b, p, p]) == pytest.approx(taps[0])  # centre tap is the largest
        rows, cols = torch.nonzero(k[b], as_tuple=True)
        # One-sided: offsets point into the half plane of the motion direction, |angle| <= 45.
        assert (cols >= p).all()
        assert len(rows) <= width
    # Angle 45: the line is the diagonal towards larger rows and columns.
    rows, cols = torch.nonzero(k[4], as_tuple=True)
    assert torch.equal(rows, cols)


@pytest.mark.parametrize("radius,sigma", CIFAR10C_PARAMS["motion_blur"])
def test_motion_blur_equals_conv_with_the_kernel(radius, sigma):
    x = images(4, 3, 16, dtype=torch.float64)  # offsets reach 18 px > 16 px: edges matter
    angles = torch.tensor([-41.0, -3.5, 22.0, 44.0])
    y = motion_blur(x, radius, sigma, angle=angles)
    k = motion_blur_kernel(radius, sigma, angles)
    p = k.shape[-1] // 2
    for b in range(4):
        xp = F.pad(x[b : b + 1], (p, p, p, p), mode="replicate")
        ref = F.conv2d(xp.transpose(0, 1), k[b][None, None]).transpose(0, 1)
        assert torch.allclose(y[b : b + 1], ref.clamp(0, 1), atol=1e-12)


def test_motion_blur_preserves_constants_and_draws_one_angle_per_image():
    for radius, sigma in CIFAR10C_PARAMS["motion_blur"]:
        x = gray(0.37, b=4, c=3, h=8)
        assert torch.allclose(motion_blur(x, radius, sigma, generator=0), x, atol=1e-12)
    x = images(1, 3, 32, dtype=torch.float64).expand(16, -1, -1, -1).contiguous()
    y = motion_blur(x, 6, 2.0, generator=0)
    distinct = {tuple(y[i].flatten()[:50].tolist()) for i in range(16)}
    assert len(distinct) > 8
    # Fixed angles reproduce: a scalar angle applies to every image.
    assert torch.equal(motion_blur(x, 6, 2.0, angle=10.0)[0], motion_blur(x[:1], 6, 2.0, angle=10.0)[0])


# ----------------------------------------------------------------------------- glass blur


def sequential_shuffle(index, dy, dx, delta, mode):
    """The original generator's loop on a 2-D array of scalars (no numpy views involved)."""
    x = index.copy()
    h, w = x.shape
    for u, row in enumerate(range(h - delta, delta, -1)):
        for v, col in enumerate(range(w - delta, delta, -1)):
            r2, c2 = row + dy[u, v], col + dx[u, v]
            if mode == "swap":
                x[row, col], x[r2, c2] = x[r2, c2], x[row, col]
            else:
                x[row, col] = x[r2, c2]
    return x


@pytest.mark.parametrize("mode", ["copy", "swap"])
@pytest.mark.parametrize("delta,h,w", [(1, 8, 8), (1, 9, 13), (2, 8, 11), (2, 12, 9), (3, 14, 12)])
def test_shuffle_equals_the_sequential_loop(mode, delta, h, w):
    g = torch.Generator().manual_seed(delta * 100 + h * 10 + w)
    b = 6
    dy = torch.randint(-delta, delta, (b, h - 2 * delta, w - 2 * delta), generator=g)
    dx = torch.randint(-delta, delta, (b, h - 2 * delta, w - 2 * delta), generator=g)
    index = C._shuffle_index(h, w, delta, dy, dx, mode).reshape(b, h, w).numpy()
    start = np.arange(h * w).reshape(h, w)
    for i in range(b):
        expected = sequential_shuffle(start, dy[i].numpy(), dx[i].numpy(), delta, mode)
        assert np.array_equal(index[i], expected), (i, mode, delta)
        if mode == "swap":
            assert sorted(index[i].ravel()) == list(range(h * w))  # a permutation


def test_original_tuple_swap_on_rgb_arrays_copies():
    # Why mode='copy' is the default: the generator's `x[h, w], x[h2, w2] = x[h2, w2], x[h, w]`
    # on an (H, W, 3) array assigns through views, so both pixels end up equal.
    x = np.arange(12).reshape(2, 2, 3)
    x[0, 0], x[1, 1] = x[1, 1], x[0, 0]
    assert x[0, 0].tolist() == x[1, 1].tolist() == [9, 10, 11]


@pytest.mark.parametrize("sigma,delta,iterations", CIFAR10C_PARAMS["glass_blur"])
def test_glass_blur_preserves_constant_images_and_the_mean(sigma, delta, iterations):
    for level in (0, 37, 128, 255):
        x = gray(level / 255, b=2, c=3, h=16, dtype=torch.float32)
        y = glass_blur(x, sigma, delta, iterations, generator=0)
        assert torch.allclose(y, x, atol=1e-6), level
    x = smooth_images()
    for mode in ("copy", "swap"):
        y = glass_blur(x, sigma, delta, iterations, generator=0, mode=mode)
        # Truncation to 8 bits lowers the mean by ~0.5/255; shuffles move values locally.
        assert abs(float(y.mean() - x.mean())) < 2.5 / 255
        assert float((y - x).abs().mean()) < 0.05


def test_glass_blur_stages():
    x = images(4, 3, 16, dtype=torch.float64)
    # sigma .05 has a one-tap kernel (radius int(4 * .05 + .5) = 0): only 8-bit truncation.
    q = torch.floor(x * 255 + C.LEVEL_TOLERANCE) / 255
    assert torch.equal(glass_blur(x, 0.05, 1, 0), q)
    # A swap pass permutes pixels: the multiset of pixel values is kept.
    y = glass_blur(x, 0.05, 1, 2, generator=0, mode="swap")
    assert torch.equal(y.flatten(1).sort(1).values, q.flatten(1).sort(1).values)
    assert not torch.equal(y, q)
    # A copy pass with delta 1 draws each visited pixel from {-1, 0}^2 offsets; rows and
    # columns 0 and 1 are never written.
    y = glass_blur(x, 0.05, 1, 1, generator=0)
    assert torch.equal(y[:, :, :2], q[:, :, :2]) and torch.equal(y[:, :, :, :2], q[:, :, :, :2])
    candidates = torch.stack([q.roll((a, b), (2, 3)) for a in (0, 1) for b in (0, 1)])
    assert ((candidates == y).any(0)).all()


@pytest.mark.parametrize("sigma", [0.05, 0.25, 0.4, 1.0, 3.0])
def test_gaussian_blur_matches_scipy(sigma):
    from scipy.ndimage import gaussian_filter

    x = images(2, 3, 12, w=9, dtype=torch.float64)
    ours = C._gaussian_blur(x, sigma)
    for b in range(2):
        ref = gaussian_filter(x[b].numpy(), sigma=(0, sigma, sigma), mode="nearest", truncate=4.0)
        assert np.allclose(ours[b].numpy(), ref, atol=1e-12)


# ----------------------------------------------------------------------------- reference


@pytest.fixture(scope="module")
def ref():
    """``imagecorruptions`` (package imagecorruptions-imaug), the generator's numpy port."""
    return pytest.importorskip(
        "imagecorruptions.corruptions",
        reason="imagecorruptions (pip install imagecorruptions-imaug) is not importable",
    )


def to_uint8_hwc(x):
    return (x[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)


def from_hwc(a):
    return torch.from_numpy(np.asarray(a, dtype=np.float64)).permute(2, 0, 1)[None] / 255


@pytest.mark.parametrize("radius,sigma", CIFAR10C_PARAMS["motion_blur"])
def test_reference_motion_blur_exact(ref, radius, sigma):
    img = to_uint8_hwc(images(1, 3, 32))
    x = from_hwc(img)
    for angle in (-45.0, -31.7, -2.0, 0.0, 8.25, 30.0, 45.0):
        expected = np.clip(ref._motion_blur(img, radius=radius, sigma=sigma, angle=angle), 0, 255)
        ours = motion_blur(x, radius, sigma, angle=angle)
        assert torch.allclose(ours, from_hwc(expected), atol=1e-9), angle


def test_reference_brightness_and_contrast_exact(ref):
    img = to_uint8_hwc(images(1, 3, 32, seed=4))
    x = from_hwc(img)
    # imagecorruptions uses the ImageNet-C tables; compare where a value coincides.
    for severity, b in ((1, 0.1), (2, 0.2), (3, 0.3)):
        assert torch.allclose(brightness(x, b), from_hwc(ref.brightness(img, severity)), atol=1e-9)
    for severity, c in ((1, 0.4), (2, 0.3)):
        assert torch.allclose(contrast(x, c), from_hwc(ref.contrast(img, severity)), atol=1e-9)


def test_reference_hsv_conversions(ref):
    from skimage.color import hsv2rgb, rgb2hsv

    x = images(1, 3, 32, seed=5, dtype=torch.float64)
    x[0, :, :4] = x[0, :1, :4]  # grays
    x[0, 1, 4:8] = x[0, 0, 4:8]  # ties between red and green
    a = x[0].permute(1, 2, 0).numpy()
    hsv = C._rgb_to_hsv(x)
    assert np.allclose(hsv[0].permute(1, 2, 0).numpy(), rgb2hsv(a), atol=1e-12)
    assert np.allclose(C._hsv_to_rgb(hsv)[0].permute(1, 2, 0).numpy(), hsv2rgb(rgb2hsv(a)), atol=1e-12)


def test_reference_noise_statistics(ref):
    # ImageNet-C severity 1 of imagecorruptions vs ours at the same parameter, on mid-gray.
    np.random.seed(0)
    img = np.full((32, 32, 3), 128, np.uint8)
    x0 = 128 / 255
    n_img = 16
    xs = gray(x0, b=n_img)

    def ref_batch(fn, **kw):
        return np.stack([np.asarray(fn(img, 1, **kw), dtype=np.float64) / 255 for _ in range(n_img)])

    r_ref = ref_batch(ref.gaussian_noise) - x0  # sigma .08 (= CIFAR-10-C severity 3)
    r_our = (gaussian_noise(xs, 0.08, generator=0) - x0).numpy()
    assert r_our.std() == pytest.approx(r_ref.std(), rel=0.03)
    assert abs(r_our.mean() - r_ref.mean()) < 0.002

    y_ref = ref_batch(ref.shot_noise)  # lam 60
    y_our = shot_noise(xs, 60, generator=0).numpy()
    assert y_our.mean() == pytest.approx(y_ref.mean(), abs=0.002)
    assert y_our.var() == pytest.approx(y_ref.var(), rel=0.05)

    y_ref = ref_batch(ref.impulse_noise)  # amount .03 (= CIFAR-10-C severity 3)
    y_our = impulse_noise(xs, 0.03, generator=0).numpy()
    for value in (0.0, 1.0):
        assert (y_our == value).mean() == pytest.approx((y_ref == value).mean(), abs=0.003)

    r_ref = ref_batch(ref.speckle_noise) - x0  # sigma .15
    r_our = (speckle_noise(xs, 0.15, generator=0) - x0).numpy()
    assert r_our.std() == pytest.approx(r_ref.std(), rel=0.03)


def test_reference_glass_blur_shuffle_distribution(ref):
    """Displacements of pixels after the shuffle passes: ours vs the package's loop (copy)."""
    h = w = 32
    n_runs = 24
    inner = (slice(4, -4), slice(4, -4))

    def histogram(src):
        dy = src // w - np.arange(h)[:, None]
        dx = src % w - np.arange(w)[None, :]
        d = (dy[inner].clip(-8, 8) + 8) * 17 + (dx[inner].clip(-8, 8) + 8)
        return np.bincount(d.ravel(), minlength=17 * 17) / d.size

    for delta, iterations in ((1, 1), (1, 2), (2, 1)):
        hist_ref = np.zeros(17 * 17)
        for seed in range(n_runs):
            pos = np.repeat(np.arange(h * w, dtype=np.int64).reshape(h, w, 1), 3, axis=2)
            out = ref._shuffle_pixels_njit_glass_blur(h, w, pos, (0.0, delta, iterations), seed)
            hist_ref += histogram(out[..., 0]) / n_runs
        g = torch.Generator().manual_seed(0)
        pos = torch.arange(h * w, dtype=torch.float64).reshape(1, 1, h, w).repeat(n_runs, 1, 1, 1)
        for _ in range(iterations):
            pos = C._local_shuffle(pos, delta, "copy", g)
        srcs = pos[:, 0].long().numpy()
        hist_our = np.mean([histogram(s) for s in srcs], axis=0)
        assert 0.5 * np.abs(hist_our - hist_ref).sum() < 0.03, (delta, iterations)


def test_reference_glass_blur_end_to_end(ref):
    """Our glass blur vs the package's stages (skimage blur, uint8, loop) at CIFAR-10-C values."""
    from skimage.filters import gaussian

    x = smooth_images(b=8, seed=6).float()
    imgs = [to_uint8_hwc(x[i : i + 1]) for i in range(8)]
    x = torch.cat([from_hwc(a) for a in imgs])
    for sigma, delta, iterations in CIFAR10C_PARAMS["glass_blur"]:
        dev_ref = []
        for i, a in enumerate(imgs):
            q = np.uint8(gaussian(a / 255.0, sigma=sigma, channel_axis=-1) * 255)
            q = ref._shuffle_pixels_njit_glass_blur(32, 32, q, (sigma, delta, iterations), i)
            y = np.clip(gaussian(q / 255.0, sigma=sigma, channel_axis=-1), 0, 1)
            dev_ref.append(np.abs(y - a / 255.0).mean())
        ours = glass_blur(x, sigma, delta, iterations, generator=0)
        dev_our = float((ours - x).abs().mean())
        assert dev_our == pytest.approx(float(np.mean(dev_ref)), rel=0.05), (sigma, delta, iterations)
