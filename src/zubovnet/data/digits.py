"""scikit-learn's 8x8 handwritten digits (1,797 images, ships with scikit-learn: offline)."""
from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset, TensorDataset

from ..config import DataConfig
from .registry import DatasetSplits, register_dataset, split_train_val

DIGITS_MEAN = [0.3052]
DIGITS_STD = [0.3782]


class _Augmented(Dataset):
    """Random 1-pixel translation (zero padding) of 8x8 digits."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, pad: int = 1):
        self.x, self.y, self.pad = x, y, pad

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        img = self.x[i]
        p = self.pad
        padded = torch.nn.functional.pad(img, (p, p, p, p))
        dx, dy = torch.randint(0, 2 * p + 1, (2,)).tolist()
        return padded[:, dy:dy + img.shape[1], dx:dx + img.shape[2]], self.y[i]


def load_digits_tensors() -> tuple[torch.Tensor, torch.Tensor]:
    from sklearn.datasets import load_digits
    d = load_digits()
    x = torch.tensor(d.images / 16.0, dtype=torch.float32).unsqueeze(1)
    y = torch.tensor(d.target, dtype=torch.long)
    return x, y


@register_dataset("digits", num_classes=10, in_channels=1, image_size=8,
                  train_size=1437, test_size=360,
                  mean=DIGITS_MEAN, std=DIGITS_STD)
def build_digits(cfg: DataConfig) -> DatasetSplits:
    """Stratified 80/20 train/test split with a fixed seed (0); validation from train."""
    from sklearn.model_selection import train_test_split
    x, y = load_digits_tensors()
    idx = np.arange(len(y))
    tr, te = train_test_split(idx, test_size=0.2, random_state=0, stratify=y.numpy())
    tr, te = torch.as_tensor(tr), torch.as_tensor(te)
    eval_train = TensorDataset(x[tr], y[tr])
    train = _Augmented(x[tr], y[tr]) if cfg.augment else eval_train
    train, val = split_train_val(train, cfg.val_fraction, cfg.split_seed, eval_view=eval_train)
    return DatasetSplits(train=train, val=val, test=TensorDataset(x[te], y[te]),
                         num_classes=10, in_channels=1, image_size=8,
                         mean=DIGITS_MEAN, std=DIGITS_STD,
                         class_names=[str(i) for i in range(10)])
