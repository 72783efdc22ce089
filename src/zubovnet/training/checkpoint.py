"""Checkpoints: safetensors weights + JSON, written atomically, one folder per epoch.

Layout of a run folder::

    RUN/config.yaml                      the resolved configuration
    RUN/checkpoints/epoch_0007/
        model.safetensors                model weights (state_dict)
        train_state.safetensors          optimiser tensors and RNG states
        checkpoint.json                  format, epoch, config, metrics history, optimiser
                                         param groups, scheduler state, numpy/python RNG state
    RUN/checkpoints/latest.json          {"epoch": 7, "path": "epoch_0007"}

A folder is written under a temporary name and renamed into place, and ``latest.json`` is
replaced last, so a run killed at any moment leaves the previous checkpoint intact.
"""
from __future__ import annotations

import json
import os
import random
import re
import shutil
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from ..config import Config, config_from_dict, config_to_dict

__all__ = ["save_checkpoint", "load_checkpoint", "latest_checkpoint", "restore_training_state",
           "checkpoint_config",
           "FORMAT"]

FORMAT = "zubovnet-checkpoint/1"


def _write_json(path: Path, data: Any) -> None:
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    with open(tmp, "w") as fh:
        json.dump(data, fh, indent=1, default=_json_default)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _json_default(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, torch.Tensor):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o)}")


def _rng_state() -> tuple[dict, dict]:
    tensors = {"rng.torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng.cuda.{i}"] = s
    np_state = np.random.get_state()
    py_state = random.getstate()
    meta = {"numpy": [np_state[0], np_state[1].tolist(), *np_state[2:]],
            "python": [py_state[0], list(py_state[1]), py_state[2]]}
    return tensors, meta


def _set_rng_state(tensors: dict, meta: dict) -> None:
    torch.set_rng_state(tensors["rng.torch"])
    cuda = [tensors[k] for k in sorted(t for t in tensors if t.startswith("rng.cuda."))]
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda)
    n = meta["numpy"]
    np.random.set_state((n[0], np.array(n[1], dtype=np.uint32), *n[2:]))
    p = meta["python"]
    random.setstate((p[0], tuple(p[1]), p[2]))


def _scheduler_state(scheduler) -> dict | None:
    if scheduler is None:
        return None
    state = dict(scheduler.state_dict())
    if isinstance(state.get("milestones"), Counter):
        state["milestones"] = [[int(k), int(v)] for k, v in state["milestones"].items()]
    return state


def _load_scheduler_state(scheduler, state: dict) -> None:
    state = dict(state)
    if isinstance(state.get("milestones"), list):
        state["milestones"] = Counter({int(k): int(v) for k, v in state["milestones"]})
    scheduler.load_state_dict(state)


def save_checkpoint(run_dir: str | Path, epoch: int, model: torch.nn.Module, cfg: Config,
                    optimizer=None, scheduler=None, history: list | None = None,
                    keep: int = 2, extra: dict | None = None) -> Path:
    """Write the checkpoint of ``epoch`` (1-based, completed epochs) atomically; return its folder."""
    ckdir = Path(run_dir) / "checkpoints"
    ckdir.mkdir(parents=True, exist_ok=True)
    name = f"epoch_{epoch:04d}"
    tmp = ckdir / f".{name}.tmp{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    try:
        return _save_into(tmp, ckdir, name, epoch, model, cfg, optimizer, scheduler, history,
                          keep, extra)
    except BaseException:           # a failed or interrupted save leaves nothing behind
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _save_into(tmp, ckdir, name, epoch, model, cfg, optimizer, scheduler, history, keep,
               extra) -> Path:
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    save_file(state, str(tmp / "model.safetensors"))
    tensors, rng_meta = _rng_state()
    opt_meta = None
    if optimizer is not None:
        osd = optimizer.state_dict()
        for pid, pstate in osd["state"].items():
            for k, v in pstate.items():
                if torch.is_tensor(v):
                    tensors[f"optim.{pid}.{k}"] = v.detach().contiguous().cpu()
        opt_meta = {"param_groups": osd["param_groups"],
                    "state": {str(pid): {k: (None if torch.is_tensor(v) else v) for k, v in s.items()}
                              for pid, s in osd["state"].items()}}
    save_file(tensors, str(tmp / "train_state.safetensors"))
    meta = {"format": FORMAT, "epoch": epoch, "model": cfg.model.name,
            "config": config_to_dict(cfg), "metrics": history or [],
            "optimizer": opt_meta, "scheduler": _scheduler_state(scheduler), "rng": rng_meta,
            **(extra or {})}
    _write_json(tmp / "checkpoint.json", meta)
    final = ckdir / name
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    _write_json(ckdir / "latest.json", {"epoch": epoch, "path": name})
    if keep > 0:  # prune older epoch folders
        olds = sorted(p for p in ckdir.glob("epoch_*") if p.is_dir() and p.name != name)
        for p in olds[:max(0, len(olds) - (keep - 1))]:
            shutil.rmtree(p, ignore_errors=True)
    return final


_EPOCH_NAME = re.compile(r"epoch_\d{4,}")


def _read_json(path: Path) -> dict:
    try:
        with open(path) as fh:
            return json.load(fh)
    except ValueError as e:
        raise ValueError(f"corrupt checkpoint file {path}: {e}") from None


def latest_checkpoint(path: str | Path) -> Path | None:
    """Resolve a run folder, a ``checkpoints`` folder or an epoch folder to an epoch folder.

    ``latest.json`` must name an epoch folder inside its own ``checkpoints`` folder
    (``epoch_NNNN``); a path that leads anywhere else is refused."""
    path = Path(path)
    if (path / "checkpoint.json").exists():
        return path
    for ck in (path / "checkpoints", path):
        latest = ck / "latest.json"
        if latest.exists():
            name = _read_json(latest).get("path")
            if not isinstance(name, str) or not _EPOCH_NAME.fullmatch(name):
                raise ValueError(f"{latest} points to {name!r}, not to an epoch folder of its "
                                 "run (epoch_NNNN); refusing to read outside the run folder")
            return ck / name
    return None


def _epoch_folders(path: Path) -> list[Path]:
    for ck in (path / "checkpoints", path):
        if ck.is_dir():
            found = sorted((p for p in ck.iterdir() if p.is_dir() and _EPOCH_NAME.fullmatch(p.name)),
                           reverse=True)
            if found:
                return found
    return []


def _check_folder(ck: Path) -> dict:
    """The epoch folder's meta if its three files are present and readable, else raise naming
    the file."""
    meta_path = ck / "checkpoint.json"
    if not meta_path.is_file():
        raise FileNotFoundError(f"checkpoint file {meta_path} is missing")
    meta = _read_json(meta_path)
    if meta.get("format") != FORMAT:
        raise ValueError(f"{meta_path}: unknown checkpoint format {meta.get('format')!r}")
    for f in ("model.safetensors", "train_state.safetensors"):
        fp = ck / f
        if not fp.is_file() or fp.stat().st_size < 8:
            raise ValueError(f"corrupt checkpoint file {fp}: missing or truncated")
    return meta


def _read(path: Path) -> tuple[dict, Path]:
    """The latest readable checkpoint under ``path``: its meta and folder.  A latest checkpoint
    that is missing or truncated falls back to the previous epoch, with a warning."""
    ck = latest_checkpoint(path)
    if ck is None:
        raise FileNotFoundError(f"no checkpoint under {path} (expected checkpoints/latest.json or "
                                "checkpoint.json)")
    try:
        return _check_folder(ck), ck
    except (OSError, ValueError) as first:
        for older in _epoch_folders(path):
            if older == ck:
                continue
            try:
                meta = _check_folder(older)
            except (OSError, ValueError):
                continue
            print(f"warning: {first}; using the previous checkpoint {older}", file=sys.stderr)
            return meta, older
        raise


def _load_weights(fp: Path) -> dict:
    try:
        return load_file(str(fp))
    except Exception as e:   # safetensors raises its own error types on a damaged file
        raise ValueError(f"corrupt checkpoint file {fp}: {e}") from None


def checkpoint_config(path: str | Path) -> dict:
    """The configuration (a dict) stored in the latest readable checkpoint under ``path``."""
    return _read(Path(path))[0].get("config") or {}


def load_checkpoint(path: str | Path, device: str | torch.device = "cpu",
                    overrides: list[str] | None = None):
    """Load ``(model, cfg, meta)`` from a checkpoint; the model is in eval mode on ``device``.

    ``meta`` holds ``epoch``, ``metrics`` (per-epoch history) and ``path`` (the epoch folder).
    ``overrides``: ``section.key=value`` changes to the saved configuration before the model is
    built (e.g. ``model.invariance.enabled=true`` evaluates the same weights with the regions
    made invariant); they must leave the parameters' names and shapes unchanged, and are
    recorded in ``meta["overrides"]``.
    """
    from ..config import apply_overrides
    from ..models import build_model
    meta, ck = _read(Path(path))
    cfg = config_from_dict(apply_overrides(meta["config"], overrides))
    model = build_model(cfg)
    model.load_state_dict(_load_weights(ck / "model.safetensors"))
    model.to(device).eval()
    meta = {k: v for k, v in meta.items() if k not in ("optimizer", "scheduler", "rng")}
    meta["path"] = str(ck)
    if overrides:
        meta["overrides"] = list(overrides)
    return model, cfg, meta


def restore_training_state(path: str | Path, model, optimizer=None, scheduler=None,
                           device: str | torch.device = "cpu") -> dict:
    """Restore weights, optimiser, scheduler and RNG states in place; return the JSON meta."""
    meta, ck = _read(Path(path))
    model.load_state_dict(_load_weights(ck / "model.safetensors"))
    tensors = _load_weights(ck / "train_state.safetensors")
    if optimizer is not None and meta.get("optimizer") is not None:
        om = meta["optimizer"]
        state = {}
        for pid, s in om["state"].items():
            state[int(pid)] = {k: (tensors[f"optim.{pid}.{k}"].to(device) if v is None else v)
                               for k, v in s.items()}
        optimizer.load_state_dict({"state": state, "param_groups": om["param_groups"]})
    if scheduler is not None and meta.get("scheduler") is not None:
        _load_scheduler_state(scheduler, meta["scheduler"])
    _set_rng_state(tensors, meta["rng"])
    meta["path"] = str(ck)
    return meta
