"""One registry for every model of the paper: ``build_model(cfg)``."""
from __future__ import annotations

from typing import Callable

from torch import nn

from ..config import Config, ModelConfig

__all__ = ["register_model", "build_model", "available_models"]

_MODELS: dict[str, Callable[[Config], nn.Module]] = {}


def register_model(name: str):
    """Decorator registering ``builder(cfg: Config) -> nn.Module`` under ``name``."""
    def deco(fn):
        if name in _MODELS:
            raise KeyError(f"model {name!r} registered twice")
        _MODELS[name] = fn
        return fn
    return deco


def available_models() -> list[str]:
    _ensure_loaded()
    return sorted(_MODELS)


def build_model(cfg: Config | ModelConfig) -> nn.Module:
    """Build the model named ``cfg.model.name`` (a :class:`Config` or a bare :class:`ModelConfig`),
    with its input contract attached (:mod:`zubovnet.models.inputs`)."""
    _ensure_loaded()
    if isinstance(cfg, ModelConfig):
        cfg = Config(model=cfg)
    name = cfg.model.name
    if name not in _MODELS:
        raise KeyError(f"unknown model {name!r}; available: {', '.join(sorted(_MODELS))}")
    from .inputs import attach_input_contract
    return attach_input_contract(_MODELS[name](cfg), cfg.model)


def _ensure_loaded() -> None:
    from . import builders  # noqa: F401
    from . import baselines  # noqa: F401
