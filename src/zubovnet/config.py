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
    "LossConfig", "BoundaryConfig", "TrainConfig", "AdversarialConfig", "BaselineConfig",
    "ConfigError", "load_config", "config_from_dict", "config_to_dict", "apply_overrides",
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
    norm: float = 3.0                    # ||c_i|| (SPEC §8: the norm interacts with the linear head)
    steps: int = 500                     # gradient steps minimising the max pairwise cosine similarity
    lr: float = 0.02
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
    ode: ODEConfig = field(default_factory=ODEConfig)
    equilibria: EquilibriaConfig = field(default_factory=EquilibriaConfig)
    lyapunov: LyapunovConfig = field(default_factory=LyapunovConfig)


@dataclass
class BoundaryConfig:
    variants: int = 20                   # random variants per primary direction
    radius_max: float = 0.5              # r ~ U[0, radius_max]
    max_classes: int = 30                # classes sampled per step
    tol: float = 1e-2                    # epsilon of Algorithm 1 (on W)
    max_iters: int = 30                  # n of Algorithm 1
    init_step: float = 1.0               # initial |a|
    rule: str = "secant"                 # secant (fast, same points) | bisection | paper (Algorithm 1's literal step rule); see sampling.boundary_points


@dataclass
class LossConfig:
    lambda_fc: float = 1.5               # lambda_1
    lambda_con: float = 0.12             # lambda_2
    lambda_sep: float = 0.9              # lambda_3
    beta: float = 0.85                   # W^beta in the separation loss
    rho: float = 0.9                     # PRoA level: D_W = {W < rho}
    consistency: str = "equality"        # equality|inequality (Table V "Ineq")
    counterexample_steps: int = 5        # N_2
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
class BaselineConfig:
    """Hyper-parameters of the baselines (SPEC §6); the formulas are in ``docs/baselines.md``."""
    # Proj-NODE (Kolter & Manek 2019): f = f̂ − ∇V relu(∇V·f̂ + aV)/‖∇V‖², V = σ(g(h) − g(0)) + ε‖h‖²
    projnode_a: float = 0.01             # decay rate a (Kolter & Manek's default)
    projnode_eps: float = 0.01           # ε of the quadratic term (Kolter & Manek's code default)
    # SODEF (Kang et al. 2021)
    sodef_field: str = "mlp"             # mlp: W₂ sin(−(W₁h + b₁)) + b₂ (hidden model.ode.hidden); single: sin(−(Wh + b))
    sodef_weights: list = field(default_factory=lambda: [10.0, 0.0, 0.1])  # (diag, off-diag, f) weights of SODEF's CIFAR-10 script
    sodef_phase1_epochs: int = 100       # phase 1 epochs: extractor + frozen max-cosine head (CE)
    sodef_phase2_epochs: int = 20        # phase 2 epochs: ODE regularisers, extractor frozen; phase 3 = the rest: head only
    sodef_jacobian_samples: int = 16     # points per batch whose Jacobian enters the regularisers (SODEF: 16)
    # LyaNet (Rodriguez et al. 2022): mean relu(V̇ + κ stopgrad(V)), V = CE(head(h), y)
    lyanet_kappa: float = 2.0            # exponential rate κ
    lyanet_weight: float = 1.0           # weight of the Lyapunov violation
    lyanet_ce_weight: float = 1.0        # weight of CE at h(T) (0: the violation alone, as LyaNet's own loss)
    lyanet_modulation: bool = True       # field conditioned on the input features (LyaNet's design)
    # FxTS-Net (Luo et al. 2025): hinge on V̇ ≤ −(aV^p + bV^q)^k, V_y = ½‖h − h*_y‖²
    fxts_a: float = 3.0                  # with b = 3, p = 1/2, q = 2, k = 1 the settling-time bound is T = 1
    fxts_b: float = 3.0
    fxts_p: float = 0.5                  # pk < 1
    fxts_q: float = 2.0                  # qk > 1
    fxts_k: float = 1.0
    fxts_weight: float = 1.0             # weight of the fixed-time hinge
    fxts_modulation: bool = True         # field conditioned on the input features (FxTS-Net's design)
    options: dict = field(default_factory=dict)  # free-form extras a baseline documents


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
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if tp is int:
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


def config_from_dict(data: dict | None) -> Config:
    """Build a validated :class:`Config` from a (possibly partial) nested mapping."""
    return _from_dict(Config, data or {})


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


def load_yaml(path: str | Path) -> dict:
    """Read a YAML config; ``base: other.yaml`` (relative to the file) is merged underneath, and
    ``base: [a.yaml, b.yaml]`` merges ``a``, then ``b`` over it, then the file over both."""
    path = Path(path)
    with open(path) as fh:
        data = yaml.safe_load(fh) or {}
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
