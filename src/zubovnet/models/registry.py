"""One registry for every model of the paper: ``build_model(cfg)``.

The modules that define models (:mod:`~zubovnet.models.builders` and the baselines) register
them with :func:`register_model` when imported; :mod:`zubovnet.models` imports them right
after this module, so every model is registered once the package is imported.
"""
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
    """The names of every registered model, sorted."""
    return sorted(_MODELS)


def build_model(cfg: Config | ModelConfig) -> nn.Module:
    """Build the model named ``cfg.model.name`` (a :class:`Config` or a bare :class:`ModelConfig`),
    with its input contract attached (:mod:`zubovnet.models.inputs`)."""
    if isinstance(cfg, ModelConfig):
        cfg = Config(model=cfg)
    name = cfg.model.name
    if name not in _MODELS:
        raise KeyError(f"unknown model {name!r}; available: {', '.join(sorted(_MODELS))}")
    from .inputs import attach_input_contract
    return attach_input_contract(_MODELS[name](cfg), cfg.model)
