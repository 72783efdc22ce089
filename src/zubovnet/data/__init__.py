"""Datasets and transforms.  Images are float tensors in [0, 1], shape (C, H, W); labels int.

Public entry point: :func:`build_datasets` returns the train / validation / test splits of
the dataset named by ``cfg.name`` together with its metadata (classes, channels, size and
the normalisation statistics that the model applies internally).  A dataset missing from
``cfg.root`` raises :class:`DatasetNotFoundError` (a ``FileNotFoundError``) whose message
gives the expected layout and how to obtain the files (see ``docs/data.md``).
"""
from .registry import DatasetSplits, build_datasets, dataset_info, dataset_names, register_dataset
from . import digits, synthetic, tiny_imagenet, vision  # noqa: F401,E402  (register the datasets)
from .tiny_imagenet import prepare_tiny_imagenet_val
from .transforms import PAPER_AUGMENTATION, Augmentation, channel_statistics
from .vision import DatasetIntegrityError, DatasetNotFoundError, prepare_fashion_mnist_from_debian

__all__ = ["Augmentation", "DatasetIntegrityError", "DatasetNotFoundError", "DatasetSplits",
           "PAPER_AUGMENTATION", "build_datasets", "channel_statistics", "dataset_info",
           "dataset_names", "prepare_fashion_mnist_from_debian", "prepare_tiny_imagenet_val",
           "register_dataset"]
