"""The training loop (Algorithm 2 around any objective), on CPU, one GPU or many (torchrun).

    result = train(cfg)                 # fresh run into cfg.train.out_dir
    result = train(cfg, resume=True)    # continue from out_dir/checkpoints/latest.json

Distributed: launched by ``torchrun`` (``WORLD_SIZE > 1``), every rank builds the same model
from the same seed, reads its shard of each epoch (``DistributedSampler``), and gradients are
averaged over ranks after every backward pass (an explicit all-reduce, so objectives may call
any method of the model, not only ``forward``); buffers (BatchNorm statistics) are broadcast
from rank 0 before evaluation and checkpointing.  Rank 0 writes logs and checkpoints.
"""
from __future__ import annotations

import csv
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, DistributedSampler, RandomSampler

from ..config import Config, config_to_dict
from ..data import build_datasets
from ..models import build_model
from .checkpoint import (checkpoint_config, latest_checkpoint, restore_training_state,
                         save_checkpoint)
from .objectives import build_objective
from .run_folder import RunLock, prepare_run_folder, resume_changes

__all__ = ["train", "TrainResult", "accuracy", "resolve_device", "fill_data_fields"]


@dataclass
class TrainResult:
    model: torch.nn.Module
    cfg: Config
    history: list = field(default_factory=list)
    run_dir: Path | None = None
    checkpoint: Path | None = None
    wall_time: float = 0.0


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def fill_data_fields(cfg: Config, splits) -> None:
    """Shapes and normalisation of the model come from the dataset (the YAML need not repeat them)."""
    m = cfg.model
    m.num_classes, m.in_channels, m.image_size = splits.num_classes, splits.in_channels, splits.image_size
    if m.mean is None:
        m.mean = list(splits.mean) or None
    if m.std is None:
        m.std = list(splits.std) or None


@torch.no_grad()
def accuracy(model: torch.nn.Module, loader, device, max_batches: int | None = None) -> float:
    """Clean top-1 accuracy in eval mode (evaluation tolerances)."""
    was = model.training
    model.eval()
    correct = total = 0
    for i, (x, y) in enumerate(loader):
        if max_batches is not None and i >= max_batches:
            break
        x, y = x.to(device), y.to(device)
        correct += (model(x).argmax(1) == y).sum().item()
        total += y.numel()
    model.train(was)
    return correct / max(total, 1)


def _dist_info() -> tuple[bool, int, int]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend)
    if dist.is_available() and dist.is_initialized():
        return True, dist.get_rank(), dist.get_world_size()
    return False, 0, 1


def _average_gradients(model: torch.nn.Module, world: int) -> None:
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= world
    offset = 0
    for g in grads:
        n = g.numel()
        g.copy_(flat[offset:offset + n].view_as(g))
        offset += n


def _broadcast_buffers(model: torch.nn.Module) -> None:
    for b in model.buffers():
        dist.broadcast(b, 0)


def _write_csv(path: Path, history: list[dict]) -> None:
    keys: list[str] = []
    for row in history:
        keys += [k for k in row if k not in keys]
    tmp = path.with_suffix(".csv.tmp")
    with open(tmp, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=keys)
        w.writeheader()
        w.writerows(history)
    os.replace(tmp, path)


def train(cfg: Config, resume: bool = False, splits=None, stop_after: int | None = None,
          progress: bool | None = None, overwrite: bool = False) -> TrainResult:
    """Train ``cfg``'s model with its objective; checkpoints every epoch into ``cfg.train.out_dir``.

    ``splits``: pre-built :class:`~zubovnet.data.DatasetSplits` (default: from ``cfg.data``);
    ``stop_after``: return after this many epochs of this call (time-sliced jobs);
    ``resume``: continue exactly from the latest checkpoint of the run folder (a changed
    epoch count, schedule or learning rate is applied and logged; any other changed setting is
    refused); ``overwrite``: delete what the run folder holds and start again.  A non-empty run
    folder is never written without one of them, and a folder being written by another process
    is refused (:mod:`zubovnet.training.run_folder`).
    """
    tc = cfg.train
    distributed, rank, world = _dist_info()
    lock = RunLock(tc.out_dir)
    if rank == 0:
        prepare_run_folder(tc.out_dir, resume, overwrite)
        lock.acquire()
    try:
        return _train(cfg, resume, splits, stop_after, progress, distributed, rank, world)
    finally:
        lock.release()


def _apply_resume_changes(changes: dict, opt, sched, show: bool) -> None:
    """Apply the resumable settings that changed (:data:`RESUMABLE_KEYS`) to the optimiser and
    the scheduler; log every change."""
    from collections import Counter
    for key, (old, new) in changes.items():
        if key == "train.lr":
            for g in opt.param_groups:
                scale = g["lr"] / g.get("initial_lr", g["lr"]) if g.get("initial_lr") else 1.0
                g["initial_lr"] = new
                g["lr"] = new * scale
            sched.base_lrs = [new for _ in sched.base_lrs]
        elif key == "train.milestones":
            sched.milestones = Counter(int(m) for m in new)
        if show:
            print(f"resume: {key} {old!r} -> {new!r} (applied)")


def _train(cfg, resume, splits, stop_after, progress, distributed, rank, world) -> TrainResult:
    t_start = time.time()
    tc = cfg.train
    device = resolve_device(tc.device)
    if device.type == "cuda" and distributed:
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", rank)))
        torch.cuda.set_device(device)
    if tc.deterministic:
        torch.use_deterministic_algorithms(True)
    show = (tc.progress if progress is None else progress) and rank == 0

    splits = splits if splits is not None else build_datasets(cfg.data)
    fill_data_fields(cfg, splits)
    torch.manual_seed(tc.seed)
    model = build_model(cfg).to(device)
    objective = build_objective(cfg, model)
    opt = torch.optim.Adam(model.parameters(), lr=tc.lr, betas=tuple(tc.betas),
                           weight_decay=tc.weight_decay)
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=list(tc.milestones), gamma=tc.lr_gamma)

    run_dir = Path(tc.out_dir)
    history: list[dict] = []
    start_epoch = 0
    if resume and latest_checkpoint(run_dir) is not None:
        changes = resume_changes(checkpoint_config(run_dir), config_to_dict(cfg))
        meta = restore_training_state(run_dir, model, opt, sched, device)
        _apply_resume_changes(changes, opt, sched, rank == 0)
        start_epoch, history = meta["epoch"], meta.get("metrics", [])
        if show:
            print(f"resumed {run_dir} at epoch {start_epoch}")
    elif resume and show:
        print(f"no checkpoint in {run_dir}; starting from scratch")
    prepared = None
    if start_epoch == 0 and hasattr(objective, "prepare"):   # data-dependent initialisation
        g = torch.Generator().manual_seed(tc.seed * 100003 - 1)
        prep_loader = DataLoader(splits.train, batch_size=cfg.data.batch_size,
                                 sampler=RandomSampler(splits.train, generator=g),
                                 num_workers=cfg.data.num_workers)
        prepared = objective.prepare(model, prep_loader) or None
        if prepared and show:
            print(f"prepared: {prepared}")
    if distributed:
        for p in model.parameters():
            dist.broadcast(p.data, 0)
        _broadcast_buffers(model)

    writer = None
    if rank == 0:
        run_dir.mkdir(parents=True, exist_ok=True)
        import yaml
        with open(run_dir / "config.yaml", "w") as fh:
            yaml.safe_dump(config_to_dict(cfg), fh, sort_keys=False)
        if prepared:
            import json
            with open(run_dir / "prepare.json", "w") as fh:
                json.dump(prepared, fh, indent=2)
        if tc.tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
                writer = SummaryWriter(str(run_dir / "tensorboard"))
            except ImportError:
                writer = None

    eval_set = splits.val if splits.val is not None else splits.test
    eval_loader = DataLoader(eval_set, batch_size=cfg.data.eval_batch_size, shuffle=False,
                             num_workers=cfg.data.num_workers)
    ckpt = None
    epochs_run = 0
    for epoch in range(start_epoch, tc.epochs):
        if stop_after is not None and epochs_run >= stop_after:
            break
        if distributed:
            sampler = DistributedSampler(splits.train, num_replicas=world, rank=rank, shuffle=True,
                                         seed=tc.seed, drop_last=True)
            sampler.set_epoch(epoch)
        else:
            sampler = RandomSampler(splits.train,
                                    generator=torch.Generator().manual_seed(tc.seed * 100003 + epoch))
        loader = DataLoader(splits.train, batch_size=cfg.data.batch_size // world, sampler=sampler,
                            num_workers=cfg.data.num_workers, drop_last=False)
        n_steps = len(loader) if tc.max_steps_per_epoch is None else min(len(loader), tc.max_steps_per_epoch)
        if hasattr(objective, "set_epoch"):      # phased objectives (e.g. SODEF)
            objective.set_epoch(epoch)
        model.train()
        sums: dict[str, float] = {}
        t0 = time.time()
        bar = None
        if show:
            from tqdm.auto import tqdm
            bar = tqdm(total=n_steps, desc=f"epoch {epoch + 1}/{tc.epochs}", leave=False,
                       dynamic_ncols=True)
        for step, (x, y) in enumerate(loader):
            if step >= n_steps:
                break
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            loss, logs = objective(model, x, y)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"non-finite loss at epoch {epoch + 1}, step {step}: {logs}")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if distributed:
                _average_gradients(model, world)
            if tc.grad_clip is not None:
                torch.nn.utils.clip_grad_norm_(model.parameters(), tc.grad_clip)
            opt.step()
            for k, v in logs.items():
                sums[k] = sums.get(k, 0.0) + float(v)
            if bar is not None:
                bar.update(1)
                bar.set_postfix({k: f"{v:.3g}" for k, v in logs.items()
                                 if k in ("loss", "L_cla", "L_fc", "L_con", "L_sep", "acc", "W_y", "W_other")})
        if bar is not None:
            bar.close()
        sched.step()
        if distributed:
            _broadcast_buffers(model)
        row = {"epoch": epoch + 1, "lr": opt.param_groups[0]["lr"], "train_time": time.time() - t0}
        row.update({f"train_{k}" if not k.startswith(("L_", "W_")) else k: v / max(n_steps, 1)
                    for k, v in sums.items()})
        if tc.eval_every > 0 and ((epoch + 1) % tc.eval_every == 0 or epoch + 1 == tc.epochs):
            row["val_acc"] = accuracy(model, eval_loader, device)
        epochs_run += 1
        if rank == 0:
            history.append(row)
            _write_csv(run_dir / "metrics.csv", history)
            if writer is not None:
                for k, v in row.items():
                    if k != "epoch" and isinstance(v, (int, float)) and math.isfinite(v):
                        writer.add_scalar(k, v, epoch + 1)
                writer.flush()
            ckpt = save_checkpoint(run_dir, epoch + 1, model, cfg, opt, sched, history,
                                   keep=tc.keep_checkpoints)
            if show:
                keys = ("loss", "L_cla", "L_con", "L_sep", "W_y", "W_other", "train_acc", "val_acc")
                msg = "  ".join(f"{k}={row[k if k in row else 'train_' + k]:.4g}" for k in keys
                                if k in row or f"train_{k}" in row)
                print(f"epoch {epoch + 1}/{tc.epochs} [{row['train_time']:.1f}s] {msg}", flush=True)
    if writer is not None:
        writer.close()
    model.eval()
    return TrainResult(model=model, cfg=cfg, history=history, run_dir=run_dir, checkpoint=ckpt,
                       wall_time=time.time() - t_start)
