"""The ``zubovnet`` command: ``train``, ``eval``, ``table``, ``profile``, ``reproduce``, ``figures``,
``demo``, ``info``.

    zubovnet train configs/digits/zubovnet.yaml train.epochs=5 --out runs/x [--resume]
    zubovnet eval runs/x --suite clean
    zubovnet demo

Every sub-command accepts ``--debug`` (tracebacks instead of one-line errors).  Exit status:
0 success, 1 ``eval``: a check FLAGged, 2 an error (``docs/errors.md``), 130 interrupted.
"""
from __future__ import annotations

import argparse
import sys

__all__ = ["main"]


def _cmd_train(args) -> int:
    from .config import load_config
    from .training import train
    overrides = list(args.overrides)
    if args.config is not None and "=" in args.config and not args.config.endswith((".yaml", ".yml")):
        overrides.insert(0, args.config)   # `zubovnet train key=value ...` without a file
        args.config = None
    if args.out:
        overrides.append(f"train.out_dir={args.out}")
    if args.device:
        overrides.append(f"train.device={args.device}")
    cfg = load_config(args.config, overrides)
    if getattr(args, "print_out_dir", False):
        print(cfg.train.out_dir)
        return 0
    if args.resume and args.overwrite:
        print("error: --resume and --overwrite exclude each other", file=sys.stderr)
        return 2
    cmd = "zubovnet train " + " ".join([args.config or ""] + list(args.overrides)).strip()
    args.interrupt_hint = (f"the last finished epoch is saved in {cfg.train.out_dir}; continue "
                           f"with: {cmd} --out {cfg.train.out_dir} --resume")
    result = train(cfg, resume=args.resume, overwrite=args.overwrite)
    last = result.history[-1] if result.history else {}
    print(f"done: {result.run_dir} (epoch {last.get('epoch', '-')}, "
          f"val_acc {last.get('val_acc', float('nan')):.4f}, {result.wall_time:.1f}s)")
    return 0


def _cmd_info(args) -> int:
    from .data import dataset_names
    from .models import available_models
    from .pretrained import available_pretrained
    from .training import available_objectives
    print("models:     ", ", ".join(available_models()))
    print("objectives: ", ", ".join(o for o in available_objectives() if o != "adversarial"))
    print("adversarial:", "pgd_at, trades, mart (adversarial.method; wraps any objective)")
    print("datasets:   ", ", ".join(dataset_names()))
    print("pretrained: ", ", ".join(available_pretrained()) or "none",
          "(zubovnet eval pretrained:NAME; zubovnet.load_pretrained)")
    return 0


def _cmd_demo(args) -> int:
    from .demo import run_demo
    run_demo(out_dir=args.out, epochs=args.epochs, n_eval=args.n, quick=args.quick,
             device=args.device, suite=args.suite, protocol="full" if args.full else "fast",
             jobs=args.jobs, threads=args.threads)
    return 0


def default_threads() -> int:
    """Torch CPU threads when ``--threads`` is not given: ``$OMP_NUM_THREADS`` if set, else half
    the cores (at least one).  Torch's own default, every core, oversubscribes a machine that
    runs anything else (on two busy cores two threads ran 5-15x slower than one)."""
    import os
    env = os.environ.get("OMP_NUM_THREADS", "").strip()
    if env.isdigit() and int(env) > 0:
        return int(env)
    return max(1, (os.cpu_count() or 1) // 2)


def _threads(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"--threads must be a positive integer, got {text!r}")
    return value


_DELEGATED = (  # (command, module, function stem, help)
    ("eval", ".evaluation.cli", "eval", "evaluate checkpoints (clean, corruptions, attacks, ...)"),
    ("table", ".evaluation.cli", "table", "render the paper's tables from evaluation records"),
    ("profile", ".profile", "profile", "parameters, train time, memory, inference time (Table IV)"),
    ("reproduce", ".experiments.cli", "reproduce", "run a paper experiment: train, evaluate, tables, figures"),
    ("figures", ".analysis", "figures", "draw the paper's figures from runs and evaluation records"),
)


class _Parser(argparse.ArgumentParser):
    """An argument error is one line (``error: …``, exit 2); ``-h`` still shows the usage."""

    def error(self, message: str):
        self.exit(2, f"error: {self.prog}: {' '.join(message.split())}\n")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="zubovnet", description=__doc__.splitlines()[0])
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--threads", type=_threads, default=None,
                        help="torch CPU threads per process (default: $OMP_NUM_THREADS, else "
                             "half the cores)")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)
    _add = sub.add_parser
    sub.add_parser = lambda *a, **k: _add(*a, parents=[common], **k)

    t = sub.add_parser("train", help="train a model from a YAML config")
    t.add_argument("config", nargs="?", default=None, help="YAML config (omit: built-in defaults)")
    t.add_argument("overrides", nargs="*", help="section.key=value overrides")
    t.add_argument("--resume", action="store_true", help="continue from the latest checkpoint")
    t.add_argument("--overwrite", action="store_true",
                   help="delete what the run folder holds and start again")
    t.add_argument("--out", default=None, help="run folder (train.out_dir)")
    t.add_argument("--device", default=None)
    t.add_argument("--print-out-dir", action="store_true",
                   help="print the run folder the config resolves to and exit (scripts)")
    t.set_defaults(fn=_cmd_train)

    # commands whose arguments and runner live beside the code they drive
    import importlib
    for name, module, stem, help_text in _DELEGATED:
        mod = importlib.import_module(module, __package__)
        sp = sub.add_parser(name, help=help_text)
        getattr(mod, f"add_{stem}_arguments")(sp)
        sp.set_defaults(fn=getattr(mod, f"run_{stem}"))

    d = sub.add_parser("demo", help="train and compare Zubov-Net and Neural ODE on digits (CPU)")
    d.add_argument("--out", default="runs/demo")
    d.add_argument("--epochs", type=int, default=None, help="override the demo's epochs")
    d.add_argument("--n", type=int, default=None, help="test images evaluated (default: all)")
    d.add_argument("--suite", default=None,
                   help="default: the protocol's suites; paper (Tables I-III only) or one suite name")
    d.add_argument("--full", action="store_true",
                   help="the documented protocols unchanged (default: the 3-minute fast protocol, "
                        "docs/demo.md)")
    d.add_argument("--jobs", type=int, default=None,
                   help="processes, one model each (default: one per core, at most 2)")
    d.add_argument("--device", default="cpu")
    d.add_argument("--quick", action="store_true",
                   help="smoke test: tiny training budget, Square 50 queries, no AutoAttack")
    d.set_defaults(fn=_cmd_demo)

    i = sub.add_parser("info", help="list registered models, objectives and datasets")
    i.set_defaults(fn=_cmd_info)
    return p


def _one_line(err: BaseException) -> str:
    msg = str(err).strip() or type(err).__name__
    if isinstance(err, KeyError) and err.args:
        msg = str(err.args[0])
    return " ".join(msg.split())


def main(argv: list[str] | None = None) -> int:
    """Run a sub-command; an expected error is one line on stderr and exit status 2
    (``--debug``: the traceback); Ctrl-C is exit status 130 with one line."""
    import warnings
    warnings.filterwarnings("ignore", message=r"`torch.jit.script` is deprecated")
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    if debug:
        argv.remove("--debug")
    args = build_parser().parse_args(argv)
    import torch
    torch.set_num_threads(args.threads or default_threads())
    from .errors import expected_errors
    try:
        return args.fn(args)
    except KeyboardInterrupt:
        hint = getattr(args, "interrupt_hint", None)
        print("interrupted" + (f"; {hint}" if hint else ""), file=sys.stderr)
        return 130
    except expected_errors() as err:
        if debug:
            raise
        print(f"error: {_one_line(err)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
