"""Image transforms: the paper's training augmentation per dataset, and a shared-data view.

Every transform here ends in :class:`torchvision.transforms.ToTensor`, so that a PIL image of
``H x W`` pixels with ``C`` channels (8 bits each) becomes a ``float32`` tensor of shape
``(C, H, W)`` with values ``pixel / 255`` in ``[0, 1]``.  Nothing normalises: the model
subtracts the per-channel mean and divides by the per-channel standard deviation itself
(``DatasetSplits.mean`` / ``DatasetSplits.std``).

The augmentation is a random translation (zero-padded random crop back to the original size)
optionally followed by a random horizontal flip (documented in docs/data.md, "Augmentation"):

===============  ===========  ===============  =============================================
dataset          crop pad     horizontal flip  reason
===============  ===========  ===============  =============================================
cifar10/100      4 px         yes              the paper (standard CIFAR augmentation)
svhn             4 px         no               the paper: digits are not mirror-symmetric
tiny_imagenet    8 px         yes              same 1/8-of-the-side translation as CIFAR
mnist            2 px         no               digits are not mirror-symmetric
fashion_mnist    2 px         no               every shoe in the set faces left; a flip
                                               leaves the data distribution
===============  ===========  ===============  =============================================
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms as T

__all__ = [
    "Augmentation",
    "NO_AUGMENTATION",
    "PAPER_AUGMENTATION",
    "TransformedDataset",
    "channel_statistics",
    "eval_transform",
    "paper_augmentation",
    "train_transform",
]


@dataclass(frozen=True)
class Augmentation:
    """A random translation plus an optional random horizontal flip.

    Args:
        crop_padding: pixels of padding added on every side before a random crop back to the
            original ``image_size x image_size`` (a translation by up to ``crop_padding`` pixels
            in each direction).  ``0`` disables the crop.
        horizontal_flip: mirror the image left-right with probability ``flip_probability``.
        padding_mode: :class:`torchvision.transforms.RandomCrop` padding mode
            (``"constant"``, ``"edge"``, ``"reflect"`` or ``"symmetric"``).
        fill: value of the constant padding, in 8-bit units (``0`` is black).
        flip_probability: probability of the horizontal flip.
    """

    crop_padding: int = 0
    horizontal_flip: bool = False
    padding_mode: str = "constant"
    fill: int = 0
    flip_probability: float = 0.5

    @property
    def is_identity(self) -> bool:
        """True when the augmentation leaves every image unchanged."""
        return self.crop_padding <= 0 and not self.horizontal_flip

    def describe(self) -> str:
        """Human-readable summary, e.g. ``"random crop (pad 4, constant) + horizontal flip"``."""
        parts = []
        if self.crop_padding > 0:
            parts.append(f"random crop (pad {self.crop_padding}, {self.padding_mode})")
        if self.horizontal_flip:
            parts.append(f"horizontal flip (p={self.flip_probability:g})")
        return " + ".join(parts) if parts else "none"


NO_AUGMENTATION = Augmentation()

PAPER_AUGMENTATION: dict[str, Augmentation] = {
    "cifar10": Augmentation(crop_padding=4, horizontal_flip=True),
    "cifar100": Augmentation(crop_padding=4, horizontal_flip=True),
    "svhn": Augmentation(crop_padding=4, horizontal_flip=False),
    "tiny_imagenet": Augmentation(crop_padding=8, horizontal_flip=True),
    "mnist": Augmentation(crop_padding=2, horizontal_flip=False),
    "fashion_mnist": Augmentation(crop_padding=2, horizontal_flip=False),
}


def paper_augmentation(name: str) -> Augmentation:
    """The training augmentation of dataset ``name`` (:data:`NO_AUGMENTATION` if none is set)."""
    return PAPER_AUGMENTATION.get(name, NO_AUGMENTATION)


def eval_transform() -> Callable:
    """PIL image (``C`` channels, 8 bits) -> float tensor ``(C, H, W)`` in ``[0, 1]``."""
    return T.ToTensor()


def train_transform(image_size: int, augmentation: Augmentation) -> Callable:
    """PIL image -> augmented float tensor ``(C, image_size, image_size)`` in ``[0, 1]``.

    Args:
        image_size: side of the (square) input images, in pixels.
        augmentation: what to apply; :data:`NO_AUGMENTATION` gives :func:`eval_transform`.
    """
    steps: list[Callable] = []
    if augmentation.crop_padding > 0:
        steps.append(T.RandomCrop(image_size, padding=augmentation.crop_padding,
                                  fill=augmentation.fill, padding_mode=augmentation.padding_mode))
    if augmentation.horizontal_flip:
        steps.append(T.RandomHorizontalFlip(p=augmentation.flip_probability))
    steps.append(T.ToTensor())
    return steps[0] if len(steps) == 1 else T.Compose(steps)


class TransformedDataset(Dataset):
    """View of ``base`` whose images go through ``transform``; labels become ``int``.

    Several views (augmented training view, plain evaluation view) share one ``base``, so the
    underlying arrays are loaded once.

    Args:
        base: dataset yielding ``(image, label)`` with image whatever ``transform`` accepts
            (a PIL image for the torchvision datasets) and label an integer or 0-d tensor.
        transform: callable applied to the image.
    """

    def __init__(self, base: Dataset, transform: Callable):
        self.base = base
        self.transform = transform

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, index: int):
        image, label = self.base[index]
        return self.transform(image), int(label)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(n={len(self)}, transform={self.transform!r})"


@torch.no_grad()
def channel_statistics(dataset: Dataset, batch_size: int = 1024,
                       max_items: int | None = None) -> tuple[list[float], list[float]]:
    """Per-channel mean and standard deviation over all pixels of ``dataset``.

    ``mean_c = E[x_c]``, ``std_c = sqrt(E[x_c^2] - mean_c^2)``, the expectation taken over every
    pixel of every image (not an average of per-image statistics).  Used to check the
    constants registered for each dataset.

    Args:
        dataset: yields ``(image, label)`` with image a float tensor ``(C, H, W)`` (or ``(C,)``).
        batch_size: images per accumulation step.
        max_items: use only the first ``max_items`` images (``None``: all).
    """
    total = s1 = s2 = None
    seen = 0
    for images, _ in DataLoader(dataset, batch_size=batch_size, shuffle=False):
        if max_items is not None and seen >= max_items:
            break
        if max_items is not None:
            images = images[: max_items - seen]
        seen += len(images)
        x = images.double().reshape(images.shape[0], images.shape[1], -1)
        b1, b2, n = x.sum(dim=(0, 2)), (x * x).sum(dim=(0, 2)), x.shape[0] * x.shape[2]
        s1, s2, total = (b1, b2, n) if s1 is None else (s1 + b1, s2 + b2, total + n)
    if s1 is None:
        raise ValueError("channel_statistics of an empty dataset")
    mean = s1 / total
    std = (s2 / total - mean * mean).clamp_min(0).sqrt()
    return mean.tolist(), std.tolist()
