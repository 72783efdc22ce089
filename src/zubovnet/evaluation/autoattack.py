"""AutoAttack in the evaluation: Croce & Hein's reference implementation (``pyautoattack``)
and, where it is missing, the same components from torchattacks (``reference: false``).

Both are :class:`~zubovnet.evaluation.attacks.Attack` subclasses built by
:func:`~zubovnet.evaluation.attacks.make_attack` (``"autoattack"``); ``docs/evaluation.md``.
"""
from __future__ import annotations

import logging

import torch
from torch import nn

from .attacks import SQUARE_QUERIES, Attack, InputGraph, _torchattacks_version, predict

__all__ = ["ReferenceAutoAttack", "ComponentAutoAttack", "reference_autoattack_available",
           "AUTOATTACK_COMPONENTS"]


def reference_autoattack_available() -> bool:
    """True when Croce & Hein's implementation (``pyautoattack``) can be imported."""
    try:
        import pyautoattack  # noqa: F401
        return True
    except Exception:
        return False


AUTOATTACK_COMPONENTS = ("apgd-ce", "apgd-t", "fab-t", "square")
"""The components of AutoAttack "standard", in the order they run."""


def _check_components(attacks, standard=AUTOATTACK_COMPONENTS) -> list[str]:
    """``attacks`` as a list in the standard order; ValueError naming an unknown or empty one."""
    names = list(attacks)
    bad = [a for a in names if a not in standard]
    if bad or not names:
        raise ValueError(f"AutoAttack components {bad or names!r} not among the standard "
                         f"ones ({', '.join(standard)})")
    return [a for a in standard if a in names]


class _Collect(logging.Handler):
    def __init__(self):
        super().__init__(level=logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record):
        self.messages.append(record.getMessage())


class ReferenceAutoAttack(Attack):
    """AutoAttack "standard" through the reference implementation (``pyautoattack``).

    Configuration (Croce & Hein, L∞): APGD-CE (100 steps, 1 restart), APGD-T (100 steps, 9
    target classes), FAB-T (9 targets, 100 steps), Square (5,000 queries, p_init 0.8), each on
    the points that survived the previous ones.  The package's own sanity checks (randomised
    defence, probability outputs, dynamic defence, zero gradients, Square beating the
    white-box attacks) are collected in ``warnings`` instead of going to the log.

    ``square_queries`` overrides Square's budget (for quick tests only); ``attacks`` keeps a
    subset of the four components, each with its standard parameters, in the standard order
    (the demo's fast protocol runs ``("apgd-ce", "apgd-t")``); with either, the description
    says ``reference: false``: the number is then not the standard AutoAttack's.
    """

    name = "autoattack"
    whole_sample = True

    def __init__(self, model: nn.Module, eps: float, seed: int = 0, version: str = "standard",
                 square_queries: int | None = None, batch_size: int = 250,
                 state_path: str | None = None, attacks: tuple | None = None):
        super().__init__(model, eps, seed)
        self.state_path = state_path
        self.disagreements = 0
        from pyautoattack import AutoAttack, __version__
        self.implementation = f"pyautoattack {__version__} (Croce & Hein reference)"
        self.version = version
        self.batch_size = batch_size
        self.aa = AutoAttack(InputGraph(model), norm="Linf", eps=self.eps, version=version,
                             device=str(self.device), seed=seed)
        self.square_queries = int(self.aa.square.n_queries)
        self.reference = version == "standard"
        if square_queries is not None and square_queries != self.square_queries:
            self.aa.square.n_queries = int(square_queries)
            self.square_queries = int(square_queries)
            self.reference = False
        if attacks is not None:
            standard = list(self.aa.attacks_to_run)
            keep = _check_components(attacks, standard)
            if keep != standard:
                self.aa.attacks_to_run = keep
                self.version = "custom"
                self.reference = False
        self.warnings: list[str] = []

    def perturb(self, x, y):
        from pyautoattack import checks
        for k in checks.funcs:  # the dynamic-defence trace counters are module globals
            checks.funcs[k] = 0
        log = logging.getLogger("auto-attack")
        handler = _Collect()
        log.addHandler(handler)
        old_prop = log.propagate
        log.propagate = False
        try:
            self.aa.model.train(self.model.training)
            self.aa.seed = self.seed + self.calls  # each component is seeded from it
            from pathlib import Path
            sp = Path(self.state_path) if self.state_path else None
            x_adv, y_aa = self.aa.run_standard_evaluation(x, y, batch_size=max(1, self.batch_size),
                                                          state_path=sp)
            # AutoAttack's labels come from its own batches; an adaptive ODE solver couples the
            # examples of a batch, so the re-evaluation may differ: count where it does
            if y_aa is not None and y_aa.shape == y.shape:
                own = torch.cat([predict(self.model, x_adv[i:i + self.batch_size].to(x.device))
                                 for i in range(0, len(x_adv), max(1, self.batch_size))])
                self.disagreements = int((own.cpu() != y_aa.cpu()).sum())
        finally:
            log.removeHandler(handler)
            log.propagate = old_prop
        for msg in handler.messages:
            if msg not in self.warnings:
                self.warnings.append(msg)
        return x_adv.to(x.device)

    def describe(self) -> dict:
        aa = self.aa
        return {**super().describe(), "version": self.version, "reference": self.reference,
                "components": list(aa.attacks_to_run),
                "apgd_ce": {"steps": aa.apgd.n_iter, "restarts": aa.apgd.n_restarts,
                            "rho": aa.apgd.thr_decr},
                "apgd_t": {"steps": aa.apgd_targeted.n_iter,
                           "target_classes": aa.apgd_targeted.n_target_classes,
                           "restarts": aa.apgd_targeted.n_restarts},
                "fab_t": {"steps": aa.fab.n_iter, "target_classes": aa.fab.n_target_classes,
                          "restarts": aa.fab.n_restarts},
                "square": {"queries": self.square_queries, "p_init": aa.square.p_init,
                           "restarts": aa.square.n_restarts},
                "steps": aa.apgd.n_iter, "step_size": None,
                "warnings": list(self.warnings), "label_disagreements": self.disagreements}


class ComponentAutoAttack(Attack):
    """AutoAttack "standard" assembled from torchattacks components (fallback when the
    reference package is missing): APGD-CE (100 steps), APGD-T (100 steps, ``L − 1`` ≤ 9
    targets), FAB-T (100 steps, multi-targeted), Square (5,000 queries), each run on the points
    that survived the previous ones.  Same attacks and budgets as the reference; the code is
    torchattacks', so the description says ``reference: false``."""

    name = "autoattack"
    whole_sample = True

    def __init__(self, model: nn.Module, eps: float, num_classes: int, seed: int = 0,
                 steps: int = 100, square_queries: int = SQUARE_QUERIES, batch_size: int = 250,
                 attacks: tuple | None = None):
        super().__init__(model, eps, seed)
        self.batch_size = max(1, int(batch_size))
        import torchattacks as ta
        self.implementation = _torchattacks_version() + " components"
        graph = InputGraph(model)
        self.steps, self.square_queries = steps, square_queries
        self.targets = min(9, num_classes - 1)
        self.components = [
            ("apgd-ce", ta.APGD(graph, norm="Linf", eps=eps, steps=steps, n_restarts=1,
                                loss="ce", seed=seed)),
            ("apgd-t", ta.APGDT(graph, norm="Linf", eps=eps, steps=steps, n_restarts=1,
                                seed=seed, n_classes=self.targets + 1)),
            ("fab-t", ta.FAB(graph, norm="Linf", eps=eps, steps=steps, n_restarts=1,
                             seed=seed, multi_targeted=True, n_classes=self.targets + 1)),
            ("square", ta.Square(graph, norm="Linf", eps=eps, n_queries=square_queries,
                                 n_restarts=1, p_init=0.8, loss="margin", seed=seed)),
        ]
        if attacks is not None:
            keep = _check_components(attacks)
            self.components = [(n, a) for n, a in self.components if n in keep]
        for _, atk in self.components:
            atk.set_device(self.device)

    def perturb(self, x, y):
        x_adv = x.clone()
        robust = predict(self.model, x) == y
        for _, atk in self.components:
            remaining = robust.nonzero().squeeze(1)
            for chunk in remaining.split(self.batch_size):
                cand = atk(x[chunk], y[chunk])
                fooled = predict(self.model, cand) != y[chunk]
                x_adv[chunk[fooled]] = cand[fooled]
                robust[chunk[fooled]] = False
        return x_adv

    def describe(self) -> dict:
        return {**super().describe(), "version": "standard", "reference": False,
                "components": [n for n, _ in self.components], "steps": self.steps,
                "step_size": None, "target_classes": self.targets,
                "square": {"queries": self.square_queries, "p_init": 0.8},
                "warnings": ["not the reference implementation: torchattacks components "
                             "(install pyautoattack for Croce & Hein's AutoAttack)"]}
