import os

import pytest
import torch

# one thread per test worker: `make test` runs 2 workers on 2 cores
torch.set_num_threads(1)


@pytest.fixture
def small_cfg():
    """A tiny Zubov-Net config on 8x8 single-channel inputs (fast on CPU)."""
    from zubovnet.config import Config
    cfg = Config()
    m = cfg.model
    m.state_dim = 8
    m.cnn_widths = [8, 16]
    m.ode.hidden = 32
    m.lyapunov.z_widths = [32, 32, 1]
    m.lyapunov.u_widths = [32, 32]
    m.equilibria.steps = 200
    cfg.loss.boundary.variants = 3
    cfg.train.progress = False
    cfg.train.tensorboard = False
    return cfg
