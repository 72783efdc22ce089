"""The ``zubovnet figures`` sub-command.

::

    zubovnet figures tsne     RUN [RUN ...]        --out DIR [--n-per-class 400] [--eps 8/255]
                                                   [--severity 3] [--perplexity 30] [--device D]
    zubovnet figures dynamics RUN|metrics.csv ...  --out DIR
    zubovnet figures curves   RECORD|RUN ...       --out DIR
    zubovnet figures basins   RUN                  --out DIR [--resolution 150] [--horizon 10]
    zubovnet figures loss-weights RECORD|RUN ...   --out DIR
    zubovnet figures alignment RECORD|RUN ...      --out DIR

Each writes ``DIR/<name>.png`` (``--name``, default the kind; ``curves`` writes
``<name>_eps.png`` and ``<name>_severity.png``) and, for ``tsne``, ``basins``,
``loss-weights`` and ``alignment``, the numbers beside the picture as ``DIR/<name>.json``.  Labels default to
the run's config ``name`` (records: the model name); ``--labels a,b,...`` replaces them.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

__all__ = ["FIGURE_KINDS", "add_figures_arguments", "run_figures", "parse_eps"]

FIGURE_KINDS = ("tsne", "dynamics", "curves", "basins", "loss-weights", "alignment")


def parse_eps(text: str) -> float:
    """``"8/255"`` → 8/255, ``"0.03"`` → 0.03."""
    if "/" in text:
        a, b = text.split("/", 1)
        return float(a) / float(b)
    return float(text)


def add_figures_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the arguments of ``zubovnet figures`` to ``parser``."""
    parser.add_argument("kind", choices=FIGURE_KINDS, help="which figure")
    parser.add_argument("inputs", nargs="+", metavar="RUN_OR_RECORD",
                        help="run folders (tsne, dynamics, basins), metrics.csv files (dynamics) "
                             "or evaluation records / folders holding eval_*.json (curves, "
                             "loss-weights, alignment)")
    parser.add_argument("--out", default="figures", help="output folder (default figures)")
    parser.add_argument("--name", default=None, help="file stem (default: the kind)")
    parser.add_argument("--labels", default=None, help="comma-separated labels, one per input")
    parser.add_argument("--device", default="cpu", help="device of the models (default cpu)")
    parser.add_argument("--seed", type=int, default=0, help="seed of sampling, noise and t-SNE")
    parser.add_argument("--n-per-class", type=int, default=400,
                        help="tsne: test images per class (paper: 400)")
    parser.add_argument("--eps", default="8/255", help="tsne: FGSM radius (default 8/255)")
    parser.add_argument("--severity", type=int, default=3,
                        help="tsne: Gaussian-noise severity 1-5 (default 3, sigma 0.08)")
    parser.add_argument("--perplexity", type=float, default=30.0, help="tsne: perplexity")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--resolution", type=int, default=150, help="basins: grid points per axis")
    parser.add_argument("--horizon", type=float, default=10.0,
                        help="basins: the true-basin flow runs to HORIZON x T (default 10)")
    return parser


def _labels(args, default: list[str]) -> list[str]:
    if args.labels is None:
        return default
    labels = [s.strip() for s in args.labels.split(",")]
    if len(labels) != len(default):
        raise ValueError(f"--labels has {len(labels)} entries for {len(default)} inputs")
    return labels


def _run_label(cfg, path) -> str:
    name = getattr(cfg, "name", None)
    return name if name and name != "experiment" else Path(path).name


def _records(args) -> list[dict]:
    from ..evaluation.records import load_records
    recs = load_records(args.inputs)
    if args.labels is not None:
        from .curves import merge_records
        recs = merge_records(recs)
        for rec, lab in zip(recs, _labels(args, [r["model"]["name"] for r in recs])):
            rec["model"] = {**rec.get("model", {}), "name": lab}
    return recs


def run_figures(args: argparse.Namespace) -> int:
    """Draw the figure of ``args`` (see :func:`add_figures_arguments`); exit code 0 / 2."""
    out = Path(args.out)
    name = args.name or args.kind.replace("-", "_")
    try:
        written = _draw(args, out, name)
    except (FileNotFoundError, ValueError, TypeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for p in written:
        print(f"wrote {p}")
    return 0


def _draw(args, out: Path, name: str) -> list[Path]:
    from . import (plot_accuracy_vs_eps, plot_accuracy_vs_severity, plot_alignment, plot_basins,
                   plot_loss_weight_sweep, plot_training_dynamics, plot_tsne, sample_per_class)
    kind = args.kind
    if kind == "dynamics":
        runs = {}
        for p, lab in zip(args.inputs, _labels(args, [_dyn_label(p) for p in args.inputs])):
            runs[lab] = p
        path = out / f"{name}.png"
        plot_training_dynamics(runs, path)
        return [path]
    if kind == "curves":
        recs = _records(args)
        p1, p2 = out / f"{name}_eps.png", out / f"{name}_severity.png"
        written = []
        for fn, p in ((plot_accuracy_vs_eps, p1), (plot_accuracy_vs_severity, p2)):
            try:
                fn(recs, p)
                written.append(p)
            except ValueError as e:          # e.g. records of the attacks suite only
                print(f"note: {p.name} not drawn: {e}", file=sys.stderr)
        if not written:
            raise ValueError("the records hold neither attack nor corruption results")
        return written
    if kind == "loss-weights":
        recs = _records(args)
        path = out / f"{name}.png"
        rows = plot_loss_weight_sweep(recs, path)
        path.with_suffix(".json").write_text(json.dumps(rows, indent=2))
        return [path, path.with_suffix(".json")]
    if kind == "alignment":
        path = out / f"{name}.png"
        profiles = plot_alignment(_records(args), path)
        path.with_suffix(".json").write_text(json.dumps(profiles, indent=2))
        return [path, path.with_suffix(".json")]
    from ..data import build_datasets
    from ..training.checkpoint import load_checkpoint
    if kind == "tsne":
        loaded = [load_checkpoint(p, device=args.device) for p in args.inputs]
        labels = _labels(args, [_run_label(cfg, p) for (_, cfg, _), p in zip(loaded, args.inputs)])
        splits = build_datasets(loaded[0][1].data)
        X, Y = sample_per_class(splits.test, args.n_per_class, seed=args.seed)
        path = out / f"{name}.png"
        summary = plot_tsne([(lab, m) for lab, (m, _, _) in zip(labels, loaded)], X, Y, path,
                            eps=parse_eps(args.eps), severity=args.severity, seed=args.seed,
                            perplexity=args.perplexity, class_names=splits.class_names,
                            batch_size=args.batch_size, device=args.device)
        path.with_suffix(".json").write_text(json.dumps(summary, indent=2))
        return [path, path.with_suffix(".json")]
    if kind == "basins":
        import torch
        if len(args.inputs) != 1:
            raise ValueError("basins draws one run")
        model, cfg, _ = load_checkpoint(args.inputs[0], device="cpu")
        test = build_datasets(cfg.data).test
        X = torch.stack([torch.as_tensor(test[i][0]) for i in range(len(test))])
        Y = torch.as_tensor([int(test[i][1]) for i in range(len(test))])
        path = out / f"{name}.png"
        bm = plot_basins(model, path, data=(X, Y), rho=cfg.loss.rho, resolution=args.resolution,
                         horizon_factor=args.horizon, seed=args.seed)
        path.with_suffix(".json").write_text(json.dumps(bm.summary(), indent=2))
        return [path, path.with_suffix(".json")]
    raise ValueError(f"unknown figure kind {kind!r}")


def _dyn_label(p) -> str:
    p = Path(p)
    return p.parent.name if p.suffix == ".csv" else p.name


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry point: ``python -m zubovnet.analysis.cli KIND INPUT... --out DIR``."""
    parser = add_figures_arguments(argparse.ArgumentParser(prog="zubovnet figures"))
    return run_figures(parser.parse_args(argv))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
