"""Clean accuracy of trained ODE models under several evaluation tolerances of their solver:

    python scripts/solver_tolerance_check.py RUN [RUN ...] [--n 1000] [--tol 1e-3 1e-2 1e-1]
                                             [--out FILE.json]

A model whose accuracy depends on the tolerance has learned the solver's discretisation error
rather than the flow it stands for (every record of the project evaluates at the config's
``model.ode.rtol_eval``, 1e-3 in the paper's setting, while training runs at 0.1).  Prints a
line per run and tolerance and writes ``{run: {tol: accuracy}}`` with the sample count, solver
and seed-free setting (the first ``n`` test images) to ``--out``.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from zubovnet.data import build_datasets
from zubovnet.evaluation.suites import load_subset
from zubovnet.training.checkpoint import load_checkpoint


def accuracy_at(model, x, y, tol: float, batch: int = 250) -> float:
    """Clean accuracy of ``model`` on ``(x, y)`` with ``rtol = atol = tol`` in evaluation."""
    model.ode.rtol_eval = model.ode.atol_eval = tol
    with torch.no_grad():
        hit = sum(int((model(x[i:i + batch]).argmax(1) == y[i:i + batch]).sum())
                  for i in range(0, len(y), batch))
    return hit / len(y)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="+")
    p.add_argument("--n", type=int, default=1000, help="first n test images")
    p.add_argument("--tol", type=float, nargs="+", default=[1e-3, 1e-2, 1e-1])
    p.add_argument("--out", default=None)
    a = p.parse_args(argv)
    torch.set_num_threads(1)
    out = {"n": a.n, "subset": "first", "tolerances": a.tol, "runs": {}}
    for run in a.runs:
        model, cfg, _ = load_checkpoint(run, device="cpu")
        model.eval()
        x, y, _ = load_subset(build_datasets(cfg.data).test, a.n)
        row = {"solver": cfg.model.ode.solver, "rtol_train": cfg.model.ode.rtol_train,
               "accuracy": {}}
        for tol in a.tol:
            row["accuracy"][f"{tol:g}"] = acc = accuracy_at(model, x, y, tol)
            print(f"{Path(run).name}: {cfg.model.ode.solver} rtol = atol = {tol:g}: "
                  f"clean {100 * acc:.1f} % (n = {a.n})")
        out["runs"][Path(run).name] = row
    if a.out:
        Path(a.out).write_text(json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
