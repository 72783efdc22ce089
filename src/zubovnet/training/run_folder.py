"""A run folder has one writer, and is never written over without being asked.

* :class:`RunLock` — ``RUN/.lock`` holds the writer's pid and host, created exclusively
  (``O_EXCL``); a second trainer on the same folder is refused with the holder's pid.  A lock
  whose process is gone (a killed run) is taken over, with a warning.
* :func:`prepare_run_folder` — a folder that already holds a run is written only with
  ``resume`` (continue it) or ``overwrite`` (delete it first).
* :func:`resume_changes` — on resume, the settings that may change (epochs, schedule, learning
  rate, logging, device, workers) are applied and logged; any other difference from the
  checkpoint's configuration is refused with the list of differing keys.
"""
from __future__ import annotations

import json
import os
import shutil
import socket
import sys
import time
from pathlib import Path

from ..errors import RunFolderError

__all__ = ["RunLock", "prepare_run_folder", "resume_changes", "RESUMABLE_KEYS", "run_contents"]

#: settings a resumed run may change (applied and logged); everything else must match.
RESUMABLE_KEYS = ("train.epochs", "train.milestones", "train.lr", "train.progress",
                  "train.tensorboard", "train.eval_every", "train.keep_checkpoints",
                  "train.device", "train.out_dir", "train.compile_searches",
                  "loss.boundary.recompute",
                  "data.num_workers", "data.eval_batch_size",
                  "data.root", "data.download", "name", "description")
#: filled from the dataset at the start of every run (not user settings)
_DATA_FILLED = ("model.num_classes", "model.in_channels", "model.image_size", "model.mean",
                "model.std")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class RunLock:
    """Exclusive writer lock of a run folder (module docstring); a context manager."""

    def __init__(self, run_dir: str | os.PathLike):
        self.path = Path(run_dir) / ".lock"
        self.held = False

    def acquire(self) -> "RunLock":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        me = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.time()}
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                try:
                    holder = json.loads(self.path.read_text())
                except (OSError, ValueError):
                    holder = {}
                pid, host = holder.get("pid"), holder.get("host")
                if isinstance(pid, int) and (host != me["host"] or _alive(pid)):
                    raise RunFolderError(
                        f"{self.path.parent} is being written by process {pid} on {host}; wait "
                        "for it to finish, or train into another --out") from None
                print(f"warning: taking over the stale lock of {self.path.parent} "
                      f"(process {pid} is gone)", file=sys.stderr)
                self.path.unlink(missing_ok=True)
                continue
            with os.fdopen(fd, "w") as fh:
                json.dump(me, fh)
            self.held = True
            return self
        raise RunFolderError(f"cannot lock {self.path.parent}")

    def release(self) -> None:
        if self.held:
            self.path.unlink(missing_ok=True)
            self.held = False

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()


def run_contents(run_dir: Path) -> list[Path]:
    """What a folder holds besides its lock."""
    if not run_dir.is_dir():
        return []
    return [p for p in run_dir.iterdir() if p.name != ".lock"]


def prepare_run_folder(run_dir: str | os.PathLike, resume: bool, overwrite: bool) -> None:
    """Refuse to write a non-empty run folder without ``resume`` or ``overwrite``; with
    ``overwrite``, empty it first.  Stale temporary checkpoint folders (a save killed half-way)
    are removed."""
    run_dir = Path(run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise RunFolderError(f"the run folder {run_dir} is a file")
    contents = run_contents(run_dir)
    if contents and overwrite:
        for p in contents:
            shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink()
        contents = []
    if contents and not resume:
        raise RunFolderError(
            f"the run folder {run_dir} is not empty; pass --resume to continue the run in it, "
            "--overwrite to delete it and start again, or --out to train elsewhere")
    ck = run_dir / "checkpoints"
    if ck.is_dir():
        for tmp in ck.glob(".epoch_*.tmp*"):
            shutil.rmtree(tmp, ignore_errors=True)


def _flat(d: dict, pre: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{pre}{k}."))
        else:
            out[pre + k] = v
    return out


def resume_changes(saved: dict, current: dict) -> dict:
    """``{key: (saved, current)}`` of the resumable settings that differ; raise
    :class:`RunFolderError` listing any other differing key (configs as dicts).  A key the
    saved config lacks (a setting added to the library after the run started) counts as
    unchanged when its current value is the default, which keeps the old behaviour."""
    from dataclasses import asdict
    from ..config import Config
    a, b = _flat(saved), _flat(current)
    defaults = _flat(asdict(Config()))
    differ = sorted(k for k in set(a) | set(b)
                    if a.get(k) != b.get(k) and k not in _DATA_FILLED
                    and not (k not in a and k in defaults and b.get(k) == defaults[k]))
    refused = [k for k in differ if k not in RESUMABLE_KEYS]
    if refused:
        shown = ", ".join(f"{k} ({a.get(k)!r} -> {b.get(k)!r})" for k in refused[:6])
        more = f" and {len(refused) - 6} more" if len(refused) > 6 else ""
        raise RunFolderError(
            f"--resume with settings that differ from the checkpoint's: {shown}{more}; only "
            f"{', '.join(k for k in RESUMABLE_KEYS if k.startswith('train.'))} may change on "
            "resume (start a new run for the others)")
    return {k: (a.get(k), b.get(k)) for k in differ}
