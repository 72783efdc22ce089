"""``zubovnet reproduce``: every table and figure of the paper as a named experiment.

    zubovnet reproduce --list
    zubovnet reproduce table1-cifar10 --dry-run
    zubovnet reproduce table2 --dataset svhn --device cuda
    zubovnet reproduce fashion-mnist-study --device cpu --threads 2

Wire into a command line with ``add_reproduce_arguments(parser)`` and ``run_reproduce(args)``
(``zubovnet.cli`` does); ``--threads`` comes from the main parser.  Stand-alone:
``python -m zubovnet.experiments EXPERIMENT ...``.  See ``docs/reproduce.md``.
"""
from __future__ import annotations

import argparse
import sys

from .catalogue import EXPERIMENTS
from .runner import reproduce

__all__ = ["add_reproduce_arguments", "run_reproduce", "main"]


def add_reproduce_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Arguments of ``zubovnet reproduce`` (see :func:`run_reproduce`)."""
    parser.add_argument("experiment", nargs="?", default=None,
                        help="experiment name (see --list)")
    parser.add_argument("--list", action="store_true", help="list the experiments and exit")
    parser.add_argument("--dataset", default=None,
                        help="keep only the runs on this dataset (svhn, cifar10, ...)")
    parser.add_argument("--method", action="append", default=None, metavar="METHOD",
                        help="keep only this method (config stem or label; repeatable)")
    parser.add_argument("--device", default=None,
                        help="cpu, cuda, cuda:N (default: the configs' auto)")
    parser.add_argument("--dry-run", action="store_true", help="print the plan, run nothing")
    parser.add_argument("--n", type=int, default=None,
                        help="test images per evaluation (default: the experiment's; paper "
                             "tables: the whole test split)")
    parser.add_argument("--out", default="runs",
                        help="root of the run folders and tables (default runs)")
    parser.add_argument("--configs", default=None, help="configs folder (default: the project's)")
    parser.add_argument("--data-root", default=None, help="override data.root of every config")
    parser.add_argument("--batch-size", type=int, default=256, help="evaluation batch size")
    parser.add_argument("--seed", type=int, default=0, help="evaluation seed (default 0)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    return parser


def run_reproduce(args: argparse.Namespace) -> int:
    """Execute ``zubovnet reproduce``; returns the exit code (0 ok, 2 error)."""
    if args.list or not args.experiment:
        width = max(len(e.name) for e in EXPERIMENTS.values())
        for e in EXPERIMENTS.values():
            print(f"{e.name:<{width}}  {e.paper:<22} {e.description}")
        if not args.list:
            print("\nusage: zubovnet reproduce EXPERIMENT [--dry-run] [--dataset D] [--device D] "
                  "[--n N] [--out DIR]", file=sys.stderr)
            return 2
        return 0
    if getattr(args, "threads", None):     # the main parser's --threads (zubovnet.cli)
        import torch
        torch.set_num_threads(args.threads)
    try:
        reproduce(args.experiment, out=args.out, device=args.device, n=args.n,
                  dataset=args.dataset, configs_root=args.configs, methods=args.method,
                  data_root=args.data_root, dry_run=args.dry_run,
                  progress=False if args.no_progress else None, batch_size=args.batch_size,
                  seed=args.seed)
    except NotImplementedError as e:
        print(f"error: not implemented: {e}", file=sys.stderr)
        return 2
    except (KeyError, ValueError, FileNotFoundError) as e:
        msg = e.args[0] if isinstance(e, KeyError) and e.args else e
        print(f"error: {msg}", file=sys.stderr)
        return 2
    return 0


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry point: ``python -m zubovnet.experiments EXPERIMENT ...``."""
    parser = add_reproduce_arguments(argparse.ArgumentParser(prog="zubovnet reproduce"))
    return run_reproduce(parser.parse_args(argv))
