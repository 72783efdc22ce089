"""zubovnet — the reference implementation of Zubov-Net (Neural ODEs whose classifier is a set of
learned per-class Lyapunov functions, trained with Zubov's equation as a loss).

Public API::

    from zubovnet import load_config, build_model, train, load_checkpoint
"""
from .config import Config, load_config
from .models import build_model

__version__ = "0.1.0"


def train(cfg, **kwargs):
    """Train the model of ``cfg`` (see :func:`zubovnet.training.train`)."""
    from .training import train as _train
    return _train(cfg, **kwargs)


def load_checkpoint(path, **kwargs):
    """Load ``(model, cfg, meta)`` from a checkpoint folder (see :mod:`zubovnet.training.checkpoint`)."""
    from .training.checkpoint import load_checkpoint as _load
    return _load(path, **kwargs)


__all__ = ["Config", "load_config", "build_model", "train", "load_checkpoint", "__version__"]
