"""The ``zubovnet eval`` and ``zubovnet table`` sub-commands.

::

    zubovnet eval CKPT [CKPT ...] --suite clean|corruptions|attacks|strong|rigorous|all
                  [--n N] [--seed S] [--batch-size B] [--device D] [--surrogate CKPT ...]
                  [--out RECORD.json] [--subset first|random] [--square-queries Q]
    zubovnet table RECORD [RECORD ...] --layout table1|table2|table3|rigorous [--out FILE.md]

``eval`` loads each checkpoint with :func:`zubovnet.load_checkpoint`, evaluates it on the
test split of the dataset of its configuration, prints every number with the verdicts beside
it and writes the record (default ``<checkpoint folder>/eval_<suite>.json``).  While it runs,
per-image results go to ``<record>.state.json``; run again with the same arguments after an
interruption, it continues from there (``docs/evaluation.md``).  Launched by ``torchrun
--nproc_per_node K -m zubovnet eval ...``, the evaluation is sharded over the K processes
and rank 0 writes the one record (:mod:`zubovnet.evaluation.shard`).  An existing record is not
replaced unless ``--overwrite`` is given.  ``table`` renders records (files, or folders holding
``eval_*.json``) as Markdown.

Exit status of ``eval``: **0** every check passed (or is n/a), **1** at least one check
FLAGged (read the verdicts), **2** an error (bad arguments, a missing file, a failed run).

Wire into a main parser with ``add_eval_arguments(sub.add_parser("eval"))`` and
``run_eval(args)`` (and the same for ``table``); both return a process exit code.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from .attacks import SQUARE_QUERIES
from .records import load_records, write_record
from .suites import SUITES, EvalSettings, load_eval_settings
from .tables import LAYOUTS, format_summary, render_table

__all__ = ["add_eval_arguments", "run_eval", "add_table_arguments", "run_table", "main",
           "load_checkpoint", "build_test_set", "default_out_path"]


def load_checkpoint(path, device="cpu", overrides=None):
    """``(model, cfg, meta)`` of a checkpoint (:func:`zubovnet.load_checkpoint`), or of a
    shipped one named ``pretrained:NAME`` (:func:`zubovnet.load_pretrained`); ``overrides``
    change the saved configuration before the model is built (``--set``)."""
    from ..pretrained import PREFIX, load_pretrained
    if str(path).startswith(PREFIX):
        model, cfg, claim = load_pretrained(str(path), device=device, overrides=overrides)
        meta = {"path": str(path), "name": claim.get("name"), "claim": claim}
        if overrides:
            meta["overrides"] = list(overrides)
        return model, cfg, meta
    from .. import load_checkpoint as _load
    return _load(path, device=device, overrides=overrides)


def build_test_set(cfg):
    """The test split of ``cfg.data`` (:func:`zubovnet.data.build_datasets`)."""
    from ..data import build_datasets
    return build_datasets(cfg.data).test


def default_out_path(ckpt: str | Path, suite: str) -> Path:
    """``<ckpt>/eval_<suite>.json`` for a folder, ``<parent>/eval_<suite>.json`` for a file,
    ``runs/pretrained/<name>/eval_<suite>.json`` for ``pretrained:<name>``."""
    from ..pretrained import PREFIX
    if str(ckpt).startswith(PREFIX):
        return Path("runs") / "pretrained" / str(ckpt)[len(PREFIX):] / f"eval_{suite}.json"
    p = Path(ckpt)
    return (p if p.is_dir() else p.parent) / f"eval_{suite}.json"


def _resolve_device(device: str) -> str:
    if device == "auto":
        import torch
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def add_eval_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the arguments of ``zubovnet eval`` to ``parser``."""
    parser.add_argument("checkpoints", nargs="+", metavar="CKPT",
                        help="checkpoint folders (run folder, checkpoints/ or epoch folder), "
                             "or pretrained:NAME for a shipped checkpoint")
    parser.add_argument("--suite", default="clean", type=_suites,
                        help="evaluation suite, or several joined by commas (one record; e.g. "
                             "rigorous,certify lets the certificate be checked against the "
                             "rigorous attacks per image): " + ", ".join(tuple(SUITES) + ("all",))
                             + " (default: clean)")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="KEY=VALUE",
                        help="change the checkpoint's configuration before the model is built "
                             "(repeatable; recorded), e.g. model.invariance.enabled=true")
    parser.add_argument("--n", "--images", dest="n", type=_positive, default=1000,
                        help="number of test images (default 1000; under torchrun write "
                             "--images: torchrun reads --n as an abbreviation of its own options)")
    parser.add_argument("--seed", type=int, default=0, help="base seed (default 0)")
    parser.add_argument("--batch-size", type=_positive, default=256,
                        help="batch size (default 256)")
    parser.add_argument("--device", type=_device, default="auto",
                        help="cpu, cuda, cuda:N or auto (default)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an existing record (default: refuse)")
    parser.add_argument("--surrogate", action="append", default=[], metavar="CKPT",
                        help="checkpoint VNI-FGSM is crafted on (repeatable)")
    parser.add_argument("--out", default=None, metavar="RECORD.json",
                        help="record path (one checkpoint only; default "
                             "<checkpoint folder>/eval_<suite>.json)")
    parser.add_argument("--subset", default="first", choices=("first", "random"),
                        help="first n test images (default) or a seeded random subset")
    parser.add_argument("--square-queries", type=int, default=None,
                        help="Square query budget of the strong and rigorous suites "
                             f"(default {SQUARE_QUERIES})")
    parser.add_argument("--settings", default=None, metavar="FILE.yaml",
                        help="protocol settings: the eval: section of a YAML file (any fields of "
                             "EvalSettings, nested rigorous:/alignment:; docs/evaluation.md)")
    parser.add_argument("--name", default=None, help="model name in the record (one checkpoint)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    return parser


def _suites(text: str) -> str:
    names = [t.strip() for t in text.split(",") if t.strip()]
    bad = [t for t in names if t not in tuple(SUITES) + ("all",)]
    if not names or bad:
        raise argparse.ArgumentTypeError(
            f"unknown suite {', '.join(bad) or repr(text)}; choose from "
            f"{', '.join(tuple(SUITES) + ('all',))} (several: comma-separated)")
    return ",".join(names)


def _positive(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {v}")
    return v


def _device(text: str) -> str:
    import re
    if text in ("auto", "cpu", "cuda", "mps") or re.fullmatch(r"cuda:\d+", text):
        return text
    raise argparse.ArgumentTypeError(f"unknown device {text!r}; use cpu, cuda, cuda:N or auto")


def _model_name(cfg, meta, path) -> str:
    if str(path).startswith("pretrained:"):
        return str(path)[len("pretrained:"):]
    name = getattr(cfg, "name", None)
    if name and name != "experiment":
        return name
    model = getattr(getattr(cfg, "model", None), "name", None)
    return model or Path(path).name


def _check_writable(path: Path) -> None:
    """Fail now, not after the evaluation, if the record cannot be written at ``path``."""
    parent = path.parent if str(path.parent) else Path(".")
    if parent.exists() and not parent.is_dir():
        raise NotADirectoryError(f"cannot write the record {path}: {parent} is not a folder")
    parent.mkdir(parents=True, exist_ok=True)
    probe = parent / f".{path.name}.probe{os.getpid()}"
    try:
        probe.write_text("")
    except OSError as e:
        raise PermissionError(f"cannot write the record {path}: {e.strerror or e}") from None
    finally:
        if probe.exists():
            probe.unlink()


def run_eval(args: argparse.Namespace) -> int:
    """Evaluate every checkpoint of ``args`` (see :func:`add_eval_arguments`); exit code
    0 (all checks pass), 1 (a check FLAGged), 2 (an error)."""
    from .suites import evaluate

    if args.out and len(args.checkpoints) > 1:
        print("error: --out needs exactly one checkpoint", file=sys.stderr)
        return 2
    from .shard import from_environment
    device = _resolve_device(args.device)
    shard = from_environment(device)
    if shard.active and device == "cuda":
        device = f"cuda:{int(os.environ.get('LOCAL_RANK', shard.rank))}"
    if device.startswith("cuda"):
        import torch
        if not torch.cuda.is_available():
            print(f"error: --device {args.device}: CUDA is not available on this machine",
                  file=sys.stderr)
            return 2
    settings = (load_eval_settings(args.settings) if getattr(args, "settings", None)
                else EvalSettings())
    if args.square_queries is not None:
        settings.square_queries = args.square_queries
        settings.rigorous.square_queries = args.square_queries
    # every output path is checked before any work
    suite = args.suite.split(",") if "," in args.suite else args.suite
    outs = [Path(args.out) if args.out else default_out_path(ck, args.suite.replace(",", "+"))
            for ck in args.checkpoints]
    for ck, out in zip(args.checkpoints, outs):
        if not Path(ck).exists() and not str(ck).startswith("pretrained:"):
            print(f"error: no checkpoint at {ck}", file=sys.stderr)
            return 2
        if out.exists() and not getattr(args, "overwrite", False):
            print(f"error: the record {out} exists; pass --overwrite to replace it, or --out "
                  "to write elsewhere", file=sys.stderr)
            return 2
        _check_writable(out)
    surrogates = []
    for sp in args.surrogate:
        smodel, scfg, smeta = load_checkpoint(sp, device=device)
        surrogates.append((_model_name(scfg, smeta, sp), smodel))
    flagged = 0
    for ck, out in zip(args.checkpoints, outs):
        model, cfg, meta = load_checkpoint(ck, device=device,
                                           overrides=getattr(args, "overrides", None) or None)
        test = build_test_set(cfg)
        name = (args.name if (args.name and len(args.checkpoints) == 1)
                else _model_name(cfg, meta, ck))
        state_path = out.with_name(out.name + ".state.json")
        record = evaluate(model, test, suite, n=args.n, seed=args.seed,
                          batch_size=args.batch_size, device=device, surrogate=surrogates or None,
                          progress=not args.no_progress, model_name=name, meta=meta,
                          config=cfg, checkpoint=str(meta.get("path", ck)), settings=settings,
                          subset=args.subset, dataset_name=getattr(cfg.data, "name", None),
                          state_path=str(state_path), shard=shard)
        flagged += sum(v["status"] == "FLAG" for v in record["verdicts"])
        if not shard.main:      # rank 0 writes the record of a sharded evaluation
            continue
        write_record(record, out)
        from .state import EvalState
        EvalState(state_path, "").remove()
        print(format_summary(record))
        if record.get("resumed"):
            print("  (resumed from a saved evaluation state)")
        print(f"  record: {out}")
    if flagged:
        if shard.main:
            print(f"{flagged} check(s) FLAGGED: see the verdicts above", file=sys.stderr)
        return 1
    return 0


def add_table_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the arguments of ``zubovnet table`` to ``parser``."""
    parser.add_argument("records", nargs="+", metavar="RECORD",
                        help="record files or folders holding eval_*.json")
    parser.add_argument("--layout", default="table2", choices=LAYOUTS,
                        help="table1 (corruptions), table2 (white box), table3 (strong), rigorous")
    parser.add_argument("--out", default=None, metavar="FILE.md", help="write the table here")
    parser.add_argument("--bold-best", action="store_true", help="bold each column's best value")
    return parser


def run_table(args: argparse.Namespace) -> int:
    """Render the records of ``args`` (see :func:`add_table_arguments`); exit code."""
    try:
        records = load_records(args.records)
    except (OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    text = render_table(records, args.layout, bold_best=getattr(args, "bold_best", False))
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text)
    print(text, end="")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry point: ``python -m zubovnet.evaluation.cli eval|table ...``."""
    parser = argparse.ArgumentParser(prog="zubovnet")
    sub = parser.add_subparsers(dest="command", required=True)
    add_eval_arguments(sub.add_parser("eval", help="evaluate checkpoints"))
    add_table_arguments(sub.add_parser("table", help="render records as Markdown tables"))
    args = parser.parse_args(argv)
    return run_eval(args) if args.command == "eval" else run_table(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
