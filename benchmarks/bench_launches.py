"""GPU-shaped cost: the operator launches of one training step, Zubov-Net against the Neural ODE.

On a GPU the many small sequential operations of Zubov-Net's searches (ascent steps, secant
iterations, Algorithm 1) cost latency — one kernel launch each, dependent on the last — not
floating-point work.  This benchmark counts, for one training step (forward, the objective,
backward; the optimiser excluded), the ATen operators dispatched (``TorchDispatchMode``: on a GPU
each is at least one kernel launch, all in one stream, so their number bounds the step's
latency from below) and the host–device synchronisations a GPU would see (``.item()``,
``nonzero``, ``bool(tensor)``: operators whose result the host reads), for each model of the
list, side by side on the same batch.  Counts do not depend on the machine.

    python benchmarks/bench_launches.py --write docs/performance.md
"""
from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

import torch
from torch.utils._python_dispatch import TorchDispatchMode

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _doc_section import write_section  # noqa: E402

from zubovnet.config import load_config  # noqa: E402
from zubovnet.models import build_model  # noqa: E402
from zubovnet.training.objectives import build_objective  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
#: (label, config, overrides)
MODELS = (("Neural ODE", "configs/fashion_mnist/neural_ode.yaml", ()),
          ("Zubov-Net (default)", "configs/fashion_mnist/zubovnet.yaml", ()),
          ("Zubov-Net, persistent counterexamples (1 step)", "configs/fashion_mnist/zubovnet.yaml",
           ("loss.counterexample_mode=persistent", "loss.counterexample_steps=1")),
          ("Zubov-Net, + Zubov terms every 2 steps (mean per step)",
           "configs/fashion_mnist/zubovnet.yaml",
           ("loss.counterexample_mode=persistent", "loss.counterexample_steps=1",
            "loss.zubov_every=2")))
#: operators whose result the host reads back (a synchronisation on a GPU)
SYNC_OPS = ("aten._local_scalar_dense", "aten.nonzero", "aten.is_nonzero", "aten.item",
            "aten.equal")


class _Count(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.ops: Counter = Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops[str(func.overloadpacket)] += 1
        return func(*args, **(kwargs or {}))


def count(path: str, overrides, batch: int, steps: int, seed: int) -> dict:
    cfg = load_config(ROOT / path, list(overrides))
    m = cfg.model
    m.num_classes, m.in_channels, m.image_size = 10, 1, 28
    m.mean, m.std = m.mean or [0.286], m.std or [0.353]
    torch.manual_seed(seed)
    model = build_model(cfg).train()
    obj = build_objective(cfg, model)
    if hasattr(obj, "set_epoch"):
        obj.set_epoch(0)
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(batch, 1, 28, 28, generator=g)
    y = torch.arange(batch) % 10
    totals: Counter = Counter()
    for _ in range(steps):
        with _Count() as c:
            loss, _ = obj(model, x, y)
            loss.backward()
        totals.update(c.ops)
        model.zero_grad(set_to_none=True)
    ops = sum(totals.values()) / steps
    syncs = sum(v for k, v in totals.items() if k in SYNC_OPS) / steps
    return {"ops": ops, "syncs": syncs}


def table(rows, batch, steps) -> str:
    ref = rows[0][1]
    lines = [f"One training step of each model (forward, objective, backward; batch {batch}, "
             f"28×28×1, d = 32, the small CNN; mean over {steps} steps from the initialisation): "
             "ATen operators dispatched (≥ one GPU kernel launch each, in one stream) and "
             "operators whose result the host reads (a host–device synchronisation on a GPU). "
             "Command: `python benchmarks/bench_launches.py --write docs/performance.md`.", "",
             "| model | operators | × Neural ODE | host reads | × Neural ODE |",
             "|---|---:|---:|---:|---:|"]
    for label, r in rows:
        lines.append(f"| {label} | {r['ops']:.0f} | {r['ops'] / ref['ops']:.2f} | "
                     f"{r['syncs']:.0f} | {r['syncs'] / max(ref['syncs'], 1):.2f} |")
    return "\n".join(lines)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--steps", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--write", default=None)
    a = ap.parse_args(argv)
    rows = [(label, count(path, over, a.batch, a.steps, a.seed)) for label, path, over in MODELS]
    text = table(rows, a.batch, a.steps)
    print(text)
    if a.write:
        write_section(a.write, "bench_launches", "Operator launches per step (GPU-shaped cost)",
                      text)


if __name__ == "__main__":
    main()
