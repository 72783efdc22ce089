"""Computational profile of models side by side (the paper's Table IV).

For each model: parameters (M), training time per epoch, training memory, inference time per
epoch, measured in one run with the same data, batch size and device::

    zubovnet profile resnet18 neural_ode lyanet projnode zubovnet --config CIFAR10_CONFIG.yaml \\
        --steps 50 --device cuda --out profile.json
    zubovnet profile neural_ode zubovnet --dataset cifar10 --synthetic --steps 20

What is measured
----------------
* **Training step**: the model's own objective (``build_objective``: Zubov-Net's tripartite loss,
  LyaNet's violation, adversarial training if configured, …), backward pass and Adam step, in
  train mode — exactly one step of :func:`zubovnet.training.train`.  ``warmup`` steps first
  (untimed).  **Train time / epoch** is the measured time for a full pass over the training
  split when ``steps`` is ``None``; otherwise the mean step time × the number of batches of an
  epoch (``epoch_extrapolated = True``).
* **Inference**: ``model(x)`` in eval mode (evaluation tolerances) under ``torch.no_grad()``,
  over the test split (or ``steps`` batches, extrapolated the same way).
* **Training memory** — per timed step, then averaged over the steps (Table IV: "the average
  of memory usage per batch"; ``train_mem_peak_gb`` is the maximum).  CUDA:
  ``torch.cuda.max_memory_allocated`` with the peak statistics reset before the step (weights,
  gradients, optimiser state and activations).  CPU (Linux): the process's peak resident set
  size during the step (``VmHWM``, reset before the step through ``/proc/self/clear_refs``)
  minus the resident size before the first training step — weights and data already resident
  are excluded, the optimiser state and every allocation of the step are included.  Where the
  peak cannot be reset, the increase of ``ru_maxrss`` over the whole run is reported instead.
  The allocator keeps freed memory, so on CPU each model runs in a fresh subprocess
  (``isolate``, the default there) lest one model's cached memory hide the next one's.
  ``memory_method`` names the method in every row.
* Synthetic data (``synthetic=True``): uniform images of the dataset's shape and uniform labels;
  the epoch sizes come from :data:`EPOCH_SIZES` (or ``train_size`` / ``test_size``).

Trained runs
------------
:func:`profile_run` gives the Table IV numbers of a run folder that ``zubovnet train`` (or
``zubovnet reproduce table4-profile``, which writes them to ``RUN/profile.json``) has trained:
the checkpoint's parameters, the mean ``train_time`` of the epochs logged in ``metrics.csv``,
the CUDA peak memory of forward + backward steps of the run's own objective (no optimiser
step), and eval-mode inference over the test split, data loading included.
"""
from __future__ import annotations

import argparse
import copy
import json
import math
import os
import platform
import resource
import sys
import time
from pathlib import Path
from typing import Sequence

import torch

from .config import Config, config_from_dict, config_to_dict

__all__ = ["profile_models", "profile_one", "profile_run", "format_profile_table",
           "add_profile_arguments", "run_profile", "DISPLAY_NAMES", "EPOCH_SIZES"]

DISPLAY_NAMES = {"resnet18": "ResNet18", "feedforward": "Feed-forward", "neural_ode": "Neural ODE",
                 "lyanet": "LyaNet", "projnode": "Proj-NODE", "sodef": "SODEF",
                 "fxts": "FxTS-Net", "zubovnet": "Zubov-Net"}


def _epoch_sizes() -> dict[str, tuple[int, int]]:
    from .data.registry import dataset_info, dataset_names
    out = {}
    for name in dataset_names():
        info = dataset_info(name)
        if "train_size" in info:
            out[name] = (info["train_size"], info["test_size"])
    return out


EPOCH_SIZES = _epoch_sizes()
"""``(train, test)`` images of each dataset's standard splits (the epoch a paper reports on),
from the data registry's metadata (:func:`zubovnet.data.dataset_info`)."""

_GB = 1024 ** 3


def _display_name(cfg: Config) -> str:
    base = DISPLAY_NAMES.get(cfg.model.name, cfg.model.name)
    if cfg.adversarial.method != "none":
        base += f" ({cfg.adversarial.method.upper().replace('_', '-')})"
    return base


def _rss_bytes() -> int:
    """Current resident set size (Linux ``/proc/self/statm``; 0 where unavailable)."""
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def _peak_rss_bytes() -> int:
    """Peak resident set size of the process: ``VmHWM`` (resettable, Linux) or ``ru_maxrss``."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return r if sys.platform == "darwin" else r * 1024


def _reset_peak_rss() -> bool:
    """Reset ``VmHWM`` to the current resident size (Linux ≥ 4.0: ``5 > /proc/self/clear_refs``)."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _param_count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _synthetic_batches(cfg: Config, n: int, batch_size: int, seed: int):
    m = cfg.model
    g = torch.Generator().manual_seed(seed)
    for _ in range(n):
        yield (torch.rand(batch_size, m.in_channels, m.image_size, m.image_size, generator=g),
               torch.randint(0, m.num_classes, (batch_size,), generator=g))


def _prepare_data(cfg: Config, synthetic: bool):
    """Fill the model's data fields; return the splits (``None`` when synthetic)."""
    from .data import build_datasets
    from .data.registry import dataset_info
    from .training.trainer import fill_data_fields
    if synthetic:
        info = dataset_info(cfg.data.name)
        m = cfg.model
        m.num_classes, m.in_channels, m.image_size = info["num_classes"], info["in_channels"], info["image_size"]
        if m.mean is None and info.get("mean"):
            m.mean = list(info["mean"])
        if m.std is None and info.get("std"):
            m.std = list(info["std"])
        return None
    splits = build_datasets(cfg.data)
    fill_data_fields(cfg, splits)
    return splits


def profile_one(cfg: Config, steps: int | None = 20, batch_size: int | None = None,
                device: str = "auto", synthetic: bool = False, train_size: int | None = None,
                test_size: int | None = None, warmup: int = 1, seed: int = 0, epoch: int = 0) -> dict:
    """Profile one configuration in this process (see the module docstring); returns a row.

    ``steps``: timed training / inference batches (``None``: one full epoch of each split; not
    with ``synthetic``).  ``batch_size``: default ``cfg.data.batch_size`` (training and
    inference).  ``epoch``: passed to ``objective.set_epoch`` (phased objectives: SODEF's phase
    at that epoch is what is timed).  Keys of the row: ``name, model, params_m, train_step_s, train_epoch_s,
    train_mem_gb, train_mem_peak_gb, infer_step_s, infer_epoch_s, steps, batch_size, device,
    memory_method, epoch_extrapolated, train_size, test_size, objective``.
    """
    from torch.utils.data import DataLoader
    from .models import build_model
    from .training.objectives import build_objective
    from .training.trainer import resolve_device

    cfg = copy.deepcopy(cfg)
    dev = resolve_device(device)
    B = batch_size or cfg.data.batch_size
    if synthetic and steps is None:
        raise ValueError("synthetic profiling needs a number of steps")
    splits = _prepare_data(cfg, synthetic)
    if synthetic:
        sizes = EPOCH_SIZES.get(cfg.data.name, (None, None))
        n_train = train_size or sizes[0]
        n_test = test_size or sizes[1]
        n_tr_batches = warmup + steps
        train_iter = _synthetic_batches(cfg, n_tr_batches, B, seed)
        test_iter = _synthetic_batches(cfg, warmup + steps, B, seed + 1)
    else:
        n_train = train_size or len(splits.train)
        n_test = test_size or len(splits.test)
        g = torch.Generator().manual_seed(seed)
        train_iter = iter(DataLoader(splits.train, batch_size=B, shuffle=True, generator=g,
                                     num_workers=cfg.data.num_workers))
        test_iter = iter(DataLoader(splits.test, batch_size=B, shuffle=False,
                                    num_workers=cfg.data.num_workers))
    epoch_batches = math.ceil(n_train / B) if n_train else None
    test_batches = math.ceil(n_test / B) if n_test else None

    torch.manual_seed(seed)
    model = build_model(cfg).to(dev)
    objective = build_objective(cfg, model)
    if hasattr(objective, "set_epoch"):
        objective.set_epoch(epoch)
    tc = cfg.train
    opt = torch.optim.Adam(model.parameters(), lr=tc.lr, betas=tuple(tc.betas), weight_decay=tc.weight_decay)
    params = _param_count(model)

    def train_step(x, y):
        x, y = x.to(dev, non_blocking=True), y.to(dev, non_blocking=True)
        loss, _ = objective(model, x, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    # ---- training
    model.train()
    done_warmup = 0
    step_times: list[float] = []
    mem: list[int] = []
    rss_before = _rss_bytes()             # CPU baseline: before the first (warm-up) step
    resettable = dev.type == "cpu" and _reset_peak_rss()
    for x, y in train_iter:
        if done_warmup < warmup:
            train_step(x, y)
            done_warmup += 1
            continue
        if dev.type == "cuda":
            torch.cuda.reset_peak_memory_stats(dev)
        elif resettable:
            _reset_peak_rss()
        _sync(dev)
        t0 = time.perf_counter()
        train_step(x, y)
        _sync(dev)
        step_times.append(time.perf_counter() - t0)
        if dev.type == "cuda":
            mem.append(torch.cuda.max_memory_allocated(dev))
        elif resettable:
            mem.append(max(0, _peak_rss_bytes() - rss_before))
        if steps is not None and len(step_times) >= steps:
            break
    if not step_times:
        raise ValueError("no training batch was timed (dataset smaller than warmup + 1 batches?)")
    if dev.type == "cuda":
        method = "cuda_max_memory_allocated"
    elif resettable:
        method = "rss_hwm_increase_per_step"
    else:
        mem = [max(0, _peak_rss_bytes() - rss_before)]
        method = "rss_peak_increase"
    mem_mean, mem_peak = sum(mem) / len(mem) / _GB, max(mem) / _GB
    step_mean = sum(step_times) / len(step_times)
    full_epoch = steps is None
    train_epoch = sum(step_times) if full_epoch else (step_mean * epoch_batches if epoch_batches else None)

    # ---- inference
    model.eval()
    inf_times: list[float] = []
    seen = 0
    with torch.no_grad():
        for x, _ in test_iter:
            x = x.to(dev, non_blocking=True)
            if seen < warmup:
                model(x)
                seen += 1
                continue
            _sync(dev)
            t0 = time.perf_counter()
            model(x)
            _sync(dev)
            inf_times.append(time.perf_counter() - t0)
            if steps is not None and len(inf_times) >= steps:
                break
    inf_mean = sum(inf_times) / max(len(inf_times), 1) if inf_times else float("nan")
    infer_epoch = sum(inf_times) if full_epoch else (inf_mean * test_batches if test_batches else None)
    if full_epoch:                        # the warm-up batches belong to the epoch too
        train_epoch += done_warmup * step_mean
        if inf_times:
            infer_epoch += seen * inf_mean
    return {"name": _display_name(cfg), "model": cfg.model.name, "params_m": params / 1e6,
            "train_step_s": step_mean, "train_epoch_s": train_epoch,
            "train_mem_gb": mem_mean, "train_mem_peak_gb": mem_peak,
            "infer_step_s": inf_mean, "infer_epoch_s": infer_epoch,
            "steps": len(step_times), "batch_size": B, "device": str(dev),
            "memory_method": method, "epoch_extrapolated": not full_epoch,
            "train_size": n_train, "test_size": n_test, "dataset": cfg.data.name,
            "synthetic": synthetic, "objective": type(objective).__name__,
            "adversarial": cfg.adversarial.method}


def _child(conn, cfg_dict: dict, kwargs: dict) -> None:  # pragma: no cover - runs in a subprocess
    try:
        torch.set_num_threads(kwargs.pop("threads", torch.get_num_threads()))
        row = profile_one(config_from_dict(cfg_dict), **kwargs)
        conn.send(("ok", row))
    except BaseException as e:  # noqa: BLE001 - reported to the parent
        import traceback
        conn.send(("error", f"{type(e).__name__}: {e}\n{traceback.format_exc()}"))
    finally:
        conn.close()


def _profile_isolated(cfg: Config, kwargs: dict) -> dict:
    import multiprocessing as mp
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe(duplex=False)
    kw = dict(kwargs, threads=torch.get_num_threads())
    p = ctx.Process(target=_child, args=(child, config_to_dict(cfg), kw))
    p.start()
    child.close()
    try:
        status, payload = parent.recv()
    except EOFError:
        p.join()
        raise RuntimeError(f"profiling subprocess for {cfg.model.name} died (exit code {p.exitcode})")
    p.join()
    if status != "ok":
        raise RuntimeError(f"profiling {cfg.model.name} failed in its subprocess:\n{payload}")
    payload["memory_method"] += "_subprocess"
    return payload


def profile_models(cfgs: Sequence[Config], steps: int | None = 20, batch_size: int | None = None,
                   device: str = "auto", synthetic: bool = False, train_size: int | None = None,
                   test_size: int | None = None, warmup: int = 1, repeats: int = 1,
                   isolate: bool | None = None, seed: int = 0, epoch: int = 0,
                   progress: bool = False) -> list[dict]:
    """Profile every configuration of ``cfgs`` with the same settings; one row per model.

    ``isolate``: run each model in a fresh subprocess (default: on CPU, where the memory figure
    needs it; off on CUDA).  ``repeats``: measure each model this many times and average the
    times (Table IV averages 5 epochs); memory is the maximum over repeats.  The rows also
    carry ``*_ratio`` entries relative to the Neural ODE row when one is present (see
    :func:`format_profile_table`).  See :func:`profile_one` for the other arguments.
    """
    from .training.trainer import resolve_device
    dev = resolve_device(device)
    if isolate is None:
        isolate = dev.type == "cpu"
    kwargs = dict(steps=steps, batch_size=batch_size, device=str(dev), synthetic=synthetic,
                  train_size=train_size, test_size=test_size, warmup=warmup, seed=seed, epoch=epoch)
    rows = []
    for cfg in cfgs:
        runs = []
        for r in range(max(1, repeats)):
            if progress:
                print(f"profiling {cfg.model.name} ({r + 1}/{repeats}) ...", flush=True)
            runs.append(_profile_isolated(cfg, kwargs) if isolate else profile_one(cfg, **kwargs))
        row = dict(runs[0])
        for k in ("train_step_s", "train_epoch_s", "infer_step_s", "infer_epoch_s"):
            vals = [x[k] for x in runs if x[k] is not None]
            row[k] = sum(vals) / len(vals) if vals else None
        for k in ("train_mem_gb", "train_mem_peak_gb"):
            row[k] = max(x[k] for x in runs)
        row["repeats"] = len(runs)
        rows.append(row)
    ref = next((r for r in rows if r["model"] == "neural_ode" and r["adversarial"] == "none"), None)
    for r in rows:
        for k in ("params_m", "train_epoch_s", "train_mem_gb", "infer_epoch_s"):
            num, den = r.get(k), (ref or {}).get(k)
            r[f"{k}_ratio"] = (num / den) if (ref and num is not None and den) else None
    return rows


def profile_run(run_dir: str | Path, cfg: Config, device: str = "cpu", memory_steps: int = 20,
                n: int | None = None, batch_size: int = 128) -> dict:
    """Table IV numbers of a trained run (module docstring, "Trained runs").

    * ``params_M``: parameters / 1e6;
    * ``train_time_per_epoch_s``: mean ``train_time`` of the epochs in ``metrics.csv`` (the
      profile configs train 5 epochs);
    * ``train_memory_GB``: on CUDA, the mean over ``memory_steps`` training steps of the peak
      memory allocated during the step (``torch.cuda.max_memory_allocated``, reset before
      each); ``None`` on CPU;
    * ``inference_time_per_epoch_s``: eval-mode forward passes over the test split in batches
      of ``batch_size`` (``n`` images, scaled to the whole split).
    """
    from torch.utils.data import DataLoader, Subset
    from .analysis.dynamics import read_metrics
    from .data import build_datasets
    from .training.checkpoint import load_checkpoint
    from .training.objectives import build_objective
    dev = torch.device(device)
    model, ck_cfg, meta = load_checkpoint(run_dir, device=dev)
    params = _param_count(model)
    times = [r["train_time"] for r in read_metrics(run_dir)
             if not math.isnan(r.get("train_time", math.nan))]
    splits = build_datasets(cfg.data)
    mem = None
    if dev.type == "cuda":
        objective = build_objective(ck_cfg, model)
        model.train()
        loader = DataLoader(splits.train, batch_size=cfg.data.batch_size, shuffle=True)
        peaks = []
        for step, (xb, yb) in enumerate(loader):
            if step >= memory_steps:
                break
            xb, yb = xb.to(dev), yb.to(dev)
            _sync(dev)
            torch.cuda.reset_peak_memory_stats(dev)
            loss, _ = objective(model, xb, yb)
            loss.backward()
            model.zero_grad(set_to_none=True)
            _sync(dev)
            peaks.append(torch.cuda.max_memory_allocated(dev) / _GB)
        mem = sum(peaks) / len(peaks) if peaks else None
        model.eval()
    test = splits.test
    size = len(test)
    use = size if n is None else min(n, size)
    loader = DataLoader(Subset(test, range(use)), batch_size=batch_size, shuffle=False)
    model.eval()
    t0 = time.perf_counter()
    with torch.no_grad():
        for xb, _ in loader:
            model(xb.to(dev))
    _sync(dev)
    infer = (time.perf_counter() - t0) * size / max(use, 1)
    return {"params_M": params / 1e6,
            "train_time_per_epoch_s": (sum(times) / len(times)) if times else None,
            "train_epochs_timed": len(times), "train_memory_GB": mem,
            "train_memory_note": None if mem is not None else "measured on CUDA only",
            "inference_time_per_epoch_s": infer, "inference_images_timed": use, "size": size,
            "n": use, "device": str(dev), "epoch": meta.get("epoch")}


def _fmt(v, spec: str) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    return format(v, spec)


def format_profile_table(rows: Sequence[dict]) -> str:
    """Markdown in the layout of the paper's Table IV, then the ratios to Neural ODE."""
    lines = ["| Model | Params (M) | Train Time/Epoch (s) | Train Memory (GB) | Inference Time/Epoch (s) |",
             "|---|---|---|---|---|"]
    for r in rows:
        pspec = ".1f" if (r["params_m"] or 0) >= 0.1 else ".4f"
        lines.append(f"| {r['name']} | {_fmt(r['params_m'], pspec)} | {_fmt(r['train_epoch_s'], '.2f')} | "
                     f"{_fmt(r['train_mem_gb'], '.4f')} | {_fmt(r['infer_epoch_s'], '.3f')} |")
    if any(r.get("params_m_ratio") is not None for r in rows):
        lines += ["", "Ratios to Neural ODE:", "",
                  "| Model | Params | Train Time/Epoch | Train Memory | Inference Time/Epoch |",
                  "|---|---|---|---|---|"]
        for r in rows:
            lines.append(f"| {r['name']} | {_fmt(r['params_m_ratio'], '.2f')}× | "
                         f"{_fmt(r['train_epoch_s_ratio'], '.2f')}× | {_fmt(r['train_mem_gb_ratio'], '.2f')}× | "
                         f"{_fmt(r['infer_epoch_s_ratio'], '.2f')}× |")
    if rows:
        r = rows[0]
        notes = [f"device {r['device']}, batch size {r['batch_size']}, dataset {r['dataset']}"
                 + (" (synthetic batches)" if r["synthetic"] else ""),
                 f"memory: {r['memory_method']}"]
        if r["epoch_extrapolated"]:
            notes.append(f"epoch times extrapolated from {r['steps']} timed steps to "
                         f"{r['train_size']} train / {r['test_size']} test images")
        lines += [""] + [f"- {n}" for n in notes]
    return "\n".join(lines)


# --------------------------------------------------------------------------- CLI
def add_profile_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Arguments of ``zubovnet profile MODEL... [--config YAML] [--dataset D] [--steps N] ...``."""
    parser.add_argument("models", nargs="+", metavar="MODEL",
                        help="registry names (resnet18 neural_ode lyanet projnode zubovnet ...) "
                             "or YAML configs of complete experiments")
    parser.add_argument("--config", default=None, help="base YAML for registry names (default: built-in)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override applied to every model's config (repeatable)")
    parser.add_argument("--dataset", default=None, help="data.name for every model")
    parser.add_argument("--synthetic", action="store_true",
                        help="uniform random batches of the dataset's shape (no data on disk)")
    parser.add_argument("--steps", type=int, default=None,
                        help="timed batches per model (default: a full epoch; 20 with --synthetic)")
    parser.add_argument("--batch-size", type=int, default=None, help="default: data.batch_size")
    parser.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed warm-up batches (default 1)")
    parser.add_argument("--repeats", type=int, default=1, help="measurements averaged per model")
    parser.add_argument("--train-size", type=int, default=None, help="images per training epoch")
    parser.add_argument("--test-size", type=int, default=None, help="images per inference epoch")
    iso = parser.add_mutually_exclusive_group()
    iso.add_argument("--isolate", dest="isolate", action="store_true", default=None,
                     help="one subprocess per model (default on CPU)")
    iso.add_argument("--no-isolate", dest="isolate", action="store_false")
    parser.add_argument("--epoch", type=int, default=0,
                        help="epoch given to phased objectives (SODEF) before timing (default 0)")
    parser.add_argument("--out", default=None, metavar="FILE.json", help="write rows + environment")
    return parser


def _configs_from_args(args) -> list[Config]:
    from .config import load_config
    cfgs = []
    for spec in args.models:
        extra = list(args.overrides)
        if args.dataset:
            extra.append(f"data.name={args.dataset}")
        if spec.endswith((".yaml", ".yml")):
            cfg = load_config(spec, extra)
        else:
            cfg = load_config(args.config, [f"model.name={spec}"] + extra)
        cfgs.append(cfg)
    from .models import available_models
    known = available_models()
    for cfg in cfgs:
        if cfg.model.name not in known:
            raise KeyError(f"unknown model {cfg.model.name!r}; available: {', '.join(known)}")
    return cfgs


def _environment(device: str) -> dict:
    env = {"python": platform.python_version(), "torch": torch.__version__,
           "platform": platform.platform(), "processor": platform.processor() or platform.machine(),
           "cpu_threads": torch.get_num_threads()}
    if torch.cuda.is_available():
        env["cuda_device"] = torch.cuda.get_device_name(0)
        env["cuda"] = torch.version.cuda
    return env


def run_profile(args: argparse.Namespace) -> int:
    """``zubovnet profile``: print the Table IV layout; write JSON with ``--out``; exit code."""
    from . import __version__
    if getattr(args, "threads", None):
        torch.set_num_threads(args.threads)
    cfgs = _configs_from_args(args)
    steps = args.steps if args.steps is not None else (20 if args.synthetic else None)
    rows = profile_models(cfgs, steps=steps, batch_size=args.batch_size, device=args.device,
                          synthetic=args.synthetic, train_size=args.train_size,
                          test_size=args.test_size, warmup=args.warmup, repeats=args.repeats,
                          isolate=args.isolate, epoch=args.epoch, progress=True)
    print(format_profile_table(rows))
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        record = {"kind": "profile", "zubovnet": __version__, "rows": rows,
                  "environment": _environment(args.device),
                  "configs": [config_to_dict(c) for c in cfgs],
                  "settings": {"steps": steps, "batch_size": args.batch_size, "device": args.device,
                               "synthetic": args.synthetic, "warmup": args.warmup,
                               "repeats": args.repeats, "epoch": args.epoch}}
        with open(out, "w") as fh:
            json.dump(record, fh, indent=1)
        print(f"record: {out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    p = add_profile_arguments(argparse.ArgumentParser(prog="zubovnet profile",
                                                      description=__doc__.splitlines()[0]))
    return run_profile(p.parse_args(argv))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
