"""Tiny-ImageNet (200 classes, 64x64 RGB) as a torchvision ImageFolder.

Layout under ``ROOT`` (= ``DataConfig.root``), as extracted from ``tiny-imagenet-200.zip``::

    ROOT/tiny-imagenet-200/
        wnids.txt                      200 WordNet ids, one per line
        words.txt                      (optional) "wnid<TAB>description" lines
        train/<wnid>/images/<wnid>_<k>.JPEG        500 per class
        val/images/val_<k>.JPEG                    10,000 images, 50 per class
        val/val_annotations.txt        "val_<k>.JPEG<TAB><wnid><TAB>x0<TAB>y0<TAB>x1<TAB>y1"

The official ``test/`` images carry no labels, so -- as is usual for this dataset -- the
official validation set is the test split here, and validation is carved from ``train``.
The flat ``val/images`` folder is first re-laid out into per-class folders
``val/<wnid>/images/`` (:func:`prepare_tiny_imagenet_val`, called by the loader), after which
both splits are ImageFolders.  Class ``k`` is the ``k``-th wnid of ``wnids.txt`` in sorted
order (the order ``ImageFolder`` gives the train folder), for train and val alike.
"""
from __future__ import annotations

import inspect
import os
from pathlib import Path

from torchvision.datasets import ImageFolder
from torchvision.datasets.utils import download_and_extract_archive

from ..config import DataConfig
from .registry import DatasetSplits, register_dataset
from .vision import DatasetNotFoundError, build_image_splits, missing_message

__all__ = ["TINY_IMAGENET_DIR", "TINY_IMAGENET_MEAN", "TINY_IMAGENET_STD", "TINY_IMAGENET_URL",
           "TinyImageNetFolder", "prepare_tiny_imagenet_val", "read_wnids"]

TINY_IMAGENET_DIR = "tiny-imagenet-200"
TINY_IMAGENET_URL = "http://cs231n.stanford.edu/tiny-imagenet-200.zip"
# Per-channel statistics of the training set over all pixels (the often-quoted
# std (0.2302, 0.2265, 0.2262) is the mean of per-image standard deviations instead).
TINY_IMAGENET_MEAN = [0.4802, 0.4481, 0.3975]
TINY_IMAGENET_STD = [0.2770, 0.2691, 0.2821]

LAYOUT = {
    "files": [f"{TINY_IMAGENET_DIR}/wnids.txt",
              f"{TINY_IMAGENET_DIR}/train/<wnid>/images/<wnid>_<k>.JPEG",
              f"{TINY_IMAGENET_DIR}/val/val_annotations.txt",
              f"{TINY_IMAGENET_DIR}/val/images/val_<k>.JPEG  "
              "(or, once re-laid out, val/<wnid>/images/val_<k>.JPEG)"],
    "how": f"download {TINY_IMAGENET_URL} and unzip it into ROOT, or run once with "
           "download=True (network); the val/ folder is re-laid out on first use",
}


def _dataset_dir(root: str | os.PathLike) -> Path:
    """``root`` itself if it holds ``wnids.txt`` or ``val/``, else ``root/tiny-imagenet-200``."""
    root = Path(root)
    if (root / "wnids.txt").is_file() or (root / "val").is_dir():
        return root
    return root / TINY_IMAGENET_DIR


def read_wnids(directory: str | os.PathLike) -> list[str]:
    """The sorted WordNet ids of ``wnids.txt`` in the dataset folder ``directory``."""
    with open(Path(directory) / "wnids.txt") as f:
        return sorted({line.strip() for line in f if line.strip()})


def _read_words(directory: Path, wnids: list[str]) -> dict[str, str] | None:
    path = directory / "words.txt"
    if not path.is_file():
        return None
    wanted, words = set(wnids), {}
    with open(path) as f:
        for line in f:
            wnid, _, text = line.rstrip("\n").partition("\t")
            if wnid in wanted:
                words[wnid] = text
    return words


def prepare_tiny_imagenet_val(root: str | os.PathLike) -> int:
    """Move ``val/images/<file>`` to ``val/<wnid>/images/<file>`` using ``val/val_annotations.txt``.

    Idempotent and resumable: files already in place are skipped; once every annotated file
    has been moved, the empty ``val/images`` folder is removed and later calls move nothing.
    ``val_annotations.txt`` stays where it is.

    Args:
        root: the ``tiny-imagenet-200`` folder, or the folder that contains it.

    Returns:
        The number of files moved by this call (0 when already laid out).

    Raises:
        DatasetNotFoundError: ``val/val_annotations.txt`` is missing, or an annotated file is
            in neither place.
    """
    directory = _dataset_dir(root)
    val = directory / "val"
    annotations = val / "val_annotations.txt"
    if not annotations.is_file():
        raise DatasetNotFoundError(missing_message("tiny_imagenet", directory.parent,
                                                   [str(annotations)], LAYOUT))
    flat = val / "images"
    moved = 0
    with open(annotations) as f:
        entries = [line.rstrip("\n").split("\t")[:2] for line in f if line.strip()]
    for fname, wnid in entries:
        dst = val / wnid / "images" / fname
        if dst.is_file():
            continue
        src = flat / fname
        if not src.is_file():
            raise DatasetNotFoundError(
                f"Tiny-ImageNet: {fname} (class {wnid}) listed in {annotations} is in neither "
                f"{flat} nor {dst.parent}; re-extract the archive.")
        dst.parent.mkdir(parents=True, exist_ok=True)
        os.replace(src, dst)
        moved += 1
    if flat.is_dir() and not any(flat.iterdir()):
        flat.rmdir()
    return moved


class TinyImageNetFolder(ImageFolder):
    """ImageFolder whose classes are the given wnids (same indices for every split).

    Images are loaded with PIL and converted to RGB (a few Tiny-ImageNet files are grey).

    Args:
        root: a split folder, ``train`` or the re-laid-out ``val``.
        wnids: class list, index ``k`` for ``wnids[k]``; sub-folders not listed are ignored.
        **kwargs: passed to :class:`torchvision.datasets.ImageFolder`.
    """

    def __init__(self, root, wnids: list[str], **kwargs):
        self._wnids = list(wnids)
        if "allow_empty" in inspect.signature(ImageFolder.__init__).parameters:
            kwargs.setdefault("allow_empty", True)
        super().__init__(str(root), **kwargs)

    def find_classes(self, directory):
        return list(self._wnids), {w: i for i, w in enumerate(self._wnids)}


@register_dataset("tiny_imagenet", num_classes=200, in_channels=3, image_size=64,
                  train_size=100000, test_size=10000,
                  mean=TINY_IMAGENET_MEAN, std=TINY_IMAGENET_STD)
def build_tiny_imagenet(cfg: DataConfig) -> DatasetSplits:
    """Tiny-ImageNet: 100,000 train / 10,000 test (the official val), 64x64 RGB.

    Train aug (when ``cfg.augment``): random crop pad 8 + horizontal flip.  Calls
    :func:`prepare_tiny_imagenet_val` first.
    """
    root = Path(cfg.root)
    directory = root / TINY_IMAGENET_DIR
    if not (directory / "wnids.txt").is_file() and cfg.download:
        try:
            download_and_extract_archive(TINY_IMAGENET_URL, str(root))
        except OSError as err:
            raise DatasetNotFoundError(missing_message("tiny_imagenet", root, [LAYOUT["files"][0]],
                                                       LAYOUT) + f"\n(download failed: {err})"
                                       ) from err
    missing = [f for f in (directory / "wnids.txt", directory / "train",
                           directory / "val" / "val_annotations.txt") if not f.exists()]
    if missing:
        raise DatasetNotFoundError(missing_message(
            "tiny_imagenet", root, [str(p.relative_to(root)) for p in missing], LAYOUT))
    prepare_tiny_imagenet_val(directory)
    wnids = read_wnids(directory)
    train_base = TinyImageNetFolder(directory / "train", wnids)
    test_base = TinyImageNetFolder(directory / "val", wnids)
    info = {"test_split": "official val set (val/, re-laid out per class)", "wnids": wnids}
    words = _read_words(directory, wnids)
    if words:
        info["class_descriptions"] = [words.get(w, "") for w in wnids]
    return build_image_splits("tiny_imagenet", cfg, train_base, test_base,
                              num_classes=len(wnids), in_channels=3, image_size=64,
                              mean=TINY_IMAGENET_MEAN, std=TINY_IMAGENET_STD,
                              class_names=wnids, info=info)
