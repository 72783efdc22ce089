"""Assign the max-cosine equilibria to classes so that they follow the data.

:func:`~zubovnet.models.lyapunov.make_equilibria` fixes *where* the ``L`` equilibria lie (the
vectors with minimal maximum pairwise cosine) but not *which class* gets which vector: row
``i`` goes to class ``i``.  The flow must then carry each class's features from wherever the
extractor first puts them to its own ``c_y``; in the plane an assignment that contradicts the
cyclic order of the data cannot be realised by an autonomous flow without braiding classes
past each other, and in any dimension a bad assignment makes the first epochs move features
across other classes' regions.  :func:`assign_equilibria` keeps the vectors and chooses the
permutation: class ``k`` gets the vector closest in angle to the mean of its initial features
``h(0)``, by a linear assignment (Hungarian algorithm) maximising the summed cosine.
"""
from __future__ import annotations

import copy
from typing import Iterable

import torch
from torch import nn

__all__ = ["class_feature_means", "assignment_permutation", "assign_equilibria"]


@torch.no_grad()
def class_feature_means(model: nn.Module, batches: Iterable, max_batches: int,
                        num_classes: int) -> torch.Tensor:
    """Mean ``h(0) = φ(x)`` per class over at most ``max_batches`` batches ``(x, y)``: ``(L, d)``.

    The extractor runs on a copy in training mode (as during the first step), so the model's
    own BatchNorm statistics are left untouched.  A class absent from the batches gets a zero
    mean (it then takes whatever vector the others leave).
    """
    extractor = copy.deepcopy(model.extractor).train()
    dev = next(iter(model.parameters())).device
    sums, counts = None, torch.zeros(num_classes, device=dev)
    for i, (x, y) in enumerate(batches):
        if i >= max_batches:
            break
        x, y = x.to(dev), y.to(dev)
        h = extractor(x)
        if sums is None:
            sums = torch.zeros(num_classes, h.shape[1], device=dev, dtype=h.dtype)
        sums.index_add_(0, y, h)
        counts += torch.bincount(y, minlength=num_classes).to(counts.dtype)
    if sums is None:
        raise ValueError("equilibria assignment 'data' needs at least one training batch")
    return sums / counts.clamp_min(1).unsqueeze(1)


def assignment_permutation(means: torch.Tensor, C: torch.Tensor) -> torch.Tensor:
    """``perm`` with ``C[perm]`` maximising ``Σ_k cos(means_k, C[perm_k])`` (Hungarian)."""
    from scipy.optimize import linear_sum_assignment
    S = torch.nn.functional.normalize(means.double(), dim=1) @ \
        torch.nn.functional.normalize(C.double(), dim=1).t()
    rows, cols = linear_sum_assignment(-S.cpu().numpy())
    perm = torch.empty(C.shape[0], dtype=torch.long)
    perm[torch.as_tensor(rows)] = torch.as_tensor(cols)
    return perm.to(C.device)


@torch.no_grad()
def assign_equilibria(model: nn.Module, batches: Iterable, max_batches: int = 4) -> dict:
    """Permute the rows of ``model.head.C`` in place to follow the data; return what was done.

    Returns ``{"permutation": [...], "mean_cosine_before": ..., "mean_cosine_after": ...}``
    (mean over classes of ``cos(mean h(0), c_k)``).
    """
    C = model.head.C
    means = class_feature_means(model, batches, max_batches, C.shape[0])
    perm = assignment_permutation(means, C)
    mn = torch.nn.functional.normalize(means, dim=1)
    before = float((mn * torch.nn.functional.normalize(C, dim=1)).sum(1).mean())
    C.copy_(C[perm].clone())
    after = float((mn * torch.nn.functional.normalize(C, dim=1)).sum(1).mean())
    return {"permutation": perm.tolist(), "mean_cosine_before": before,
            "mean_cosine_after": after}
