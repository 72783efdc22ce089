"""Resumable evaluation: per-image results stored as they are computed.

An evaluation writes ``<record>.state.json`` beside the record it will produce, after every
batch of every attack, corruption and check (atomically: a temporary file, then a rename), in
the spirit of AutoAttack's own state file.  Run again with the same arguments, ``zubovnet
eval`` reads the finished batches and stages back and computes only the rest; every batch is
attacked with a seed that depends on its index alone, so the record equals that of an
uninterrupted run (wall times aside).  The state is deleted once the record is written.

The state carries a *fingerprint* of everything the numbers depend on (model checkpoint and
epoch, suites, sample, seed, batch size, settings); a state with another fingerprint is not
reused — the evaluation starts over and says so.

Sharded over processes (:mod:`zubovnet.evaluation.shard`), every rank reads the file, rank 0
alone writes it; each stage is given a unit offset in the order stages are opened, so the
stages' units spread over the ranks the same way in every process.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Callable

import torch

from .shard import SINGLE, Shard

__all__ = ["EvalState", "StageCache", "fingerprint"]

SCHEMA = "zubovnet-eval-state/1"


def fingerprint(data: dict) -> str:
    """A short hash of the JSON of ``data`` (sorted keys)."""
    raw = json.dumps(data, sort_keys=True, default=str).encode()
    return hashlib.sha256(raw).hexdigest()[:16]


def _bits(mask: torch.Tensor) -> str:
    return "".join("1" if bool(v) else "0" for v in mask.tolist())


def _mask(bits: str) -> torch.Tensor:
    return torch.tensor([c == "1" for c in bits], dtype=torch.bool)


class StageCache:
    """The batches of one stage: ``get(b) -> (correct, failed) | None``, ``put(b, correct,
    failed)`` (the interface :func:`~zubovnet.evaluation.attacks.run_attack` expects)."""

    def __init__(self, state: "EvalState", stage: str, offset: int = 0):
        self.state, self.stage, self.offset = state, stage, offset

    @property
    def shard(self) -> Shard:
        return self.state.shard

    def mine(self, b: int) -> bool:
        """Whether this process computes batch ``b`` of the stage."""
        return self.state.shard.mine(self.offset + b)

    def get(self, b: int):
        entry = self.state.data["batches"].get(self.stage, {}).get(str(b))
        if entry is None:
            return None
        return _mask(entry["correct"]), _mask(entry["failed"])

    def put(self, b: int, correct: torch.Tensor, failed: torch.Tensor) -> None:
        self.state.data["batches"].setdefault(self.stage, {})[str(b)] = {
            "correct": _bits(correct), "failed": _bits(failed)}
        self.state.save()


class EvalState:
    """Per-image results of one evaluation (module docstring).

    ``path``: the state file (``None``: kept in memory only, nothing is resumed).
    ``key``: the fingerprint; a file with another key is ignored and replaced.
    ``shard``: this process's share of a sharded evaluation (only rank 0 writes the file).
    """

    def __init__(self, path: str | os.PathLike | None, key: str, shard: Shard = SINGLE):
        self.path = Path(path) if path is not None else None
        self.key = key
        self.shard = shard
        self._units = 0
        self.resumed = False
        self.discarded = False
        self.data: dict = {"schema": SCHEMA, "key": key, "batches": {}, "stages": {}}
        if self.path is not None and self.path.is_file():
            try:
                with open(self.path) as fh:
                    old = json.load(fh)
            except (OSError, ValueError):
                old = None
            if isinstance(old, dict) and old.get("schema") == SCHEMA and old.get("key") == key:
                self.data = old
                self.resumed = bool(old["batches"] or old["stages"])
            else:
                self.discarded = True

    # ---- stages whose result is one JSON value (a mask, a report, verdicts)
    def stage(self, name: str) -> StageCache:
        """The batch cache of stage ``name`` (its units start at the next unit offset)."""
        cache = StageCache(self, name, self._units)
        self._units += 1
        return cache

    def reserve(self, k: int) -> int:
        """The first of ``k`` consecutive units (stages of one value each, spread over the ranks
        of a sharded evaluation by ``shard.mine(first + i)``)."""
        first = self._units
        self._units += int(k)
        return first

    def compute(self, name: str, fn: Callable[[], Any]) -> Any:
        """The stored value of stage ``name``, or ``fn()`` — computed by one rank of a sharded
        evaluation and sent to all — stored and returned (``fn`` must return JSON-able data)."""
        unit = self._units
        self._units += 1
        got = self.get(name)
        if got is None:
            got = self.put(name, self.shard.once(unit, fn))
        return got

    def get(self, name: str) -> Any:
        return self.data["stages"].get(name)

    def put(self, name: str, value: Any) -> Any:
        self.data["stages"][name] = value
        self.save()
        return value

    def get_mask(self, name: str) -> torch.Tensor | None:
        v = self.get(name)
        return None if v is None else _mask(v)

    def put_mask(self, name: str, mask: torch.Tensor) -> torch.Tensor:
        self.put(name, _bits(mask))
        return mask

    def save(self) -> None:
        if self.path is None or not self.shard.main:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f"{self.path.name}.tmp{os.getpid()}")
        with open(tmp, "w") as fh:
            json.dump(self.data, fh)
        os.replace(tmp, self.path)

    def aux_path(self, name: str) -> Path | None:
        """A file beside the state for a component with its own state (AutoAttack's)."""
        if self.path is None:
            return None
        safe = "".join(c if c.isalnum() or c in "-_.@" else "_" for c in name)
        return self.path.with_name(f"{self.path.name}.{safe}")

    def remove(self) -> None:
        """Delete the state and its auxiliary files (the record is written)."""
        if self.path is None or not self.shard.main:
            return
        for p in self.path.parent.glob(self.path.name + "*"):
            try:
                p.unlink()
            except OSError:
                pass
