"""Two-dimensional synthetic classification sets, for pictures of basins of attraction.

Each sample is a point ``x ∈ [0, 1]^2`` -- a float tensor of shape ``(2,)``, not an image --
with an ``int`` label.  The registry metadata reads ``in_channels=2, image_size=1``
(``in_channels * image_size**2 = 2`` input features), so a model built from the metadata
gets a 2-feature input and its state space can be drawn in the plane.

* ``synthetic2d`` -- ``num_classes`` isotropic Gaussian blobs whose centres lie evenly on a
  circle: centre ``k`` is ``(0.5, 0.5) + radius (cos 2πk/L, sin 2πk/L)``, each point is
  ``centre + spread · N(0, I)``.  For ``L >= 3`` the per-coordinate mean is ``0.5`` and the
  per-coordinate standard deviation ``sqrt(radius**2 / 2 + spread**2)``.
* ``synthetic2d_spirals`` -- ``num_classes`` interleaved spiral arms:
  ``r = r_max · t``, ``θ = 2πk/L + 2π·turns·t`` for ``t ~ U(0, 1)``, plus ``noise · N(0, I)``.

Points are clipped to ``[0, 1]^2`` (the clip touches well under 0.1% of the points with the
defaults).  Classes are balanced (labels cycle ``0, 1, ..., L-1``).  The training and test
sets are drawn from one generator seeded with ``cfg.split_seed``; the validation split is
carved from the training set with the same seed.  There is no augmentation (``cfg.augment``
is ignored).
"""
from __future__ import annotations

import math

import numpy as np
import torch
from torch.utils.data import Dataset

from ..config import DataConfig
from .registry import DatasetSplits, register_dataset, split_train_val

__all__ = ["BLOBS_DEFAULTS", "Points2D", "SPIRALS_DEFAULTS", "blobs_statistics",
           "build_synthetic2d", "make_blobs2d", "make_spirals2d", "spirals_statistics"]

#: Default parameters of ``synthetic2d`` (blobs).
BLOBS_DEFAULTS = dict(num_classes=4, radius=0.3, spread=0.06)
#: Default parameters of ``synthetic2d_spirals``.
SPIRALS_DEFAULTS = dict(num_classes=3, r_max=0.45, turns=0.75, noise=0.02)
#: Default sizes of the training (before the validation split) and test sets.
N_TRAIN, N_TEST = 2000, 1000


def _labels(n: int, num_classes: int) -> np.ndarray:
    return np.arange(n) % num_classes


def make_blobs2d(n: int, num_classes: int = 4, radius: float = 0.3, spread: float = 0.06,
                 seed: int = 0, rng: np.random.Generator | None = None
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """Gaussian blobs on a circle (see the module docstring).

    Args:
        n: number of points; labels ``i % num_classes`` (balanced).
        num_classes: number of blobs ``L >= 1``.
        radius: distance of the centres from ``(0.5, 0.5)``.
        spread: standard deviation of each blob.
        seed: seed of a fresh ``numpy`` generator (ignored when ``rng`` is given).
        rng: generator to draw from.

    Returns:
        ``x`` float32 ``(n, 2)`` in ``[0, 1]``, ``y`` int64 ``(n,)``.
    """
    rng = np.random.default_rng(seed) if rng is None else rng
    y = _labels(n, num_classes)
    angle = 2 * math.pi * y / num_classes
    centres = 0.5 + radius * np.stack([np.cos(angle), np.sin(angle)], axis=1)
    x = np.clip(centres + spread * rng.standard_normal((n, 2)), 0.0, 1.0)
    return torch.as_tensor(x, dtype=torch.float32), torch.as_tensor(y, dtype=torch.long)


def make_spirals2d(n: int, num_classes: int = 3, r_max: float = 0.45, turns: float = 0.75,
                   noise: float = 0.02, seed: int = 0, rng: np.random.Generator | None = None
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """Interleaved spiral arms around ``(0.5, 0.5)`` (see the module docstring).

    Args:
        n: number of points; labels ``i % num_classes`` (balanced).
        num_classes: number of arms ``L >= 1``.
        r_max: radius reached at the end of each arm.
        turns: revolutions of each arm.
        noise: standard deviation of the isotropic Gaussian noise.
        seed: seed of a fresh ``numpy`` generator (ignored when ``rng`` is given).
        rng: generator to draw from.

    Returns:
        ``x`` float32 ``(n, 2)`` in ``[0, 1]``, ``y`` int64 ``(n,)``.
    """
    rng = np.random.default_rng(seed) if rng is None else rng
    y = _labels(n, num_classes)
    t = rng.uniform(0.0, 1.0, n)
    theta = 2 * math.pi * (y / num_classes + turns * t)
    r = r_max * t
    x = 0.5 + np.stack([r * np.cos(theta), r * np.sin(theta)], axis=1)
    x = np.clip(x + noise * rng.standard_normal((n, 2)), 0.0, 1.0)
    return torch.as_tensor(x, dtype=torch.float32), torch.as_tensor(y, dtype=torch.long)


def blobs_statistics(num_classes: int = 4, radius: float = 0.3, spread: float = 0.06
                     ) -> tuple[list[float], list[float]]:
    """Per-coordinate mean and std of the blobs (before clipping), for ``num_classes >= 3``.

    ``mean = 0.5``; ``std = sqrt(radius**2 / 2 + spread**2)`` (``cos`` over ``L >= 3`` evenly
    spaced angles has mean 0 and mean square 1/2).
    """
    s = math.sqrt(radius ** 2 / 2 + spread ** 2)
    return [0.5, 0.5], [s, s]


def spirals_statistics(num_classes: int = 3, r_max: float = 0.45, turns: float = 0.75,
                       noise: float = 0.02, n: int = 200_000) -> tuple[list[float], list[float]]:
    """Per-coordinate mean and std of the spirals, estimated on ``n`` points (seed 0), 4 digits."""
    x, _ = make_spirals2d(n, num_classes, r_max, turns, noise, seed=0)
    return ([round(v, 4) for v in x.double().mean(0).tolist()],
            [round(v, 4) for v in x.double().std(0).tolist()])


class Points2D(Dataset):
    """``(x, label)`` pairs: ``x`` float32 ``(2,)`` in ``[0, 1]``, label ``int``.

    Args:
        x: float tensor ``(n, 2)``.
        y: integer tensor ``(n,)``.
    """

    def __init__(self, x: torch.Tensor, y: torch.Tensor):
        if x.ndim != 2 or x.shape[1] != 2 or len(x) != len(y):
            raise ValueError(f"expected x (n, 2) and y (n,), "
                             f"got {tuple(x.shape)}, {tuple(y.shape)}")
        self.x, self.y = x, y

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, index: int):
        return self.x[index], int(self.y[index])


_BLOBS_MEAN, _BLOBS_STD = blobs_statistics(**BLOBS_DEFAULTS)
_SPIRALS_MEAN, _SPIRALS_STD = spirals_statistics(**SPIRALS_DEFAULTS)


def build_synthetic2d(cfg: DataConfig, kind: str = "blobs", n_train: int = N_TRAIN,
                      n_test: int = N_TEST, **params) -> DatasetSplits:
    """Synthetic 2-D splits generated from ``cfg.split_seed``.

    Args:
        cfg: ``split_seed`` seeds the points and the validation split; ``val_fraction``
            sizes the latter; ``augment`` is ignored.
        kind: ``"blobs"`` (:func:`make_blobs2d`) or ``"spirals"`` (:func:`make_spirals2d`).
        n_train: training points (validation included).
        n_test: test points.
        **params: overrides of :data:`BLOBS_DEFAULTS` / :data:`SPIRALS_DEFAULTS`.
    """
    if kind == "blobs":
        p = {**BLOBS_DEFAULTS, **params}
        make, (mean, std) = make_blobs2d, blobs_statistics(**p)
    elif kind == "spirals":
        p = {**SPIRALS_DEFAULTS, **params}
        make = make_spirals2d
        mean, std = ((_SPIRALS_MEAN, _SPIRALS_STD) if p == SPIRALS_DEFAULTS
                     else spirals_statistics(**p))
    else:
        raise ValueError(f"kind must be 'blobs' or 'spirals', got {kind!r}")
    rng = np.random.default_rng(cfg.split_seed)
    x_tr, y_tr = make(n_train, rng=rng, **p)
    x_te, y_te = make(n_test, rng=rng, **p)
    train = Points2D(x_tr, y_tr)
    train, val = split_train_val(train, cfg.val_fraction, cfg.split_seed)
    L = p["num_classes"]
    return DatasetSplits(train=train, val=val, test=Points2D(x_te, y_te), num_classes=L,
                         in_channels=2, image_size=1, mean=mean, std=std,
                         class_names=[str(k) for k in range(L)],
                         info={"kind": kind, "params": p, "n_train": n_train, "n_test": n_test,
                               "val_fraction": cfg.val_fraction, "split_seed": cfg.split_seed,
                               "augmentation": "none",
                               "sample_shape": [2]})


@register_dataset("synthetic2d", num_classes=BLOBS_DEFAULTS["num_classes"], in_channels=2,
                  image_size=1, mean=_BLOBS_MEAN, std=_BLOBS_STD)
def build_synthetic2d_blobs(cfg: DataConfig) -> DatasetSplits:
    """Four Gaussian blobs in ``[0, 1]^2`` (2,000 train incl. validation, 1,000 test)."""
    return build_synthetic2d(cfg, kind="blobs")


@register_dataset("synthetic2d_spirals", num_classes=SPIRALS_DEFAULTS["num_classes"],
                  in_channels=2, image_size=1, mean=_SPIRALS_MEAN, std=_SPIRALS_STD)
def build_synthetic2d_spirals(cfg: DataConfig) -> DatasetSplits:
    """Three interleaved spiral arms in ``[0, 1]^2`` (2,000 train incl. validation, 1,000 test)."""
    return build_synthetic2d(cfg, kind="spirals")
