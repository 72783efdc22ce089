"""Where the evaluation of an ODE model spends its time.

For one checkpoint: the wall time of a forward pass (eval mode, evaluation tolerance) at batch
sizes 1 … 256 — an adaptive solve has a fixed cost per call whatever the batch — and of each
component of reference AutoAttack standard (APGD-CE, APGD-T, FAB-T, Square) run alone on the
same ``--n`` test images.  Writes the table to ``docs/performance.md`` between markers and the
numbers to JSON.

    python benchmarks/bench_eval_cost.py RUN --n 32 --json docs/results/eval_cost.json \\
        --markdown docs/performance.md
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _doc_section import write_section  # noqa: E402
from zubovnet import load_checkpoint  # noqa: E402
from zubovnet.data import build_datasets  # noqa: E402
from zubovnet.evaluation.attacks import InputGraph  # noqa: E402
from zubovnet.evaluation.suites import load_subset  # noqa: E402

BATCHES = (1, 8, 32, 128, 256)
COMPONENTS = ("apgd-ce", "apgd-t", "fab-t", "square")


@torch.no_grad()
def forward_times(model, x, repeats: int) -> dict:
    out = {}
    for b in BATCHES:
        xb = x[:b] if len(x) >= b else x.repeat((b + len(x) - 1) // len(x), 1, 1, 1)[:b]
        ts = []
        for _ in range(repeats):
            t = time.perf_counter()
            model(xb)
            ts.append(time.perf_counter() - t)
        out[b] = statistics.median(ts)
    return out


def autoattack_times(model, x, y, eps: float) -> dict:
    from pyautoattack import AutoAttack
    out = {}
    for comp in COMPONENTS:
        aa = AutoAttack(InputGraph(model), norm="Linf", eps=eps, version="standard",
                        device="cpu", seed=0)
        aa.attacks_to_run = [comp]
        t = time.perf_counter()
        x_adv, _ = aa.run_standard_evaluation(x, y, batch_size=250)
        seconds = time.perf_counter() - t
        with torch.no_grad():
            robust = float((model(x_adv).argmax(1) == y).float().mean())
        out[comp] = {"seconds": seconds, "robust": robust}
    return out


def markdown(res: dict) -> str:
    lines = [f"Command: `{res['command']}` ({res['model']}, {res['n']} images, ε = "
             f"{res['eps'] * 255:.0f}/255, {res['threads']} thread)", "",
             "| batch | forward (s) | per image (ms) |", "|---:|---:|---:|"]
    for b, t in res["forward_s"].items():
        lines.append(f"| {b} | {t:.4f} | {1000 * t / int(b):.2f} |")
    lines += ["", "| AutoAttack component, alone | wall (s) | robust accuracy |", "|---|---:|---:|"]
    for c, v in res["autoattack"].items():
        lines.append(f"| {c} | {v['seconds']:.1f} | {100 * v['robust']:.1f} % |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run")
    p.add_argument("--n", type=int, default=32)
    p.add_argument("--eps", type=float, default=8 / 255)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", default=None)
    p.add_argument("--markdown", default=None)
    a = p.parse_args(argv)
    warnings.filterwarnings("ignore")
    torch.set_num_threads(a.threads)
    model, cfg, _ = load_checkpoint(a.run)
    x, y, _ = load_subset(build_datasets(cfg.data).test, a.n)
    res = {"command": "python benchmarks/bench_eval_cost.py " +
           " ".join(sys.argv[1:] if argv is None else argv),
           "model": f"{cfg.model.name} on {cfg.data.name}", "n": a.n, "eps": a.eps,
           "threads": a.threads, "solver": model.ode.describe() if hasattr(model, "ode") else None,
           "forward_s": {str(b): t for b, t in forward_times(model, x, a.repeats).items()},
           "autoattack": autoattack_times(model, x, y, a.eps)}
    text = markdown(res)
    print(text)
    if a.json:
        Path(a.json).write_text(json.dumps(res, indent=2) + "\n")
    if a.markdown:
        write_section(a.markdown, "bench_eval_cost", "Where an evaluation spends its time", text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
