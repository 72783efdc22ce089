"""torchvision image datasets: MNIST, Fashion-MNIST, CIFAR-10, CIFAR-100, SVHN.

Each builder reads the dataset's original files from ``cfg.root`` in torchvision's layout
(:data:`LAYOUTS`), returns images as float tensors ``(C, H, W)`` in ``[0, 1]`` (no
normalisation) with ``int`` labels, applies the paper's augmentation
(:data:`zubovnet.data.transforms.PAPER_AUGMENTATION`) to the training view only when
``cfg.augment``, and carves the validation split from the official training set with
``split_train_val(train, cfg.val_fraction, cfg.split_seed)`` (validation images are never
augmented).  The test split is the official test set.

Offline use: with ``cfg.download`` False nothing touches the network; a missing file raises
:class:`DatasetNotFoundError` whose message lists the expected layout and how to obtain it.
Fashion-MNIST is unpacked automatically from the Debian package ``dataset-fashion-mnist``
(:func:`prepare_fashion_mnist_from_debian`) when its raw folder is missing.

Integrity: torchvision checks the MD5 of the CIFAR and SVHN files.  The loaders here use the
torchvision classes unchanged except that, when the environment variable
``ZUBOVNET_VERIFY_CHECKSUMS=0`` is set, the expected MD5s are dropped so that only the
presence of the files is checked (for re-packed copies and for small test fixtures written in
the same format).  A checksum mismatch otherwise raises :class:`DatasetIntegrityError`.
"""
from __future__ import annotations

import gzip
import os
import sys
import shutil
from pathlib import Path
from typing import Callable

from torch.utils.data import Dataset
from torchvision import datasets as tvd

from ..config import DataConfig
from .registry import DatasetSplits, register_dataset, split_train_val
from .transforms import TransformedDataset, eval_transform, paper_augmentation, train_transform

__all__ = [
    "CIFAR10_MEAN", "CIFAR10_STD", "CIFAR100_MEAN", "CIFAR100_STD", "DEBIAN_FASHION_MNIST_DIR",
    "DatasetIntegrityError", "DatasetNotFoundError", "FASHION_MNIST_MEAN", "FASHION_MNIST_STD",
    "LAYOUTS", "MNIST_MEAN", "MNIST_STD", "SVHN_MEAN", "SVHN_STD", "VERIFY_CHECKSUMS_ENV",
    "build_image_splits", "prepare_fashion_mnist_from_debian", "verify_checksums", "trust_files",
]

# Per-channel statistics of each training set over all pixels, in [0, 1] units
# (recompute with zubovnet.data.transforms.channel_statistics).
MNIST_MEAN, MNIST_STD = [0.1307], [0.3081]
FASHION_MNIST_MEAN, FASHION_MNIST_STD = [0.2860], [0.3530]
CIFAR10_MEAN, CIFAR10_STD = [0.4914, 0.4822, 0.4465], [0.2470, 0.2435, 0.2616]
CIFAR100_MEAN, CIFAR100_STD = [0.5071, 0.4865, 0.4409], [0.2673, 0.2564, 0.2762]
SVHN_MEAN, SVHN_STD = [0.4377, 0.4438, 0.4728], [0.1980, 0.2010, 0.1970]

#: Where the Debian package ``dataset-fashion-mnist`` installs the four gzip IDX files.
DEBIAN_FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"

#: Environment variable: ``0`` skips the MD5 checks of CIFAR / SVHN files (presence only).
VERIFY_CHECKSUMS_ENV = "ZUBOVNET_VERIFY_CHECKSUMS"

_IDX_FILES = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte",
              "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]

#: Files each builder needs, relative to ``cfg.root``, and how to obtain them.
LAYOUTS: dict[str, dict] = {
    "mnist": {
        "files": [f"MNIST/raw/{f}" for f in _IDX_FILES],
        "how": "download the four *-ubyte.gz files of MNIST and gunzip them into ROOT/MNIST/raw/, "
               "or run once with download=True (network) to let torchvision fetch them",
    },
    "fashion_mnist": {
        "files": [f"FashionMNIST/raw/{f}" for f in _IDX_FILES],
        "how": "install the Debian package dataset-fashion-mnist (files in "
               f"{DEBIAN_FASHION_MNIST_DIR}; they are unpacked automatically, or call "
               "zubovnet.data.prepare_fashion_mnist_from_debian(ROOT)), or gunzip the four "
               "*-ubyte.gz files of Fashion-MNIST into ROOT/FashionMNIST/raw/, "
               "or run once with download=True (network)",
    },
    "cifar10": {
        "files": [f"cifar-10-batches-py/{f}" for f in
                  ["data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4",
                   "data_batch_5", "test_batch", "batches.meta"]],
        "how": "extract cifar-10-python.tar.gz (https://www.cs.toronto.edu/~kriz/cifar.html) "
               "into ROOT, or run once with download=True (network)",
    },
    "cifar100": {
        "files": [f"cifar-100-python/{f}" for f in ["train", "test", "meta"]],
        "how": "extract cifar-100-python.tar.gz (https://www.cs.toronto.edu/~kriz/cifar.html) "
               "into ROOT, or run once with download=True (network)",
    },
    "svhn": {
        "files": ["svhn/train_32x32.mat", "svhn/test_32x32.mat"],
        "how": "put train_32x32.mat and test_32x32.mat (format 2 of "
               "http://ufldl.stanford.edu/housenumbers/) into ROOT/svhn/ (ROOT/ itself is also "
               "searched), or run once with download=True (network)",
    },
}


class DatasetNotFoundError(FileNotFoundError):
    """A dataset's files are not where the loader looks; the message gives layout and source."""


class DatasetIntegrityError(RuntimeError):
    """A dataset's files are present but do not match torchvision's MD5 checksums."""


def verify_checksums() -> bool:
    """Whether CIFAR / SVHN files are MD5-checked.

    True unless ``$ZUBOVNET_VERIFY_CHECKSUMS`` is ``0``, ``false`` or ``no`` (any case).  Off,
    it warns on stderr every time: torchvision *unpickles* the CIFAR batches, so a crafted file
    in the data folder runs code.
    """
    on = os.environ.get(VERIFY_CHECKSUMS_ENV, "1").strip().lower() not in {"0", "false", "no"}
    if not on:
        import warnings
        msg = (f"WARNING: {VERIFY_CHECKSUMS_ENV}=0: CIFAR/SVHN files are loaded WITHOUT their MD5 "
               "check; torchvision unpickles the CIFAR batches, so a crafted file in the data "
               "folder can run code. Register files you made with "
               "zubovnet.data.vision.trust_files() instead.")
        warnings.warn(msg, stacklevel=2)
        print(msg, file=sys.stderr)
    return on


_TRUSTED_MD5: set[str] = set()


def _md5(path: str | os.PathLike) -> str:
    import hashlib
    h = hashlib.md5()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def trust_files(paths) -> list[str]:
    """Record the MD5 of files this process made itself (test fixtures, converted copies), so
    that the checked loaders accept them beside the official files; returns the hashes.  The
    official checksums stay on for everything else."""
    out = [_md5(p) for p in paths]
    _TRUSTED_MD5.update(out)
    return out


def _integrity_ok(fpath: str, md5: str | None) -> bool:
    """The official MD5 matches, or the file is one registered by :func:`trust_files`."""
    from torchvision.datasets.utils import check_integrity
    if check_integrity(fpath, md5):
        return True
    return md5 is not None and os.path.isfile(fpath) and _md5(fpath) in _TRUSTED_MD5


def missing_message(name: str, root: Path, missing: list[str], layout: dict | None = None) -> str:
    """Error text: which files are missing under ``root``, the full layout, how to get it."""
    layout = layout or LAYOUTS[name]
    lines = [f"dataset {name!r} not found under {root} (missing: {', '.join(missing)}).",
             "Expected layout under ROOT (= DataConfig.root):"]
    lines += [f"  ROOT/{f}" for f in layout["files"]]
    lines.append(f"To get it: {layout['how']}.")
    return "\n".join(lines)


def _missing(root: Path, files: list[str]) -> list[str]:
    return [f for f in files if not (root / f).is_file()]


# --- the torchvision classes, with an optional presence-only integrity check ---------------

class _CIFAR10(tvd.CIFAR10):
    """torchvision CIFAR-10; ``verify=False`` drops the expected MD5s (presence check only)."""

    def __init__(self, root, train: bool, verify: bool = True, **kwargs):
        if not verify:
            self.train_list = [[f, None] for f, _ in type(self).train_list]
            self.test_list = [[f, None] for f, _ in type(self).test_list]
            self.meta = {**type(self).meta, "md5": None}
        super().__init__(root, train=train, **kwargs)

    def _check_integrity(self) -> bool:
        return all(_integrity_ok(os.path.join(self.root, self.base_folder, f), md5)
                   for f, md5 in self.train_list + self.test_list)

    def _load_meta(self) -> None:   # torchvision checks the meta file with check_integrity
        path = os.path.join(self.root, self.base_folder, self.meta["filename"])
        if not _integrity_ok(path, self.meta["md5"]):
            raise RuntimeError("Dataset metadata file not found or corrupted. You can use "
                               "download=True to download it")
        import pickle
        with open(path, "rb") as infile:
            data = pickle.load(infile, encoding="latin1")   # checked above
            self.classes = data[self.meta["key"]]
        self.class_to_idx = {_class: i for i, _class in enumerate(self.classes)}


class _CIFAR100(_CIFAR10, tvd.CIFAR100):
    """torchvision CIFAR-100 with the same ``verify`` switch."""


class _SVHN(tvd.SVHN):
    """torchvision SVHN; ``verify=False`` drops the expected MD5s (presence check only)."""

    def __init__(self, root, split: str, verify: bool = True, **kwargs):
        if not verify:
            self.split_list = {k: [url, fname, None] for k, (url, fname, _) in
                               type(self).split_list.items()}
        super().__init__(root, split=split, **kwargs)

    def _check_integrity(self) -> bool:
        return _integrity_ok(os.path.join(self.root, self.filename), self.split_list[self.split][2])


def _construct(name: str, root: Path, make: Callable[[bool], Dataset], download: bool,
               files: list[str] | None = None) -> Dataset:
    """Call ``make(download)``, turning torchvision's RuntimeErrors into clear errors.

    ``files`` (relative to ``root``; default ``LAYOUTS[name]["files"]``) tell a missing
    dataset from a corrupted one.
    """
    files = LAYOUTS[name]["files"] if files is None else files
    try:
        return make(download)
    except RuntimeError as err:
        missing = _missing(root, files)
        if download or missing:
            raise DatasetNotFoundError(missing_message(name, root, missing or ["?"])
                                       + f"\n(torchvision: {err})") from err
        raise DatasetIntegrityError(
            f"dataset {name!r} under {root}: the files are present but torchvision rejected "
            f"them ({err}). They do not match the official MD5 checksums; re-extract the "
            f"official archive, or set {VERIFY_CHECKSUMS_ENV}=0 to load them without the check."
        ) from err
    except OSError as err:  # download=True without network, permission problems, ...
        raise DatasetNotFoundError(missing_message(name, root, _missing(root, files))
                                   + f"\n(download failed: {err})") from err


def _require(name: str, root: Path, download: bool, layout: dict | None = None) -> None:
    """Raise :class:`DatasetNotFoundError` if files are missing and no download is asked for."""
    layout = layout or LAYOUTS[name]
    missing = _missing(root, layout["files"])
    if missing and not download:
        raise DatasetNotFoundError(missing_message(name, root, missing, layout))


def build_image_splits(name: str, cfg: DataConfig, train_base: Dataset, test_base: Dataset, *,
                       num_classes: int, in_channels: int, image_size: int, mean: list,
                       std: list, class_names: list | None, info: dict | None = None
                       ) -> DatasetSplits:
    """Turn PIL-yielding official train / test sets into :class:`DatasetSplits`.

    The training view gets :func:`train_transform` with ``paper_augmentation(name)`` when
    ``cfg.augment`` (otherwise the plain :func:`eval_transform`); validation (carved from the
    training set with ``cfg.val_fraction`` / ``cfg.split_seed``) and test get
    :func:`eval_transform`.  Both training views share ``train_base``.
    """
    aug = paper_augmentation(name)
    eval_train = TransformedDataset(train_base, eval_transform())
    train = (TransformedDataset(train_base, train_transform(image_size, aug))
             if cfg.augment and not aug.is_identity else eval_train)
    train, val = split_train_val(train, cfg.val_fraction, cfg.split_seed, eval_view=eval_train)
    meta = {"root": str(cfg.root), "augmentation": aug.describe() if cfg.augment else "none",
            "val_fraction": cfg.val_fraction, "split_seed": cfg.split_seed,
            "n_official_train": len(train_base), "n_official_test": len(test_base),
            "test_split": "official test set"}
    meta.update(info or {})
    return DatasetSplits(train=train, val=val, test=TransformedDataset(test_base, eval_transform()),
                         num_classes=num_classes, in_channels=in_channels, image_size=image_size,
                         mean=list(mean), std=list(std), class_names=class_names, info=meta)


# --- MNIST family -------------------------------------------------------------------------

def _gunzip(src: Path, dst: Path) -> None:
    """Decompress ``src`` (gzip) into ``dst`` atomically (a temporary file of this process, then
    rename), so that two processes unpacking at once never see a half-written file."""
    tmp = dst.with_name(f"{dst.name}.part{os.getpid()}")
    with gzip.open(src, "rb") as fin, open(tmp, "wb") as fout:
        shutil.copyfileobj(fin, fout, length=1 << 20)
    os.replace(tmp, dst)


def prepare_fashion_mnist_from_debian(root: str | os.PathLike,
                                      source: str | os.PathLike = DEBIAN_FASHION_MNIST_DIR) -> Path:
    """Unpack the Debian ``dataset-fashion-mnist`` files into ``ROOT/FashionMNIST/raw/``.

    The package installs ``{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz`` under ``source``;
    torchvision reads the decompressed IDX files from ``ROOT/FashionMNIST/raw/``.  The
    gzip files are re-compressed copies, so their MD5 differs from torchvision's list: load
    them with ``download=False`` (torchvision checks only that the raw files exist).
    Idempotent: files already present are left alone.

    Args:
        root: the dataset root (``DataConfig.root``).
        source: folder holding the four ``.gz`` files.

    Returns:
        The raw folder ``ROOT/FashionMNIST/raw``.

    Raises:
        DatasetNotFoundError: a ``.gz`` file is missing from ``source``.
    """
    root, source = Path(root), Path(source)
    raw = root / "FashionMNIST" / "raw"
    todo = [f for f in _IDX_FILES if not (raw / f).is_file()]
    absent = [f + ".gz" for f in todo if not (source / (f + ".gz")).is_file()]
    if absent:
        raise DatasetNotFoundError(
            f"Fashion-MNIST source files missing from {source}: {', '.join(absent)}.\n"
            + missing_message("fashion_mnist", root, [f"FashionMNIST/raw/{f}" for f in todo]))
    raw.mkdir(parents=True, exist_ok=True)
    for f in todo:
        _gunzip(source / (f + ".gz"), raw / f)
    return raw


def _unpack_gz_in_raw(raw: Path) -> None:
    """If ``raw`` holds ``X.gz`` but not ``X`` for an IDX file ``X``, decompress it in place."""
    for f in _IDX_FILES:
        if not (raw / f).is_file() and (raw / (f + ".gz")).is_file():
            _gunzip(raw / (f + ".gz"), raw / f)


def _build_mnist_family(name: str, cls, folder: str, cfg: DataConfig, mean, std) -> DatasetSplits:
    root = Path(cfg.root)
    raw = root / folder / "raw"
    _unpack_gz_in_raw(raw)
    legacy = all((root / folder / "processed" / f).is_file() for f in ("training.pt", "test.pt"))
    if not legacy:
        _require(name, root, cfg.download)

    def make(train):
        return lambda download: cls(str(root), train=train, download=download)

    train_base = _construct(name, root, make(True), cfg.download)
    test_base = _construct(name, root, make(False), False)
    return build_image_splits(name, cfg, train_base, test_base, num_classes=10, in_channels=1,
                              image_size=28, mean=mean, std=std,
                              class_names=list(train_base.classes))


@register_dataset("mnist", num_classes=10, in_channels=1, image_size=28,
                  train_size=60000, test_size=10000,
                  mean=MNIST_MEAN, std=MNIST_STD)
def build_mnist(cfg: DataConfig) -> DatasetSplits:
    """MNIST: 60,000 train / 10,000 test, 28x28 grey; train aug: random crop pad 2."""
    return _build_mnist_family("mnist", tvd.MNIST, "MNIST", cfg, MNIST_MEAN, MNIST_STD)


@register_dataset("fashion_mnist", num_classes=10, in_channels=1, image_size=28,
                  train_size=60000, test_size=10000,
                  mean=FASHION_MNIST_MEAN, std=FASHION_MNIST_STD)
def build_fashion_mnist(cfg: DataConfig) -> DatasetSplits:
    """Fashion-MNIST: 60,000 train / 10,000 test, 28x28 grey; train aug: random crop pad 2.

    When ``ROOT/FashionMNIST/raw/`` lacks the IDX files and the Debian package's files exist
    in :data:`DEBIAN_FASHION_MNIST_DIR`, they are unpacked first
    (:func:`prepare_fashion_mnist_from_debian`).
    """
    root = Path(cfg.root)
    raw = root / "FashionMNIST" / "raw"
    _unpack_gz_in_raw(raw)
    if _missing(root, LAYOUTS["fashion_mnist"]["files"]) and not cfg.download:
        source = Path(DEBIAN_FASHION_MNIST_DIR)
        if all((source / (f + ".gz")).is_file() for f in _IDX_FILES):
            prepare_fashion_mnist_from_debian(root, source)
    return _build_mnist_family("fashion_mnist", tvd.FashionMNIST, "FashionMNIST", cfg,
                               FASHION_MNIST_MEAN, FASHION_MNIST_STD)


# --- CIFAR ---------------------------------------------------------------------------------

def _build_cifar(name: str, cls, cfg: DataConfig, num_classes: int, mean, std) -> DatasetSplits:
    root = Path(cfg.root)
    _require(name, root, cfg.download)
    verify = verify_checksums()

    def make(train):
        return lambda download: cls(str(root), train=train, verify=verify, download=download)

    train_base = _construct(name, root, make(True), cfg.download)
    test_base = _construct(name, root, make(False), False)
    return build_image_splits(name, cfg, train_base, test_base, num_classes=num_classes,
                              in_channels=3, image_size=32, mean=mean, std=std,
                              class_names=list(train_base.classes),
                              info={"checksums_verified": verify})


@register_dataset("cifar10", num_classes=10, in_channels=3, image_size=32,
                  train_size=50000, test_size=10000,
                  mean=CIFAR10_MEAN, std=CIFAR10_STD)
def build_cifar10(cfg: DataConfig) -> DatasetSplits:
    """CIFAR-10: 50,000 train / 10,000 test, 32x32 RGB; train aug: crop pad 4 + flip."""
    return _build_cifar("cifar10", _CIFAR10, cfg, 10, CIFAR10_MEAN, CIFAR10_STD)


@register_dataset("cifar100", num_classes=100, in_channels=3, image_size=32,
                  train_size=50000, test_size=10000,
                  mean=CIFAR100_MEAN, std=CIFAR100_STD)
def build_cifar100(cfg: DataConfig) -> DatasetSplits:
    """CIFAR-100 (fine labels): 50,000 train / 10,000 test, 32x32 RGB; crop pad 4 + flip."""
    return _build_cifar("cifar100", _CIFAR100, cfg, 100, CIFAR100_MEAN, CIFAR100_STD)


# --- SVHN ----------------------------------------------------------------------------------

def _svhn_dir(root: Path) -> Path:
    """``ROOT/svhn`` if it holds the .mat files, else ``ROOT`` if that does, else ``ROOT/svhn``."""
    for d in (root / "svhn", root):
        if (d / "train_32x32.mat").is_file() and (d / "test_32x32.mat").is_file():
            return d
    return root / "svhn"


@register_dataset("svhn", num_classes=10, in_channels=3, image_size=32,
                  train_size=73257, test_size=26032,
                  mean=SVHN_MEAN, std=SVHN_STD)
def build_svhn(cfg: DataConfig) -> DatasetSplits:
    """SVHN (train / test splits, no ``extra``): 73,257 / 26,032 32x32 RGB; crop pad 4.

    Label ``10`` in the ``.mat`` files (digit 0) becomes ``0``.
    """
    root = Path(cfg.root)
    folder = _svhn_dir(root)
    files = [str((folder / f).relative_to(root)) for f in ("train_32x32.mat", "test_32x32.mat")]
    missing = _missing(root, files)
    if missing and not cfg.download:
        raise DatasetNotFoundError(missing_message("svhn", root, missing))
    if cfg.download:
        folder.mkdir(parents=True, exist_ok=True)
    verify = verify_checksums()

    def make(split):
        return lambda download: _SVHN(str(folder), split=split, verify=verify, download=download)

    train_base = _construct("svhn", root, make("train"), cfg.download, files)
    test_base = _construct("svhn", root, make("test"), cfg.download, files)
    return build_image_splits("svhn", cfg, train_base, test_base, num_classes=10, in_channels=3,
                              image_size=32, mean=SVHN_MEAN, std=SVHN_STD,
                              class_names=[str(i) for i in range(10)],
                              info={"checksums_verified": verify, "folder": str(folder)})
