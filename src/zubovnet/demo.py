"""``make demo``: Zubov-Net vs the plain Neural ODE on scikit-learn's 8x8 digits, on CPU.

Trains both models from the embedded config ``resources/demo.yaml`` (resuming if a run folder
already exists), evaluates them on the test split, prints a side-by-side table, the paper's
tables and the wall time of every part, and writes ``OUT/results.json``, one evaluation record
per model and suite group in ``OUT/records/``, and PNG plots of the training curves.

Two protocols (:data:`PROTOCOLS`, ``docs/demo.md``): ``fast`` (default, about 3 minutes on two
cores) runs Tables I and II on every test image and Table III, the rigorous worst case and the
alignment rate on a small sample with reduced budgets, every one of them named in the records;
``full`` (``zubovnet demo --full``) runs the documented protocols unchanged.  The two models
train and evaluate in parallel, one process of one thread per core.
"""
from __future__ import annotations

import json
import os
import platform
import time
from dataclasses import asdict, dataclass, field, replace
from importlib import resources
from pathlib import Path

import torch

from .config import config_to_dict, load_config

__all__ = ["run_demo", "demo_config", "DEMO_MODELS", "DemoProtocol", "PROTOCOLS"]

DEMO_MODELS = ("zubovnet", "neural_ode")


@dataclass(frozen=True)
class DemoProtocol:
    """What the demo evaluates, and on how many images.

    ``full_suites`` run on every test image (or ``--n``); each group of ``small_groups`` on the
    first ``small_n`` of them (one record per group; a group with ``strong`` waits for both
    models, the other model being its VNI-FGSM surrogate); the alignment suite (models with
    equilibria only) with ``alignment_per_class`` points inside each class's PRoA.
    ``square_queries``, ``strong_autoattack`` and ``rigorous`` override
    :class:`~zubovnet.evaluation.EvalSettings` (``None``/empty: the documented value).
    """
    name: str
    full_suites: tuple = ("clean", "corruptions", "attacks")
    small_groups: tuple = (("strong",), ("rigorous",))
    small_n: int = 50
    alignment_per_class: int = 200
    square_queries: int | None = None
    strong_autoattack: bool = True
    rigorous: dict = field(default_factory=dict)


PROTOCOLS = {
    # under 3 minutes on 2 cores (docs/demo.md): Table III, the rigorous worst case and the
    # alignment rate on 32 images / 20 points per class, with the budgets below; reference
    # AutoAttack's white-box components (APGD-CE, APGD-T with 9 targets, 100 steps each, the
    # reference code and parameters) once per model inside the 8/255 worst case: FAB-T and
    # Square's 5,000 queries cost ~2 min per model on one core whatever the sample size (the
    # solver's fixed cost per query), so its check says "not the reference configuration";
    # --full runs all four
    "fast": DemoProtocol(
        "fast", small_n=32, alignment_per_class=20, square_queries=500, strong_autoattack=False,
        rigorous=dict(pgd_steps=20, pgd_restarts=1, apgd_steps=20, square_queries=500,
                      large_eps_steps=20, grad_n=16, adv_check_steps=10, rk4_attack=False,
                      aa_attacks=("apgd-ce", "apgd-t"))),
    # the documented protocols unchanged (docs/evaluation.md, docs/alignment.md)
    "full": DemoProtocol("full", small_n=50, alignment_per_class=200),
}


def demo_config(model: str, out_dir: str | Path, epochs: int | None = None, quick: bool = False,
                device: str = "cpu"):
    path = resources.files("zubovnet") / "resources" / "demo.yaml"
    overrides = [f"model.name={model}", f"train.out_dir={Path(out_dir) / model}",
                 f"train.device={device}"]
    if quick:
        overrides += ["train.epochs=2", "train.milestones=[1]", "train.max_steps_per_epoch=3",
                      "loss.consistency_samples=64", "loss.boundary.variants=2",
                      "train.progress=false", "train.tensorboard=false"]
    if epochs is not None:
        overrides.append(f"train.epochs={epochs}")
    with resources.as_file(path) as p:
        return load_config(p, overrides)


def _versions() -> dict:
    import torchvision
    out = {"python": platform.python_version(), "torch": torch.__version__,
           "torchvision": torchvision.__version__}
    for name in ("torchdiffeq", "torchattacks", "numpy"):
        try:
            out[name] = __import__(name).__version__
        except Exception:  # pragma: no cover
            out[name] = None
    from . import __version__
    out["zubovnet"] = __version__
    return out


def _hardware() -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    import os
    return {"cpu": cpu, "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}


def _suites(suite: str | None, protocol: DemoProtocol) -> tuple[list[str], list[list[str]]]:
    """(suites on the whole test split, suite groups on the small sample) for a demo suite name.

    ``None`` (default): the protocol's (Tables I and II on every test image; Table III and the
    rigorous worst case on ``small_n``; the alignment rate is added per model); ``paper``:
    Tables I–III only; any single suite name runs just that suite on the whole split.
    """
    from .evaluation.suites import SUITES
    if suite is None:
        return list(protocol.full_suites), [list(g) for g in protocol.small_groups]
    if suite not in ("paper",) and suite not in SUITES:
        raise ValueError(f"unknown demo suite {suite!r}; choose paper or one of {', '.join(SUITES)}")
    if suite == "paper":
        return list(protocol.full_suites), [["strong"]]
    return [suite], []


def _settings(protocol: DemoProtocol, quick: bool):
    from .evaluation import EvalSettings
    from .evaluation.rigorous import RigorousSettings
    from .analysis.alignment import AlignmentSettings
    s = EvalSettings(alignment=AlignmentSettings(n_per_class=protocol.alignment_per_class),
                     rigorous=RigorousSettings(**protocol.rigorous))
    if protocol.square_queries is not None:
        s = replace(s, square_queries=protocol.square_queries)
    s = replace(s, autoattack=protocol.strong_autoattack)
    if quick:   # smoke test: small query budgets, no reference AutoAttack
        s = replace(s, square_queries=50, autoattack=False,
                    alignment=AlignmentSettings(n_per_class=4, classes=2),
                    rigorous=replace(s.rigorous, autoattack=False, square_queries=50,
                                     pgd_steps=5, pgd_restarts=1, apgd_steps=5, grad_n=8,
                                     large_eps_steps=5, adv_check_steps=3, rk4_attack=False))
    return s


def default_jobs() -> int:
    """Processes the demo runs its two models in: one per core, at most two."""
    return max(1, min(len(DEMO_MODELS), os.cpu_count() or 1))


def plot_training_curves(histories: dict, path: Path) -> None:
    """Loss terms, W_y / mean W_{k≠y} and validation accuracy per epoch, one column per model."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    for name, hist in histories.items():
        ep = [r["epoch"] for r in hist]
        for key in ("L_cla", "L_fc", "L_con", "L_sep", "L_eq", "L_stab", "train_loss"):
            if key in hist[0]:
                axes[0].plot(ep, [r[key] for r in hist], label=f"{name}: {key}")
        for key, style in (("W_y", "-"), ("W_other", "--")):
            if key in hist[0]:
                axes[1].plot(ep, [r[key] for r in hist], style, label=f"{name}: {key}")
        if "val_acc" in hist[0]:
            axes[2].plot(ep, [r.get("val_acc", float("nan")) for r in hist], label=name)
    for ax, title in zip(axes, ("loss terms", "W_y and mean W_{k≠y} at h(T)", "validation accuracy")):
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _train_job(name: str, out_dir: str, epochs, quick: bool, device: str, threads: int) -> dict:
    """Train one demo model (resuming a finished or interrupted run); picklable summary."""
    torch.set_num_threads(threads)
    _quiet()
    from .training import train
    cfg = demo_config(name, out_dir, epochs, quick, device)
    print(f"== training {name} ({cfg.train.epochs} epochs) -> {cfg.train.out_dir}", flush=True)
    t0 = time.time()
    res = train(cfg, resume=True, progress=False)
    return {"name": name, "history": res.history, "train_s": time.time() - t0,
            "run_dir": str(res.run_dir)}


def _quiet() -> None:
    import warnings
    warnings.filterwarnings("ignore", message=r"`torch.jit.script` is deprecated")


def _load_trained(name: str, out_dir: str):
    """The trained model and config of ``OUT/name`` (its latest checkpoint)."""
    from . import load_checkpoint
    model, cfg, _ = load_checkpoint(Path(out_dir) / name, device="cpu")
    return model.eval(), cfg


def _eval_job(name: str, out_dir: str, threads: int, suites: list, small: bool,
              protocol: DemoProtocol, quick: bool, n_eval, seed: int) -> dict:
    """Evaluate one demo model with one suite group (the other model is the VNI-FGSM
    surrogate); write its record.  ``small``: on the protocol's small sample."""
    torch.set_num_threads(threads)
    _quiet()
    from .data import build_datasets
    from .analysis.alignment import AlignmentError
    from .errors import SuiteNotApplicableError
    from .evaluation import evaluate, write_record
    model, cfg = _load_trained(name, out_dir)
    other = [m for m in DEMO_MODELS if m != name][0]
    surrogate = {other: _load_trained(other, out_dir)[0]} if "strong" in suites else None
    test = build_datasets(cfg.data).test
    n = len(test) if n_eval is None else min(n_eval, len(test))
    k = min(16 if quick else protocol.small_n, n) if small else n
    label = "+".join(suites)
    out = {"name": name, "suites": label, "n": k, "record": None, "path": None,
           "solver": model.ode.describe() if hasattr(model, "ode") else None,
           "config": config_to_dict(cfg), "run_dir": str(cfg.train.out_dir)}
    print(f"== evaluating {name}: {label} on {k} images", flush=True)
    t0 = time.time()
    try:
        rec = evaluate(model, test, suites, n=k, seed=seed, device="cpu", model_name=name,
                       config=cfg, surrogate=surrogate, progress=False, dataset_name="digits",
                       settings=_settings(protocol, quick))
    except (SuiteNotApplicableError, AlignmentError) as err:
        out["skipped"] = str(err)
        return out
    path = Path(out_dir) / "records" / f"{name}_{label}.json"
    write_record(rec, path)
    out.update(record=rec, path=str(path), eval_s=time.time() - t0)
    return out


class _Jobs:
    """Runs calls in ``jobs`` spawned processes (started once for the whole demo), or inline."""

    def __init__(self, jobs: int):
        self.jobs, self.pool = jobs, None

    def __enter__(self):
        if self.jobs > 1:
            import multiprocessing as mp
            from concurrent.futures import ProcessPoolExecutor
            self.pool = ProcessPoolExecutor(max_workers=self.jobs,
                                            mp_context=mp.get_context("spawn"))
        return self

    def __exit__(self, *exc):
        if self.pool is not None:
            self.pool.shutdown(cancel_futures=True)

    def submit(self, fn, *args):
        """A future of ``fn(*args)`` (run at once, in this process, without a pool)."""
        if self.pool is not None:
            return self.pool.submit(fn, *args)
        from concurrent.futures import Future
        f = Future()
        try:
            f.set_result(fn(*args))
        except BaseException as e:  # noqa: BLE001 - re-raised by f.result()
            f.set_exception(e)
        return f


def _schedule(pool: _Jobs, train_call, groups: dict, eval_call) -> tuple[dict, list, dict]:
    """Train every model; start each suite group as soon as the models it needs are trained
    (a group with ``strong`` needs both: the other model is its surrogate).

    Returns ``(training summaries by model, evaluation results, phase wall times)``."""
    from concurrent.futures import as_completed
    t0 = time.time()
    futures = {pool.submit(*train_call(m)): m for m in groups}
    trained, evals = {}, []
    for f in as_completed(futures):
        m = futures[f]
        trained[m] = f.result()
        evals += [pool.submit(*eval_call(m, g, small)) for g, small in groups[m]
                  if "strong" not in g]
    t_train = time.time() - t0
    evals += [pool.submit(*eval_call(m, g, small)) for m in groups for g, small in groups[m]
              if "strong" in g]
    results = [f.result() for f in evals]
    return trained, results, {"training": t_train, "all": time.time() - t0}


def _headline(rec: dict, first: bool) -> dict:
    out = {}
    for key, entry in rec["results"].items():
        if isinstance(entry, dict) and entry.get("accuracy") is not None:
            out[key if first or key != "clean" else f"clean (n={entry['n']})"] = entry["accuracy"]
    return out


def run_demo(out_dir: str | Path = "runs/demo", epochs: int | None = None, n_eval: int | None = None,
             quick: bool = False, device: str = "cpu", suite: str | None = None, seed: int = 0,
             protocol: str = "fast", jobs: int | None = None, threads: int | None = None) -> dict:
    """Train both demo models, evaluate them, print the tables and timings, write results and plots.

    ``protocol``: a key of :data:`PROTOCOLS`; ``jobs``: processes (default one per core, at most
    two); ``threads``: torch threads of each (default: the cores shared out, at least one);
    ``quick``: a smoke test (tiny budgets).
    """
    from .evaluation import render_table
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown demo protocol {protocol!r}; choose {', '.join(PROTOCOLS)}")
    proto = PROTOCOLS[protocol]
    full_suites, small_groups = _suites(suite, proto)
    jobs = default_jobs() if jobs is None else max(1, jobs)
    threads = threads or max(1, (os.cpu_count() or 1) // jobs)
    out_dir = Path(out_dir)
    (out_dir / "records").mkdir(parents=True, exist_ok=True)
    t_start = time.time()
    results: dict = {"dataset": "digits", "protocol": asdict(proto), "suite": suite,
                     "versions": _versions(), "hardware": dict(_hardware(), jobs=jobs,
                                                               threads_per_job=threads),
                     "models": {}}
    canonical = ([(full_suites, False)] + [(g, True) for g in small_groups]
                 + ([(["alignment"], False)] if suite is None else []))
    # the longest group (the rigorous one, with reference AutoAttack) is queued first
    groups = {m: sorted(canonical, key=lambda gs: "rigorous" not in gs[0]) for m in DEMO_MODELS}
    order = ["+".join(g) for g, _ in canonical]
    from .errors import RunFolderError
    with _Jobs(jobs) as pool:
        try:
            trained, evals, walls = _schedule(
                pool, lambda m: (_train_job, m, str(out_dir), epochs, quick, device, threads),
                groups, lambda m, g, small: (_eval_job, m, str(out_dir), threads, g, small, proto,
                                             quick, n_eval, seed))
        except RunFolderError as err:   # e.g. a demo folder trained with other settings
            raise RunFolderError(f"{err}; for the demo: remove {out_dir} or pass --out DIR") from None
    records: dict = {m: [e["record"] for e in evals if e["name"] == m and e["record"]]
                     for m in DEMO_MODELS}
    for e in evals:
        if e.get("skipped"):
            print(f"   {e['name']}: {e['suites']} not run: {e['skipped']}")
    for name in DEMO_MODELS:
        tr = trained[name]
        mine = [e for e in evals if e["name"] == name]
        done = sorted((e for e in mine if e["record"]), key=lambda e: order.index(e["suites"]))
        metrics = {}
        for i, e in enumerate(done):
            metrics.update(_headline(e["record"], i == 0))
        small_runs = [e["n"] for e in done if e["suites"] in {"+".join(g) for g in small_groups}]
        results["models"][name] = {
            "metrics": metrics,
            "n_test": next(e["n"] for e in mine if e["suites"] == order[0]),
            "n_strong": small_runs[0] if small_runs else 0,
            "seed": mine[0]["config"]["train"]["seed"],
            "records": [e["path"] for e in done],
            "verdicts": [v for e in done for v in e["record"].get("verdicts", [])],
            "solver": mine[0]["solver"],
            "timings": {"train_s": tr["train_s"], "eval_s": sum(e["eval_s"] for e in done),
                        "eval_parts_s": {e["suites"]: e["eval_s"] for e in done},
                        "train_epochs_s": sum(r["train_time"] for r in tr["history"])},
            "config": mine[0]["config"], "run_dir": mine[0]["run_dir"]}
    names = list(results["models"])
    keys = list(dict.fromkeys(k for m in names for k in results["models"][m]["metrics"]))
    lines = ["| metric | " + " | ".join(names) + " |", "|" + "---|" * (len(names) + 1)]
    for k in keys:
        lines.append(f"| {k} | " + " | ".join(
            f"{100 * results['models'][m]['metrics'][k]:.2f}" if k in results['models'][m]['metrics']
            else "n/a" for m in names) + " |")
    table = "\n".join(lines)
    results["table_markdown"] = table
    print(f"\nDigits test set: Zubov-Net vs Neural ODE, accuracy % "
          f"({results['models'][names[0]]['n_test']} images; "
          f"small-sample rows on {results['models'][names[0]]['n_strong']}; protocol {protocol}, "
          f"docs/demo.md)\n")
    print(table)
    flat = [r for m in names for r in records[m]]
    for layout, needs in (("table1", "corruptions"), ("table2", "attacks"), ("table3", "strong"),
                          ("rigorous", "rigorous"), ("alignment", "alignment")):
        rows = [r for r in flat if needs in r["suites_requested"]]
        if rows:
            try:
                print(f"\n{layout} layout:\n" + render_table(rows, layout))
            except ValueError:
                pass
    flags = [(m, v) for m in names for v in results["models"][m]["verdicts"] if v.get("status") == "FLAG"]
    for m, v in flags:
        print(f"FLAG {m}: {v.get('check')}: {v.get('reason')}")
    with open(out_dir / "results.json", "w") as fh:
        json.dump(results, fh, indent=1)
    plot_training_curves({m: trained[m]["history"] for m in names}, out_dir / "training_curves.png")
    parts = [(f"train {m}", trained[m]["train_s"]) for m in names]
    parts += [(f"eval {m}: {k}", v) for m in names
              for k, v in results["models"][m]["timings"]["eval_parts_s"].items()]
    parts += [(f"until both models are trained ({jobs} processes, wall)", walls["training"]),
              (f"training and evaluation ({jobs} processes, wall)", walls["all"]),
              ("total wall", time.time() - t_start)]
    results["timings"] = dict(parts)
    with open(out_dir / "results.json", "w") as fh:
        json.dump(results, fh, indent=1)
    print("\nwall time (s):")
    width = max(len(k) for k, _ in parts)
    for k, v in parts:
        print(f"  {k:<{width}}  {v:7.1f}")
    print(f"\nwrote {out_dir / 'results.json'}, {out_dir / 'records'}/ and {out_dir / 'training_curves.png'}")
    return results
