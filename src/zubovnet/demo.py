"""``make demo``: Zubov-Net vs the plain Neural ODE on scikit-learn's 8x8 digits, on CPU.

Trains both models from the embedded config ``resources/demo.yaml`` (resuming if a run folder
already exists), evaluates them on the test split, prints a side-by-side table and writes
``OUT/results.json`` and PNG plots of the training curves.
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
PGD_EPS = (8 / 255, 16 / 255)


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


def _gaussian_noise(x: torch.Tensor, sigma: float, generator: torch.Generator) -> torch.Tensor:
    try:
        from .evaluation.corruptions import gaussian_noise
        return gaussian_noise(x, sigma, generator=generator)
    except ImportError:  # pragma: no cover
        return (x + sigma * torch.randn(x.shape, generator=generator)).clamp(0, 1)


def _demo_metrics(model, x: torch.Tensor, y: torch.Tensor, seed: int, batch_size: int = 256) -> dict:
    """Clean, Gaussian-noise (CIFAR-10-C severity 3, σ = 0.08) and PGD-10 (ε/8 steps) accuracy."""
    import torchattacks
    model.eval()
    res: dict = {}
    g = torch.Generator().manual_seed(seed)

    def acc(inputs):
        with torch.no_grad():
            return sum((model(inputs[i:i + batch_size]).argmax(1) == y[i:i + batch_size]).sum().item()
                       for i in range(0, len(y), batch_size)) / len(y)

    res["clean"] = acc(x)
    res["gaussian_noise_s3"] = acc(_gaussian_noise(x, 0.08, g))
    for eps in PGD_EPS:
        torch.manual_seed(seed)
        atk = torchattacks.PGD(model, eps=eps, alpha=eps / 8, steps=10, random_start=True)
        adv = torch.cat([atk(x[i:i + batch_size], y[i:i + batch_size])
                         for i in range(0, len(y), batch_size)])
        assert (adv - x).abs().max() <= eps + 1e-6 and adv.min() >= 0 and adv.max() <= 1
        res[f"pgd_{round(eps * 255)}/255"] = acc(adv)
    return res


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
             quick: bool = False, device: str = "cpu", suite: str = "demo", seed: int = 0) -> dict:
    from .data import build_datasets
    from .training import train
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    results: dict = {"dataset": "digits", "suite": suite, "versions": _versions(),
                     "hardware": _hardware(), "models": {}}
    histories = {}
    for name in DEMO_MODELS:
        cfg = demo_config(name, out_dir, epochs, quick, device)
        print(f"== training {name} ({cfg.train.epochs} epochs) -> {cfg.train.out_dir}", flush=True)
        t0 = time.time()
        res = train(cfg, resume=True)
        t_train = time.time() - t0
        splits = build_datasets(cfg.data)
        xs, ys = zip(*[splits.test[i] for i in range(len(splits.test) if n_eval is None
                                                         else min(n_eval, len(splits.test)))])
        x, y = torch.stack(xs), torch.as_tensor([int(v) for v in ys])
        t0 = time.time()
        metrics = _demo_metrics(res.model.cpu(), x, y, seed)
        t_eval = time.time() - t0
        histories[name] = res.history
        results["models"][name] = {
            "metrics": metrics, "n_test": len(y), "seed": cfg.train.seed,
            "protocol": {"gaussian_noise_s3": "x + N(0, 0.08^2), clipped (CIFAR-10-C severity 3)",
                         "pgd": "torchattacks PGD, L-inf, 10 steps, step eps/8, random start",
                         "solver": res.model.ode.describe() if hasattr(res.model, "ode") else None},
            "timings": {"train_s": t_train, "eval_s": t_eval,
                        "train_epochs_s": sum(r["train_time"] for r in res.history)},
            "config": config_to_dict(cfg), "run_dir": str(res.run_dir)}
    names = list(results["models"])
    keys = list(results["models"][names[0]]["metrics"])
    header = "| metric | " + " | ".join(names) + " |"
    lines = [header, "|" + "---|" * (len(names) + 1)]
    for k in keys:
        lines.append(f"| {k} | " + " | ".join(f"{100 * results['models'][n]['metrics'][k]:.2f}"
                                                for n in names) + " |")
    lines.append("| train time (s) | " + " | ".join(
        f"{results['models'][n]['timings']['train_s']:.0f}" for n in names) + " |")
    table = "\n".join(lines)
    results["table_markdown"] = table
    print(f"\nDigits test set ({results['models'][names[0]]['n_test']} images), accuracy %:\n")
    print(table)
    with open(out_dir / "results.json", "w") as fh:
        json.dump(results, fh, indent=1)
    plot_training_curves(histories, out_dir / "training_curves.png")
    print(f"\nwrote {out_dir / 'results.json'} and {out_dir / 'training_curves.png'}")
    return results
