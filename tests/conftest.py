import pytest
import torch

from digits_helpers import digits, tiny_config, train_mlp

# one thread per test worker: `make test` runs 2 workers on 2 cores
torch.set_num_threads(1)


@pytest.fixture
def small_cfg():
    """A tiny Zubov-Net config on 8x8 single-channel inputs (fast on CPU)."""
    return tiny_config()


@pytest.fixture(scope="module")
def mlp():
    """The undefended digits MLP of :func:`digits_helpers.train_mlp`, trained once per module."""
    return train_mlp()


@pytest.fixture(scope="module")
def test_set():
    """The digits test split (loaded once per session by :func:`digits_helpers.digits`)."""
    return digits().test
