"""The input contract of every model: float images ``(B, C, H, W)`` in [0, 1], finite.

:func:`~zubovnet.models.build_model` attaches an :class:`InputContract` to each model as a
forward pre-hook, so ``model(x)`` checks its input before any work and a bad input gets one
line naming what was expected — instead of an ODE solver's "step size underflow" on NaN, a
uint8 image used unscaled, or a 32×32 image silently accepted by an 8×8 model.  The check is
three reductions over the batch; switch it off with ``model.input_contract.enabled = False``
or ``model.check_inputs: false`` in the config.
"""
from __future__ import annotations

import contextlib
from typing import Iterator

import torch
from torch import nn

__all__ = ["InputError", "InputContract", "attach_input_contract", "range_unchecked"]


class InputError(ValueError):
    """An input that breaks the model's input contract."""


class InputContract:
    """Forward pre-hook checking ``x`` of ``model(x)`` against ``shape = (C, H, W)``.

    Planar models (``H = W = 1``) also accept ``(B, C)``.  ``value_range``: ``(lo, hi)`` or
    ``None``; ``enabled``: switch the whole check off.
    """

    def __init__(self, shape: tuple[int, int, int], value_range=(0.0, 1.0), enabled: bool = True):
        self.shape = tuple(int(s) for s in shape)
        self.value_range = value_range
        self.enabled = enabled

    def expected(self) -> str:
        c, h, w = self.shape
        return f"(B, {c}, {h}, {w})" + (f" or (B, {c})" if h == w == 1 else "")

    def check(self, x) -> None:
        if not self.enabled:
            return
        if not isinstance(x, torch.Tensor):
            raise InputError(f"expected a tensor of images {self.expected()}, got "
                             f"{type(x).__name__}")
        if not torch.is_floating_point(x):
            hint = " (divide uint8 images by 255)" if x.dtype == torch.uint8 else ""
            raise InputError(f"expected float images in [0, 1], got dtype {x.dtype}{hint}")
        c, h, w = self.shape
        ok = (x.dim() == 4 and tuple(x.shape[1:]) == self.shape) or \
             (h == w == 1 and x.dim() == 2 and x.shape[1] == c)
        if not ok:
            raise InputError(f"expected input of shape {self.expected()}, got {tuple(x.shape)}")
        if x.shape[0] == 0:
            raise InputError("got an empty batch (0 images)")
        if not bool(torch.isfinite(x).all()):
            raise InputError("the input contains NaN or Inf")
        if self.value_range is not None:
            lo, hi = float(x.detach().min()), float(x.detach().max())
            a, b = self.value_range
            if lo < a - 1e-6 or hi > b + 1e-6:
                raise InputError(f"expected pixel values in [{a:g}, {b:g}], got [{lo:.4g}, "
                                 f"{hi:.4g}]")

    def __call__(self, module, args):
        if args:
            self.check(args[0])


def attach_input_contract(model: nn.Module, model_cfg) -> nn.Module:
    """Attach (or replace) the model's :class:`InputContract` from a ModelConfig."""
    old = getattr(model, "_input_contract_handle", None)
    if old is not None:
        old.remove()
    contract = InputContract((model_cfg.in_channels, model_cfg.image_size, model_cfg.image_size),
                             enabled=bool(getattr(model_cfg, "check_inputs", True)))
    model.input_contract = contract
    model._input_contract_handle = model.register_forward_pre_hook(contract)
    return model


@contextlib.contextmanager
def range_unchecked(model: nn.Module) -> Iterator[None]:
    """Skip the range part of ``model``'s contract inside the block: attacks may query the
    model off [0, 1] while they search (VNI-FGSM's neighbourhood, Jitter's noise); what they
    return is checked against the threat model separately."""
    contracts = [m.input_contract for m in model.modules()
                 if isinstance(getattr(m, "input_contract", None), InputContract)]
    saved = [c.value_range for c in contracts]
    for c in contracts:
        c.value_range = None
    try:
        yield
    finally:
        for c, r in zip(contracts, saved):
            c.value_range = r
