"""Shared test helpers: the digits splits and a small undefended MLP trained on them."""
from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch import nn


@functools.lru_cache(maxsize=1)
def digits():
    from zubovnet.config import DataConfig
    from zubovnet.data import build_datasets
    return build_datasets(DataConfig(name="digits", augment=False))


def stack(ds, n=None):
    """``(X (n, C, H, W), Y (n,))`` from the first ``n`` items of ``ds`` (all if None)."""
    n = len(ds) if n is None else min(n, len(ds))
    xs, ys = zip(*[ds[i] for i in range(n)])
    return torch.stack(xs).float(), torch.as_tensor([int(v) for v in ys])


def train_mlp(seed: int = 0, epochs: int = 30, hidden: int = 128) -> nn.Module:
    """An undefended 64-hidden-10 MLP on 8x8 digits (about 0.5 s on one core, ~97% test)."""
    x, y = stack(digits().train)
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, hidden), nn.ReLU(), nn.Linear(hidden, 10))
    opt = torch.optim.Adam(model.parameters(), 1e-2)
    for _ in range(epochs):
        perm = torch.randperm(len(x), generator=g)
        for i in range(0, len(x), 128):
            b = perm[i:i + 128]
            loss = F.cross_entropy(model(x[b]), y[b])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return model.eval()


def tiny_config(name: str = "zubovnet"):
    """A Config with tiny widths (d = 8, CNN 8-16, hidden 32, PIACNN 32-32-1) for fast tests."""
    from zubovnet.config import Config
    cfg = Config()
    m = cfg.model
    m.name = name
    m.state_dim = 8
    m.cnn_widths = [8, 16]
    m.ode.hidden = 32
    m.lyapunov.z_widths = [32, 32, 1]
    m.lyapunov.u_widths = [32, 32]
    m.equilibria.steps = 100
    cfg.loss.boundary.variants = 3
    cfg.train.progress = False
    cfg.train.tensorboard = False
    return cfg
