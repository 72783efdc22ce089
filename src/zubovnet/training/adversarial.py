"""Adversarial training around any objective: PGD-AT, TRADES, MART (and Zubov-Net (TRADES)).

``build_objective`` wraps the model's objective with the factory registered here under the name
``adversarial`` whenever ``cfg.adversarial.method`` is not ``none``::

    objective = AdversarialTraining.create(cfg, base_objective)   # method from cfg.adversarial

Input contract of every method: images ``x`` ``(B, C, H, W)`` in [0, 1], labels ``y`` ``(B,)``.
Adversarial examples are crafted in pixel space by sign-gradient ascent, projected after every
step onto the L∞ ball ``‖x' − x‖∞ ≤ ε`` intersected with ``[0, 1]``; parameters receive no
gradient from the crafting.  Where each method puts the model's own objective (``base``):

=========  =================================================================  ===============
method     loss                                                               crafting
=========  =================================================================  ===============
pgd_at     ``base(x_adv)``                       (Madry et al. 2018)          max CE; train mode,
                                                                              uniform start
trades     ``base(x) + β · KL(p(x) ‖ p(x_adv))``  (Zhang et al. 2019)          max KL; eval mode,
                                                                              ``x + 0.001 N(0, I)``
mart       ``base(x_adv) − log(1 − max_{k≠y} p_k(x_adv))``                    max CE; eval mode,
           ``+ β · KL(p(x) ‖ p(x_adv)) · (1 − p_y(x))``  (Wang et al. 2020)   ``x + 0.001 N(0, I)``
=========  =================================================================  ===============

``p = softmax(model(x))``.  With the cross-entropy base each row is exactly the published loss
(MART's "BCE" is ``CE − log(1 − max_{k≠y} p_k)``).  For Zubov-Net, ``p`` is the paper's
normalised prediction ``ŷ = softmax(ℓ)``, so ``zubovnet`` + ``trades`` is Zubov-Net (TRADES):
the full Zubov objective on clean inputs plus ``β KL(ŷ(x) ‖ ŷ(x_adv))`` (paper §IV-D).

Crafting mode (``cfg.adversarial.mode``): ``paper`` uses each reference implementation's
choice (above); in train mode the BatchNorm running statistics are not updated by the crafting
passes (momentum 0 while crafting).  ODE tolerances while crafting (``cfg.adversarial.tolerance``):
``train`` solves at the training tolerances also in eval mode (each ascent step then costs one
training forward pass); ``mode`` uses whatever the module mode selects.
"""
from __future__ import annotations

import contextlib
from typing import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import nn

from ..config import AdversarialConfig, Config
from ..models.ode import ode_blocks
from .objectives import CrossEntropyObjective, _accuracy, register_objective

__all__ = ["AdversarialTraining", "PGDAT", "TRADES", "MART", "sign_ascent", "project_linf",
           "trades_kl", "mart_loss", "crafting_mode", "METHODS"]


# --------------------------------------------------------------------------- crafting
def project_linf(x_adv: torch.Tensor, x: torch.Tensor, eps: float) -> torch.Tensor:
    """Project onto ``{x' : ‖x' − x‖∞ ≤ ε} ∩ [0, 1]^n`` (elementwise clamps)."""
    return torch.min(torch.max(x_adv, x - eps), x + eps).clamp(0.0, 1.0)


def sign_ascent(loss_fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, eps: float,
                steps: int, step_size: float, init: str = "uniform", init_std: float = 0.001,
                generator: torch.Generator | None = None) -> torch.Tensor:
    """Projected sign-gradient ascent on ``loss_fn`` in the L∞ ball (PGD, Madry et al. 2018).

    ``x``: images in [0, 1]; ``loss_fn(x') -> scalar`` to maximise.  Start ``init``: ``uniform``
    (``x + U[−ε, ε]``), ``normal`` (``x + init_std · N(0, I)``) or ``zero`` (``x``), projected.
    Each step ``x' ← Π(x' + step_size · sign ∇loss)``.  Returns a detached tensor with
    ``‖x' − x‖∞ ≤ ε`` and values in [0, 1].  Runs with gradients enabled whatever the caller's
    grad mode; parameter ``.grad`` fields are not touched.
    """
    x = x.detach()
    if init == "uniform":
        noise = (torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype) * 2 - 1) * eps
    elif init == "normal":
        noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype) * init_std
    elif init == "zero":
        noise = torch.zeros_like(x)
    else:
        raise ValueError(f"unknown start {init!r}; choose uniform, normal or zero")
    x_adv = project_linf(x + noise, x, eps)
    for _ in range(steps):
        with torch.enable_grad():
            x_adv.requires_grad_(True)
            loss = loss_fn(x_adv)
            grad, = torch.autograd.grad(loss, x_adv)
        x_adv = project_linf(x_adv.detach() + step_size * grad.sign(), x, eps)
    return x_adv.detach()


@contextlib.contextmanager
def crafting_mode(model: nn.Module, mode: str, tolerance: str = "train") -> Iterator[None]:
    """Put ``model`` in ``mode`` (``train`` | ``eval``) for crafting; restore every module's
    mode, BatchNorm momenta and ODE tolerances afterwards.

    ``train``: BatchNorm uses batch statistics but its running statistics are left unchanged
    (momentum 0).  ``tolerance = "train"``: in eval mode the ODE blocks solve at their training
    tolerances.
    """
    if mode not in ("train", "eval"):
        raise ValueError(f"unknown crafting mode {mode!r}; choose train or eval")
    modes = [(m, m.training) for m in model.modules()]
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in bns]
    blocks = ode_blocks(model)
    tols = [(b.rtol_eval, b.atol_eval) for b in blocks]
    model.train(mode == "train")
    if mode == "train":
        for m in bns:
            m.momentum = 0.0
    if tolerance == "train":
        for b in blocks:
            b.rtol_eval, b.atol_eval = b.rtol_train, b.atol_train
    elif tolerance != "mode":
        raise ValueError(f"unknown crafting tolerance {tolerance!r}; choose train or mode")
    try:
        yield
    finally:
        for m, t in modes:
            m.training = t
        for m, mom in zip(bns, momenta):
            m.momentum = mom
        for b, (r, a) in zip(blocks, tols):
            b.rtol_eval, b.atol_eval = r, a


# --------------------------------------------------------------------------- losses
def trades_kl(logits_nat: torch.Tensor, logits_adv: torch.Tensor) -> torch.Tensor:
    """``(1/B) Σ_b KL(p_nat,b ‖ p_adv,b)`` with ``p = softmax(logits)`` (TRADES' robust term).

    ``logits_*``: ``(B, L)``.  Differentiable through both arguments (as TRADES).
    """
    return F.kl_div(F.log_softmax(logits_adv, 1), F.log_softmax(logits_nat, 1),
                    reduction="batchmean", log_target=True)


def mart_loss(logits_nat: torch.Tensor, logits_adv: torch.Tensor, y: torch.Tensor,
              beta: float = 6.0, margin_eps: float = 1e-4, log_eps: float = 1e-12,
              weight_eps: float = 1e-7) -> tuple[torch.Tensor, torch.Tensor]:
    """MART's two terms beyond ``CE(logits_adv, y)`` (Wang et al. 2020, eq. 9 and their code)::

        margin = mean_b −log(1 + margin_eps − p_adv,b[k_b] + log_eps),   k_b = argmax_{k≠y_b} p_adv,b[k]
        robust = β · mean_b KL(p_nat,b ‖ p_adv,b) · (1 + weight_eps − p_nat,b[y_b])

    with ``KL(p ‖ q) = Σ_k p_k (log p_k − log(q_k + log_eps))``.  Returns ``(margin, robust)``.
    """
    p_adv = F.softmax(logits_adv, 1)
    p_nat = F.softmax(logits_nat, 1)
    top2 = p_adv.argsort(1)[:, -2:]
    k = torch.where(top2[:, -1] == y, top2[:, -2], top2[:, -1])
    margin = F.nll_loss(torch.log(1.0 + margin_eps - p_adv + log_eps), k)
    kl = (p_nat * (F.log_softmax(logits_nat, 1) - torch.log(p_adv + log_eps))).sum(1)
    true = p_nat.gather(1, y.unsqueeze(1)).squeeze(1)
    robust = beta * (kl * (1.0 + weight_eps - true)).mean()
    return margin, robust


# --------------------------------------------------------------------------- methods
class AdversarialTraining:
    """Base class: ``objective(model, x, y) -> (loss, logs)`` around ``base(model, x, y)``.

    Subclasses set ``paper_mode`` / ``paper_init`` and implement :meth:`craft` and
    :meth:`__call__`.  ``x``: ``(B, C, H, W)`` in [0, 1]; ``y``: ``(B,)``.  ``set_epoch`` is
    forwarded to the base objective (phased objectives such as SODEF's).
    """

    name = ""
    paper_mode = "eval"
    paper_init = "normal"

    def __init__(self, cfg: AdversarialConfig, base):
        self.cfg, self.base = cfg, base
        self.mode = self.paper_mode if cfg.mode == "paper" else cfg.mode
        self.init = self.paper_init if cfg.init == "paper" else cfg.init

    @staticmethod
    def create(cfg: Config, base) -> "AdversarialTraining":
        method = cfg.adversarial.method
        if method not in METHODS:
            raise KeyError(f"unknown adversarial training method {method!r}; "
                           f"choose none, {', '.join(METHODS)}")
        return METHODS[method](cfg.adversarial, base)

    def set_epoch(self, epoch: int) -> None:
        if hasattr(self.base, "set_epoch"):
            self.base.set_epoch(epoch)

    def prepare(self, model, batches) -> dict:
        return self.base.prepare(model, batches) if hasattr(self.base, "prepare") else {}

    def ascend(self, model, x, loss_fn) -> torch.Tensor:
        """:func:`sign_ascent` of ``loss_fn`` in the crafting mode of this method."""
        c = self.cfg
        with crafting_mode(model, self.mode, c.tolerance):
            return sign_ascent(loss_fn, x, c.eps, c.steps, c.step_size, self.init, c.init_std)

    def base_with_logits(self, model, x, y) -> tuple[torch.Tensor, dict, torch.Tensor]:
        """``(loss, logs, logits)`` of the base objective at ``x`` (one forward pass for CE)."""
        if isinstance(self.base, CrossEntropyObjective):
            logits = model(x)
            loss = F.cross_entropy(logits, y)
            return loss, {"loss": loss.item(), "acc": _accuracy(logits, y)}, logits
        loss, logs = self.base(model, x, y)
        return loss, dict(logs), model(x)

    def craft(self, model, x, y) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def __call__(self, model, x, y):  # pragma: no cover - abstract
        raise NotImplementedError


class PGDAT(AdversarialTraining):
    """PGD adversarial training (Madry et al. 2018): ``base(model, x_adv, y)``, ``x_adv`` maximising
    ``CE(model(x'), y)``; crafted in train mode from a uniform start (reference code)."""

    name = "pgd_at"
    paper_mode = "train"
    paper_init = "uniform"

    def craft(self, model, x, y):
        return self.ascend(model, x, lambda xa: F.cross_entropy(model(xa), y, reduction="sum"))

    def __call__(self, model, x, y):
        x_adv = self.craft(model, x, y)
        loss, logs, logits_adv = self.base_with_logits(model, x_adv, y)
        logs.update({"adv_acc": _accuracy(logits_adv, y), "loss": loss.item()})
        return loss, logs


class TRADES(AdversarialTraining):
    """TRADES (Zhang et al. 2019): ``base(model, x, y) + β KL(p(x) ‖ p(x_adv))``, ``x_adv``
    maximising ``KL(p(x) ‖ p(x'))`` (``p(x)`` fixed); crafted in eval mode from
    ``x + 0.001 N(0, I)`` (reference code)."""

    name = "trades"

    def craft(self, model, x, y):
        with crafting_mode(model, self.mode, self.cfg.tolerance), torch.no_grad():
            logp_nat = F.log_softmax(model(x), 1)
        return self.ascend(model, x, lambda xa: F.kl_div(F.log_softmax(model(xa), 1), logp_nat,
                                                         reduction="sum", log_target=True))

    def __call__(self, model, x, y):
        x_adv = self.craft(model, x, y)
        loss_nat, logs, logits_nat = self.base_with_logits(model, x, y)
        logits_adv = model(x_adv)
        kl = trades_kl(logits_nat, logits_adv)
        loss = loss_nat + self.cfg.beta * kl
        logs.update({"L_kl": kl.item(), "adv_acc": _accuracy(logits_adv, y), "loss": loss.item()})
        return loss, logs


class MART(AdversarialTraining):
    """MART (Wang et al. 2020): ``base(model, x_adv, y) + margin + β KL(p(x) ‖ p(x_adv))(1 − p_y(x))``
    (:func:`mart_loss`), ``x_adv`` maximising CE; crafted in eval mode from ``x + 0.001 N(0, I)``
    (reference code)."""

    name = "mart"

    def craft(self, model, x, y):
        return self.ascend(model, x, lambda xa: F.cross_entropy(model(xa), y, reduction="sum"))

    def __call__(self, model, x, y):
        x_adv = self.craft(model, x, y)
        loss_adv, logs, logits_adv = self.base_with_logits(model, x_adv, y)
        logits_nat = model(x)
        margin, robust = mart_loss(logits_nat, logits_adv, y, self.cfg.beta)
        loss = loss_adv + margin + robust
        logs.update({"L_margin": margin.item(), "L_robust": robust.item(),
                     "adv_acc": _accuracy(logits_adv, y), "nat_acc": _accuracy(logits_nat, y),
                     "loss": loss.item()})
        return loss, logs


METHODS: dict[str, type[AdversarialTraining]] = {"pgd_at": PGDAT, "trades": TRADES, "mart": MART}


@register_objective("adversarial")
def adversarial_objective(cfg: Config, base_objective) -> AdversarialTraining:
    """Factory used by ``build_objective``: wrap ``base_objective`` in ``cfg.adversarial.method``."""
    return AdversarialTraining.create(cfg, base_objective)
