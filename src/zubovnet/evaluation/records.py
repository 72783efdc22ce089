"""Evaluation records: one JSON document per evaluated model (RobustBench style).

A record carries every number together with the protocol that produced it (attack,
implementation, norm, eps, steps, step size, seed, sample count, ODE solver settings and
tolerances in force), plus the model name, checkpoint path, configuration, package versions,
hardware, wall time per suite and the verdicts of the sanity and rigorous checks.  The schema
is documented in ``docs/evaluation.md``; :data:`SCHEMA` names its version.

    write_record(record, "runs/x/eval_all.json")
    records = load_records(["runs/x/eval_all.json", "runs/y"])   # a folder: its eval_*.json

Accuracies are fractions in [0, 1] (tables print percentages).  Non-finite floats are written
as ``null`` so that every record is strict JSON.
"""
from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import math
import os
import platform
import sys
from pathlib import Path
from typing import Any, Iterable

__all__ = ["SCHEMA", "REQUIRED_KEYS", "to_jsonable", "environment", "new_record", "command_line",
           "result_entry", "add_result", "verdict", "write_record", "load_record",
           "load_records", "validate_record", "VERDICT_STATUSES", "merge_records"]

SCHEMA = "zubovnet-eval/1"
REQUIRED_KEYS = ("schema", "model", "data", "seed", "suites", "results", "verdicts",
                 "environment", "wall_time_s")
VERDICT_STATUSES = ("pass", "FLAG", "n/a")


# --------------------------------------------------------------------------- JSON
def to_jsonable(obj: Any) -> Any:
    """Convert ``obj`` to plain JSON types.

    Tensors and numpy values become numbers or lists, dataclasses dicts, paths strings, tuples
    and sets lists; non-finite floats become ``None``.
    """
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, int):
        return int(obj)
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set, frozenset)):
        return [to_jsonable(v) for v in obj]
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return to_jsonable(dataclasses.asdict(obj))
    if isinstance(obj, Path):
        return str(obj)
    try:
        import torch
        if isinstance(obj, torch.Tensor):
            return to_jsonable(obj.detach().cpu().tolist())
        if isinstance(obj, (torch.device, torch.dtype)):
            return str(obj)
    except ImportError:  # pragma: no cover
        pass
    try:
        import numpy as np
        if isinstance(obj, np.generic):
            return to_jsonable(obj.item())
        if isinstance(obj, np.ndarray):
            return to_jsonable(obj.tolist())
    except ImportError:  # pragma: no cover
        pass
    return str(obj)


# --------------------------------------------------------------------------- environment
def _version(module: str) -> str | None:
    try:
        from importlib.metadata import version
        return version(module)
    except Exception:
        try:
            mod = __import__(module)
            return getattr(mod, "__version__", None)
        except Exception:
            return None


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def environment(device: str | None = None) -> dict:
    """Package versions and hardware of this process.

    ``{"versions": {python, torch, torchvision, torchdiffeq, torchattacks, pyautoattack,
    numpy, zubovnet}, "hardware": {platform, cpu, cpu_count, torch_threads, device, gpu}}``;
    a package that is not installed has version ``None``.
    """
    import torch
    versions = {"python": platform.python_version()}
    for pkg in ("torch", "torchvision", "torchdiffeq", "torchattacks", "pyautoattack", "numpy"):
        versions[pkg] = _version(pkg)
    try:
        import zubovnet
        versions["zubovnet"] = getattr(zubovnet, "__version__", None) or _version("zubovnet")
    except Exception:  # pragma: no cover
        versions["zubovnet"] = None
    gpu = None
    if torch.cuda.is_available():
        idx = torch.device(device).index if device and str(device).startswith("cuda") else None
        gpu = torch.cuda.get_device_name(idx or 0)
    hardware = {"platform": platform.platform(), "cpu": _cpu_model(), "cpu_count": os.cpu_count(),
                "torch_threads": torch.get_num_threads(), "device": str(device) if device else None,
                "gpu": gpu, "cuda": torch.version.cuda}
    return {"versions": versions, "hardware": hardware}


# --------------------------------------------------------------------------- building
def command_line(argv: list[str] | None = None) -> str | None:
    """The command that is running, without this machine's paths to the program: ``zubovnet
    eval …`` (not ``/home/…/.venv/bin/zubovnet eval …``), ``python -m zubovnet eval …`` for a
    module run (as under ``torchrun -m``)."""
    argv = list(sys.argv if argv is None else argv)
    if not argv:
        return None
    prog = Path(argv[0])
    name = f"python -m {prog.parent.name}" if prog.name == "__main__.py" else prog.name
    return " ".join([name] + argv[1:])


def new_record(model_name: str, *, checkpoint: str | None = None, config: Any = None,
               meta: dict | None = None, data: dict | None = None, seed: int = 0,
               solver: list | None = None, settings: Any = None, device: str | None = None,
               parameters: int | None = None, model_class: str | None = None) -> dict:
    """An empty record for one model; suites fill ``results``, ``suites`` and ``verdicts``.

    ``config``: a :class:`zubovnet.config.Config` (or dict) of the model; ``meta``: the
    checkpoint metadata (``epoch``, ``metrics``, ...); ``data``: what was evaluated
    (dataset, split, n, indices rule); ``solver``: ``describe()`` of each ODE block in eval
    mode or ``None``; ``settings``: the evaluation settings.
    """
    meta = dict(meta or {})
    metrics = meta.get("metrics")
    return {
        "schema": SCHEMA,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "command": command_line(),
        "model": {"name": model_name, "class": model_class, "checkpoint": checkpoint,
                  "parameters": parameters, "epoch": meta.get("epoch"),
                  "train_metrics": (metrics[-1] if isinstance(metrics, list) and metrics
                                    else metrics),
                  "train_time_s": (sum(float(r.get("train_time") or 0.0) for r in metrics)
                                   if isinstance(metrics, list) and metrics else None),
                  "overrides": meta.get("overrides")},
        "config": to_jsonable(config),
        "data": to_jsonable(data or {}),
        "seed": seed,
        "solver": to_jsonable(solver),
        "settings": to_jsonable(settings),
        "suites": {},
        "results": {},
        "verdicts": [],
        "environment": environment(device),
        "wall_time_s": {},
    }


def result_entry(key: str, suite: str, protocol: str, correct: int, n: int, *,
                 attack: dict | None = None, corruption: dict | None = None,
                 solver: list | None = None, wall_time_s: float | None = None,
                 seed: int | None = None, **extra: Any) -> dict:
    """One number with its protocol.

    ``accuracy = correct / n``; for attacks ``correct`` counts examples classified correctly
    both clean and under attack.  The attack's settings (``eps``, ``steps``, ``step_size``,
    ``seed``, ...) are copied to the top level; ``tolerance`` is ``{rtol, atol}`` of the first
    ODE block (``None`` without ODE blocks).
    """
    entry: dict = {"key": key, "suite": suite, "protocol": protocol,
                   "accuracy": (correct / n) if n else None, "correct": int(correct), "n": int(n)}
    if attack is not None:
        for k in ("attack", "implementation", "norm", "eps", "eps_label", "steps", "step_size",
                  "restarts", "loss"):
            if k in attack:
                entry[k] = attack[k]
        entry["seed"] = attack.get("seed", seed)
        entry["attack_settings"] = attack
    else:
        entry.update({"eps": None, "seed": seed})
    if corruption is not None:
        entry["corruption"] = corruption
    entry["solver"] = solver
    entry["tolerance"] = ({"rtol": solver[0].get("rtol"), "atol": solver[0].get("atol")}
                          if solver else None)
    entry["wall_time_s"] = wall_time_s
    entry.update(extra)
    return entry


def add_result(record: dict, entry: dict) -> dict:
    """Store ``entry`` under ``record["results"][entry["key"]]`` and in its suite's key list."""
    record["results"][entry["key"]] = to_jsonable(entry)
    suite = record["suites"].setdefault(entry["suite"], {"keys": [], "wall_time_s": None})
    if entry["key"] not in suite["keys"]:
        suite["keys"].append(entry["key"])
    return entry


def verdict(check: str, status: str, reason: str, **numbers: Any) -> dict:
    """A check's verdict: ``{check, status: pass|FLAG|n/a, reason, numbers}``."""
    if status not in VERDICT_STATUSES:
        raise ValueError(f"status must be one of {VERDICT_STATUSES}, got {status!r}")
    return {"check": check, "status": status, "reason": reason, "numbers": to_jsonable(numbers)}


# --------------------------------------------------------------------------- I/O
def validate_record(record: dict) -> dict:
    """Raise ``ValueError`` unless ``record`` has the keys of :data:`SCHEMA`; return it."""
    if not isinstance(record, dict):
        raise ValueError("a record is a JSON object")
    missing = [k for k in REQUIRED_KEYS if k not in record]
    if missing:
        raise ValueError(f"record lacks {missing}")
    if record["schema"] != SCHEMA:
        raise ValueError(f"unknown record schema {record['schema']!r} (expected {SCHEMA!r})")
    for v in record["verdicts"]:
        if v.get("status") not in VERDICT_STATUSES:
            raise ValueError(f"verdict {v.get('check')!r} has status {v.get('status')!r}")
    return record


def write_record(record: dict, path: str | Path) -> Path:
    """Write ``record`` as strict JSON (indented) to ``path`` atomically; return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = to_jsonable(validate_record(record))
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    with open(tmp, "w") as fh:
        json.dump(data, fh, indent=2, allow_nan=False)
        fh.write("\n")
    os.replace(tmp, path)
    return path


def load_record(path: str | Path) -> dict:
    """Read and validate one record."""
    with open(path) as fh:
        return validate_record(json.load(fh))


def load_records(paths: Iterable[str | Path] | str | Path) -> list[dict]:
    """Load records from files and folders (a folder contributes its ``eval_*.json``, sorted).

    A file holding a JSON list contributes each of its records.  Order is preserved.
    """
    if isinstance(paths, (str, Path)):
        paths = [paths]
    out: list[dict] = []
    for p in paths:
        p = Path(p)
        files = sorted(p.glob("eval_*.json")) if p.is_dir() else [p]
        if p.is_dir() and not files:
            raise FileNotFoundError(f"no eval_*.json record in {p}")
        for f in files:
            with open(f) as fh:
                data = json.load(fh)
            for rec in data if isinstance(data, list) else [data]:
                out.append(validate_record(rec))
    return out


def merge_records(records: Iterable[dict]) -> list[dict]:
    """Merge records with the same model name (their ``results`` and ``verdicts`` united, later
    results win; the ``alignment`` and ``certify`` sections kept), in first-appearance order.
    Inputs are not modified."""
    merged: dict[str, dict] = {}
    for rec in records:
        name = (rec.get("model") or {}).get("name") or "?"
        if name not in merged:
            merged[name] = {**rec, "results": dict(rec.get("results", {})),
                            "verdicts": list(rec.get("verdicts", []))}
        else:
            m = merged[name]
            m["results"].update(rec.get("results", {}))
            m["verdicts"] += [v for v in rec.get("verdicts", []) if v.get("suite") != "sanity"]
            for k in ("alignment", "certify"):
                if k in rec:
                    m[k] = rec[k]
    return list(merged.values())
