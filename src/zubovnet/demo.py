"""``make demo``: Zubov-Net vs the plain Neural ODE on scikit-learn's 8x8 digits, on CPU.

Trains both models from the embedded config ``resources/demo.yaml`` (resuming if a run folder
already exists), evaluates them with the paper protocol on the test split (Tables I and II on
every test image, Table III on a subset), prints a side-by-side table and the paper's tables,
and writes ``OUT/results.json``, one evaluation record per model and suite group in
``OUT/records/``, and PNG plots of the training curves.
"""
from __future__ import annotations

import json
import platform
import time
from importlib import resources
from pathlib import Path

import torch

from .config import config_to_dict, load_config

__all__ = ["run_demo", "demo_config", "DEMO_MODELS"]

DEMO_MODELS = ("zubovnet", "neural_ode")


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


def _suites(suite: str) -> tuple[list[str], list[str]]:
    """(suites on the whole test split, suites on the ``strong_n`` subset) for a demo suite name.

    ``paper`` (default): Tables I and II on every test image, Table III on ``strong_n`` images;
    ``all``: the same plus the rigorous protocol on ``strong_n`` images; any single suite name
    runs just that suite on the whole split.
    """
    from .evaluation.suites import SUITES
    if suite not in ("paper", "all") and suite not in SUITES:
        raise ValueError(f"unknown demo suite {suite!r}; choose paper, all or one of "
                         f"{', '.join(SUITES)}")
    if suite == "paper":
        return ["clean", "corruptions", "attacks"], ["strong"]
    if suite == "all":
        return ["clean", "corruptions", "attacks"], ["strong", "rigorous"]
    return [suite], []


def plot_training_curves(histories: dict, path: Path) -> None:
    """Loss terms, W_y / mean W_{k≠y} and validation accuracy per epoch, one column per model."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    for name, hist in histories.items():
        ep = [r["epoch"] for r in hist]
        for key in ("L_cla", "L_fc", "L_con", "L_sep", "train_loss"):
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


def run_demo(out_dir: str | Path = "runs/demo", epochs: int | None = None, n_eval: int | None = None,
             quick: bool = False, device: str = "cpu", suite: str = "paper", seed: int = 0,
             strong_n: int = 50) -> dict:
    """Train both demo models, evaluate them, print the tables, write results and plots.

    Evaluation (:func:`zubovnet.evaluation.evaluate`): corruptions (Table I) and the white-box
    attacks (Table II) on every test image (or ``n_eval``), Table III (VNI-FGSM transferred from
    the other demo model, Square, reference AutoAttack) on the first ``strong_n`` of them.
    """
    from .data import build_datasets
    from .evaluation import EvalSettings, evaluate, render_table, write_record
    from .training import train
    out_dir = Path(out_dir)
    (out_dir / "records").mkdir(parents=True, exist_ok=True)
    full_suites, small_suites = _suites(suite)
    settings = EvalSettings()
    if quick:   # smoke test: small query budgets for the black-box attacks
        strong_n = min(strong_n, 16)
        settings = EvalSettings(square_queries=50, autoattack=False)
    results: dict = {"dataset": "digits", "suite": suite, "versions": _versions(),
                     "hardware": _hardware(), "models": {}}
    histories, trained, cfgs, t_train = {}, {}, {}, {}
    for name in DEMO_MODELS:
        cfg = demo_config(name, out_dir, epochs, quick, device)
        print(f"== training {name} ({cfg.train.epochs} epochs) -> {cfg.train.out_dir}", flush=True)
        t0 = time.time()
        res = train(cfg, resume=True)
        t_train[name] = time.time() - t0
        histories[name], trained[name], cfgs[name] = res.history, res.model.cpu().eval(), cfg
    test = build_datasets(cfgs[DEMO_MODELS[0]].data).test
    n = len(test) if n_eval is None else min(n_eval, len(test))
    records: dict = {}
    for name in DEMO_MODELS:
        other = [m for m in DEMO_MODELS if m != name][0]
        print(f"== evaluating {name}: {'+'.join(full_suites)} on {n} images"
              + (f", {'+'.join(small_suites)} on {min(strong_n, n)}" if small_suites else ""), flush=True)
        t0 = time.time()
        recs = [evaluate(trained[name], test, full_suites, n=n, seed=seed, device="cpu",
                         model_name=name, config=cfgs[name], progress=not quick,
                         dataset_name="digits", settings=settings)]
        if small_suites:
            recs.append(evaluate(trained[name], test, small_suites, n=min(strong_n, n), seed=seed,
                                 device="cpu", model_name=name, config=cfgs[name],
                                 surrogate={other: trained[other]}, progress=not quick,
                                 dataset_name="digits", settings=settings))
        t_eval = time.time() - t0
        for rec in recs:
            write_record(rec, out_dir / "records" / f"{name}_{'+'.join(rec['suites_requested'])}.json")
        records[name] = recs
        metrics = {}
        for rec in recs:
            for key, entry in rec["results"].items():
                if isinstance(entry, dict) and entry.get("accuracy") is not None:
                    label = key if rec is recs[0] or key != "clean" else f"clean (n={entry['n']})"
                    metrics[label] = entry["accuracy"]
        results["models"][name] = {
            "metrics": metrics, "n_test": n, "n_strong": min(strong_n, n) if small_suites else 0,
            "seed": cfgs[name].train.seed,
            "records": [str(out_dir / "records" / f"{name}_{'+'.join(r['suites_requested'])}.json")
                        for r in recs],
            "verdicts": [v for r in recs for v in r.get("verdicts", [])],
            "solver": trained[name].ode.describe() if hasattr(trained[name], "ode") else None,
            "timings": {"train_s": t_train[name], "eval_s": t_eval,
                        "train_epochs_s": sum(r["train_time"] for r in histories[name])},
            "config": config_to_dict(cfgs[name]), "run_dir": str(cfgs[name].train.out_dir)}
    names = list(results["models"])
    keys = [k for k in results["models"][names[0]]["metrics"]]
    lines = ["| metric | " + " | ".join(names) + " |", "|" + "---|" * (len(names) + 1)]
    for k in keys:
        lines.append(f"| {k} | " + " | ".join(
            f"{100 * results['models'][m]['metrics'].get(k, float('nan')):.2f}" for m in names) + " |")
    lines.append("| train time (s) | " + " | ".join(
        f"{results['models'][m]['timings']['train_s']:.0f}" for m in names) + " |")
    lines.append("| eval time (s) | " + " | ".join(
        f"{results['models'][m]['timings']['eval_s']:.0f}" for m in names) + " |")
    table = "\n".join(lines)
    results["table_markdown"] = table
    print(f"\nDigits test set: Zubov-Net vs Neural ODE, accuracy % ({n} images; "
          f"Table III rows on {results['models'][names[0]]['n_strong']})\n")
    print(table)
    flat = [r for m in names for r in records[m]]
    for layout, needs in (("table1", "corruptions"), ("table2", "attacks"), ("table3", "strong")):
        rows = [r for r in flat if needs in r["suites_requested"]]
        if rows:
            print(f"\n{layout} layout:\n" + render_table(rows, layout))
    flags = [(m, v) for m in names for v in results["models"][m]["verdicts"] if v.get("status") == "FLAG"]
    for m, v in flags:
        print(f"FLAG {m}: {v.get('check')}: {v.get('reason')}")
    with open(out_dir / "results.json", "w") as fh:
        json.dump(results, fh, indent=1)
    plot_training_curves(histories, out_dir / "training_curves.png")
    print(f"\nwrote {out_dir / 'results.json'}, {out_dir / 'records'}/ and {out_dir / 'training_curves.png'}")
    return results
