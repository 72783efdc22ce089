"""Datasets: tiny fixtures written in each dataset's real on-disk format, loaded through
``build_datasets`` (the real code path, torchvision classes included)."""
from __future__ import annotations

import gzip
import os
import pickle
import struct
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

import zubovnet.data as zdata
from zubovnet.config import DataConfig
from zubovnet.data import (DatasetIntegrityError, DatasetNotFoundError, build_datasets,
                           channel_statistics, dataset_info, prepare_tiny_imagenet_val)
from zubovnet.data import vision
from zubovnet.data.transforms import PAPER_AUGMENTATION, TransformedDataset

DEBIAN_FASHION = Path("/usr/share/datasets/fashion-mnist")
N_TRAIN, N_TEST = 50, 20


@pytest.fixture(autouse=True)
def _checked_fixtures(monkeypatch):
    """Checksums stay on: the writers below record the MD5 of the files they make
    (``vision.trust_files``), and the loaders accept exactly those beside the official files."""
    monkeypatch.delenv(vision.VERIFY_CHECKSUMS_ENV, raising=False)
    saved = set(vision._TRUSTED_MD5)
    yield
    vision._TRUSTED_MD5.clear()
    vision._TRUSTED_MD5.update(saved)


def _trust(folder: Path) -> None:
    vision.trust_files(sorted(p for p in Path(folder).rglob("*") if p.is_file()))


# --- writers of the real on-disk formats ----------------------------------------------------

def _rng(seed=0):
    return np.random.default_rng(seed)


def write_idx(path: Path, array: np.ndarray, gz: bool = False) -> None:
    """IDX (big-endian) file: magic 0x0000 08 ndim, dims as uint32, then uint8 data."""
    header = struct.pack(">I", 0x0800 | array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    payload = header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    if gz:
        with gzip.open(path, "wb") as f:
            f.write(payload)
    else:
        path.write_bytes(payload)


def mnist_arrays(seed=0):
    r = _rng(seed)
    return {"train-images-idx3-ubyte": r.integers(0, 256, (N_TRAIN, 28, 28), dtype=np.uint8),
            "train-labels-idx1-ubyte": (np.arange(N_TRAIN) % 10).astype(np.uint8),
            "t10k-images-idx3-ubyte": r.integers(0, 256, (N_TEST, 28, 28), dtype=np.uint8),
            "t10k-labels-idx1-ubyte": ((np.arange(N_TEST) * 3) % 10).astype(np.uint8)}


def write_mnist(root: Path, folder: str = "MNIST", gz: bool = False, seed=0) -> dict:
    arrays = mnist_arrays(seed)
    for name, a in arrays.items():
        write_idx(root / folder / "raw" / (name + (".gz" if gz else "")), a, gz=gz)
    return arrays


def write_cifar10(root: Path) -> dict:
    """cifar-10-batches-py: 5 train batches of N_TRAIN/5 rows, a test batch, batches.meta.

    Rows are 3072 bytes: the 1024 red values (row-major 32x32), then green, then blue.
    """
    r, d = _rng(1), root / "cifar-10-batches-py"
    d.mkdir(parents=True)
    x_train = r.integers(0, 256, (N_TRAIN, 3072), dtype=np.uint8)
    y_train = [(i * 7) % 10 for i in range(N_TRAIN)]
    per = N_TRAIN // 5
    for b in range(5):
        sl = slice(b * per, (b + 1) * per)
        with open(d / f"data_batch_{b + 1}", "wb") as f:
            pickle.dump({"batch_label": f"training batch {b + 1} of 5", "labels": y_train[sl],
                         "data": x_train[sl], "filenames": [f"img{i}.png" for i in range(per)]}, f)
    x_test = r.integers(0, 256, (N_TEST, 3072), dtype=np.uint8)
    y_test = [i % 10 for i in range(N_TEST)]
    with open(d / "test_batch", "wb") as f:
        pickle.dump({"batch_label": "testing batch 1 of 1", "labels": y_test, "data": x_test,
                     "filenames": [f"t{i}.png" for i in range(N_TEST)]}, f)
    names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
             "truck"]
    with open(d / "batches.meta", "wb") as f:
        pickle.dump({"num_cases_per_batch": per, "label_names": names, "num_vis": 3072}, f)
    _trust(d)
    return {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test,
            "names": names}


def write_cifar100(root: Path) -> dict:
    r, d = _rng(2), root / "cifar-100-python"
    d.mkdir(parents=True)
    out = {}
    for split, n in (("train", N_TRAIN), ("test", N_TEST)):
        x = r.integers(0, 256, (n, 3072), dtype=np.uint8)
        fine = [(i * 37) % 100 for i in range(n)]
        with open(d / split, "wb") as f:
            pickle.dump({"filenames": [f"{i}.png" for i in range(n)], "batch_label": split,
                         "fine_labels": fine, "coarse_labels": [v // 5 for v in fine],
                         "data": x}, f)
        out[f"x_{split}"], out[f"y_{split}"] = x, fine
    names = [f"fine{k:02d}" for k in range(100)]
    with open(d / "meta", "wb") as f:
        pickle.dump({"fine_label_names": names,
                     "coarse_label_names": [f"coarse{k}" for k in range(20)]}, f)
    out["names"] = names
    _trust(d)
    return out


def write_svhn(folder: Path) -> dict:
    """``{train,test}_32x32.mat``: X uint8 (32, 32, 3, N), y (N, 1) with 10 for the digit 0."""
    from scipy.io import savemat
    r, out = _rng(3), {}
    folder.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", N_TRAIN), ("test", N_TEST)):
        x = r.integers(0, 256, (32, 32, 3, n), dtype=np.uint8)
        digits = np.arange(n) % 10
        y = np.where(digits == 0, 10, digits).astype(np.uint8).reshape(n, 1)
        savemat(folder / f"{split}_32x32.mat", {"X": x, "y": y})
        out[f"x_{split}"], out[f"digits_{split}"] = x, digits
    _trust(folder)
    return out


TINY_WNIDS = ["n09999999", "n01443537", "n02124075"]     # wnids.txt order (unsorted)
TINY_SORTED = sorted(TINY_WNIDS)


def _tiny_colour(label: int, k: int) -> tuple[int, int, int]:
    """Constant colour of image k of class ``label`` (survives JPEG within a few units)."""
    return (30 + 80 * label, 200 - 40 * k, 100)


def write_tiny_imagenet(root: Path, n_train: int = 4, n_val: int = 2) -> dict:
    d = root / "tiny-imagenet-200"
    (d / "val" / "images").mkdir(parents=True)
    (d / "test" / "images").mkdir(parents=True)
    (d / "wnids.txt").write_text("\n".join(TINY_WNIDS) + "\n")
    (d / "words.txt").write_text("".join(f"{w}\tthing {w[-3:]}, other name\n"
                                         for w in TINY_WNIDS + ["n00000001"]))
    for w in TINY_WNIDS:
        label = TINY_SORTED.index(w)
        (d / "train" / w / "images").mkdir(parents=True)
        (d / "train" / w / f"{w}_boxes.txt").write_text("")
        for k in range(n_train):
            img = Image.new("RGB", (64, 64), _tiny_colour(label, k))
            img.save(d / "train" / w / "images" / f"{w}_{k}.JPEG", quality=95)
    # one grey training image: the loader must still give 3 channels
    Image.new("L", (64, 64), 128).save(d / "train" / TINY_SORTED[0] / "images" / "grey.JPEG")
    annotations, order = [], _rng(4).permutation(len(TINY_WNIDS) * n_val)
    for j, slot in enumerate(order):
        w = TINY_WNIDS[slot % len(TINY_WNIDS)]
        label = TINY_SORTED.index(w)
        fname = f"val_{j}.JPEG"
        Image.new("RGB", (64, 64), _tiny_colour(label, 0)).save(d / "val" / "images" / fname,
                                                                 quality=95)
        annotations.append((fname, w))
    (d / "val" / "val_annotations.txt").write_text(
        "".join(f"{f}\t{w}\t0\t0\t63\t63\n" for f, w in annotations))
    Image.new("RGB", (64, 64), 0).save(d / "test" / "images" / "test_0.JPEG")
    return {"dir": d, "annotations": annotations, "n_train": len(TINY_WNIDS) * n_train + 1,
            "n_val": len(annotations)}


# --- helpers --------------------------------------------------------------------------------

def cfg(name, root, **kw) -> DataConfig:
    kw.setdefault("val_fraction", 0.2)
    kw.setdefault("augment", False)
    return DataConfig(name=name, root=str(root), **kw)


def check_contract(splits, in_channels, image_size, num_classes):
    """Every split yields float32 (C, H, W) images in [0, 1] and int labels in range."""
    assert (splits.in_channels, splits.image_size, splits.num_classes) == \
        (in_channels, image_size, num_classes)
    assert len(splits.mean) == len(splits.std) == in_channels
    assert all(0 < s < 1 for s in splits.std) and all(0 < m < 1 for m in splits.mean)
    for ds in (splits.train, splits.val, splits.test):
        for i in (0, len(ds) - 1):
            x, y = ds[i]
            assert x.dtype == torch.float32 and tuple(x.shape) == (in_channels, image_size,
                                                                  image_size)
            assert 0.0 <= float(x.min()) and float(x.max()) <= 1.0
            assert isinstance(y, int) and 0 <= y < num_classes


def official_index(subset, i):
    """Index in the official training set of item ``i`` of a train / val Subset."""
    return subset.indices[i]


def matches_crop(aug: torch.Tensor, original: torch.Tensor, pad: int):
    """``(dy, dx, flipped)`` such that aug = [flip](crop_{dy,dx}(zero_pad(original))), or None."""
    padded = F.pad(original, (pad, pad, pad, pad))
    h, w = original.shape[1:]
    for flipped in (False, True):
        target = aug.flip(-1) if flipped else aug
        for dy in range(2 * pad + 1):
            for dx in range(2 * pad + 1):
                if torch.equal(padded[:, dy:dy + h, dx:dx + w], target):
                    return dy, dx, flipped
    return None


# --- formats: pixels and labels exactly as written ------------------------------------------

@pytest.mark.parametrize("name,folder", [("mnist", "MNIST"), ("fashion_mnist", "FashionMNIST")])
def test_idx_datasets_load_pixels_and_labels_exactly(tmp_path, name, folder):
    arrays = write_mnist(tmp_path, folder)
    s = build_datasets(cfg(name, tmp_path))
    check_contract(s, 1, 28, 10)
    assert len(s.train) + len(s.val) == N_TRAIN and len(s.test) == N_TEST
    for i in (0, 7):
        j = official_index(s.train, i)
        x, y = s.train[i]
        assert torch.equal(x[0], torch.from_numpy(arrays["train-images-idx3-ubyte"][j]) / 255.0)
        assert y == arrays["train-labels-idx1-ubyte"][j]
    x, y = s.test[3]
    assert torch.equal(x[0], torch.from_numpy(arrays["t10k-images-idx3-ubyte"][3]) / 255.0)
    assert y == arrays["t10k-labels-idx1-ubyte"][3]
    assert len(s.class_names) == 10


def test_mnist_gz_only_raw_folder_is_unpacked(tmp_path):
    arrays = write_mnist(tmp_path, "MNIST", gz=True)
    s = build_datasets(cfg("mnist", tmp_path, val_fraction=0.0))
    assert (tmp_path / "MNIST" / "raw" / "train-images-idx3-ubyte").is_file()
    assert s.val is None and len(s.train) == N_TRAIN
    assert torch.equal(s.train[5][0][0],
                       torch.from_numpy(arrays["train-images-idx3-ubyte"][5]) / 255.0)


def _cifar_image(row: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(row.reshape(3, 32, 32).copy()).float() / 255.0


def test_cifar10_pickle_batches(tmp_path):
    data = write_cifar10(tmp_path)
    s = build_datasets(cfg("cifar10", tmp_path))
    check_contract(s, 3, 32, 10)
    assert len(s.train) + len(s.val) == N_TRAIN and len(s.test) == N_TEST
    assert s.class_names == data["names"]
    for i in (0, 11, len(s.train) - 1):          # spans the five batch files
        j = official_index(s.train, i)
        x, y = s.train[i]
        assert torch.equal(x, _cifar_image(data["x_train"][j])) and y == data["y_train"][j]
    x, y = s.test[4]
    assert torch.equal(x, _cifar_image(data["x_test"][4])) and y == data["y_test"][4]
    assert s.info["checksums_verified"] is True


def test_cifar100_fine_labels(tmp_path):
    data = write_cifar100(tmp_path)
    s = build_datasets(cfg("cifar100", tmp_path))
    check_contract(s, 3, 32, 100)
    assert s.class_names == data["names"]
    j = official_index(s.val, 2)
    x, y = s.val[2]
    assert torch.equal(x, _cifar_image(data["x_train"][j])) and y == data["y_train"][j]
    assert max(data["y_train"]) > 19                # fine labels, not coarse ones
    assert [s.test[i][1] for i in range(N_TEST)] == data["y_test"]


@pytest.mark.parametrize("in_subfolder", [True, False])
def test_svhn_mat_files_and_label_10_is_digit_0(tmp_path, in_subfolder):
    data = write_svhn(tmp_path / "svhn" if in_subfolder else tmp_path)
    s = build_datasets(cfg("svhn", tmp_path))
    check_contract(s, 3, 32, 10)
    assert len(s.train) + len(s.val) == N_TRAIN and len(s.test) == N_TEST
    labels = [s.test[i][1] for i in range(N_TEST)]
    assert labels == data["digits_test"].tolist() and 0 in labels and 10 not in labels
    x, _ = s.test[6]
    expected = torch.from_numpy(data["x_test"][:, :, :, 6].transpose(2, 0, 1).copy()) / 255.0
    assert torch.equal(x, expected)


# --- Tiny-ImageNet --------------------------------------------------------------------------

def test_tiny_imagenet_val_relayout_is_correct_and_idempotent(tmp_path):
    fx = write_tiny_imagenet(tmp_path)
    d = fx["dir"]
    assert prepare_tiny_imagenet_val(tmp_path) == fx["n_val"]      # the parent folder works too
    assert not (d / "val" / "images").exists()
    for fname, wnid in fx["annotations"]:
        assert (d / "val" / wnid / "images" / fname).is_file()
    tree = sorted(p.relative_to(d) for p in d.rglob("*"))
    assert prepare_tiny_imagenet_val(d) == 0
    assert sorted(p.relative_to(d) for p in d.rglob("*")) == tree
    assert (d / "val" / "val_annotations.txt").is_file()


def test_tiny_imagenet_relayout_resumes_after_interruption(tmp_path):
    fx = write_tiny_imagenet(tmp_path)
    d = fx["dir"]
    fname, wnid = fx["annotations"][0]                  # as if a first run stopped after one move
    (d / "val" / wnid / "images").mkdir(parents=True)
    os.replace(d / "val" / "images" / fname, d / "val" / wnid / "images" / fname)
    assert prepare_tiny_imagenet_val(d) == fx["n_val"] - 1
    assert not (d / "val" / "images").exists()
    os.remove(d / "val" / wnid / "images" / fname)      # a file in neither place: clear error
    with pytest.raises(DatasetNotFoundError, match=fname):
        prepare_tiny_imagenet_val(d)


def test_tiny_imagenet_image_folder(tmp_path):
    fx = write_tiny_imagenet(tmp_path)
    s = build_datasets(cfg("tiny_imagenet", tmp_path, val_fraction=0.25))
    check_contract(s, 3, 64, len(TINY_WNIDS))
    assert s.class_names == TINY_SORTED
    assert len(s.train) + len(s.val) == fx["n_train"] and len(s.test) == fx["n_val"]
    assert s.info["class_descriptions"] == [f"thing {w[-3:]}, other name" for w in TINY_SORTED]
    assert not (fx["dir"] / "val" / "images").exists()            # the loader re-laid it out
    # test labels follow val_annotations.txt; the colour encodes the class index
    by_file = dict(fx["annotations"])
    base = s.test.base
    for i, (path, label) in enumerate(base.samples):
        assert TINY_SORTED[label] == by_file[Path(path).name]
        x, y = s.test[i]
        assert y == label and abs(float(x[0].mean()) * 255 - _tiny_colour(label, 0)[0]) < 4
    for i in range(len(s.train)):
        x, y = s.train[i]
        path = s.train.dataset.base.samples[s.train.indices[i]][0]
        assert Path(path).parent.parent.name == TINY_SORTED[y]
        if Path(path).name != "grey.JPEG":
            assert abs(float(x[0].mean()) * 255 - _tiny_colour(y, 0)[0]) < 4
    # a second build finds the re-laid-out folder and gives the same test set
    s2 = build_datasets(cfg("tiny_imagenet", tmp_path, val_fraction=0.25))
    assert s2.test.base.samples == base.samples


# --- splits and augmentation ------------------------------------------------------------------

def test_val_split_is_deterministic_disjoint_and_seeded(tmp_path):
    write_cifar10(tmp_path)
    a = build_datasets(cfg("cifar10", tmp_path, split_seed=3))
    b = build_datasets(cfg("cifar10", tmp_path, split_seed=3))
    c = build_datasets(cfg("cifar10", tmp_path, split_seed=4))
    assert a.train.indices == b.train.indices and a.val.indices == b.val.indices
    assert set(a.val.indices) != set(c.val.indices)
    assert not set(a.train.indices) & set(a.val.indices)
    assert sorted(a.train.indices + a.val.indices) == list(range(N_TRAIN))
    assert len(a.val) == round(0.2 * N_TRAIN)
    assert torch.equal(a.val[0][0], b.val[0][0])


@pytest.mark.parametrize("name,writer,pad,flip", [
    ("cifar10", write_cifar10, 4, True),
    ("svhn", lambda root: write_svhn(root / "svhn"), 4, False),
    ("mnist", write_mnist, 2, False),
])
def test_augmentation_is_the_papers_and_only_on_train(tmp_path, name, writer, pad, flip):
    writer(tmp_path)
    plain = build_datasets(cfg(name, tmp_path, augment=False))
    aug = build_datasets(cfg(name, tmp_path, augment=True))
    assert aug.train.indices == plain.train.indices and aug.val.indices == plain.val.indices
    assert PAPER_AUGMENTATION[name].crop_padding == pad
    assert PAPER_AUGMENTATION[name].horizontal_flip == flip
    assert aug.info["augmentation"] != "none" and plain.info["augmentation"] == "none"
    # validation and test are the plain images, every time
    for ds_aug, ds_plain in ((aug.val, plain.val), (aug.test, plain.test)):
        for i in (0, 1):
            assert torch.equal(ds_aug[i][0], ds_plain[i][0])
            assert torch.equal(ds_aug[i][0], ds_aug[i][0])
    # training images are random translations (and, for CIFAR, flips) of the plain ones
    torch.manual_seed(0)
    seen = set()
    for _ in range(40):
        x_aug, y_aug = aug.train[0]
        x, y = plain.train[0]
        assert y_aug == y and x_aug.shape == x.shape
        m = matches_crop(x_aug, x, pad)
        assert m is not None, "augmented image is not a padded crop of the original"
        seen.add(m)
    assert len({m[:2] for m in seen}) > 5                  # several offsets drawn
    assert any(m[2] for m in seen) == flip                 # flipped iff the paper flips
    assert all(torch.equal(plain.train[0][0], plain.train[0][0]) for _ in range(3))


def test_tiny_imagenet_augmentation_configuration(tmp_path):
    write_tiny_imagenet(tmp_path)
    s = build_datasets(cfg("tiny_imagenet", tmp_path, augment=True))
    steps = s.train.dataset.transform.transforms
    assert [type(t).__name__ for t in steps] == ["RandomCrop", "RandomHorizontalFlip", "ToTensor"]
    assert steps[0].padding == 8 and steps[0].size == (64, 64)
    assert type(s.val.dataset.transform).__name__ == "ToTensor"
    assert type(s.test.transform).__name__ == "ToTensor"
    assert s.train.dataset.base is s.val.dataset.base             # one copy of the data


# --- offline errors ---------------------------------------------------------------------------

@pytest.mark.parametrize("name,expected", [
    ("mnist", "ROOT/MNIST/raw/train-images-idx3-ubyte"),
    ("fashion_mnist", "ROOT/FashionMNIST/raw/t10k-labels-idx1-ubyte"),
    ("cifar10", "ROOT/cifar-10-batches-py/data_batch_1"),
    ("cifar100", "ROOT/cifar-100-python/meta"),
    ("svhn", "ROOT/svhn/train_32x32.mat"),
    ("tiny_imagenet", "ROOT/tiny-imagenet-200/val/val_annotations.txt"),
])
def test_missing_dataset_raises_clear_error_with_layout(tmp_path, monkeypatch, name, expected):
    monkeypatch.setattr(vision, "DEBIAN_FASHION_MNIST_DIR", str(tmp_path / "no-debian-package"))
    with pytest.raises(DatasetNotFoundError) as info:
        build_datasets(cfg(name, tmp_path / "empty"))
    assert isinstance(info.value, FileNotFoundError)
    message = str(info.value)
    assert expected in message and "To get it" in message and str(tmp_path / "empty") in message


def test_partially_missing_cifar_names_the_missing_file(tmp_path):
    write_cifar10(tmp_path)
    os.remove(tmp_path / "cifar-10-batches-py" / "data_batch_3")
    with pytest.raises(DatasetNotFoundError, match="missing: cifar-10-batches-py/data_batch_3\\)"):
        build_datasets(cfg("cifar10", tmp_path))


def test_failed_download_is_a_not_found_error(tmp_path, monkeypatch):
    import urllib.error

    import torchvision.datasets.cifar as tv_cifar

    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(tv_cifar, "download_and_extract_archive", offline)
    with pytest.raises(DatasetNotFoundError, match="download failed") as info:
        build_datasets(cfg("cifar10", tmp_path, download=True))
    assert "ROOT/cifar-10-batches-py/test_batch" in str(info.value)


def test_batches_collate_to_image_and_label_tensors(tmp_path):
    write_cifar10(tmp_path)
    s = build_datasets(cfg("cifar10", tmp_path, augment=True))
    x, y = next(iter(torch.utils.data.DataLoader(s.train, batch_size=8, shuffle=True)))
    assert x.shape == (8, 3, 32, 32) and x.dtype == torch.float32 and y.dtype == torch.int64


@pytest.mark.parametrize("name,writer", [("cifar10", write_cifar10),
                                         ("svhn", lambda r: write_svhn(r / "svhn"))])
def test_checksum_mismatch_is_an_integrity_error(tmp_path, monkeypatch, name, writer):
    writer(tmp_path)
    victim = sorted(p for p in tmp_path.rglob("*") if p.is_file() and p.stat().st_size > 100)[0]
    data = bytearray(victim.read_bytes())
    data[-1] ^= 0xFF                                   # one flipped byte: neither official
    victim.write_bytes(bytes(data))                    # nor the recorded hash
    with pytest.raises(DatasetIntegrityError, match=vision.VERIFY_CHECKSUMS_ENV):
        build_datasets(cfg(name, tmp_path))


def test_checksums_off_warns_loudly(tmp_path, monkeypatch, capsys):
    write_cifar10(tmp_path)
    vision._TRUSTED_MD5.clear()
    monkeypatch.setenv(vision.VERIFY_CHECKSUMS_ENV, "0")
    with pytest.warns(UserWarning, match="WITHOUT their MD5"):
        s = build_datasets(cfg("cifar10", tmp_path))
    assert s.info["checksums_verified"] is False
    assert "can run code" in capsys.readouterr().err


# --- Fashion-MNIST from the Debian package ----------------------------------------------------

def test_fashion_mnist_unpacked_from_debian_layout(tmp_path, monkeypatch):
    source = tmp_path / "debian"
    arrays = write_mnist(tmp_path / "unused", "FashionMNIST", seed=5)
    for name, a in arrays.items():
        write_idx(source / (name + ".gz"), a, gz=True)
    monkeypatch.setattr(vision, "DEBIAN_FASHION_MNIST_DIR", str(source))
    root = tmp_path / "root"
    s = build_datasets(cfg("fashion_mnist", root, val_fraction=0.0))
    raw = root / "FashionMNIST" / "raw"
    assert sorted(p.name for p in raw.iterdir()) == sorted(arrays)
    expected = torch.from_numpy(arrays["t10k-images-idx3-ubyte"][2]) / 255.0
    assert torch.equal(s.test[2][0][0], expected)
    mtimes = {p.name: p.stat().st_mtime_ns for p in raw.iterdir()}
    assert zdata.prepare_fashion_mnist_from_debian(root, source) == raw       # idempotent
    assert {p.name: p.stat().st_mtime_ns for p in raw.iterdir()} == mtimes
    with pytest.raises(DatasetNotFoundError, match="train-labels-idx1-ubyte.gz"):
        os.remove(source / "train-labels-idx1-ubyte.gz")
        zdata.prepare_fashion_mnist_from_debian(tmp_path / "other", source)


@pytest.mark.skipif(not (DEBIAN_FASHION / "train-images-idx3-ubyte.gz").is_file(),
                    reason="Debian package dataset-fashion-mnist not installed")
def test_real_fashion_mnist_from_debian_package(tmp_path):
    t0 = time.perf_counter()
    s = build_datasets(cfg("fashion_mnist", tmp_path, val_fraction=0.0))
    seconds = time.perf_counter() - t0
    assert len(s.train) == 60000 and len(s.test) == 10000 and s.val is None
    base = s.train.base
    assert torch.bincount(base.targets, minlength=10).tolist() == [6000] * 10
    assert torch.bincount(s.test.base.targets, minlength=10).tolist() == [1000] * 10
    # registered statistics = those of the 60,000 training images (exact, via a histogram)
    hist = torch.bincount(base.data.flatten(), minlength=256).double()
    v = torch.arange(256, dtype=torch.float64) / 255.0
    mean = (hist * v).sum() / hist.sum()
    std = ((hist * (v - mean) ** 2).sum() / hist.sum()).sqrt()
    assert abs(mean.item() - vision.FASHION_MNIST_MEAN[0]) < 1e-4
    assert abs(std.item() - vision.FASHION_MNIST_STD[0]) < 1e-4
    x, y = s.train[0]
    assert x.shape == (1, 28, 28) and y == int(base.targets[0]) and s.class_names[9] == "Ankle boot"
    assert seconds < 10, f"loading took {seconds:.1f}s"


# --- synthetic 2-D ----------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["synthetic2d", "synthetic2d_spirals"])
def test_synthetic2d_contract_and_determinism(name):
    a = build_datasets(DataConfig(name=name, split_seed=7, val_fraction=0.1))
    b = build_datasets(DataConfig(name=name, split_seed=7, val_fraction=0.1))
    c = build_datasets(DataConfig(name=name, split_seed=8, val_fraction=0.1))
    info = dataset_info(name)
    assert (a.in_channels, a.image_size) == (info["in_channels"], info["image_size"]) == (2, 1)
    assert a.num_classes == info["num_classes"]
    L = a.num_classes
    x, y = a.test[0]
    assert x.shape == (2,) and x.dtype == torch.float32 and isinstance(y, int)
    xs = a.train.dataset.x
    assert float(xs.min()) >= 0 and float(xs.max()) <= 1
    assert torch.equal(xs, b.train.dataset.x) and not torch.equal(xs, c.train.dataset.x)
    assert a.val.indices == b.val.indices
    assert not torch.equal(a.test.x, xs[: len(a.test)])          # test points are fresh draws
    counts = torch.bincount(a.train.dataset.y, minlength=L)
    assert int(counts.max() - counts.min()) <= 1 and int(counts.sum()) == len(xs)
    mean, std = channel_statistics(a.train.dataset)
    assert np.allclose(mean, info["mean"], atol=0.02) and np.allclose(std, info["std"], atol=0.015)
    # the classes are learnable: 1-nearest-neighbour from train classifies the test set
    d = torch.cdist(a.test.x, xs)
    accuracy = (a.train.dataset.y[d.argmin(1)] == a.test.y).float().mean().item()
    assert accuracy > 0.95


def test_synthetic2d_blob_statistics_formula():
    from zubovnet.data.synthetic import blobs_statistics, make_blobs2d
    x, y = make_blobs2d(200_000, num_classes=5, radius=0.25, spread=0.05, seed=1)
    mean, std = blobs_statistics(5, 0.25, 0.05)
    assert np.allclose(x.double().mean(0).numpy(), mean, atol=2e-3)
    assert np.allclose(x.double().std(0).numpy(), std, atol=2e-3)
    centres = torch.stack([x[y == k].mean(0) for k in range(5)])
    assert np.allclose((centres - 0.5).norm(dim=1).numpy(), 0.25, atol=2e-3)


# --- registry metadata ------------------------------------------------------------------------

@pytest.mark.parametrize("name,shape", [("mnist", (10, 1, 28)), ("fashion_mnist", (10, 1, 28)),
                                        ("cifar10", (10, 3, 32)), ("cifar100", (100, 3, 32)),
                                        ("svhn", (10, 3, 32)), ("tiny_imagenet", (200, 3, 64)),
                                        ("synthetic2d", (4, 2, 1))])
def test_dataset_info(name, shape):
    info = dataset_info(name)
    assert (info["num_classes"], info["in_channels"], info["image_size"]) == shape
    assert len(info["mean"]) == len(info["std"]) == shape[1]


def test_transformed_dataset_shares_base_and_casts_labels():
    base = [(Image.new("RGB", (4, 4), (255, 0, 51)), torch.tensor(3))]
    x, y = TransformedDataset(base, vision.eval_transform())[0]
    assert isinstance(y, int) and y == 3
    assert torch.allclose(x[:, 0, 0], torch.tensor([1.0, 0.0, 0.2]))
