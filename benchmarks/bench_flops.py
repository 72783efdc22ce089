"""The floating-point work of a training step, per part: the floor under Zubov-Net's overhead.

A step's time can be cut two ways: do the same arithmetic faster (fewer calls, fused work,
no recomputation) or do less arithmetic.  This benchmark separates them.  For each setting of
``bench_overhead.py`` it counts the FLOPs of one training step of each model (the objective and
the backward pass, with torch's FLOP formulas for matrix products and convolutions, forward-mode
tangents and backward passes included; :class:`FlopCounter`), per part of
Zubov-Net's step, and times the same step.  Then

* ``FLOP ratio`` = FLOPs(Zubov-Net step) / FLOPs(Neural ODE step) is the ratio a perfect
  implementation would reach at the same sample sizes, at the same efficiency;
* ``GFLOP/s`` = counted FLOPs / wall seconds tells how well each step uses the core: if
  Zubov-Net's rate is close to the Neural ODE's, the time ratio is the FLOP ratio and only
  smaller sample sizes can lower it.

    python benchmarks/bench_flops.py --settings small digits resnet --threads 1 \\
        --json docs/results/flops.json --markdown docs/performance.md
"""
from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import time
from pathlib import Path

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import flop_registry

from _doc_section import write_section
from bench_overhead import (MODELS, SAMPLE_SIZES, SETTINGS, Bench, _config,
                            add_setting_arguments)


class FlopCounter(TorchDispatchMode):
    """FLOPs of the operators dispatched while active (torch's formulas, ``flop_registry``).

    The same formulas as :class:`torch.utils.flop_counter.FlopCounterMode`, without its module
    hooks, which do not support ``torch.autograd.grad`` inside the counted region (the
    counterexample ascent takes gradients with respect to the states)."""

    def __init__(self):
        super().__init__()
        self.flops = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        count = flop_registry.get(func._overloadpacket)
        if count is not None:
            self.flops += int(count(*args, **kwargs, out_val=out))
        return out

    def get_total_flops(self) -> int:
        return self.flops


class PartFlops:
    """The :class:`zubovnet.training.timing.PartTimer` interface, counting FLOPs per part."""

    def __init__(self):
        self.totals: dict[str, int] = {}

    @contextlib.contextmanager
    def part(self, name: str):
        counter = FlopCounter()
        with counter:
            yield
        self.totals[name] = self.totals.get(name, 0) + counter.get_total_flops()

    def reset(self) -> None:
        self.totals = {}


def count_step(b: Bench) -> dict:
    """FLOPs of one training step of ``b``: total, forward objective, backward, per part."""
    parts = PartFlops()
    if hasattr(b.objective, "timer"):
        b.objective.timer = parts
    b.model.train()
    fwd, bwd = FlopCounter(), FlopCounter()
    with fwd:
        loss, _ = b.objective(b.model, b.x, b.y)
    b.opt.zero_grad(set_to_none=True)
    with bwd:
        loss.backward()
    b.opt.zero_grad(set_to_none=True)
    if hasattr(b.objective, "timer"):
        b.objective.timer = b.timer
    out = dict(parts.totals)
    out["outside the named parts"] = fwd.get_total_flops() - sum(parts.totals.values())
    out["backward"] = bwd.get_total_flops()
    return {"total": fwd.get_total_flops() + bwd.get_total_flops(), "parts": out}


def run(settings, steps, warmup, batch, device, sample_sizes) -> dict:
    res = {"settings": {}, "steps": steps, "batch": batch, "device": str(device),
           "threads": torch.get_num_threads(), "torch": torch.__version__}
    for key in settings:
        st = SETTINGS[key]
        models = list(MODELS)
        if sample_sizes:
            models += [("zubovnet", f"Zubov-Net ({k})", v) for k, v in SAMPLE_SIZES.items()]
        benches = [Bench(stem, label, _config(st, stem, over), device, batch)
                   for stem, label, over in models]
        flops = [count_step(b) for b in benches]
        for b in benches:
            for _ in range(warmup):
                b.train_step(record=False)
        for _ in range(steps):                     # interleaved, as in bench_overhead.py
            for b in benches:
                b.train_step()
        rows = []
        for b, f in zip(benches, flops):
            t = statistics.median(b.steps)
            rows.append({"model": b.label, "flops": f["total"], "parts_flops": f["parts"],
                         "step_s": t, "gflops_per_s": f["total"] / t / 1e9})
        for r in rows:
            r["flop_ratio"] = r["flops"] / rows[0]["flops"]
            r["time_ratio"] = r["step_s"] / rows[0]["step_s"]
        res["settings"][key] = {"label": st["label"], "rows": rows}
        print(markdown({**res, "settings": {key: res["settings"][key]}}), flush=True)
    return res


def markdown(res: dict) -> str:
    lines = []
    for s in res["settings"].values():
        rows = s["rows"]
        lines += [f"**{s['label']}** — batch {res['batch']}, {res['device']}, {res['threads']} "
                  f"thread(s), FLOPs of one step, time: median of {res['steps']} interleaved steps",
                  "", "| model | GFLOP / step | FLOP ratio (floor) | time (s) | time ratio | "
                  "GFLOP/s |", "|---|---:|---:|---:|---:|---:|"]
        for r in rows:
            lines.append(f"| {r['model']} | {r['flops'] / 1e9:.2f} | {r['flop_ratio']:.2f}× | "
                         f"{r['step_s']:.3f} | {r['time_ratio']:.2f}× | {r['gflops_per_s']:.1f} |")
        lines.append("")
        parts = sorted({k for r in rows for k in r["parts_flops"]})
        lines.append("| part (GFLOP) | " + " | ".join(r["model"] for r in rows) + " |")
        lines.append("|---|" + "---:|" * len(rows))
        for p in parts:
            lines.append(f"| {p} | " + " | ".join(f"{r['parts_flops'].get(p, 0) / 1e9:.2f}"
                                                   for r in rows) + " |")
        lines.append("")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_setting_arguments(p, steps=5, warmup=1)
    p.add_argument("--json", default=None)
    p.add_argument("--markdown", default=None)
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    t0 = time.perf_counter()
    res = run(a.settings, a.steps, a.warmup, a.batch, torch.device(a.device), a.sample_sizes)
    res["wall_s"] = time.perf_counter() - t0
    cmd = "python benchmarks/bench_flops.py " + " ".join(sys.argv[1:] if argv is None else argv)
    res["command"] = cmd
    if a.json:
        Path(a.json).parent.mkdir(parents=True, exist_ok=True)
        Path(a.json).write_text(json.dumps(res, indent=2) + "\n")
    if a.markdown:
        write_section(Path(a.markdown), "bench_flops",
                      "Floating-point work per step: the floor of the ratio",
                      f"Command: `{cmd}`\n\n{markdown(res)}".rstrip())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
