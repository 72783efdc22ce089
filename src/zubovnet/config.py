"""Typed configuration: dataclasses, YAML loading, ``key=value`` overrides, validation.

Every constant of the method is a field here; every paper experiment is one YAML file
that sets a subset of them.  Loading is strict: an unknown key is an error that lists the
valid keys of its section, and every value is checked against the field's type.

    cfg = load_config("configs/cifar10/zubovnet.yaml", overrides=["train.epochs=2"])
    cfg.model.ode.rtol_eval   # 1e-3
"""
from __future__ import annotations

import copy
import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import yaml

__all__ = [
    "Config", "DataConfig", "ModelConfig", "ODEConfig", "EquilibriaConfig", "LyapunovConfig",
    "InvarianceConfig", "LossConfig", "BoundaryConfig", "TrainConfig", "AdversarialConfig", "BaselineConfig",
    "ProjNODEConfig", "SODEFConfig", "LyaNetConfig", "FxTSConfig", "LipschitzMarginConfig",
    "ConfigError", "load_config", "config_from_dict", "config_to_dict", "apply_overrides",
    "validate",
]


class ConfigError(ValueError):
    """A configuration file or override that does not match the schema."""


# --------------------------------------------------------------------------- sections
@dataclass
class DataConfig:
    name: str = "digits"                 # digits|mnist|fashion_mnist|cifar10|cifar100|svhn|tiny_imagenet|synthetic2d
    root: str = "data"                   # folder holding the datasets (torchvision layout)
    val_fraction: float = 0.1            # validation split carved from train
    split_seed: int = 0                  # seed of that split (recorded in every checkpoint)
    augment: bool = True                 # the paper's augmentation for the dataset
    batch_size: int = 128
    eval_batch_size: int = 256
    num_workers: int = 0
    download: bool = False               # torchvision download (needs network)
    train_subset: Optional[int] = None   # use only the first N training images (budgeted runs)
    test_subset: Optional[int] = None


@dataclass
class ODEConfig:
    solver: str = "dopri5"               # any torchdiffeq method
    rtol_train: float = 0.1
    atol_train: float = 0.1
    rtol_eval: float = 1e-3
    atol_eval: float = 1e-3
    T: float = 1.0                       # integration horizon
    gamma: int = 10                      # trajectory read at t_i = i T / gamma
    step_size: Optional[float] = None    # for fixed-grid solvers (euler, rk4, ...)
    adjoint: bool = False                # odeint_adjoint instead of backprop through the solver
    min_step: float = 1e-7               # adaptive step below this raises StepSizeUnderflowError
    max_num_steps: int = 10000           # adaptive solver step budget per solve
    hidden: int = 256                    # f(h) = W2 tanh(W1 h + b1) + b2
    activation: str = "tanh"


@dataclass
class EquilibriaConfig:
    norm: float = 3.0                    # ||c_i|| (the norm interacts with the linear head; docs/design.md)
    steps: int = 500                     # gradient steps minimising the max pairwise cosine similarity
    lr: float = 0.02
    temperature: float = 100.0           # τ of the smooth maximum of the pairwise cosines (make_equilibria)
    seed: int = 0
    learnable: bool = False              # fixed buffer by default
    assignment: str = "maxcos"           # maxcos: row i for class i | data: rows matched to the class means of h(0) at the start of training
    assignment_batches: int = 4          # training batches whose h(0) give the class means (assignment: data)


@dataclass
class LyapunovConfig:
    classifier: str = "piacnn"           # piacnn|picnn|icnn
    z_widths: list = field(default_factory=lambda: [256, 256, 1])
    u_widths: list = field(default_factory=lambda: [256, 256])
    activation: str = "softplus"         # convex non-decreasing sigma_i
    delta: float = 0.5                   # strong-convexity coefficient
    smooth_a: float = 1.0                # smooth-ReLU parameter a
    alpha: float = 0.5                   # stability margin in ln(1/W - alpha)
    v_min: float = 1e-6                  # V clamped below before the logits (finite at h = c_i)
    init_scale: float = 1.0              # non-negative weights start near init_scale / fan_in


@dataclass
class InvarianceConfig:
    """Regions ``{W_y < ρ}`` forward invariant by construction (``docs/certified.md``).

    The field is projected, near each equilibrium, so that ``∇V_k·f̃ ≤ −rate·V_k`` holds exactly
    inside ``{V_k < c*}``, ``c* = −ln(1 − ρ)`` (ρ = ``loss.rho``); the projection fades to zero
    between the levels ρ and ``fade_rho``.  Off in the paper-literal model."""
    enabled: bool = False
    rate: float = 1.5                    # alpha of V_dot <= -alpha V inside every region (AR@T guaranteed when rate >= ln(c*/(delta tau^2))/T)
    fade_rho: Optional[float] = None     # rho' of the outer edge of the fade (None: midway between rho and the disjointness limit 1 - exp(-delta d_min^2 / 4))
    pin_equilibria: bool = True          # f - s(V_k) f(c_k): each c_k an exact fixed point (the projection is then Lipschitz at c_k)
    train: bool = False                  # project in train mode too (false: the training forward flows by the learned f, eval mode - every evaluation and attack - by the projected field; training through the projection slows learning, docs/certified.md)
    tiny: float = 1e-12                  # ||grad V||^2 below this (only at c_k): no correction


@dataclass
class ModelConfig:
    name: str = "zubovnet"               # registry key (build_model)
    extractor: str = "cnn"               # resnet18|cnn|mlp|identity
    in_channels: int = 1
    image_size: int = 8
    num_classes: int = 10
    state_dim: int = 64                  # d
    cnn_widths: list = field(default_factory=lambda: [32, 64, 128])
    mean: Optional[list] = None          # per-channel normalisation inside the model
    std: Optional[list] = None
    check_inputs: bool = True            # model(x) checks dtype, shape, finiteness and range [0, 1]
    ode: ODEConfig = field(default_factory=ODEConfig)
    equilibria: EquilibriaConfig = field(default_factory=EquilibriaConfig)
    lyapunov: LyapunovConfig = field(default_factory=LyapunovConfig)
    invariance: InvarianceConfig = field(default_factory=InvarianceConfig)


@dataclass
class BoundaryConfig:
    variants: int = 20                   # random variants per primary direction
    radius_max: float = 0.5              # r ~ U[0, radius_max]
    max_classes: int = 30                # classes sampled per step
    tol: float = 1e-2                    # epsilon of Algorithm 1 (on W)
    max_iters: int = 30                  # n of Algorithm 1
    init_step: float = 1.0               # initial |a|
    rule: str = "secant"                 # secant (fast, same points) | bisection | paper (Algorithm 1's literal step rule); see sampling.boundary_points
    recompute: bool = False              # L_sep's head evaluations recomputed in backward instead of stored (less memory, one more forward)


@dataclass
class LossConfig:
    lambda_fc: float = 1.5               # lambda_1
    lambda_con: float = 0.12             # lambda_2
    lambda_sep: float = 0.9              # lambda_3
    beta: float = 0.85                   # W^beta in the separation loss
    rho: float = 0.9                     # PRoA level: D_W = {W < rho}
    consistency: str = "equality"        # equality|inequality (Table V "Ineq")
    counterexample_steps: int = 5        # N_2 (restart: ascent steps from the trajectory states; persistent: steps per training step)
    counterexample_mode: str = "restart" # restart: N_2 steps from this batch's states (Algorithm 2) | persistent: a buffer of counterexamples carried from step to step within an epoch, advanced N_2 steps per training step
    counterexample_refresh: float = 0.25 # persistent: share of the buffer replaced by this batch's states each step
    zubov_every: int = 1                 # the consistency and separation terms every k steps, with weight k (1: every step)
    counterexample_step_size: float = 1.2  # eta_2 (on the L2-normalised gradient)
    projection_iters: int = 20           # iteration cap of the radial projection (bisection: exactly this many)
    projection: str = "secant"           # secant (safeguarded, ~4 evaluations) | bisection (the reference); both return W <= rho
    consistency_samples: Optional[int] = None  # subsample S_2 trajectory states (None: all)
    consistency_weight: str = "zubov"    # zubov: l_con = e^{-2V}(V_dot + Phi)^2 (paper eq. 9, W form) | uniform: (V_dot + Phi)^2 (the same equation in V form)
    consistency_reduction: str = "mean"  # mean: over all S_2 states | sum: per-sample sum over its S_2 states (Algorithm 2), batch mean
    region_samples: int = 0              # extra S_2 states drawn over the PRoAs {W_y < rho} of the batch classes (0: off)
    region_radius_power: Optional[float] = None  # radius fraction u^(1/p) of those states (None: p = d, uniform-ball law)
    lambda_eq: float = 0.0               # equilibrium invariance: lambda_eq * mean_i ||f(c_i)||^2 (0: off, paper-literal)
    lambda_stab: float = 0.0             # local stability: lambda_stab * mean_i relu(lambda_max(sym J_f(c_i)) + stability_margin)
    stability_margin: float = 0.1        # contraction rate asked of the flow at each c_i
    lambda_traj: float = 0.0             # trajectory targets: lambda_traj * mean (W_y(h) - W*_y(h))^2 on the region states, W* = 1 - exp(-int_0^H Phi_y dt) (0: off)
    trajectory_horizon: float = 3.0      # H of those targets, in multiples of T
    lambda_inside: float = 0.0           # data inside the regions: lambda_inside * mean relu(V_y(h(0)) - V_m), i.e. W_y(h(0)) <= rho - inside_margin (0: off)
    inside_margin: float = 0.05          # m of that target level rho - m
    inside_form: str = "W"               # W: hinge on W (gradient e^{-V} grad V, fading far outside) | V: hinge on V (gradient grad V: unbounded with the convex net's gradient; safe where loss.lambda_lipschitz holds it small)
    inside_points: str = "correct"       # correct: only points the model classifies correctly (the share the target is about; no pull of unseparated features to the centroid of the equilibria) | all
    lambda_lipschitz: float = 0.0        # lambda_lipschitz * mean_k relu(Lhat_g,k - lipschitz_target): the certificate's own bound of ||grad g|| (0: off)
    lipschitz_target: float = 1.0        # the bound below which the Lipschitz term is zero
    boundary: BoundaryConfig = field(default_factory=BoundaryConfig)


@dataclass
class AdversarialConfig:
    """Adversarial training wrapped around any objective (see :mod:`zubovnet.training.adversarial`).

    Examples are crafted in pixel space, inside the L∞ ball of radius ``eps`` and in [0, 1].
    ``paper`` settings follow each method's reference code: PGD-AT (Madry et al. 2018) crafts in
    train mode from a uniform start; TRADES (Zhang et al. 2019) and MART (Wang et al. 2020) craft
    in eval mode from ``x + init_std · N(0, I)``.
    """
    method: str = "none"                 # none|pgd_at|trades|mart (Zubov-Net (TRADES): zubovnet + trades)
    eps: float = 8 / 255                 # L∞ radius of the inner maximisation
    steps: int = 10                      # inner ascent steps
    step_size: float = 2 / 255           # per-step sign-gradient step
    beta: float = 6.0                    # TRADES / MART regulariser weight
    init: str = "paper"                  # paper|uniform|normal|zero: start of the inner maximisation
    init_std: float = 0.001              # std of the normal start (TRADES / MART reference code)
    mode: str = "paper"                  # paper|train|eval: module mode while crafting
    tolerance: str = "train"             # train|mode: ODE tolerances while crafting (train: training tolerances)


@dataclass
class ProjNODEConfig:
    """Proj-NODE (Kolter & Manek 2019): ``f = f̂ − ∇V relu(∇V·f̂ + aV)/‖∇V‖²``,
    ``V = σ(g(h) − g(0)) + ε‖h‖²``."""
    a: float = 0.01                      # decay rate a (Kolter & Manek's default)
    eps: float = 0.01                    # ε of the quadratic term (Kolter & Manek's code default)


@dataclass
class SODEFConfig:
    """SODEF (Kang et al. 2021)."""
    form: str = "mlp"                    # mlp: W₂ sin(−(W₁h + b₁)) + b₂ (hidden model.ode.hidden); single: sin(−(Wh + b))
    weights: list = field(default_factory=lambda: [10.0, 0.0, 0.1])  # (diag, off-diag, f) weights of SODEF's CIFAR-10 script
    phase1_epochs: int = 100             # phase 1 epochs: extractor + frozen max-cosine head (CE)
    phase2_epochs: int = 20              # phase 2 epochs: ODE regularisers, extractor frozen; phase 3 = the rest: head only
    jacobian_samples: int = 16           # points per batch whose Jacobian enters the regularisers (SODEF: 16)


@dataclass
class LyaNetConfig:
    """LyaNet (Rodriguez et al. 2022): ``mean relu(V̇ + κ stopgrad(V))``, ``V = CE(head(h), y)``."""
    kappa: float = 2.0                   # exponential rate κ
    weight: float = 1.0                  # weight of the Lyapunov violation
    ce_weight: float = 1.0               # weight of CE at h(T) (0: the violation alone, as LyaNet's own loss)
    modulation: bool = True              # field conditioned on the input features (LyaNet's design)


@dataclass
class FxTSConfig:
    """FxTS-Net (Luo et al. 2025): hinge on ``V̇ ≤ −(aV^p + bV^q)^k``, ``V_y = ½‖h − h*_y‖²``."""
    a: float = 3.0                       # with b = 3, p = 1/2, q = 2, k = 1 the settling-time bound is T = 1
    b: float = 3.0
    p: float = 0.5                       # pk < 1
    q: float = 2.0                       # qk > 1
    k: float = 1.0
    weight: float = 1.0                  # weight of the fixed-time hinge
    modulation: bool = True              # field conditioned on the input features (FxTS-Net's design)
    detach_states: bool = False          # True: hinge on detached states, a constraint on the field alone


@dataclass
class LipschitzMarginConfig:
    """The 1-Lipschitz CNN baseline (Lipschitz-margin training, Tsuzuku et al. 2018):
    ``CE(τ (ℓ + √2 · margin · (1 − e_y))) / τ`` on a network whose logits are 1-Lipschitz in L2."""
    margin: float = 0.25                 # L2 radius whose certificate the loss asks for (logit margin sqrt(2) * margin)
    temperature: float = 10.0            # tau


@dataclass
class BaselineConfig:
    """Hyper-parameters of the baselines, one section each; formulas in ``docs/baselines.md``."""
    projnode: ProjNODEConfig = field(default_factory=ProjNODEConfig)
    sodef: SODEFConfig = field(default_factory=SODEFConfig)
    lyanet: LyaNetConfig = field(default_factory=LyaNetConfig)
    fxts: FxTSConfig = field(default_factory=FxTSConfig)
    lipschitz: LipschitzMarginConfig = field(default_factory=LipschitzMarginConfig)


@dataclass
class TrainConfig:
    objective: str = "auto"              # auto: the model's own objective (zubov for zubovnet, ce else)
    epochs: int = 140
    lr: float = 1e-3
    betas: list = field(default_factory=lambda: [0.9, 0.999])
    weight_decay: float = 0.0
    milestones: list = field(default_factory=lambda: [90])
    lr_gamma: float = 0.1
    seed: int = 0
    device: str = "auto"                 # auto|cpu|cuda|cuda:N
    out_dir: str = "runs/default"
    max_steps_per_epoch: Optional[int] = None  # budgeted runs
    eval_every: int = 1                  # validation accuracy every N epochs
    keep_checkpoints: int = 2            # per-epoch checkpoints kept (latest always kept)
    progress: bool = True
    tensorboard: bool = True
    grad_clip: Optional[float] = None
    deterministic: bool = False
    compile_searches: bool = False       # torch.compile W in Zubov-Net's sampling searches (docs/performance.md)


@dataclass
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    adversarial: AdversarialConfig = field(default_factory=AdversarialConfig)
    baseline: BaselineConfig = field(default_factory=BaselineConfig)
    name: str = "experiment"
    description: str = ""


# --------------------------------------------------------------------------- conversion
def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", str(tp))


def _coerce(value: Any, tp: Any, where: str) -> Any:
    """Check ``value`` against the annotation ``tp`` (ints are accepted for floats)."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return _coerce(value, a, where)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(errors[0] if errors else f"{where}: bad value {value!r}")
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping for section {tp.__name__}, got {value!r}")
        return _from_dict(tp, value, where)
    if tp is float:
        if isinstance(value, str):   # PyYAML reads 1e-3 (no dot) as a string
            try:
                value = float(value)
            except ValueError:
                raise ConfigError(f"{where}: expected a number, got {value!r}") from None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        if value != value or value in (float("inf"), float("-inf")):
            raise ConfigError(f"{where}: expected a finite number, got {value!r}")
        return float(value)
    if tp is int:
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true/false, got {value!r}")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return value
    if tp is list or origin is list:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        return list(value)
    if tp is dict or origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return dict(value)
    return value


def _from_dict(cls: type, data: dict, where: str = "") -> Any:
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = [k for k in data if k not in names]
    if unknown:
        loc = where or "top level"
        raise ConfigError(
            f"unknown key(s) {unknown} in {loc}; valid keys: {', '.join(names)}")
    kwargs = {}
    for k, v in data.items():
        kwargs[k] = _coerce(v, hints[k], f"{where}.{k}" if where else k)
    return cls(**kwargs)


def dataclass_from_dict(cls: type, data: dict, where: str = "") -> Any:
    """Build any settings dataclass from a nested mapping with the same strict checks as the
    config (unknown keys listed, types coerced, nested dataclasses recursed); a list given for
    a field whose default is a tuple becomes a tuple."""
    obj = _from_dict(cls, data, where)
    _tuples(obj)
    return obj


def _tuples(obj) -> None:
    for f in dataclasses.fields(obj):
        v = getattr(obj, f.name)
        if dataclasses.is_dataclass(v):
            _tuples(v)
        elif isinstance(v, list) and isinstance(f.default, tuple):
            setattr(obj, f.name, tuple(v))


def config_from_dict(data: dict | None) -> Config:
    """Build a validated :class:`Config` from a (possibly partial) nested mapping: types, then
    the range of every field (:func:`validate`)."""
    return validate(_from_dict(Config, data or {}))


# --------------------------------------------------------------------------- ranges
def _solvers() -> tuple[str, ...]:
    from .models.ode import solver_methods
    return solver_methods()


_POS, _NONNEG, _UNIT_OPEN, _PROB = "> 0", ">= 0", "in (0, 1)", "in [0, 1)"
_RULES: dict[str, object] = {
    "data.val_fraction": _PROB, "data.batch_size": "int >= 1", "data.eval_batch_size": "int >= 1",
    "data.num_workers": "int >= 0", "data.train_subset": "int >= 1 or null",
    "data.test_subset": "int >= 1 or null", "data.name": "nonempty",
    "model.num_classes": "int >= 2", "model.state_dim": "int >= 1",
    "model.extractor": ("choice", ("resnet18", "cnn", "mlp", "identity", "lipschitz_cnn")),
    "model.in_channels": "int >= 1", "model.image_size": "int >= 1",
    "model.cnn_widths": "positive ints", "model.mean": "list or null", "model.std": "positive list or null",
    "model.ode.solver": ("choice", _solvers), "model.ode.rtol_train": _POS,
    "model.ode.atol_train": _POS, "model.ode.rtol_eval": _POS, "model.ode.atol_eval": _POS,
    "model.ode.T": _POS, "model.ode.gamma": "int >= 1", "model.ode.step_size": "> 0 or null",
    "model.ode.min_step": _NONNEG, "model.ode.max_num_steps": "int >= 1",
    "model.ode.hidden": "int >= 1",
    "model.ode.activation": ("choice", ("tanh", "relu", "softplus", "silu")),
    "model.equilibria.norm": _POS, "model.equilibria.steps": "int >= 0",
    "model.equilibria.lr": _POS, "model.equilibria.temperature": _POS,
    "model.equilibria.assignment": ("choice", ("maxcos", "data")),
    "model.equilibria.assignment_batches": "int >= 1",
    "model.lyapunov.classifier": ("choice", ("piacnn", "picnn", "icnn")),
    "model.lyapunov.z_widths": "positive ints", "model.lyapunov.u_widths": "positive ints",
    "model.lyapunov.activation": ("choice", ("softplus", "relu")),
    "model.lyapunov.delta": _POS, "model.lyapunov.smooth_a": _POS, "model.lyapunov.alpha": _PROB,
    "model.lyapunov.v_min": _POS, "model.lyapunov.init_scale": _POS,
    "model.invariance.rate": _POS, "model.invariance.fade_rho": "in (0, 1) or null",
    "model.invariance.tiny": _POS,
    "loss.lambda_fc": _NONNEG, "loss.lambda_con": _NONNEG, "loss.lambda_sep": _NONNEG,
    "loss.lambda_eq": _NONNEG, "loss.lambda_stab": _NONNEG, "loss.lambda_traj": _NONNEG,
    "loss.beta": _POS, "loss.rho": _UNIT_OPEN,
    "loss.consistency": ("choice", ("equality", "inequality")),
    "loss.consistency_weight": ("choice", ("zubov", "uniform")),
    "loss.consistency_reduction": ("choice", ("mean", "sum")),
    "loss.counterexample_steps": "int >= 0", "loss.counterexample_step_size": _POS,
    "loss.counterexample_mode": ("choice", ("restart", "persistent")),
    "loss.counterexample_refresh": "in (0, 1]", "loss.zubov_every": "int >= 1",
    "loss.projection_iters": "int >= 1", "loss.projection": ("choice", ("secant", "bisection")),
    "loss.consistency_samples": "int >= 1 or null", "loss.region_samples": "int >= 0",
    "loss.region_radius_power": "> 0 or null", "loss.stability_margin": _NONNEG,
    "loss.trajectory_horizon": _POS, "loss.lambda_inside": _NONNEG,
    "loss.inside_margin": _PROB, "loss.inside_form": ("choice", ("V", "W")),
    "loss.inside_points": ("choice", ("correct", "all")),
    "loss.lambda_lipschitz": _NONNEG, "loss.lipschitz_target": _NONNEG,
    "loss.boundary.variants": "int >= 0", "loss.boundary.radius_max": _NONNEG,
    "loss.boundary.max_classes": "int >= 1", "loss.boundary.tol": _UNIT_OPEN,
    "loss.boundary.max_iters": "int >= 1", "loss.boundary.init_step": _POS,
    "loss.boundary.rule": ("choice", ("secant", "bisection", "paper")),
    "train.epochs": "int >= 1", "train.lr": _POS, "train.betas": "two in [0, 1)",
    "train.weight_decay": _NONNEG, "train.milestones": "positive ints or empty",
    "train.lr_gamma": _POS, "train.device": "device", "train.out_dir": "nonempty",
    "train.max_steps_per_epoch": "int >= 1 or null", "train.eval_every": "int >= 0",
    "train.keep_checkpoints": "int >= 0", "train.grad_clip": "> 0 or null",
    "adversarial.method": ("choice", ("none", "pgd_at", "trades", "mart")),
    "adversarial.eps": _NONNEG, "adversarial.steps": "int >= 1", "adversarial.step_size": _POS,
    "adversarial.beta": _NONNEG,
    "adversarial.init": ("choice", ("paper", "uniform", "normal", "zero")),
    "adversarial.init_std": _NONNEG, "adversarial.mode": ("choice", ("paper", "train", "eval")),
    "adversarial.tolerance": ("choice", ("train", "mode")),
    "baseline.projnode.a": _POS, "baseline.projnode.eps": _NONNEG,
    "baseline.sodef.form": ("choice", ("mlp", "single")),
    "baseline.sodef.weights": "three non-negative numbers",
    "baseline.sodef.phase1_epochs": "int >= 0", "baseline.sodef.phase2_epochs": "int >= 0",
    "baseline.sodef.jacobian_samples": "int >= 1", "baseline.lyanet.kappa": _NONNEG,
    "baseline.lyanet.weight": _NONNEG, "baseline.lyanet.ce_weight": _NONNEG,
    "baseline.fxts.a": _POS, "baseline.fxts.b": _POS, "baseline.fxts.p": _POS,
    "baseline.fxts.q": _POS, "baseline.fxts.k": _POS, "baseline.fxts.weight": _NONNEG,
    "baseline.lipschitz.margin": _NONNEG, "baseline.lipschitz.temperature": _POS,
}


def _ok(rule, v) -> bool:
    import re
    if isinstance(rule, tuple):
        choices = rule[1]() if callable(rule[1]) else rule[1]
        return v in choices
    if rule.endswith(" or null"):
        return v is None or _ok(rule[:-len(" or null")], v)
    num = isinstance(v, (int, float)) and not isinstance(v, bool)
    ints = lambda xs: isinstance(xs, list) and all(isinstance(t, int) and not isinstance(t, bool)  # noqa: E731
                                                   for t in xs)
    table = {
        "> 0": lambda: num and v > 0, ">= 0": lambda: num and v >= 0,
        "in (0, 1)": lambda: num and 0 < v < 1, "in [0, 1)": lambda: num and 0 <= v < 1,
        "in (0, 1]": lambda: num and 0 < v <= 1,
        "int >= 0": lambda: isinstance(v, int) and v >= 0, "int >= 1": lambda: isinstance(v, int) and v >= 1,
        "int >= 2": lambda: isinstance(v, int) and v >= 2, "nonempty": lambda: bool(v),
        "positive ints": lambda: ints(v) and len(v) > 0 and all(t > 0 for t in v),
        "positive ints or empty": lambda: ints(v) and all(t > 0 for t in v),
        "list": lambda: isinstance(v, list),
        "positive list": lambda: isinstance(v, list) and all(
            isinstance(t, (int, float)) and t > 0 for t in v),
        "two in [0, 1)": lambda: isinstance(v, list) and len(v) == 2 and all(
            isinstance(t, (int, float)) and 0 <= t < 1 for t in v),
        "three non-negative numbers": lambda: isinstance(v, list) and len(v) == 3 and all(
            isinstance(t, (int, float)) and t >= 0 for t in v),
        "device": lambda: isinstance(v, str) and bool(re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", v)),
    }
    return table[rule]()


def _describe(rule) -> str:
    if isinstance(rule, tuple):
        choices = rule[1]() if callable(rule[1]) else rule[1]
        return "one of " + ", ".join(choices)
    return {"nonempty": "a non-empty value", "device": "auto, cpu, cuda or cuda:N"}.get(rule, rule)


def validate(cfg: Config) -> Config:
    """Check every field of :data:`_RULES` and the relations between fields; raise
    :class:`ConfigError` naming the first field out of range.  Returns ``cfg``."""
    flat = {}

    def walk(obj, pre):
        for f in dataclasses.fields(obj):
            v = getattr(obj, f.name)
            if dataclasses.is_dataclass(v):
                walk(v, f"{pre}{f.name}.")
            else:
                flat[pre + f.name] = v
    walk(cfg, "")
    for key, rule in _RULES.items():
        if key in flat and not _ok(rule, flat[key]):
            raise ConfigError(f"{key}: expected {_describe(rule)}, got {flat[key]!r}")
    lz, lu = cfg.model.lyapunov.z_widths, cfg.model.lyapunov.u_widths
    if lz and lz[-1] != 1:
        raise ConfigError(f"model.lyapunov.z_widths: the last width must be 1 (the scalar g), "
                          f"got {lz}")
    if len(lu) != len(lz) - 1:
        raise ConfigError(f"model.lyapunov.u_widths: need {len(lz) - 1} widths for z_widths "
                          f"{lz}, got {lu}")
    for key in ("mean", "std"):
        v = getattr(cfg.model, key)
        if v is not None and len(v) != cfg.model.in_channels:
            raise ConfigError(f"model.{key}: one value per input channel "
                              f"({cfg.model.in_channels}), got {v}")
    if cfg.model.invariance.enabled:
        _check_invariance(cfg)
    return cfg


def _check_invariance(cfg: Config) -> None:
    """Invariance by construction needs a Zubov-Net with fixed equilibria whose regions (up to
    the fade level) lie in disjoint balls: ``2 r(c') < d_min`` (``docs/certified.md``)."""
    m = cfg.model
    if m.name != "zubovnet":
        raise ConfigError(f"model.invariance.enabled: only the zubovnet model has per-class "
                          f"regions to make invariant, got model.name {m.name!r}")
    if m.equilibria.learnable:
        raise ConfigError("model.invariance.enabled needs fixed equilibria (the disjointness of "
                          "the regions is checked once); set model.equilibria.learnable: false")
    from .models.lyapunov import RegionGeometryError, region_geometry
    try:
        region_geometry(m, cfg.loss.rho)
    except RegionGeometryError as e:
        raise ConfigError(str(e)) from None


def config_to_dict(cfg: Any) -> dict:
    return dataclasses.asdict(cfg)


def _set_path(data: dict, dotted: str, value: Any) -> None:
    keys = dotted.split(".")
    node = data
    for k in keys[:-1]:
        node = node.setdefault(k, {})
        if not isinstance(node, dict):
            raise ConfigError(f"override {dotted!r}: {k!r} is not a section")
    node[keys[-1]] = value


def apply_overrides(data: dict, overrides: list[str] | None) -> dict:
    """Apply ``section.key=value`` overrides (values parsed as YAML) to a mapping."""
    data = copy.deepcopy(data)
    for item in overrides or []:
        if "=" not in item:
            raise ConfigError(f"override {item!r} must look like section.key=value")
        key, raw = item.split("=", 1)
        _set_path(data, key.strip(), yaml.safe_load(raw))
    return data


def _merge(base: dict, top: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in top.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _merge(out[k], v)
        else:
            out[k] = v
    return out


class _StrictLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses a key given twice in one mapping."""


def _no_duplicates(loader, node, deep=False):
    seen = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise ConfigError(f"duplicate key {key!r} (line {key_node.start_mark.line + 1})")
        seen.add(key)
    return loader.construct_mapping(node, deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _no_duplicates)


def load_yaml(path: str | Path) -> dict:
    """Read a YAML config; ``base: other.yaml`` (relative to the file) is merged underneath, and
    ``base: [a.yaml, b.yaml]`` merges ``a``, then ``b`` over it, then the file over both."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such config file")
    try:
        with open(path) as fh:
            data = yaml.load(fh, Loader=_StrictLoader)
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise ConfigError(f"{path}: not valid YAML{where}: {getattr(e, 'problem', e)}") from None
    if data is None:
        raise ConfigError(f"{path}: the file is empty")
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping")
    base = data.pop("base", None)
    if base is not None:
        bases = base if isinstance(base, list) else [base]
        merged: dict = {}
        for b in bases:
            if not isinstance(b, str):
                raise ConfigError(f"{path}: base must be a file name or a list of them, got {b!r}")
            merged = _merge(merged, load_yaml(path.parent / b))
        data = _merge(merged, data)
    return data


def load_config(path: str | Path | None = None, overrides: list[str] | None = None,
                defaults: dict | None = None) -> Config:
    """Load a YAML config (or only ``defaults``), apply overrides, validate."""
    data = copy.deepcopy(defaults or {})
    if path is not None:
        data = _merge(data, load_yaml(path))
    data = apply_overrides(data, overrides)
    return config_from_dict(data)
