"""The Neural ODE block: dynamics ``f`` and the solve ``h(t_0..t_Γ)`` over torchdiffeq.

``ODEBlock(h0)`` integrates the autonomous system ``dh/dt = f(h)`` from ``t = 0`` to ``T`` and
returns the trajectory read at ``t_i = i T / Γ`` (shape ``(Γ + 1, B, d)``).  Tolerances switch
with ``module.training`` (paper §IV-A, "Training Details": 0.1 when training, 1e-3 when
evaluating).

The solver can be changed for a block of code (the rigorous checks compare gradients under the
adaptive solver with a fixed-step RK4 solver) with :func:`solver_override`::

    with solver_override(model, solver="rk4", step_size=0.05, adjoint=False):
        logits = model(x)
"""
from __future__ import annotations

import contextlib
from typing import Iterator

import torch
from torch import nn
from torchdiffeq import odeint, odeint_adjoint

from ..config import ODEConfig

__all__ = ["Dynamics", "ODEBlock", "StepSizeUnderflowError", "solver_override", "ode_blocks",
           "solver_methods", "is_adaptive", "is_fixed_grid"]


def _solver_table() -> dict:
    import sys
    import torchdiffeq  # noqa: F401  (registers torchdiffeq._impl.odeint)
    return sys.modules["torchdiffeq._impl.odeint"].SOLVERS


def solver_methods() -> tuple[str, ...]:
    """Every method name torchdiffeq accepts (its own table, not a copy)."""
    return tuple(sorted(_solver_table()))


def is_adaptive(method: str) -> bool:
    """True for torchdiffeq's adaptive-step solvers (they take ``max_num_steps`` and call
    ``callback_step``, where the ``min_step`` guard lives)."""
    from torchdiffeq._impl.solvers import AdaptiveStepsizeODESolver
    cls = _solver_table().get(method)
    return cls is not None and issubclass(cls, AdaptiveStepsizeODESolver)


def is_fixed_grid(method: str) -> bool:
    """True for torchdiffeq's fixed-grid solvers (they take ``step_size``)."""
    from torchdiffeq._impl.solvers import FixedGridODESolver
    cls = _solver_table().get(method)
    return cls is not None and issubclass(cls, FixedGridODESolver)


_ACTIVATIONS = {"tanh": nn.Tanh, "relu": nn.ReLU, "softplus": nn.Softplus, "silu": nn.SiLU}


ADAMS_MAX_ORDER = 4
"""Order of torchdiffeq's ``explicit_adams`` through :class:`ODEBlock`: at its default of 12
the Adams–Bashforth steps are unstable and the error grows as the step shrinks."""


class StepSizeUnderflowError(RuntimeError):
    """The adaptive solver's step fell below ``min_step`` (stiff or exploding dynamics)."""


class Dynamics(nn.Module):
    """Autonomous field ``f(h) = W₂ σ(W₁ h + b₁) + b₂`` (σ = tanh by default), hidden 256.

    Input ``h``: ``(..., d)``; output the same shape.  ``nfe`` counts evaluations since the
    last :meth:`reset_nfe`.  The torchdiffeq callbacks enforce ``min_step`` on adaptive solvers.
    """

    def __init__(self, dim: int, hidden: int = 256, activation: str = "tanh"):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(dim, hidden), _ACTIVATIONS[activation](),
                                 nn.Linear(hidden, dim))
        self.nfe = 0
        self.min_step = 0.0
        self._solver_desc = ""

    def forward(self, t: torch.Tensor | None, h: torch.Tensor) -> torch.Tensor:  # noqa: D401
        self.nfe += 1
        return self.field(h)

    def field(self, h: torch.Tensor) -> torch.Tensor:
        """``f(h)`` without touching the NFE counter (losses, samplers, analysis)."""
        return self.net(h)

    def nominal(self, h: torch.Tensor) -> torch.Tensor:
        """The learned field before any construction acts on it (here: ``f`` itself)."""
        return self.net(h)

    def adjoint_parameters(self) -> tuple:
        """The parameters the adjoint solve differentiates (the field's own)."""
        return tuple(self.parameters())

    def reset_nfe(self) -> None:
        self.nfe = 0

    # torchdiffeq calls these around every step of an adaptive solver.
    def callback_step(self, t0, y0, dt):
        dt = float(dt.detach()) if torch.is_tensor(dt) else float(dt)
        if self.min_step > 0 and abs(dt) < self.min_step * (1 - 1e-4):   # float32 slack
            t0 = float(t0.detach()) if torch.is_tensor(t0) else float(t0)
            raise StepSizeUnderflowError(
                f"ODE step size {dt:.3e} at t={t0:.4f} fell below min_step="
                f"{self.min_step:.1e} ({self._solver_desc}); the dynamics are stiff or exploding. "
                "Loosen the tolerances, lower the learning rate, or use a fixed-step solver.")


class ODEBlock(nn.Module):
    """Solve ``dh/dt = f(h)`` on ``[0, T]``; return ``h(t_0..t_Γ)`` of shape ``(Γ+1, B, d)``.

    Solver, tolerances (train vs eval), ``T``, ``Γ``, the adjoint flag, the fixed step size and
    the ``min_step`` guard come from :class:`~zubovnet.config.ODEConfig`.  ``last_nfe`` holds the
    number of field evaluations of the last forward solve.
    """

    def __init__(self, dynamics: Dynamics, cfg: ODEConfig):
        super().__init__()
        self.dynamics = dynamics
        self.solver = cfg.solver
        self.rtol_train, self.atol_train = cfg.rtol_train, cfg.atol_train
        self.rtol_eval, self.atol_eval = cfg.rtol_eval, cfg.atol_eval
        self.T = cfg.T
        self.gamma = cfg.gamma
        self.step_size = cfg.step_size
        self.adjoint = cfg.adjoint
        self.min_step = cfg.min_step
        self.max_num_steps = cfg.max_num_steps
        self.last_nfe = 0

    @property
    def tolerances(self) -> tuple[float, float]:
        return (self.rtol_train, self.atol_train) if self.training else (self.rtol_eval, self.atol_eval)

    def times(self, device=None, dtype=None) -> torch.Tensor:
        return torch.linspace(0.0, self.T, self.gamma + 1, device=device, dtype=dtype)

    def describe(self) -> dict:
        """Solver settings in force (recorded beside every evaluation number)."""
        rtol, atol = self.tolerances
        return {"solver": self.solver, "rtol": rtol, "atol": atol, "T": self.T, "gamma": self.gamma,
                "step_size": self.step_size, "adjoint": self.adjoint}

    def forward(self, h0: torch.Tensor) -> torch.Tensor:
        rtol, atol = self.tolerances
        options: dict = {}
        adaptive = is_adaptive(self.solver)
        if adaptive:
            options["max_num_steps"] = self.max_num_steps
        elif self.step_size is not None and is_fixed_grid(self.solver):
            options["step_size"] = self.step_size
        if self.solver == "explicit_adams":   # torchdiffeq's default order 12 diverges
            options["max_order"] = ADAMS_MAX_ORDER
        f = self.dynamics
        f.min_step = self.min_step if adaptive else 0.0
        f._solver_desc = f"{self.solver}, rtol={rtol:g}, atol={atol:g}"
        start = f.nfe
        t = self.times(h0.device, h0.dtype)
        try:
            if self.adjoint:
                traj = odeint_adjoint(f, h0, t, rtol=rtol, atol=atol, method=self.solver,
                                      options=options, adjoint_params=f.adjoint_parameters())
            else:
                traj = odeint(f, h0, t, rtol=rtol, atol=atol, method=self.solver, options=options)
        except AssertionError as e:  # torchdiffeq asserts on dt underflow and the step budget
            raise StepSizeUnderflowError(
                f"ODE solve failed ({e}; {f._solver_desc}). Loosen the tolerances, lower the "
                "learning rate, or use a fixed-step solver.") from e
        self.last_nfe = f.nfe - start
        return traj


def ode_blocks(model: nn.Module) -> list[ODEBlock]:
    return [m for m in model.modules() if isinstance(m, ODEBlock)]


@contextlib.contextmanager
def solver_override(model: nn.Module, **settings) -> Iterator[None]:
    """Temporarily change solver attributes of every :class:`ODEBlock` in ``model``.

    Keys: ``solver, rtol_train, atol_train, rtol_eval, atol_eval, T, gamma, step_size, adjoint,
    min_step, max_num_steps``; ``rtol``/``atol`` set both the train and eval values.
    """
    blocks = ode_blocks(model)
    expanded = dict(settings)
    for k in ("rtol", "atol"):
        if k in expanded:
            v = expanded.pop(k)
            expanded[f"{k}_train"] = v
            expanded[f"{k}_eval"] = v
    saved = []
    for b in blocks:
        for k in expanded:
            if not hasattr(b, k):
                raise AttributeError(f"ODEBlock has no solver setting {k!r}")
        saved.append({k: getattr(b, k) for k in expanded})
        for k, v in expanded.items():
            setattr(b, k, v)
    try:
        yield
    finally:
        for b, s in zip(blocks, saved):
            for k, v in s.items():
                setattr(b, k, v)
