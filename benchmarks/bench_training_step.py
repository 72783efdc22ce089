"""Cost of one Zubov-Net training step, by part, and the effect of sharing the conditioning.

The u-path and attention weights of PIACNN depend on the equilibrium only (paper eqs. 6–8); the
library computes them once per call for the L classes and gathers them per point.  The
"per-point" variant recomputes them for every (point, class) pair, as a direct transcription
of eqs. 6–8 would.  Writes a Markdown table to stdout (and to --write FILE if given).

    python benchmarks/bench_training_step.py --batch 128 --dim 64 --threads 2 --repeats 3
"""
from __future__ import annotations

import argparse
import contextlib
import platform
import time

import torch

from zubovnet.config import Config
from zubovnet.models import build_model
from zubovnet.models.convex import PIACNN
from zubovnet.sampling import boundary_directions, boundary_points, counterexamples
from zubovnet.training.objectives import ZubovObjective, zubov_consistency


@contextlib.contextmanager
def per_point_conditioning():
    """Patch PIACNN so that the conditioning is recomputed for every point."""
    orig_forward = PIACNN.forward

    def forward(self, x, cond, cls=None):
        if cls is not None and getattr(self, "_C", None) is not None:
            cond = self.condition(self._C[cls])          # (N, ·): one u-path per point
            return orig_forward(self, x, cond, None)
        return orig_forward(self, x, cond, cls)

    orig_condition = PIACNN.condition

    def condition(self, C):
        if C.dim() == 2 and C.shape[0] == getattr(self, "_L", -1):
            self._C = C
        return orig_condition(self, C)

    PIACNN.forward, PIACNN.condition = forward, condition
    try:
        yield
    finally:
        PIACNN.forward, PIACNN.condition = orig_forward, orig_condition


def _time(fn, repeats):
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def measure(batch: int, dim: int, repeats: int, samples: int | None) -> dict:
    cfg = Config()
    cfg.model.state_dim = dim
    cfg.loss.consistency_samples = samples
    torch.manual_seed(0)
    model = build_model(cfg).train()
    model.head.convex._L = cfg.model.num_classes
    x = torch.rand(batch, 1, 8, 8)
    y = torch.arange(batch) % cfg.model.num_classes
    obj = ZubovObjective(cfg)
    out = model.forward_all(x)
    states = out.trajectory[1:].detach().reshape(-1, dim)
    cls = y.repeat(cfg.model.ode.gamma)
    if samples is not None:
        states, cls = states[:samples], cls[:samples]
    C = model.equilibria
    W_fn = lambda p, k: model.lyapunov(p, k)   # noqa: E731
    lc = cfg.loss
    parts = {
        "forward (extractor + ODE + head)": lambda: model.forward_all(x),
        "counterexamples (5 ascent steps)": lambda: counterexamples(
            lambda p, k: zubov_consistency(model, p, k), W_fn, C, states, cls,
            lc.counterexample_steps, lc.counterexample_step_size, lc.rho),
        "consistency loss fwd+bwd": lambda: zubov_consistency(model, states, cls).mean().backward(),
        "boundary points (Alg. 1)": lambda: boundary_points(
            W_fn, C, *boundary_directions(C, torch.unique(y)), lc.rho, lc.boundary.tol,
            lc.boundary.max_iters),
        "full step (objective + backward)": lambda: obj(model, x, y)[0].backward(),
    }
    res = {}
    for name, fn in parts.items():
        fn()  # warm-up
        res[name] = _time(fn, repeats)
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--samples", type=int, default=None, help="consistency_samples (None: all)")
    ap.add_argument("--write", default=None)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    shared = measure(args.batch, args.dim, args.repeats, args.samples)
    with per_point_conditioning():
        per_point = measure(args.batch, args.dim, args.repeats, args.samples)
    cpu = platform.processor()
    try:
        cpu = next(l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    lines = [f"Batch {args.batch}, d = {args.dim}, PIACNN [256, 256, 1] / [256, 256], "
             f"consistency_samples = {args.samples}, {args.threads} threads, {cpu}; best of "
             f"{args.repeats}.", "",
             "| part | shared conditioning (s) | per-point conditioning (s) | speed-up |",
             "|---|---:|---:|---:|"]
    for k in shared:
        lines.append(f"| {k} | {shared[k]:.3f} | {per_point[k]:.3f} | {per_point[k] / shared[k]:.1f}× |")
    text = "\n".join(lines)
    print(text)
    if args.write:
        with open(args.write, "w") as fh:
            fh.write(text + "\n")


if __name__ == "__main__":
    main()
