"""Dataset registry: one builder per dataset name, one split convention for all.

The modules that define datasets (``digits``, ``synthetic``, ``tiny_imagenet``, ``vision``)
register them with :func:`register_dataset` when imported; :mod:`zubovnet.data` imports them
right after this module, so every dataset is registered once the package is imported.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch
from torch.utils.data import Dataset, Subset

from ..config import DataConfig

__all__ = ["DatasetSplits", "build_datasets", "dataset_info", "dataset_names", "register_dataset",
           "split_train_val"]


@dataclass
class DatasetSplits:
    train: Dataset
    val: Dataset | None
    test: Dataset
    num_classes: int
    in_channels: int
    image_size: int
    mean: list = field(default_factory=list)
    std: list = field(default_factory=list)
    class_names: list | None = None
    info: dict = field(default_factory=dict)


_BUILDERS: dict[str, Callable[[DataConfig], DatasetSplits]] = {}
_INFO: dict[str, dict] = {}


def register_dataset(name: str, **info):
    """Decorator: ``@register_dataset("digits", num_classes=10, in_channels=1, image_size=8)``."""
    def deco(fn):
        _BUILDERS[name] = fn
        _INFO[name] = dict(info)
        return fn
    return deco


def dataset_names() -> list[str]:
    """The names of every registered dataset, sorted."""
    return sorted(_BUILDERS)


def dataset_info(name: str) -> dict:
    """Static metadata of a dataset (classes, channels, size, mean, std, train/test sizes)
    without loading it."""
    if name not in _INFO:
        raise KeyError(f"unknown dataset {name!r}; known: {sorted(_INFO)}")
    return dict(_INFO[name])


def split_train_val(train: Dataset, val_fraction: float, seed: int,
                    eval_view: Dataset | None = None) -> tuple[Dataset, Dataset | None]:
    """Carve a validation split from ``train`` with a recorded seed.

    ``eval_view`` is the same data without augmentation; the validation subset is drawn
    from it so that validation images are not augmented.
    """
    if val_fraction <= 0:
        return train, None
    n = len(train)
    n_val = max(1, int(round(n * val_fraction)))
    g = torch.Generator().manual_seed(seed)
    perm = torch.randperm(n, generator=g).tolist()
    val_idx, train_idx = perm[:n_val], perm[n_val:]
    return Subset(train, train_idx), Subset(eval_view if eval_view is not None else train, val_idx)


def _subset(ds: Dataset, n: int | None) -> Dataset:
    if n is None or n >= len(ds):
        return ds
    return Subset(ds, list(range(n)))


def build_datasets(cfg: DataConfig) -> DatasetSplits:
    """Build the splits of ``cfg.name`` (see :mod:`zubovnet.data` for the contract)."""
    if cfg.name not in _BUILDERS:
        raise KeyError(f"unknown dataset {cfg.name!r}; known: {sorted(_BUILDERS)}")
    splits = _BUILDERS[cfg.name](cfg)
    splits.train = _subset(splits.train, cfg.train_subset)
    splits.test = _subset(splits.test, cfg.test_subset)
    return splits
