"""L∞ attacks of the evaluation protocols (``docs/evaluation.md``), one class per attack on one
base class.

Input contract of every attack (and of the evaluator that runs them): the model maps images
``x`` of shape ``(B, C, H, W)``, float, in **[0, 1]** (pixel space; any normalisation is
inside the model) to logits ``(B, L)``.  ``attack(x, y)`` takes such an ``x`` and labels
``y`` ``(B,)`` int64 on the model's device and returns ``x_adv`` of the same shape with

    ‖x_adv − x‖_∞ ≤ eps   and   0 ≤ x_adv ≤ 1,

which :meth:`Attack.__call__` checks on every call (:func:`check_perturbation`, tolerance
1e-6) — an attack that leaves the threat model raises :class:`PerturbationError`.

Paper protocol (§IV-A): FGSM, BIM, PGD, APGD, Jitter at ``eps ∈ {8/255, 16/255}``, 10
iterations, step ``eps/8``, through torchattacks; VNI-FGSM crafted on a surrogate model and
transferred; Square (black box); AutoAttack "standard".  :func:`make_attack` builds any of
them by name::

    atk = make_attack("pgd", model, eps=8/255)             # 10 steps, step eps/8
    x_adv = atk(x, y)

Reference AutoAttack is Croce & Hein's implementation (PyPI package ``pyautoattack``):
APGD-CE (100 steps), APGD-T (100 steps, 9 target classes), FAB-T (9 targets), Square (5,000
queries).  torchattacks' own ``AutoAttack`` class runs 10-step APGD/FAB and is not that
configuration; where ``pyautoattack`` is not installed, :class:`ComponentAutoAttack` chains
torchattacks' components configured to the reference settings instead, and says so in
:meth:`~Attack.describe`.

Every attack draws its randomness from a generator seeded with ``seed`` plus the index of the
call, inside :func:`torch.random.fork_rng`, so results do not depend on the order in which
attacks run and the global random state is left untouched.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "PAPER_EPS", "PAPER_STEPS", "PAPER_STEP_FRACTION", "WHITE_BOX_ATTACKS", "SQUARE_QUERIES",
    "ATTACKS",
    "PerturbationError", "EvaluationModeError",
    "eps_label", "check_perturbation", "assert_eval_mode", "forward_determinism", "margin",
    "predict", "input_gradient", "run_attack", "AttackOutcome", "SOLVER_ERRORS", "InputGraph",
    "AttackSpec", "ATTACK_SPECS", "attack_names",
    "Attack", "TorchAttack", "MarginPGD", "TransferAttack", "ReferenceAutoAttack",
    "ComponentAutoAttack", "make_attack", "reference_autoattack_available",
]

PAPER_EPS: tuple[float, ...] = (8 / 255, 16 / 255)
"""Perturbation budgets of Table II (L∞)."""
PAPER_STEPS: int = 10
"""Iterations of BIM, PGD, APGD, Jitter (and VNI-FGSM) in the paper protocol."""
PAPER_STEP_FRACTION: float = 1 / 8
"""Step size ``α = eps · PAPER_STEP_FRACTION`` (paper §IV-A: ``α = ε/8``)."""
WHITE_BOX_ATTACKS: tuple[str, ...] = ("fgsm", "bim", "pgd", "apgd", "jitter")
"""The five white-box attacks of Table II (the paper's text order)."""
SQUARE_QUERIES: int = 5000
"""Square's query budget in the paper protocol, the rigorous protocol and AutoAttack."""

BOUND_TOL = 1e-6


class PerturbationError(AssertionError):
    """An adversarial example left the L∞ ball of radius eps or the image range [0, 1]."""


class EvaluationModeError(RuntimeError):
    """A module of the evaluated model is still in training mode after ``model.eval()``."""


# --------------------------------------------------------------------------- helpers
def eps_label(eps: float) -> str:
    """``"8/255"`` for a positive multiple of 1/255 (to 1e-6), else ``"%g"`` (``"0.5"``)."""
    k = eps * 255
    if abs(k - round(k)) < 1e-6 and round(k) > 0:
        return f"{int(round(k))}/255"
    return f"{eps:g}"


def check_perturbation(x: torch.Tensor, x_adv: torch.Tensor, eps: float,
                       tol: float = BOUND_TOL) -> float:
    """Raise :class:`PerturbationError` unless ``x_adv`` is a valid L∞ adversarial example.

    Checks (all with tolerance ``tol``): same shape, finite, ``max |x_adv − x| ≤ eps + tol``,
    ``−tol ≤ x_adv ≤ 1 + tol``.  ``x``, ``x_adv``: ``(B, ...)``.
    Returns ``max |x_adv − x|``.
    """
    if x_adv.shape != x.shape:
        raise PerturbationError(f"adversarial batch has shape {tuple(x_adv.shape)}, "
                                f"expected {tuple(x.shape)}")
    if not torch.isfinite(x_adv).all():
        raise PerturbationError("adversarial batch contains NaN or Inf")
    dist = (x_adv.detach().to(x.dtype) - x.detach()).abs().max().item() if x.numel() else 0.0
    if dist > eps + tol:
        raise PerturbationError(f"perturbation ‖δ‖∞ = {dist:.8f} exceeds eps = {eps:.8f} "
                                f"(+ tolerance {tol:g})")
    lo, hi = x_adv.min().item(), x_adv.max().item()
    if lo < -tol or hi > 1 + tol:
        raise PerturbationError(f"adversarial batch leaves [0, 1]: min {lo:.8f}, max {hi:.8f}")
    return dist


def assert_eval_mode(model: nn.Module) -> None:
    """Raise :class:`EvaluationModeError` if any submodule of ``model`` has ``training=True``."""
    training = [name or type(model).__name__ for name, m in model.named_modules() if m.training]
    if training:
        shown = ", ".join(training[:8]) + (" ..." if len(training) > 8 else "")
        raise EvaluationModeError(f"{len(training)} module(s) in training mode during "
                                  f"evaluation: {shown}; call model.eval()")


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``argmax model(x)``: ``(B,)`` int64 (no gradients)."""
    return model(x).argmax(dim=1)


@torch.no_grad()
def forward_determinism(model: nn.Module, x: torch.Tensor, repeats: int = 2) -> dict:
    """Run ``model(x)`` ``repeats`` times; return the spread of the outputs.

    Returns ``{"max_abs_diff": max_k max |z_k − z_0|, "scale": max |z_0|,
    "argmax_agree": bool}``.  A deterministic model gives 0 and True.
    """
    outs = [model(x) for _ in range(max(2, repeats))]
    ref = outs[0]
    diff = max((o - ref).abs().max().item() for o in outs[1:])
    agree = all(bool((o.argmax(1) == ref.argmax(1)).all()) for o in outs[1:])
    return {"max_abs_diff": diff, "scale": ref.abs().max().item(), "argmax_agree": agree}


def margin(logits: torch.Tensor, y: torch.Tensor, kind: str = "cw") -> torch.Tensor:
    """Per-example classification margin (positive iff correctly classified), ``(B,)``.

    ``cw``:  ``z_y − max_{k≠y} z_k`` (Carlini & Wagner).
    ``dlr``: ``(z_y − max_{k≠y} z_k) / (z_π1 − z_π3 + 1e-12)``, ``π`` the logits sorted in
    decreasing order (Croce & Hein's difference-of-logits ratio, invariant to shifting and
    scaling the logits; needs ``L ≥ 3``).
    """
    z_y = logits.gather(1, y[:, None]).squeeze(1)
    others = logits.masked_fill(F.one_hot(y, logits.shape[1]).bool(), float("-inf"))
    m = z_y - others.max(dim=1).values
    if kind == "cw":
        return m
    if kind == "dlr":
        if logits.shape[1] < 3:
            raise ValueError("the DLR margin needs at least 3 classes")
        top = logits.sort(dim=1, descending=True).values
        return m / (top[:, 0] - top[:, 2] + 1e-12)
    raise ValueError(f"unknown margin {kind!r}; use 'cw' or 'dlr'")


def input_gradient(model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                   loss: str = "ce") -> torch.Tensor:
    """Gradient of a per-example loss wrt the input, ``(B, C, H, W)``.

    ``loss``: ``ce`` (cross-entropy, summed over the batch, so row ``i`` is ``∇_x CE_i``) or a
    margin kind of :func:`margin` (``cw``, ``dlr``).  A model whose output does not depend on
    ``x`` through autograd (a ``detach`` inside ``forward``) gives zeros.
    """
    x = x.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        logits = model(x)
        if loss == "ce":
            value = F.cross_entropy(logits, y, reduction="sum")
        else:
            value = margin(logits, y, loss).sum()
        if not value.requires_grad:
            return torch.zeros_like(x)
        (g,) = torch.autograd.grad(value, x, allow_unused=True)
    return torch.zeros_like(x) if g is None else g.detach()


def _solver_errors() -> tuple:
    from ..models import StepSizeUnderflowError
    return (StepSizeUnderflowError,)


SOLVER_ERRORS: tuple = _solver_errors()
"""Exceptions of an ODE solve that cannot integrate an input (step-size underflow, step
budget).  :func:`run_attack` re-runs a failing batch example by example and counts an
example whose attack or prediction still fails as **not robust**: an input the model cannot
classify is an input it gets wrong."""


@dataclass
class AttackOutcome:
    """What :func:`run_attack` returns: ``correct (n,)`` bool (``model(x_adv)`` argmax ``== y``;
    False where the solve failed), ``failed (n,)`` bool (the examples whose attack or
    prediction raised a solver error even alone) and ``disagreements`` (examples where the
    attack's own verdict differs from the re-evaluation, when the attack reports one)."""
    correct: torch.Tensor
    failed: torch.Tensor
    disagreements: int = 0

    @property
    def failures(self) -> int:
        return int(self.failed.sum())


def _attack_batch(model, attack, xb, yb) -> tuple[torch.Tensor, torch.Tensor]:
    """``(correct, failed)`` of one batch; on a solver error, example by example."""
    try:
        x_adv = attack(xb, yb)
        return (predict(model, x_adv) == yb).cpu(), torch.zeros(len(xb), dtype=torch.bool)
    except SOLVER_ERRORS:
        if len(xb) == 1:
            return torch.zeros(1, dtype=torch.bool), torch.ones(1, dtype=torch.bool)
    correct = torch.zeros(len(xb), dtype=torch.bool)
    failed = torch.zeros(len(xb), dtype=torch.bool)
    calls = attack.calls
    for j in range(len(xb)):
        attack.calls = calls             # every single example reuses the batch's seed
        c, f = _attack_batch(model, attack, xb[j:j + 1], yb[j:j + 1])
        correct[j], failed[j] = c[0], f[0]
    return correct, failed


def run_attack(model: nn.Module, attack: "Attack", x: torch.Tensor, y: torch.Tensor,
               batch_size: int = 256, device: str | torch.device | None = None,
               tick: Callable[[int], Any] | None = None, cache: Any = None) -> AttackOutcome:
    """Attack ``x`` batch by batch and classify the adversarial examples.

    ``x``: ``(n, C, H, W)`` in [0, 1], ``y``: ``(n,)``, on any device (each batch is moved to
    ``device``, default the model's).  Every batch's examples are checked against the threat
    model by ``attack`` itself.  Batch ``b`` is attacked with the attack's call index set to
    ``b`` (its seed is ``seed + b``), so a batch gives the same result whether or not the
    batches before it ran in this process.  A batch whose ODE solve fails is re-run example by
    example; an example that still fails counts as not robust (:data:`SOLVER_ERRORS`).
    ``cache``: an object with ``get(b) -> (correct, failed) | None`` and ``put(b, correct,
    failed)`` (a stage of :class:`~zubovnet.evaluation.state.EvalState`): finished batches are
    read back instead of attacked (resumable evaluation); a cache of a sharded evaluation
    (:mod:`zubovnet.evaluation.shard`) also says which batches this process attacks.
    ``tick(k)`` is called after each batch of ``k`` examples.
    """
    device = torch.device(device) if device is not None else _device_of(model)
    if getattr(attack, "whole_sample", False):
        batch_size = max(1, len(x))

    def compute(b: int, sl: slice) -> tuple[torch.Tensor, torch.Tensor]:
        attack.calls = b
        return _attack_batch(model, attack, x[sl].to(device), y[sl].to(device))

    def report() -> dict:   # what the attack itself reports, sent along in a sharded run
        return {"disagreements": int(getattr(attack, "disagreements", 0)),
                "warnings": list(getattr(attack, "warnings", None) or [])}

    correct, failed, reports = map_batches(len(x), batch_size, compute, cache, tick, report)
    disagreements = sum(r["disagreements"] for r in reports)
    if hasattr(attack, "disagreements"):
        attack.disagreements = disagreements
    if hasattr(attack, "warnings"):
        attack.warnings = list(dict.fromkeys(w for r in reports for w in r["warnings"]))
    return AttackOutcome(correct, failed, disagreements)


def map_batches(n: int, batch_size: int, compute: Callable[[int, slice], tuple],
                cache: Any = None, tick: Callable[[int], Any] | None = None,
                extra: Callable[[], Any] | None = None):
    """``(correct (n,), failed (n,), extras)`` of ``compute(b, slice)`` over the batches of a
    stage, with the finished batches read from ``cache`` and the rest stored in it.

    Under a sharded evaluation (``cache.shard``, :mod:`zubovnet.evaluation.shard`) this
    process computes only its own batches (``cache.mine(b)``) and the ranks then exchange them,
    so every rank returns the whole stage.  ``extra()`` is read once after this process's
    batches; ``extras`` lists its value from every rank that computed a batch (one entry when
    unsharded)."""
    shard = getattr(cache, "shard", None)
    correct = torch.zeros(n, dtype=torch.bool)
    failed = torch.zeros(n, dtype=torch.bool)
    slices = [slice(i, min(i + batch_size, n)) for i in range(0, n, batch_size)]
    done: dict = {}
    for b, sl in enumerate(slices):
        got = cache.get(b) if cache is not None else None
        if got is None and (shard is None or cache.mine(b)):
            got = compute(b, sl)
            done[b] = got
            if cache is not None:
                cache.put(b, *got)
        if got is not None:
            correct[sl], failed[sl] = got
            if tick is not None:
                tick(sl.stop - sl.start)
    if shard is None or not shard.active:
        return correct, failed, [extra()] if extra is not None else []
    from .state import _bits, _mask
    mine = {b: (_bits(c), _bits(f)) for b, (c, f) in done.items()}
    extras = []
    for batches, ex in shard.exchange((mine, [extra()] if done and extra is not None else [])):
        extras.extend(ex)
        for b, (c, f) in batches.items():
            if b not in done:
                c, f = _mask(c), _mask(f)
                correct[slices[b]], failed[slices[b]] = c, f
                cache.put(b, c, f)
                if tick is not None:
                    tick(slices[b].stop - slices[b].start)
    return correct, failed, extras


class InputGraph(nn.Module):
    """``model(x) + 0·Σ_j x_j``: the same logits, with the input always in the autograd graph.

    Gradient-based attack libraries raise an exception when the logits do not depend on the
    input through autograd (a ``detach`` inside ``forward``); through this wrapper such a model
    has all-zero input gradients instead, which the rigorous checks flag.  The wrapper adds
    exact zeros for finite ``x`` and mirrors the wrapped model's train/eval mode.
    """

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        self.train(model.training)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.model(x)
        return z + 0.0 * x.flatten(1).sum(1, keepdim=True).to(z.dtype)


def _device_of(model: nn.Module, default: str | torch.device = "cpu") -> torch.device:
    for p in model.parameters():
        return p.device
    for b in model.buffers():
        return b.device
    return torch.device(default)


@contextlib.contextmanager
def _seeded(seed: int, device: torch.device) -> Iterator[None]:
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


@contextlib.contextmanager
def _solver(model: nn.Module, settings: dict | None) -> Iterator[None]:
    if not settings:
        yield
        return
    from ..models import ode_blocks, solver_override
    if not ode_blocks(model):
        yield
        return
    with solver_override(model, **settings):
        yield


# --------------------------------------------------------------------------- base class
class Attack:
    """Base class: ``attack(x, y) -> x_adv`` under the L∞ threat model of radius ``eps``.

    Subclasses implement :meth:`perturb`.  :meth:`__call__` runs it with the model in eval
    mode (asserted), inside a seeded random state (``seed + call index``) and, if
    ``solver`` is given, under :func:`zubovnet.models.solver_override` (e.g. craft the attack
    through a fixed-step RK4 solve), then checks the threat model.  ``describe()`` returns
    the settings recorded beside each number.

    Args:
        model: classifier ``(B, C, H, W) in [0, 1] -> logits (B, L)``.
        eps: L∞ radius (pixel scale).
        seed: base seed of the attack's randomness.
        solver: optional ODE solver settings in force while the attack computes gradients.
    """

    name = "attack"
    implementation = "zubovnet"
    whole_sample = False  # run_attack: True gives the attack the whole sample at once

    def __init__(self, model: nn.Module, eps: float, seed: int = 0, solver: dict | None = None):
        if eps < 0:
            raise ValueError(f"eps must be non-negative, got {eps}")
        self.model = model
        self.eps = float(eps)
        self.seed = int(seed)
        self.solver = dict(solver) if solver else None
        self.calls = 0
        self.max_perturbation = 0.0

    @property
    def device(self) -> torch.device:
        return _device_of(self.model)

    def perturb(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        assert_eval_mode(self.model)
        from ..models.inputs import range_unchecked
        with _seeded(self.seed + self.calls, x.device), _solver(self.model, self.solver), \
                range_unchecked(self.model):
            x_adv = self.perturb(x.detach(), y.detach())
        self.calls += 1
        assert_eval_mode(self.model)
        dist = check_perturbation(x, x_adv, self.eps)
        self.max_perturbation = max(self.max_perturbation, dist)
        return x_adv.detach()

    def describe(self) -> dict:
        """Settings of the attack: name, implementation, norm, eps, steps, step size, seed, ..."""
        return {"attack": self.name, "implementation": self.implementation, "norm": "Linf",
                "eps": self.eps, "eps_label": eps_label(self.eps), "seed": self.seed,
                "attack_solver": self.solver}


# --------------------------------------------------------------------------- torchattacks
def _torchattacks_version() -> str:
    try:
        import torchattacks
        return f"torchattacks {torchattacks.__version__}"
    except Exception:  # pragma: no cover
        return "torchattacks"


class TorchAttack(Attack):
    """A torchattacks attack (``factory(model) -> torchattacks.Attack``) behind :class:`Attack`.

    ``settings`` are recorded in :meth:`describe` (steps, step size, loss, ...).  torchattacks
    puts the model in eval mode itself during the attack; the evaluator asserts it before and
    after.
    """

    implementation = "torchattacks"

    def __init__(self, name: str, model: nn.Module, eps: float,
                 factory: Callable[[nn.Module], Any], settings: dict, seed: int = 0,
                 solver: dict | None = None):
        super().__init__(model, eps, seed, solver)
        self.name = name
        self.settings = dict(settings)
        self.whole_sample = name == "square"  # query-based: one pass over the sample
        self.implementation = _torchattacks_version()
        self.atk = factory(InputGraph(model))
        self.atk.set_device(self.device)

    def perturb(self, x, y):
        self.atk.model.train(self.model.training)  # the wrapper follows the model's mode
        if hasattr(self.atk, "seed"):
            self.atk.seed = self.seed + self.calls
        return self.atk(x, y)

    def describe(self) -> dict:
        return {**super().describe(), **self.settings}


# --------------------------------------------------------------------------- own PGD
class MarginPGD(Attack):
    """L∞ PGD on a margin loss with random restarts, keeping the worst case per example.

    For each restart ``r = 1..restarts`` (on the examples not yet misclassified):
    ``x⁰ = clip_[0,1](x + U(−eps, eps))`` (or ``x`` when ``random_start=False``) and

        x^{t+1} = Π_{B∞(x, eps) ∩ [0,1]} ( x^t − α · sign ∇_x m(x^t, y) ),   t < steps,

    where ``m`` is the margin of :func:`margin` (``dlr`` by default, ``cw`` available).  Every
    iterate is scored and the one with the lowest margin over all steps and restarts is
    returned, so an example counts as robust only if no iterate of any restart fooled the model.

    Args:
        eps: L∞ radius.  steps: iterations per restart (default 50).  restarts: random starts
        (default 5).  step_size: ``α`` (default ``2.5 · eps / steps``, Madry et al.'s rule).
        loss: ``dlr`` or ``cw``.
    """

    name = "pgd-margin"

    def __init__(self, model: nn.Module, eps: float, steps: int = 50, restarts: int = 5,
                 step_size: float | None = None, loss: str = "dlr", random_start: bool = True,
                 seed: int = 0, solver: dict | None = None):
        super().__init__(model, eps, seed, solver)
        if steps < 1 or restarts < 1:
            raise ValueError("steps and restarts must be >= 1")
        self.steps, self.restarts = int(steps), int(restarts)
        self.step_size = float(step_size) if step_size is not None else 2.5 * eps / steps
        self.loss = loss
        self.random_start = random_start

    def _margin(self, x, y):
        return margin(self.model(x), y, self.loss)

    def perturb(self, x, y):
        best = x.clone()
        with torch.no_grad():
            best_m = self._margin(x, y)
        lo, hi = (x - self.eps).clamp(0, 1), (x + self.eps).clamp(0, 1)
        for _ in range(self.restarts):
            idx = (best_m > 0).nonzero().squeeze(1)
            if idx.numel() == 0:
                break
            xa, ya, la, ha = x[idx], y[idx], lo[idx], hi[idx]
            xr = xa.clone()
            if self.random_start:
                xr = (xa + torch.empty_like(xa).uniform_(-self.eps, self.eps)).clamp(la, ha)
            bm, bx = best_m[idx], best[idx]
            for t in range(self.steps + 1):
                xr.requires_grad_(True)
                with torch.enable_grad():
                    m = self._margin(xr, ya)
                    g = (torch.autograd.grad(m.sum(), xr, allow_unused=True)[0]
                         if t < self.steps and m.requires_grad else None)
                with torch.no_grad():
                    better = m.detach() < bm
                    bm = torch.where(better, m.detach(), bm)
                    bx = torch.where(better.view(-1, *[1] * (x.dim() - 1)), xr.detach(), bx)
                    if t == self.steps:
                        break
                    step = torch.zeros_like(xr) if g is None else g.sign()
                    xr = torch.min(torch.max(xr.detach() - self.step_size * step, la), ha)
            best_m[idx], best[idx] = bm, bx
        return best

    def describe(self) -> dict:
        return {**super().describe(), "steps": self.steps, "restarts": self.restarts,
                "step_size": self.step_size, "loss": self.loss,
                "random_start": self.random_start, "selection": "worst case over iterates"}


# --------------------------------------------------------------------------- transfer
class TransferAttack(Attack):
    """Black-box transfer: craft with ``source`` (an :class:`Attack` on a surrogate model),
    evaluate on ``model``.  The examples satisfy the threat model of ``source``."""

    def __init__(self, model: nn.Module, source: Attack, surrogate_name: str = "surrogate"):
        super().__init__(model, source.eps, source.seed)
        self.source = source
        self.surrogate_name = surrogate_name
        self.name = f"{source.name}-transfer"
        self.implementation = source.implementation

    def __call__(self, x, y):
        assert_eval_mode(self.model)
        x_adv = self.source(x, y)
        self.calls += 1
        self.max_perturbation = max(self.max_perturbation, check_perturbation(x, x_adv, self.eps))
        return x_adv

    def describe(self) -> dict:
        d = dict(self.source.describe())
        d.update(attack=self.name, surrogate=self.surrogate_name, threat="transfer (black box)")
        return d


# --------------------------------------------------------------------------- factory
def _paper_step(eps: float, step_size: float | None) -> float:
    return float(step_size) if step_size is not None else eps * PAPER_STEP_FRACTION


def _ta():
    import torchattacks
    return torchattacks


def _fgsm(model, eps, steps, step_size, seed, solver):
    return TorchAttack("fgsm", model, eps, lambda m: _ta().FGSM(m, eps=eps),
                       {"steps": 1, "step_size": eps, "loss": "ce"}, seed, solver)


def _bim(model, eps, steps, step_size, seed, solver):
    a = _paper_step(eps, step_size)
    return TorchAttack("bim", model, eps, lambda m: _ta().BIM(m, eps=eps, alpha=a, steps=steps),
                       {"steps": steps, "step_size": a, "loss": "ce", "random_start": False},
                       seed, solver)


def _pgd(model, eps, steps, step_size, seed, solver):
    a = _paper_step(eps, step_size)
    return TorchAttack("pgd", model, eps,
                       lambda m: _ta().PGD(m, eps=eps, alpha=a, steps=steps, random_start=True),
                       {"steps": steps, "step_size": a, "loss": "ce", "random_start": True},
                       seed, solver)


def _apgd(loss):
    def build(model, eps, steps, step_size, seed, solver, restarts, rho):
        name = "apgd" if loss == "ce" else "apgd-dlr"
        return TorchAttack(name, model, eps,
                           lambda m: _ta().APGD(m, norm="Linf", eps=eps, steps=steps,
                                                n_restarts=restarts, seed=seed, loss=loss,
                                                rho=rho),
                           {"steps": steps, "step_size": None, "step_rule": "adaptive (APGD)",
                            "loss": loss, "restarts": restarts, "rho": rho}, seed, solver)
    return build


def _jitter(model, eps, steps, step_size, seed, solver, scale, std):
    a = _paper_step(eps, step_size)
    return TorchAttack("jitter", model, eps,
                       lambda m: _ta().Jitter(m, eps=eps, alpha=a, steps=steps, scale=scale,
                                              std=std, random_start=True),
                       {"steps": steps, "step_size": a, "loss": "jitter", "scale": scale,
                        "std": std, "random_start": True}, seed, solver)


def _vnifgsm(model, eps, steps, step_size, seed, solver, surrogate, surrogate_name, decay, N,
             beta):
    a = _paper_step(eps, step_size)
    target = surrogate if surrogate is not None else model
    src = TorchAttack("vnifgsm", target, eps,
                      lambda m: _ta().VNIFGSM(m, eps=eps, alpha=a, steps=steps, decay=decay, N=N,
                                              beta=beta),
                      {"steps": steps, "step_size": a, "loss": "ce", "decay": decay, "N": N,
                       "beta": beta}, seed, solver)
    return TransferAttack(model, src, surrogate_name) if surrogate is not None else src


def _square(model, eps, steps, step_size, seed, solver, n_queries, p_init, restarts):
    return TorchAttack("square", model, eps,
                       lambda m: _ta().Square(m, norm="Linf", eps=eps, n_queries=n_queries,
                                              n_restarts=restarts, p_init=p_init, loss="margin",
                                              resc_schedule=True, seed=seed),
                       {"steps": n_queries, "queries": n_queries, "step_size": None,
                        "loss": "margin", "p_init": p_init, "restarts": restarts,
                        "threat": "query-based black box"}, seed, None)


def _margin_pgd(default_loss):
    def build(model, eps, steps, step_size, seed, solver, loss, restarts, random_start):
        return MarginPGD(model, eps, steps=steps, restarts=restarts, step_size=step_size,
                         loss=loss or default_loss, random_start=random_start, seed=seed,
                         solver=solver)
    return build


def _autoattack(model, eps, steps, step_size, seed, solver, reference, num_classes,
                square_queries, batch_size, state_path, attacks):
    if reference_autoattack_available():
        return ReferenceAutoAttack(model, eps, seed=seed, square_queries=square_queries,
                                   batch_size=batch_size, state_path=state_path, attacks=attacks)
    if reference:
        raise ImportError("the reference AutoAttack needs the 'pyautoattack' package "
                          "(pip install pyautoattack)")
    if num_classes is None:
        raise ValueError("ComponentAutoAttack needs num_classes=")
    return ComponentAutoAttack(model, eps, num_classes, seed=seed,
                               square_queries=square_queries or SQUARE_QUERIES,
                               batch_size=batch_size, attacks=attacks)


@dataclass(frozen=True)
class AttackSpec:
    """One entry of :data:`ATTACK_SPECS`: ``build(model, eps, steps, step_size, seed, solver,
    **options)``, the options it accepts with their defaults, its aliases and a line of doc."""
    name: str
    build: Callable[..., Attack]
    options: dict = field(default_factory=dict)
    aliases: tuple = ()
    doc: str = ""


ATTACK_SPECS: dict[str, AttackSpec] = {s.name: s for s in (
    AttackSpec("fgsm", _fgsm, doc="one step of size eps (torchattacks FGSM; steps ignored)"),
    AttackSpec("bim", _bim, doc="torchattacks BIM, steps iterations, step eps/8"),
    AttackSpec("pgd", _pgd, doc="torchattacks PGD, random start, steps, step eps/8, CE loss"),
    AttackSpec("apgd", _apgd("ce"), {"restarts": 1, "rho": 0.75}, ("apgd-ce",),
               "torchattacks APGD-CE, steps, 1 restart, rho 0.75 (adaptive step)"),
    AttackSpec("apgd-dlr", _apgd("dlr"), {"restarts": 1, "rho": 0.75},
               doc="the same on the DLR loss"),
    AttackSpec("jitter", _jitter, {"scale": 10, "std": 0.1},
               doc="torchattacks Jitter, steps, step eps/8, scale 10, std 0.1"),
    AttackSpec("vnifgsm", _vnifgsm, {"surrogate": None, "surrogate_name": "surrogate",
                                     "decay": 1.0, "N": 5, "beta": 1.5},
               doc="torchattacks VNI-FGSM; surrogate= crafts on that model and transfers"),
    AttackSpec("square", _square, {"n_queries": SQUARE_QUERIES, "p_init": 0.8, "restarts": 1},
               doc="torchattacks Square, margin loss, n_queries, p_init 0.8, 1 restart"),
    AttackSpec("pgd-margin", _margin_pgd("dlr"), {"loss": None, "restarts": 5,
                                                  "random_start": True},
               ("pgd-dlr",), "MarginPGD: restarts 5, DLR loss, worst iterate kept"),
    AttackSpec("pgd-cw", _margin_pgd("cw"), {"loss": None, "restarts": 5, "random_start": True},
               doc="MarginPGD on the CW margin"),
    AttackSpec("autoattack", _autoattack, {"reference": None, "num_classes": None,
                                           "square_queries": None, "batch_size": 250,
                                           "state_path": None, "attacks": None},
               doc="reference AutoAttack (pyautoattack), else ComponentAutoAttack "
                   "(num_classes= needed); reference=True makes a missing package an error; "
                   "attacks= a subset of the standard components (then not the reference "
                   "configuration)"),
)}
_ALIASES = {a: s.name for s in ATTACK_SPECS.values() for a in s.aliases}


def attack_names() -> tuple[str, ...]:
    """Every name :func:`make_attack` accepts (canonical names and aliases)."""
    return tuple(ATTACK_SPECS) + tuple(_ALIASES)


def make_attack(name: str, model: nn.Module, eps: float, steps: int = PAPER_STEPS,
                step_size: float | None = None, seed: int = 0, **kw) -> Attack:
    """Build the attack ``name`` (or an alias) of :data:`ATTACK_SPECS` against ``model``.

    ``step_size`` defaults to ``eps/8`` for the iterative paper attacks; ``solver=`` (dict)
    crafts a white-box attack under :func:`~zubovnet.models.solver_override`; every other
    keyword must be one of the spec's options (an unknown one is an error naming the valid ones).
    """
    key = name.lower()
    key = _ALIASES.get(key, key)
    spec = ATTACK_SPECS.get(key)
    if spec is None:
        raise KeyError(f"unknown attack {name!r}; known: {', '.join(attack_names())}")
    solver = kw.pop("solver", None)
    unknown = sorted(set(kw) - set(spec.options))
    if unknown:
        raise TypeError(f"make_attack({name!r}): unexpected arguments {unknown}; "
                        f"valid: {sorted(spec.options) + ['solver']}")
    return spec.build(model, eps, steps, step_size, seed, solver, **{**spec.options, **kw})


ATTACKS: tuple[str, ...] = tuple(ATTACK_SPECS)
"""Canonical names accepted by :func:`make_attack` (the keys of :data:`ATTACK_SPECS`)."""


# AutoAttack (reference and torchattacks components) lives in its own module; re-exported here
from .autoattack import (ComponentAutoAttack, ReferenceAutoAttack,  # noqa: E402
                         reference_autoattack_available)
