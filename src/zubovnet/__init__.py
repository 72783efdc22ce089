"""zubovnet — the reference implementation of Zubov-Net (Neural ODEs whose classifier is a set of
learned per-class Lyapunov functions, trained with Zubov's equation as a loss).

Public API::

    from zubovnet import load_config, build_model, train, evaluate, load_checkpoint, load_pretrained
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


def evaluate(model, dataset, suite="clean", **kwargs):
    """Evaluate ``model`` on ``dataset`` with ``suite``; the record (see
    :func:`zubovnet.evaluation.evaluate`)."""
    from .evaluation import evaluate as _evaluate
    return _evaluate(model, dataset, suite, **kwargs)


def load_pretrained(name: str, **kwargs):
    """Load ``(model, cfg, claim)`` of a checkpoint shipped with the package, by name
    (:mod:`zubovnet.pretrained`; ``available_pretrained()`` lists them)."""
    from .pretrained import load_pretrained as _load
    return _load(name, **kwargs)


__all__ = ["Config", "load_config", "build_model", "train", "evaluate", "load_checkpoint",
           "load_pretrained", "__version__"]
