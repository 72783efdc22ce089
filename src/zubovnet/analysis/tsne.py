"""Fig. 3: t-SNE of the final features ``h(T)`` under clean, FGSM and Gaussian-noise inputs.

    X, Y = sample_per_class(test_set, 400, seed=0)
    summary = plot_tsne({"LyaNet": lyanet, "Zubov-Net": zubovnet}, X, Y, "tsne.png")

One row per model, one column per input condition (the paper's order: clean, FGSM, Gaussian
noise).  Each panel embeds the ``h(T)`` of all sampled images with scikit-learn's ``TSNE``
(one embedding per panel, same seed), points coloured by the true label.  Beside the picture
each panel reports two numbers computed in the original ``d``-dimensional feature space,
not in the embedding: the accuracy under the condition and the silhouette score of the true
labels (``sklearn.metrics.silhouette_score``, Euclidean; 1 = tight, well separated classes,
0 = overlapping).  The paper shows the picture only; the numbers make it comparable.

Input contract: ``model(x) -> logits (B, L)`` and ``model.forward_all(x).hT -> (B, d)`` for
images ``x`` ``(B, C, H, W)`` in [0, 1] (every model of the registry).
"""
from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import torch
from torch import nn

from ._common import class_colors, new_figure, save_png

__all__ = ["CONDITIONS", "sample_per_class", "final_features", "perturb", "tsne_embedding",
           "feature_summary", "plot_tsne"]

#: Input conditions of Fig. 3, in the paper's column order.
CONDITIONS = ("clean", "fgsm", "gaussian")
_TITLES = {"clean": "clean", "fgsm": "FGSM", "gaussian": "Gaussian noise"}


def sample_per_class(dataset, n_per_class: int = 400, seed: int = 0,
                     num_classes: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Up to ``n_per_class`` random images of every class of ``dataset`` (the paper: 400 per
    CIFAR-10 class).

    ``dataset[i] -> (image (C, H, W) in [0, 1], label)``.  Indices are drawn class by class
    from ``torch.randperm`` with ``torch.Generator().manual_seed(seed)``; a class with fewer
    images contributes all of them.  Returns ``X (N, C, H, W)`` float32, ``Y (N,)`` int64,
    ordered by class.
    """
    labels = _labels(dataset)
    g = torch.Generator().manual_seed(seed)
    classes = range(num_classes) if num_classes is not None else sorted(set(labels.tolist()))
    idx: list[int] = []
    for c in classes:
        where = torch.nonzero(labels == c).flatten()
        pick = where[torch.randperm(len(where), generator=g)[:n_per_class]]
        idx += sorted(pick.tolist())
    xs = [torch.as_tensor(dataset[i][0], dtype=torch.float32) for i in idx]
    return torch.stack(xs), labels[idx].clone()


def _labels(dataset) -> torch.Tensor:
    for attr in ("targets", "labels", "y"):
        got = getattr(dataset, attr, None)
        if got is not None and len(got) == len(dataset):
            return torch.as_tensor(np.asarray(got), dtype=torch.long)
    return torch.as_tensor([int(dataset[i][1]) for i in range(len(dataset))], dtype=torch.long)


@torch.no_grad()
def final_features(model: nn.Module, x: torch.Tensor, batch_size: int = 256,
                   device: str | torch.device = "cpu") -> torch.Tensor:
    """``h(T)`` of every image, ``(N, d)`` on the CPU, in eval mode (evaluation tolerances).

    ``x``: ``(N, C, H, W)`` in [0, 1].  Models without an ODE return their feature vector
    (``forward_all(x).hT`` is then the extractor output).
    """
    model.to(device).eval()
    out = []
    for i in range(0, len(x), batch_size):
        out.append(model.forward_all(x[i:i + batch_size].to(device)).hT.float().cpu())
    return torch.cat(out)


def perturb(model: nn.Module, x: torch.Tensor, y: torch.Tensor, condition: str, *,
            eps: float = 8 / 255, severity: int = 3, seed: int = 0, batch_size: int = 256,
            device: str | torch.device = "cpu") -> torch.Tensor:
    """The inputs of one condition, ``(N, C, H, W)`` in [0, 1] on the CPU.

    * ``clean``: ``x`` itself;
    * ``fgsm``: torchattacks' ``FGSM`` with L∞ radius ``eps`` against ``model`` (white box,
      eval mode): ``x' = clip_[0,1](x + eps · sign ∇_x CE(model(x), y))``;
    * ``gaussian``: the Gaussian-noise corruption of Table I at ``severity`` (σ = .04 .06 .08
      .09 .10 for 1..5), drawn from ``torch.Generator().manual_seed(seed)``.
    """
    if condition == "clean":
        return x.clone()
    if condition == "gaussian":
        from ..evaluation.corruptions import corrupt
        g = torch.Generator().manual_seed(seed)
        return torch.cat([corrupt(x[i:i + batch_size], "gaussian_noise", severity, generator=g)
                          for i in range(0, len(x), batch_size)])
    if condition == "fgsm":
        import torchattacks
        model.to(device).eval()
        atk = torchattacks.FGSM(model, eps=eps)
        outs = []
        for i in range(0, len(x), batch_size):
            xb, yb = x[i:i + batch_size].to(device), y[i:i + batch_size].to(device)
            adv = atk(xb, yb).detach()
            if (adv - xb).abs().max() > eps + 1e-5 or adv.min() < 0 or adv.max() > 1:
                raise RuntimeError("FGSM left the L-inf ball or [0, 1]")
            outs.append(adv.cpu())
        return torch.cat(outs)
    raise ValueError(f"unknown condition {condition!r}; choose from {', '.join(CONDITIONS)}")


def tsne_embedding(features: torch.Tensor | np.ndarray, seed: int = 0,
                   perplexity: float = 30.0) -> np.ndarray:
    """2-D t-SNE of ``features`` ``(N, d)``: ``(N, 2)`` float64.

    scikit-learn ``TSNE(n_components=2, perplexity=min(perplexity, (N − 1)/3), init="pca",
    learning_rate="auto", random_state=seed)``; a feature matrix of constant columns gets no
    PCA initialisation.  ``N ≥ 4``.
    """
    from sklearn.manifold import TSNE
    f = np.asarray(features, dtype=np.float64)
    if len(f) < 4:
        raise ValueError(f"t-SNE needs at least 4 points, got {len(f)}")
    perp = float(min(perplexity, max(1.0, (len(f) - 1) / 3.0)))
    init = "pca" if np.ptp(f, axis=0).max() > 0 else "random"
    return TSNE(n_components=2, perplexity=perp, init=init, learning_rate="auto",
                random_state=seed).fit_transform(f)


def feature_summary(features: torch.Tensor, labels: torch.Tensor,
                    predictions: torch.Tensor) -> dict:
    """``{"accuracy", "silhouette", "n"}`` of one panel, in the ``d``-dimensional space.

    ``silhouette`` is ``None`` when it is undefined (one class only, or every point
    identical)."""
    from sklearn.metrics import silhouette_score
    f = features.double().numpy()
    lab = labels.numpy()
    sil = None
    if 2 <= len(set(lab.tolist())) < len(lab) and np.ptp(f, axis=0).max() > 0:
        sil = float(silhouette_score(f, lab))
    return {"accuracy": float((predictions == labels).float().mean()), "silhouette": sil,
            "n": int(len(lab))}


def plot_tsne(models: Mapping[str, nn.Module] | Sequence[tuple[str, nn.Module]],
              x: torch.Tensor, y: torch.Tensor, path: str | Path,
              conditions: Sequence[str] = CONDITIONS, *, eps: float = 8 / 255,
              severity: int = 3, seed: int = 0, perplexity: float = 30.0,
              class_names: Sequence[str] | None = None, batch_size: int = 256,
              device: str | torch.device = "cpu") -> dict:
    """Draw the t-SNE grid (rows: models, columns: conditions) to ``path`` (PNG).

    ``x`` ``(N, C, H, W)`` in [0, 1], ``y`` ``(N,)``; ``eps`` is the FGSM radius and
    ``severity`` the Gaussian-noise severity (the paper states neither; defaults 8/255, the
    radius of Tables V–VI, and severity 3, σ = 0.08).  Returns
    ``{model: {condition: {"accuracy", "silhouette", "n"}}}``.
    """
    items = list(models.items()) if isinstance(models, Mapping) else list(models)
    if not items:
        raise ValueError("plot_tsne needs at least one model")
    num_classes = int(y.max()) + 1
    colors = class_colors(num_classes)
    fig, axes = new_figure(len(items), len(conditions), panel=(4.2, 4.0))
    summary: dict = {}
    for r, (name, model) in enumerate(items):
        summary[name] = {}
        for c, cond in enumerate(conditions):
            xc = perturb(model, x, y, cond, eps=eps, severity=severity, seed=seed,
                         batch_size=batch_size, device=device)
            feats = final_features(model, xc, batch_size, device)
            with torch.no_grad():
                preds = torch.cat([model(xc[i:i + batch_size].to(device)).argmax(1).cpu()
                                   for i in range(0, len(xc), batch_size)])
            stats = feature_summary(feats, y, preds)
            summary[name][cond] = stats
            emb = tsne_embedding(feats, seed=seed, perplexity=perplexity)
            ax = axes[r, c]
            for k in range(num_classes):
                m = (y == k).numpy()
                if m.any():
                    label = class_names[k] if class_names is not None else str(k)
                    ax.scatter(emb[m, 0], emb[m, 1], s=3, color=colors[k], label=label,
                               rasterized=True)
            sil = "n/a" if stats["silhouette"] is None else f"{stats['silhouette']:.3f}"
            title = _TITLES.get(cond, cond)
            if cond == "fgsm":
                title += f" (ε = {eps * 255:.3g}/255)"
            elif cond == "gaussian":
                title += f" (severity {severity})"
            ax.set_title(f"{name}: {title}\nacc {100 * stats['accuracy']:.1f}%, silhouette {sil}",
                         fontsize=9)
            ax.set_xticks([])
            ax.set_yticks([])
    axes[0, -1].legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=7, markerscale=3,
                       frameon=False)
    fig.suptitle("t-SNE of the final features h(T); colour = true class", fontsize=11)
    save_png(fig, path)
    return summary
