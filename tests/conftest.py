import pytest
import torch

# one thread per test worker: `make test` runs 2 workers on 2 cores
torch.set_num_threads(1)


@pytest.fixture
def small_cfg():
    """A tiny Zubov-Net config on 8x8 single-channel inputs (fast on CPU)."""
    from digits_helpers import tiny_config
    return tiny_config()
