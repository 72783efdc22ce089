"""Evaluation sharded over processes (``torchrun``): each rank a share of the work, one record.

::

    torchrun --nproc_per_node 2 -m zubovnet eval RUN --suite all --n 1000

Every stage of an evaluation is a list of *units* whose results do not depend on which process
computes them, nor in which order:

* a **batch** of an attack or of the clean pass (batch ``b`` is attacked with seed
  ``seed + b``, and its composition — which matters to an adaptive ODE solver, whose step
  sizes are shared by the examples of a batch — is the same in every process);
* one **corruption at one severity** (its generator is seeded from the corruption and the
  severity alone, ``CORRUPTION_SEED_RULE``);
* a **whole-sample** computation (an attack that takes the whole sample at once, the gradient
  checks, the alignment report): one unit.

Rank ``r`` of ``W`` computes the units ``u`` with ``u mod W == r``; at the end of each stage
the ranks exchange their results (``all_gather_object``), so every rank holds the full
per-image masks and builds the same record; rank 0 writes it.  The record therefore equals the
single-process record of the same arguments field for field, wall times and the
``distributed`` entry aside (``tests/test_shard.py`` runs both with two CPU processes).

Resuming: rank 0 owns the evaluation state file (:mod:`zubovnet.evaluation.state`); every
rank reads it at the start, and rank 0 stores each stage's merged results as they arrive, so a
killed sharded evaluation resumes — with any number of processes — from the last finished
stage (rank 0's own batches also from the last finished batch).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Callable

import torch

__all__ = ["Shard", "SINGLE", "from_environment"]


@dataclass(frozen=True)
class Shard:
    """Rank ``rank`` of ``world`` processes (``world == 1``: everything is computed here)."""
    rank: int = 0
    world: int = 1

    def __post_init__(self):
        if self.world < 1 or not 0 <= self.rank < self.world:
            raise ValueError(f"rank {self.rank} of {self.world} processes is not a valid shard")

    @property
    def active(self) -> bool:
        """More than one process."""
        return self.world > 1

    @property
    def main(self) -> bool:
        """Rank 0: shows progress, writes the state and the record."""
        return self.rank == 0

    def mine(self, unit: int) -> bool:
        """Whether this process computes unit ``unit`` (``unit mod world == rank``)."""
        return unit % self.world == self.rank

    def exchange(self, local: Any) -> list:
        """Every rank's ``local`` (picklable), in rank order."""
        if not self.active:
            return [local]
        import torch.distributed as dist
        parts: list = [None] * self.world
        dist.all_gather_object(parts, local)
        return parts

    def gather(self, local: dict) -> dict:
        """The union of every rank's ``local`` dict (keys are units, disjoint across ranks)."""
        out: dict = {}
        for part in self.exchange(local):
            out.update(part)
        return out

    def once(self, unit: int, fn: Callable[[], Any]) -> Any:
        """``fn()`` computed by the owner of ``unit`` and sent to every rank."""
        if not self.active:
            return fn()
        import torch.distributed as dist
        owner = unit % self.world
        box = [fn() if self.rank == owner else None]
        dist.broadcast_object_list(box, src=owner)
        return box[0]

    def describe(self) -> dict:
        return {"world_size": self.world, "units": "batches, corruption x severity, "
                "whole-sample stages; unit u on rank u mod world_size"}


SINGLE = Shard()
"""The single-process shard."""


def from_environment(device: str | None = None) -> Shard:
    """The shard of this process: under ``torchrun`` (``WORLD_SIZE > 1``) the process group is
    initialised (gloo on the CPU, NCCL on CUDA) if it is not already; otherwise :data:`SINGLE`."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    import torch.distributed as dist
    if world > 1 and not dist.is_initialized():
        cuda = device is not None and str(device).startswith("cuda")
        dist.init_process_group("nccl" if cuda and torch.cuda.is_available() else "gloo")
    if dist.is_available() and dist.is_initialized():
        return Shard(dist.get_rank(), dist.get_world_size())
    return SINGLE
