"""Training-step cost of the certified-regions ablation, side by side (``docs/certified.md``).

Each configuration of ``configs/fashion_mnist/certified/`` (today's default, + invariance by
construction, + the data-inside term, the ``certified`` config, the 1-Lipschitz CNN) and the
Neural ODE of the study as the reference: one training step of the model's own objective
(forward, losses, backward, Adam), on the same batches, in one process, the configurations
**interleaved** round by round so that a change of machine load hits them all alike.  Models
start from their initialisation (the step of a trained model differs: its solver takes other
step counts); the training logs give the trained figures.  Writes a Markdown table to stdout
and, with ``--write``, into ``docs/certified.md`` between its markers.

    OMP_NUM_THREADS=1 python benchmarks/bench_certified_step.py --rounds 5 --write docs/certified.md
"""
from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _doc_section import write_section  # noqa: E402

from zubovnet.config import load_config  # noqa: E402
from zubovnet.models import build_model  # noqa: E402
from zubovnet.training.objectives import build_objective  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = [("Neural ODE (study)", "configs/fashion_mnist/study/neural_ode.yaml"),
           ("default", "configs/fashion_mnist/certified/default.yaml"),
           ("+ invariance", "configs/fashion_mnist/certified/invariant.yaml"),
           ("+ data inside", "configs/fashion_mnist/certified/inside.yaml"),
           ("certified", "configs/fashion_mnist/certified/certified.yaml"),
           ("1-Lipschitz CNN", "configs/fashion_mnist/certified/lipschitz_cnn.yaml")]
SHAPE = {"num_classes": 10, "in_channels": 1, "image_size": 28, "mean": [0.2860]}


def _batches(n: int, batch: int, seed: int):
    """Real Fashion-MNIST training batches when the data are there, else uniform images."""
    g = torch.Generator().manual_seed(seed)
    try:
        from zubovnet.data import build_datasets
        cfg = load_config(ROOT / "configs/fashion_mnist/_data.yaml")
        cfg.data.augment = False
        train = build_datasets(cfg.data).train
        idx = torch.randperm(len(train), generator=g)[:n * batch].tolist()
        xs = torch.stack([torch.as_tensor(train[i][0]) for i in idx]).view(n, batch, 1, 28, 28)
        ys = torch.tensor([int(train[i][1]) for i in idx]).view(n, batch)
        return list(zip(xs, ys)), "Fashion-MNIST training images"
    except Exception:                                     # noqa: BLE001  (no data: synthetic)
        xs = torch.rand(n, batch, 1, 28, 28, generator=g)
        ys = torch.randint(0, 10, (n, batch), generator=g)
        return list(zip(xs, ys)), "uniform synthetic images"


def _setup(path: str, seed: int):
    cfg = load_config(ROOT / path)
    for k, v in SHAPE.items():
        if k == "mean":
            cfg.model.mean = cfg.model.mean or v
        else:
            setattr(cfg.model, k, v)
    if cfg.model.std is None:
        cfg.model.std = [0.3530]
    torch.manual_seed(seed)
    model = build_model(cfg).train()
    obj = build_objective(cfg, model)
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=cfg.train.lr)
    return model, obj, opt


def _step(model, obj, opt, x, y) -> float:
    t = time.perf_counter()
    loss, _ = obj(model, x, y)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return time.perf_counter() - t


def measure(rounds: int, batch: int, warmup: int, seed: int) -> tuple[list[dict], str]:
    data, source = _batches(rounds + warmup, batch, seed)
    runs = [(name, *_setup(path, seed)) for name, path in CONFIGS]
    times: dict[str, list[float]] = {name: [] for name, *_ in runs}
    for r, (x, y) in enumerate(data):
        for name, model, obj, opt in runs:                # interleaved: one step each per round
            dt = _step(model, obj, opt, x, y)
            if r >= warmup:
                times[name].append(dt)
    ref = statistics.median(times[CONFIGS[0][0]])
    rows = [{"model": name, "min_s": min(ts), "median_s": statistics.median(ts),
             "max_s": max(ts), "ratio_to_neural_ode": statistics.median(ts) / ref}
            for name, ts in times.items()]
    return rows, source


def table(rows, source: str, rounds: int, batch: int) -> str:
    lines = [f"One training step (forward, the model's own objective, backward, Adam), batch "
             f"{batch}, {rounds} interleaved rounds after warm-up, {torch.get_num_threads()} "
             f"thread(s), {source}, models at initialisation; torch {torch.__version__}, "
             f"{platform.processor() or platform.machine()}. Command: `OMP_NUM_THREADS=1 python "
             f"benchmarks/bench_certified_step.py --rounds {rounds} --write docs/certified.md`.",
             "", "| model | min s | median s | max s | × Neural ODE (median) |",
             "|---|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['model']} | {r['min_s']:.3f} | {r['median_s']:.3f} | "
                     f"{r['max_s']:.3f} | {r['ratio_to_neural_ode']:.2f} |")
    return "\n".join(lines)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--write", default=None, help="document to write the table into")
    a = ap.parse_args(argv)
    torch.set_num_threads(int(torch.get_num_threads()))
    rows, source = measure(a.rounds, a.batch, a.warmup, a.seed)
    text = table(rows, source, a.rounds, a.batch)
    print(text)
    if a.write:
        write_section(a.write, "bench_certified_step", "Training-step cost, side by side", text)


if __name__ == "__main__":
    main()
