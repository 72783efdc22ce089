"""Wall time per named part of a training step (benchmarks; off unless a timer is attached).

    timer = PartTimer(device)
    objective.timer = timer          # the objective wraps its parts in timer.part("...")
    ...
    timer.totals                     # {"forward": 0.12, "counterexamples": 0.31, ...} seconds

On CUDA each part synchronises the device before and after, so the times are the device's.
"""
from __future__ import annotations

import contextlib
import time
from typing import Iterator

import torch

__all__ = ["PartTimer", "part"]


class PartTimer:
    """Accumulates seconds per part name."""

    def __init__(self, device: torch.device | str | None = None):
        self.device = torch.device(device) if device is not None else None
        self.totals: dict[str, float] = {}

    def _sync(self) -> None:
        if self.device is not None and self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    @contextlib.contextmanager
    def part(self, name: str) -> Iterator[None]:
        self._sync()
        t = time.perf_counter()
        try:
            yield
        finally:
            self._sync()
            self.totals[name] = self.totals.get(name, 0.0) + time.perf_counter() - t

    def reset(self) -> None:
        self.totals = {}


def part(timer: PartTimer | None, name: str):
    """``timer.part(name)``, or a no-op context without a timer."""
    return timer.part(name) if timer is not None else contextlib.nullcontext()
