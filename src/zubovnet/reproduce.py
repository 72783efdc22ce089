"""``zubovnet reproduce``: every table and figure of the paper as a named experiment.

    zubovnet reproduce --list
    zubovnet reproduce table1-cifar10 --dry-run
    zubovnet reproduce table2 --dataset svhn --device cuda
    zubovnet reproduce fashion-mnist-study --device cpu --threads 2

An :class:`Experiment` is a grid of runs (one YAML file of ``configs/`` each), the evaluation
suites applied to every row, the tables assembled from the records and the figures drawn.
``reproduce(name)``:

1. **trains** each run into ``OUT/<config path without .yaml>`` (``runs/cifar10/zubovnet``
   for ``configs/cifar10/zubovnet.yaml`` — the folder ``zubovnet train`` uses too) with
   ``train(cfg, resume=True)``: a run whose ``checkpoints/latest.json`` says
   ``epoch == train.epochs`` is skipped, an interrupted one resumes from its last epoch;
2. **evaluates** each row with each suite into ``RUN/eval_<suite>.json`` (the file
   ``zubovnet eval --suite <suite>`` writes), skipped when the record exists, belongs to the
   final epoch and covers at least the requested number of test images; Table V adds
   ``RUN/lyapunov_derivative.json``, Table IV ``RUN/profile.json``;
3. **assembles** the tables in the paper's layouts as Markdown, CSV and JSON and draws the
   figures, under ``OUT/reproduce/<experiment>/``.

Runs are shared between experiments (Table I and Table II use the same models; the "Ours" row
of Tables V and VI is the Table I Zubov-Net), so each model is trained and evaluated once.
A method that is not in this build (``zubovnet.models.available_models()``, the adversarial
training objective) stops the experiment before anything runs, with a message naming it;
``--dry-run`` prints the whole plan — every run with its status ``done``/``partial``/``todo``
(or ``NOT IMPLEMENTED``), every evaluation, table and figure — and runs nothing.

Wire into a command line with ``add_reproduce_arguments(parser)`` and ``run_reproduce(args)``.
"""
from __future__ import annotations

import argparse
import csv
import io
import json
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Optional, Sequence

__all__ = ["Run", "Figure", "Experiment", "EXPERIMENTS", "register_experiment", "get_experiment",
           "list_experiments", "RunPlan", "EvalPlan", "FigurePlan", "Plan", "plan_experiment",
           "format_plan", "run_status", "record_status", "figure_status", "missing_methods",
           "reproduce", "ReproduceResult", "assemble_table", "layout_columns",
           "mean_lyapunov_derivative", "profile_run", "default_configs_root",
           "add_reproduce_arguments", "run_reproduce", "LAYOUT_SUITES"]


# ============================================================================ registry
@dataclass(frozen=True)
class Run:
    """One training run: ``config`` is a YAML path relative to the configs folder; ``label``
    is its row name in the paper's tables (``"Zubov-Net"``)."""
    config: str
    label: str

    @property
    def key(self) -> str:
        """Run folder relative to the output root: the config path without ``.yaml``."""
        return self.config[:-5] if self.config.endswith(".yaml") else self.config


@dataclass(frozen=True)
class Figure:
    """A figure of an experiment: ``kind`` in ``tsne | dynamics | curves | basins |
    loss_weights``, drawn from ``runs`` into ``<name>.png`` (curves: ``<name>_eps.png`` and
    ``<name>_severity.png``); ``options`` are keyword arguments of the figure function as
    ``(key, value)`` pairs."""
    kind: str
    runs: tuple
    name: str
    options: tuple = ()


@dataclass(frozen=True)
class Experiment:
    """A named grid: ``rows`` (table rows, trained and evaluated with every suite of
    ``suites``), ``surrogates`` (trained; the VNI-FGSM transfer sources of the ``strong``
    suite), ``layouts`` (tables), ``figures``, ``extras`` (``dwdt``: mean ``dW_y/dt`` along
    test trajectories, Table V; ``profile``: Table IV numbers), ``n`` (test images per
    evaluation, ``None`` = the whole test split), ``suite_n`` (``(suite, n)`` pairs capping
    the images of expensive suites, e.g. ``(("rigorous", 200),)``) and a rough ``cost``."""
    name: str
    paper: str
    description: str
    rows: tuple
    suites: tuple = ()
    layouts: tuple = ()
    surrogates: tuple = ()
    figures: tuple = ()
    extras: tuple = ()
    n: Optional[int] = None
    cost: str = ""
    suite_n: tuple = ()

    def images(self, suite: Optional[str], n: Optional[int]) -> Optional[int]:
        """Test images of ``suite`` given the plan's ``n`` (``None``: all)."""
        cap = dict(self.suite_n).get(suite)
        if cap is None:
            return n
        return cap if n is None else min(n, cap)


EXPERIMENTS: dict[str, Experiment] = {}

#: The evaluation suite whose record each paper layout reads.
LAYOUT_SUITES = {"table1": ("corruptions",), "table2": ("attacks",), "table3": ("strong",),
                 "table5": ("corruptions", "attacks", "alignment"),
                 "table6": ("corruptions", "attacks"),
                 "fig4": ("corruptions", "attacks"), "table4": (),
                 "alignment": ("alignment", "corruptions", "rigorous")}


def register_experiment(exp: Experiment, replace: bool = False) -> Experiment:
    """Add ``exp`` to :data:`EXPERIMENTS` (``replace`` an existing name only when asked)."""
    if exp.name in EXPERIMENTS and not replace:
        raise KeyError(f"experiment {exp.name!r} is registered already")
    for lay in exp.layouts:
        if lay not in LAYOUT_SUITES:
            raise ValueError(f"{exp.name}: unknown layout {lay!r}; known: {', '.join(LAYOUT_SUITES)}")
    for fig in exp.figures:
        if fig.kind not in _FIGURE_KINDS:
            raise ValueError(f"{exp.name}: unknown figure kind {fig.kind!r}")
    EXPERIMENTS[exp.name] = exp
    return exp


def get_experiment(name: str) -> Experiment:
    """The registered experiment ``name`` (``KeyError`` listing the names otherwise)."""
    if name not in EXPERIMENTS:
        raise KeyError(f"unknown experiment {name!r}; known: {', '.join(EXPERIMENTS)}")
    return EXPERIMENTS[name]


def list_experiments() -> list[Experiment]:
    """The registered experiments, in registration order."""
    return list(EXPERIMENTS.values())


_FIGURE_KINDS = ("tsne", "dynamics", "curves", "basins", "loss_weights")

DATASETS = {"svhn": "SVHN", "cifar10": "CIFAR-10", "cifar100": "CIFAR-100",
            "tiny_imagenet": "Tiny-ImageNet"}
#: Tables I–II rows in the paper's order: (config stem, label).
TABLE12_METHODS = (("resnet18", "ResNet18"), ("neural_ode", "Neural ODE"),
                   ("projnode", "Proj-NODE"), ("sodef", "SODEF"), ("fxts", "FxTS-Net"),
                   ("lyanet", "LyaNet"), ("zubovnet", "Zubov-Net"))


def _runs(ds: str, methods=TABLE12_METHODS) -> tuple:
    return tuple(Run(f"{ds}/{stem}.yaml", label) for stem, label in methods)


def _register_paper() -> None:
    cost12 = ("7 trainings of 140 epochs (paper Table IV, RTX 4090, CIFAR-10: 23–58 s per epoch, "
              "0.9–2.3 GPU-h each; SVHN ×1.5, Tiny-ImageNet ×8), shared by Tables I and II")
    for t, suites, what in (("table1", ("corruptions",), "accuracy under the eight corruptions "
                             "(severities 1–5, mean per corruption)"),
                            ("table2", ("attacks",), "white-box FGSM, PGD, BIM, APGD, Jitter at "
                             "8/255 and 16/255 (10 steps, step ε/8)")):
        roman = "I" if t == "table1" else "II"
        for ds, title in DATASETS.items():
            register_experiment(Experiment(
                f"{t}-{ds}", f"Table {roman} ({title})", f"{title}: {what}", _runs(ds),
                suites=suites, layouts=(t,), cost=cost12))
        register_experiment(Experiment(
            t, f"Table {roman}", f"all four datasets: {what}",
            tuple(r for ds in DATASETS for r in _runs(ds)), suites=suites, layouts=(t,),
            cost="28 trainings (" + cost12 + ")"))
    t3 = (("projnode", "Proj-NODE"), ("lyanet", "LyaNet"), ("zubovnet", "Zubov-Net"),
          ("pgd_at", "PGD-AT"), ("mart", "MART"), ("trades", "TRADES"),
          ("zubovnet_trades", "Zubov-Net (TRADES)"))
    register_experiment(Experiment(
        "table3-cifar10", "Table III", "CIFAR-10 at 16/255: VNI-FGSM transferred from a Neural "
        "ODE and a ResNet-18, Square (5,000 queries), AutoAttack (standard)", _runs("cifar10", t3),
        suites=("strong",), layouts=("table3",),
        surrogates=(Run("cifar10/neural_ode.yaml", "Neural ODE"),
                    Run("cifar10/resnet18.yaml", "ResNet18")),
        cost="9 trainings (4 adversarial: ~10x the cost of clean training with 10-step PGD); "
             "Square and AutoAttack dominate the evaluation"))
    register_experiment(Experiment(
        "table4-profile", "Table IV", "CIFAR-10 computational profile: parameters, training "
        "time per epoch (mean of 5), training memory per batch (CUDA), inference time per epoch",
        _runs("cifar10", (("profile/resnet18", "ResNet18"), ("profile/neural_ode", "Neural ODE"),
                          ("profile/lyanet", "LyaNet"), ("profile/projnode", "Proj-NODE"),
                          ("profile/zubovnet", "Zubov-Net"))),
        layouts=("table4",), extras=("profile",),
        cost="5 trainings of 5 epochs (~20 min each on a GPU)"))
    register_experiment(Experiment(
        "table5-ablation", "Table V", "CIFAR-10 ablations of the loss terms and of the Lyapunov "
        "classifier (ε = 8/255), with the mean dW_y/dt along test trajectories",
        _runs("cifar10", (("ablation/cla_fc", "L_cla + L_FC"), ("ablation/no_con", "w/o L_con"),
                          ("ablation/no_sep", "w/o L_sep"),
                          ("ablation/no_sep_ineq", "w/o L_sep (Ineq)"),
                          ("paper_literal", "Ours (paper-literal)"),
                          ("ablation/icnn", "ICNN"), ("ablation/picnn", "PICNN"))),
        suites=("corruptions", "attacks", "alignment"), layouts=("table5",), extras=("dwdt",),
        cost="6 trainings of Zubov-Net variants (~2 GPU-h each) + the Table I Zubov-Net"))
    register_experiment(Experiment(
        "table6-solver", "Table VI", "CIFAR-10: ODE solver (Dopri5 1e-3 / 0.1, RK4 and Euler with "
        "step 0.1) and horizon T with Γ (ε = 8/255)",
        _runs("cifar10", (("solver/dopri5_tol1e-3", "Dopri5 (rho=0.001)"),
                          ("solver/dopri5_tol1e-1", "Dopri5 (rho=0.1)"),
                          ("solver/rk4_step0.1", "RK4 (stepsize=0.1)"),
                          ("solver/euler_step0.1", "Euler (stepsize=0.1)"),
                          ("paper_literal", "Ours (T=1, Γ=10)"), ("solver/T2_gamma15", "T=2, Γ=15"),
                          ("solver/T5_gamma30", "T=5, Γ=30"), ("solver/T7_gamma40", "T=7, Γ=40"),
                          ("solver/T10_gamma60", "T=10, Γ=60"))),
        suites=("corruptions", "attacks"), layouts=("table6",),
        cost="8 trainings; the T = 10 runs take several times the T = 1 cost"))
    z = Run("cifar10/zubovnet.yaml", "Zubov-Net")
    planar = Run("synthetic2d/zubovnet.yaml", "Zubov-Net (plane)")
    planar_p = Run("synthetic2d/paper_literal.yaml", "Zubov-Net, paper-literal (plane)")
    planar0 = Run("synthetic2d/cla_fc.yaml", "L_cla + L_FC only (plane)")
    register_experiment(Experiment(
        "fig1-basins", "Fig. 1(b)", "prescribed regions of attraction (W_i = ρ), trajectories and "
        "true basins of a Zubov-Net trained in the plane (synthetic2d): after matching and control "
        "(the default, with the alignment mechanism), the paper-literal objective, and before "
        "(L_cla + L_FC only), with the alignment rate of each", (planar, planar_p, planar0),
        suites=("alignment",), layouts=("alignment",),
        figures=(Figure("basins", (planar,), "fig1_basins"),
                 Figure("basins", (planar_p,), "fig1_basins_paper_literal"),
                 Figure("basins", (planar0,), "fig1_basins_cla_fc")),
        cost="~3 CPU minutes"))
    for ds, title, n, cost in (
            ("digits", "8x8 digits", None, "10 trainings of ~5-10 CPU minutes"),
            ("fashion_mnist", "Fashion-MNIST", 1000, "9 trainings of ~25-40 CPU minutes")):
        stems = (("paper_literal", "paper-literal (today's default)"),
                 ("eq", "+ lambda_eq"), ("sum", "+ sum reduction"), ("data", "+ data assignment"),
                 ("region", "+ region states"), ("stab", "+ stability at c_i"),
                 ("uniform", "+ V-form residual"), ("aligned", "all (the default)"),
                 ("aligned_beta0.1", "all, beta = 0.1"))
        if ds == "digits":
            stems += (("aligned_traj", "all + trajectory targets"),)
        register_experiment(Experiment(
            f"alignment-{ds.replace('_', '-')}", "Alignment ablation",
            f"{title}, small CNN, d = 32: the paper-literal Zubov-Net, each alignment option "
            "alone, and all together — clean, corruption mean, rigorous worst case (n = 200), "
            "AR at T / 3T / 10T", tuple(Run(f"{ds}/alignment/{st}.yaml", lab) for st, lab in stems),
            suites=("alignment", "corruptions", "rigorous"), layouts=("alignment",), n=n,
            suite_n=(("rigorous", 200),), cost=cost))
    lya = Run("cifar10/lyanet.yaml", "LyaNet")
    register_experiment(Experiment(
        "fig3-tsne", "Fig. 3", "t-SNE of h(T) on CIFAR-10 (400 images per class): clean, FGSM, "
        "Gaussian noise; LyaNet and Zubov-Net", (lya, z),
        figures=(Figure("tsne", (lya, z), "fig3_tsne", (("n_per_class", 400),)),),
        cost="the Table I LyaNet and Zubov-Net trainings; ~6 t-SNE embeddings of 4,000 points"))
    lw = (("loss_weights/fc0", "(0, 0.12, 0.9)"), ("loss_weights/fc0.5", "(0.5, 0.12, 0.9)"),
          ("loss_weights/fc3.0", "(3, 0.12, 0.9)"), ("loss_weights/con0.04", "(1.5, 0.04, 0.9)"),
          ("paper_literal", "(1.5, 0.12, 0.9)"), ("loss_weights/con0.36", "(1.5, 0.36, 0.9)"),
          ("loss_weights/sep0.3", "(1.5, 0.12, 0.3)"), ("loss_weights/sep2.7", "(1.5, 0.12, 2.7)"))
    lw_runs = _runs("cifar10", lw)
    register_experiment(Experiment(
        "fig4-loss-weights", "Fig. 4", "CIFAR-10 loss-weight sweep (λ1, λ2, λ3): eight "
        "configurations, four metrics normalised to their maximum", lw_runs,
        suites=("corruptions", "attacks"), layouts=("fig4",),
        figures=(Figure("loss_weights", lw_runs, "fig4_loss_weights"),),
        cost="7 trainings of Zubov-Net variants + the Table I Zubov-Net"))
    register_experiment(Experiment(
        "fig5-dynamics", "Fig. 5", "training dynamics of L_sep, L_cla, L_con, L_FC, W_y and mean "
        "W_k≠y of the CIFAR-10 Zubov-Net", (z,),
        figures=(Figure("dynamics", (z,), "fig5_dynamics"),),
        cost="the Table I Zubov-Net training"))
    fm = (Run("fashion_mnist/cnn.yaml", "CNN"), Run("fashion_mnist/neural_ode.yaml", "Neural ODE"),
          Run("fashion_mnist/zubovnet.yaml", "Zubov-Net"))
    register_experiment(Experiment(
        "fashion-mnist-study", "CPU study", "Fashion-MNIST with the small CNN extractor on CPU: "
        "CNN, Neural ODE and Zubov-Net under the corruptions and white-box attacks of Tables I–II, "
        "with robustness curves, training dynamics and t-SNE", fm,
        suites=("corruptions", "attacks", "alignment"), layouts=("table1", "table2", "alignment"),
        figures=(Figure("curves", fm, "fashion_curves"),
                 Figure("dynamics", fm, "fashion_dynamics"),
                 Figure("tsne", fm[1:], "fashion_tsne", (("n_per_class", 100),))),
        n=1000, cost="~40 min of training on 2 CPU cores + ~15 min of evaluation (n = 1000)"))

    dg = (Run("digits/neural_ode.yaml", "Neural ODE"), Run("digits/zubovnet.yaml", "Zubov-Net"))
    register_experiment(Experiment(
        "digits-study", "CPU demo", "scikit-learn's 8x8 digits (the demo's configs): Neural ODE "
        "and Zubov-Net under the corruptions and white-box attacks of Tables I–II, with "
        "robustness curves, training dynamics and t-SNE", dg,
        suites=("corruptions", "attacks", "alignment"), layouts=("table1", "table2", "alignment"),
        figures=(Figure("curves", dg, "digits_curves"), Figure("dynamics", dg, "digits_dynamics"),
                 Figure("tsne", dg, "digits_tsne", (("n_per_class", 36),))),
        cost="~5 CPU minutes of training (12 min of wall time on a loaded 2-core "
             "machine) + ~1 minute of evaluation (all 360 test images)"))
    dlw = tuple(Run(f"digits_sweep/{stem}.yaml", label) for stem, label in (
        ("fc0", "(0, 0.12, 0.9)"), ("fc0.5", "(0.5, 0.12, 0.9)"), ("fc3.0", "(3, 0.12, 0.9)"),
        ("con0.04", "(1.5, 0.04, 0.9)"), ("paper", "(1.5, 0.12, 0.9)"),
        ("con0.36", "(1.5, 0.36, 0.9)"), ("sep0.3", "(1.5, 0.12, 0.3)"),
        ("sep2.7", "(1.5, 0.12, 2.7)")))
    register_experiment(Experiment(
        "digits-loss-weights", "CPU Fig. 4", "the Fig. 4 loss-weight sweep on 8x8 digits (the "
        "demo's Zubov-Net, 10 epochs each)", dlw, suites=("corruptions", "attacks"),
        layouts=("fig4",), figures=(Figure("loss_weights", dlw, "digits_loss_weights"),),
        cost="8 trainings of ~2-5 CPU minutes + ~1 minute of evaluation each"))


_register_paper()


# ============================================================================ status
def default_configs_root() -> Path:
    """The project's ``configs/`` folder (next to ``src/``), else ``./configs``."""
    here = Path(__file__).resolve().parents[2] / "configs"
    return here if here.is_dir() else Path("configs")


def run_status(run_dir: str | Path, epochs: int) -> tuple[str, int]:
    """``(status, epoch)`` of a run folder: ``done`` when ``checkpoints/latest.json`` records
    ``epoch >= epochs``, ``partial`` when it records fewer, ``todo`` without it."""
    latest = Path(run_dir) / "checkpoints" / "latest.json"
    if not latest.is_file():
        return "todo", 0
    try:
        with open(latest) as fh:
            epoch = int(json.load(fh)["epoch"])
    except (OSError, ValueError, KeyError, TypeError):
        return "todo", 0
    return ("done" if epoch >= epochs else "partial"), epoch


def record_status(path: str | Path, n: Optional[int], epoch: int) -> str:
    """``done`` when the JSON at ``path`` belongs to checkpoint ``epoch`` and covers
    ``min(n, test size)`` images (``n = None``: all); ``todo`` when missing; ``stale (...)``
    otherwise.  Works for evaluation records (``model.epoch``, ``data.n``, ``data.size``) and
    the extras (top-level ``epoch``, ``n``, ``size``)."""
    path = Path(path)
    if not path.is_file():
        return "todo"
    try:
        with open(path) as fh:
            rec = json.load(fh)
    except (OSError, ValueError):
        return "stale (unreadable)"
    data = rec.get("data", rec)
    got_epoch = (rec.get("model") or {}).get("epoch", rec.get("epoch"))
    if got_epoch is not None and int(got_epoch) != int(epoch):
        return f"stale (epoch {got_epoch})"
    size, have = data.get("size"), data.get("n")
    if have is not None and size is not None:
        need = size if n is None else min(n, size)
        if have < need:
            return f"stale (n={have})"
    return "done"


def missing_methods(cfg) -> list[str]:
    """What ``cfg`` needs that this build lacks: its model, its objective, adversarial training."""
    from .models import available_models
    from .training.objectives import available_objectives
    out = []
    if cfg.model.name not in available_models():
        out.append(f"model {cfg.model.name!r} (available: {', '.join(available_models())})")
    objectives = available_objectives()
    if cfg.train.objective != "auto" and cfg.train.objective not in objectives:
        out.append(f"objective {cfg.train.objective!r}")
    if cfg.adversarial.method != "none" and "adversarial" not in objectives:
        out.append(f"adversarial training (adversarial.method={cfg.adversarial.method})")
    return out


# ============================================================================ plan
@dataclass
class RunPlan:
    run: Run
    config_path: Path
    run_dir: Path
    cfg: object
    status: str
    epoch: int
    missing: list
    roles: list = field(default_factory=list)

    @property
    def epochs(self) -> int:
        return self.cfg.train.epochs

    @property
    def dataset(self) -> str:
        return self.cfg.data.name


@dataclass
class EvalPlan:
    run: RunPlan
    kind: str            # suite | dwdt | profile
    suite: Optional[str]
    path: Path
    status: str


@dataclass
class FigurePlan:
    figure: Figure
    runs: list
    outputs: list
    status: str


@dataclass
class Plan:
    experiment: Experiment
    out: Path
    output_dir: Path
    runs: list
    evaluations: list
    figures: list
    n: Optional[int]
    dataset: Optional[str] = None

    @property
    def rows(self) -> list:
        return [r for r in self.runs if "row" in r.roles]

    @property
    def not_implemented(self) -> list:
        return [r for r in self.runs if r.missing]


def _config_overrides(run_dir: Path, device: Optional[str], data_root: Optional[str],
                      progress: Optional[bool]) -> list[str]:
    ov = [f"train.out_dir={run_dir}"]
    if device:
        ov.append(f"train.device={device}")
    if data_root:
        ov.append(f"data.root={data_root}")
    if progress is not None:
        ov.append(f"train.progress={str(progress).lower()}")
    return ov


def plan_experiment(exp: Experiment | str, out: str | Path = "runs",
                    configs_root: str | Path | None = None, n: Optional[int] = None,
                    dataset: Optional[str] = None, methods: Optional[Sequence[str]] = None,
                    device: Optional[str] = None, data_root: Optional[str] = None,
                    progress: Optional[bool] = None) -> Plan:
    """Resolve ``exp`` into runs, evaluations and figures with their current status.

    ``dataset`` keeps the rows on that dataset; ``methods`` keeps the rows whose config stem
    (``zubovnet``, ``pgd_at``) or label is listed (surrogates are always kept); ``n``
    overrides the experiment's number of test images.  Reads only small JSON files.
    """
    from .config import load_config
    exp = get_experiment(exp) if isinstance(exp, str) else exp
    root = Path(configs_root) if configs_root is not None else default_configs_root()
    out = Path(out)
    n = exp.n if n is None else n
    plans: dict[str, RunPlan] = {}

    def add(run: Run, role: str) -> RunPlan:
        if run.key not in plans:
            path = root / run.config
            if not path.is_file():
                raise FileNotFoundError(f"{exp.name}: config {path} does not exist")
            run_dir = out / run.key
            cfg = load_config(path, _config_overrides(run_dir, device, data_root, progress))
            status, epoch = run_status(run_dir, cfg.train.epochs)
            plans[run.key] = RunPlan(run, path, run_dir, cfg, status, epoch, missing_methods(cfg))
        rp = plans[run.key]
        if role not in rp.roles:
            rp.roles.append(role)
        return rp

    def keep(run: Run) -> bool:
        if methods and Path(run.config).stem not in methods and run.label not in methods:
            return False
        return True

    def in_scope(rp: RunPlan) -> bool:
        return dataset is None or rp.dataset == dataset

    rows = []
    for r in exp.rows:
        if keep(r):
            rp = add(r, "probe")
            if in_scope(rp):
                rows.append(add(r, "row"))
    if not rows:
        what = [f"dataset {dataset}" if dataset else "", f"methods {list(methods)}" if methods else ""]
        known = sorted({add(r, "probe").dataset for r in exp.rows})
        raise ValueError(f"{exp.name}: no run left for {' and '.join(w for w in what if w)}; "
                         f"datasets of the experiment: {known}")
    row_keys = {rp.run.key for rp in rows}
    if "strong" in exp.suites:
        for r in exp.surrogates:
            add(r, "surrogate")
    figures = []
    for fig in exp.figures:
        fruns = []
        for r in fig.runs:
            if keep(r) and in_scope(add(r, "probe")):
                fruns.append(add(r, "figure"))
        if fig.kind in ("curves", "loss_weights"):      # drawn from the rows' records
            fruns = [f for f in fruns if f.run.key in row_keys]
        if not fruns:
            continue
        outs = ([Path(f"{fig.name}_eps.png"), Path(f"{fig.name}_severity.png")]
                if fig.kind == "curves" else [Path(f"{fig.name}.png")])
        figures.append(FigurePlan(fig, fruns, outs, "todo"))
    for rp in plans.values():
        if "probe" in rp.roles:
            rp.roles.remove("probe")
    runs = [rp for rp in plans.values() if rp.roles]
    evaluations = []
    for rp in rows:
        for suite in exp.suites:
            path = rp.run_dir / f"eval_{suite}.json"
            evaluations.append(EvalPlan(rp, "suite", suite, path,
                                        record_status(path, n, rp.epochs)))
        for extra in exp.extras:
            name = {"dwdt": "lyapunov_derivative.json", "profile": "profile.json"}[extra]
            path = rp.run_dir / name
            applies = extra != "dwdt" or rp.cfg.model.name == "zubovnet"
            if applies:
                evaluations.append(EvalPlan(rp, extra, None, path,
                                            record_status(path, n, rp.epochs)))
    name = exp.name if dataset is None or exp.name.endswith(dataset) else f"{exp.name}-{dataset}"
    output_dir = out / "reproduce" / name
    for fp in figures:
        fp.outputs = [output_dir / o for o in fp.outputs]
        fp.status = figure_status(fp, exp)
    return Plan(exp, out, output_dir, runs, evaluations, figures, n, dataset)


def figure_status(fp: FigurePlan, exp: Experiment) -> str:
    """``todo`` when an output is missing, ``stale`` when a checkpoint or record the figure
    reads is newer than its oldest output, ``done`` otherwise."""
    if not all(o.is_file() for o in fp.outputs):
        return "todo"
    t_out = min(o.stat().st_mtime for o in fp.outputs)
    for rp in fp.runs:
        for p in [rp.run_dir / "checkpoints" / "latest.json",
                  *[rp.run_dir / f"eval_{s}.json" for s in exp.suites]]:
            if p.is_file() and p.stat().st_mtime > t_out:
                return "stale"
    return "done"


def format_plan(plan: Plan) -> str:
    """The plan as text: runs (status, epochs, config, folder), evaluations, tables, figures."""
    exp = plan.experiment
    lines = [f"experiment {exp.name}: {exp.paper} — {exp.description}"]
    if plan.dataset:
        lines.append(f"  dataset filter: {plan.dataset}")
    if exp.cost:
        lines.append(f"  cost: {exp.cost}")
    lines.append(f"runs ({len(plan.runs)}):")
    for rp in plan.runs:
        st = "NOT IMPLEMENTED" if rp.missing else rp.status
        role = "" if rp.roles == ["row"] else f" [{', '.join(rp.roles)}]"
        lines.append(f"  [{st:>7}] {rp.run.label:<22} {rp.run.config:<36} -> {rp.run_dir} "
                     f"(epoch {rp.epoch}/{rp.epochs}){role}")
        for m in rp.missing:
            lines.append(f"            not implemented in this build: {m}")
    n = "all" if plan.n is None else plan.n
    lines.append(f"evaluations ({len(plan.evaluations)}, n = {n} test images):")
    for ev in plan.evaluations:
        what = f"suite {ev.suite}" if ev.kind == "suite" else ev.kind
        lines.append(f"  [{ev.status:>7}] {ev.run.run.label:<22} {what:<18} -> {ev.path}")
    if exp.layouts:
        lines.append("tables:")
        for lay in exp.layouts:
            lines.append(f"  {lay}: {plan.output_dir / lay}.{{md,csv,json}}")
    if plan.figures:
        lines.append("figures:")
        for fp in plan.figures:
            src = ", ".join(r.run.label for r in fp.runs)
            lines.append(f"  [{fp.status:>7}] {fp.figure.kind:<12} from {src} -> "
                         + ", ".join(str(o) for o in fp.outputs))
    return "\n".join(lines)


# ============================================================================ extras
def mean_lyapunov_derivative(model, x, y, batch_size: int = 256,
                             device: str | object = "cpu") -> dict:
    """Mean of ``dW_y/dt = ∇W_y(h)·f(h) = e^{−V_y(h)} ∇V_y(h)·f(h)`` over the trajectory states
    ``h(t_0..t_Γ)`` of the images ``x`` (``(N, C, H, W)`` in [0, 1], labels ``y (N,)``), in
    eval mode (Table V, last column; negative = the target class's Lyapunov function decreases
    along the flow).  ``∇V_y·f`` is one forward-mode JVP.  Returns ``{"mean_dWdt",
    "fraction_negative", "states", "n"}``.
    """
    import torch
    from .losses import directional_derivative
    model.to(device).eval()
    total, neg, count = 0.0, 0, 0
    for i in range(0, len(x), batch_size):
        xb, yb = x[i:i + batch_size].to(device), y[i:i + batch_size].to(device)
        with torch.no_grad():
            traj = model.trajectory(xb)
        states = traj.reshape(-1, traj.shape[-1])
        cls = yb.repeat(traj.shape[0])
        f = model.dynamics.field(states).detach()
        V, V_dot = directional_derivative(lambda z: model.energy(z, cls), states, f)
        dW = (torch.exp(-V) * V_dot).detach()
        total += float(dW.sum())
        neg += int((dW < 0).sum())
        count += dW.numel()
    return {"mean_dWdt": total / max(count, 1), "fraction_negative": neg / max(count, 1),
            "states": count, "n": int(len(x))}


def profile_run(run_dir: str | Path, cfg, device: str = "cpu", memory_steps: int = 20,
                n: Optional[int] = None, batch_size: int = 128) -> dict:
    """Table IV numbers of a trained run.

    * ``params_M``: parameters / 1e6;
    * ``train_time_per_epoch_s``: mean ``train_time`` of the epochs in ``metrics.csv`` (the
      profile configs train 5 epochs);
    * ``train_memory_GB``: on CUDA, the mean over ``memory_steps`` training steps of the peak
      memory allocated during the step (``torch.cuda.max_memory_allocated``, reset before
      each); ``None`` on CPU;
    * ``inference_time_per_epoch_s``: eval-mode forward passes over the test split in batches
      of ``batch_size`` (``n`` images, scaled to the whole split).
    """
    import torch
    from torch.utils.data import DataLoader, Subset
    from .analysis.dynamics import read_metrics
    from .data import build_datasets
    from .training.checkpoint import load_checkpoint
    from .training.objectives import build_objective
    dev = torch.device(device)
    model, ck_cfg, meta = load_checkpoint(run_dir, device=dev)
    params = sum(p.numel() for p in model.parameters())
    times = [r["train_time"] for r in read_metrics(run_dir)
             if not math.isnan(r.get("train_time", math.nan))]
    splits = build_datasets(cfg.data)
    mem = None
    if dev.type == "cuda":
        objective = build_objective(ck_cfg, model)
        model.train()
        loader = DataLoader(splits.train, batch_size=cfg.data.batch_size, shuffle=True)
        peaks = []
        for step, (xb, yb) in enumerate(loader):
            if step >= memory_steps:
                break
            xb, yb = xb.to(dev), yb.to(dev)
            torch.cuda.synchronize(dev)
            torch.cuda.reset_peak_memory_stats(dev)
            loss, _ = objective(model, xb, yb)
            loss.backward()
            model.zero_grad(set_to_none=True)
            torch.cuda.synchronize(dev)
            peaks.append(torch.cuda.max_memory_allocated(dev) / 2 ** 30)
        mem = sum(peaks) / len(peaks) if peaks else None
        model.eval()
    test = splits.test
    size = len(test)
    use = size if n is None else min(n, size)
    loader = DataLoader(Subset(test, range(use)), batch_size=batch_size, shuffle=False)
    model.eval()
    t0 = time.perf_counter()
    with torch.no_grad():
        for xb, _ in loader:
            model(xb.to(dev))
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    infer = (time.perf_counter() - t0) * size / max(use, 1)
    return {"params_M": params / 1e6,
            "train_time_per_epoch_s": (sum(times) / len(times)) if times else None,
            "train_epochs_timed": len(times), "train_memory_GB": mem,
            "train_memory_note": None if mem is not None else "measured on CUDA only",
            "inference_time_per_epoch_s": infer, "inference_images_timed": use, "size": size,
            "n": use, "device": str(dev), "epoch": meta.get("epoch")}


# ============================================================================ tables
def _load_json(path: Path):
    with open(path) as fh:
        return json.load(fh)


def _merged_record(rp: RunPlan, suites: Iterable[str]) -> Optional[dict]:
    """The row's records of ``suites`` merged (``results`` united), named by the row label."""
    merged = None
    for s in suites:
        p = rp.run_dir / f"eval_{s}.json"
        if not p.is_file():
            continue
        rec = _load_json(p)
        if merged is None:
            merged = {**rec, "results": dict(rec.get("results", {})),
                      "model": {**rec.get("model", {}), "name": rp.run.label}}
        else:
            merged["results"].update(rec.get("results", {}))
    return merged


def _acc_getter(key: str):
    def get(ctx):
        e = (ctx["record"] or {}).get("results", {}).get(key)
        return None if e is None else e.get("accuracy")
    return get


def _mean_getter(getters):
    def get(ctx):
        vals = [g(ctx) for g in getters]
        return None if any(v is None for v in vals) else sum(vals) / len(vals)
    return get


def _extra_getter(name: str, key: str):
    def get(ctx):
        return (ctx.get(name) or {}).get(key)
    return get


_CORRUPTIONS8 = (("Gaussian", "gaussian_noise"), ("Glass", "glass_blur"), ("Shot", "shot_noise"),
                 ("Impulse", "impulse_noise"), ("Speckle", "speckle_noise"),
                 ("Motion", "motion_blur"), ("Brightness", "brightness"), ("Contrast", "contrast"))
_T56_CORR = (("Gauss", "gaussian_noise"), ("Glass", "glass_blur"), ("Shot", "shot_noise"),
             ("Speckle", "speckle_noise"), ("Motion", "motion_blur"))


def layout_columns(layout: str) -> list[tuple[str, Callable, str]]:
    """``[(header, getter(ctx), kind)]`` of ``layout``; ``kind`` is ``pct`` (a fraction printed
    in percent) or ``num``; ``ctx`` holds the row's merged ``record`` and its extras."""
    if layout in ("table1", "table2", "table3"):
        from .evaluation.tables import table_columns
        return [(h, (lambda g: lambda ctx: g(ctx["record"] or {}))(g), "pct")
                for h, g in table_columns(layout)]
    if layout in ("table5", "table6"):
        attacks = (("FGSM", "fgsm"), ("PGD", "pgd"), ("BIM", "bim"), ("APGD", "apgd"),
                   ("Jitter", "jitter"))
        if layout == "table6":
            attacks = (("FGSM", "fgsm"), ("BIM", "bim"), ("PGD", "pgd"), ("APGD", "apgd"),
                       ("Jitter", "jitter"))
        corr = _T56_CORR if layout == "table5" else (("Gaussian", "gaussian_noise"),) + _T56_CORR[1:]
        robust = [(h, _acc_getter(f"corruption/{k}"), "pct") for h, k in corr]
        robust += [(h, _acc_getter(f"{k}@8/255"), "pct") for h, k in attacks]
        cols = [("Orig", _acc_getter("clean"), "pct")] + robust
        cols.append(("Avg", _mean_getter([g for _, g, _ in robust]), "pct"))
        if layout == "table5":
            cols.append(("dW/dt", _extra_getter("dwdt", "mean_dWdt"), "num"))
            cols.append(("AR@10T", _acc_getter("alignment/ar@10T"), "pct"))
        return cols
    if layout == "alignment":
        def entry(key, field):
            return lambda ctx: ((ctx["record"] or {}).get("results", {}).get(key) or {}).get(field)
        corr = [_acc_getter(f"corruption/{k}") for _, k in _CORRUPTIONS8]
        return [("Clean", _acc_getter("clean"), "pct"),
                ("Corr. mean", _mean_getter(corr), "pct"),
                ("Worst case", _acc_getter("rigorous/worst_case"), "pct"),
                ("AR@T", _acc_getter("alignment/ar@1T"), "pct"),
                ("AR@3T", _acc_getter("alignment/ar@3T"), "pct"),
                ("AR@10T", _acc_getter("alignment/ar@10T"), "pct"),
                ("Nearest@10T", entry("alignment/ar@10T", "nearest"), "pct"),
                ("Containment", _acc_getter("alignment/containment"), "pct"),
                ("dW/dt", entry("alignment/containment", "mean_dW_dt"), "num"),
                ("max ‖f(c_i)‖", entry("alignment/ar@10T", "max_f_norm"), "num"),
                ("L_con (test)", entry("alignment/containment", "l_con_test"), "num"),
                ("Train time (s)", lambda ctx: ((ctx["record"] or {}).get("model") or {})
                 .get("train_time_s"), "num")]
    if layout == "table4":
        return [("Params (M)", _extra_getter("profile", "params_M"), "num"),
                ("Train Time/Epoch (s)", _extra_getter("profile", "train_time_per_epoch_s"), "num"),
                ("Train Memory (GB)", _extra_getter("profile", "train_memory_GB"), "num"),
                ("Inference Time/Epoch (s)",
                 _extra_getter("profile", "inference_time_per_epoch_s"), "num")]
    if layout == "fig4":
        from .analysis.loss_weights import category_scores
        return [(h, (lambda k: lambda ctx: category_scores(ctx["record"] or {})[k])(k), "pct")
                for h, k in (("Overall", "overall"), ("Noise", "noise"),
                             ("Adversarial", "adversarial"), ("Clean", "clean"))]
    raise ValueError(f"unknown layout {layout!r}")


def _fmt(v, kind: str) -> str:
    if v is None:
        return "—"
    if kind == "pct":
        return f"{100 * v:.2f}"
    return f"{v:.4g}" if abs(v) < 1000 else f"{v:.1f}"


def _markdown(header: list[str], rows: list[list[str]], text_columns: int = 1) -> str:
    """A Markdown table; the first ``text_columns`` columns left-aligned, the rest right."""
    lines = ["| " + " | ".join(header) + " |",
             "| " + " | ".join("---" if i < text_columns else "---:" for i in range(len(header)))
             + " |"]
    lines += ["| " + " | ".join(str(c).replace("|", "\\|") for c in r) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def _row_contexts(plan: Plan, layout: str) -> list[dict]:
    ctxs = []
    suites = ([s for s in LAYOUT_SUITES[layout] if s in plan.experiment.suites]
              or list(plan.experiment.suites))
    for rp in plan.rows:
        ctx = {"run": rp, "record": _merged_record(rp, suites)}
        for extra, fname in (("dwdt", "lyapunov_derivative.json"), ("profile", "profile.json")):
            p = rp.run_dir / fname
            ctx[extra] = _load_json(p) if p.is_file() else None
        ctxs.append(ctx)
    return ctxs


def assemble_table(plan: Plan, layout: str) -> dict:
    """Write ``<output_dir>/<layout>.{md,csv,json}``; return the JSON document."""
    from .evaluation.tables import render_table
    cols = layout_columns(layout)
    ctxs = _row_contexts(plan, layout)
    datasets = list(dict.fromkeys(c["run"].dataset for c in ctxs))
    multi = len(datasets) > 1
    doc_rows = []
    for ctx in ctxs:
        rp = ctx["run"]
        values = {h: g(ctx) for h, g, _ in cols}
        doc_rows.append({
            "dataset": rp.dataset, "method": rp.run.label, "config": rp.run.config,
            "run_dir": str(rp.run_dir), "epoch": rp.epoch,
            "values": {h: (None if v is None else (100 * v if k == "pct" else v))
                       for (h, _, k), v in zip(cols, values.values())},
            "records": [str(rp.run_dir / f"eval_{s}.json") for s in plan.experiment.suites
                        if (rp.run_dir / f"eval_{s}.json").is_file()]})
    exp = plan.experiment
    title = f"{exp.paper}: {exp.description}"
    md = [f"# {title}\n", f"Experiment `{exp.name}`; test images per evaluation: "
          f"{'all' if plan.n is None else plan.n}; accuracies in %.\n"]
    for ds in datasets:
        sub = [c for c in ctxs if c["run"].dataset == ds]
        if multi:
            md.append(f"\n## {DATASETS.get(ds, ds)}\n")
        if layout in ("table1", "table2", "table3"):
            recs = [c["record"] or {"model": {"name": c["run"].run.label}, "results": {}}
                    for c in sub]
            md.append(render_table(recs, layout, bold_best=True))
        else:
            first = "Loss weights (λ1, λ2, λ3)" if layout == "fig4" else "Method"
            header = [first] + [h for h, _, _ in cols]
            rows = [[c["run"].run.label] + [_fmt(g(c), k) for _, g, k in cols] for c in sub]
            md.append(_markdown(header, rows))
    if layout == "table4" and any((c["profile"] or {}).get("train_memory_GB") is None for c in ctxs):
        md.append("\nTraining memory is measured on CUDA only (— on CPU).\n")
    plan.output_dir.mkdir(parents=True, exist_ok=True)
    base = plan.output_dir / layout
    (base.with_suffix(".md")).write_text("\n".join(md).replace("\n\n\n", "\n\n"))
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["dataset", "method", "config"] + [h for h, _, _ in cols])
    for r in doc_rows:
        w.writerow([r["dataset"], r["method"], r["config"]] +
                   ["" if r["values"][h] is None else f"{r['values'][h]:.6g}" for h, _, _ in cols])
    base.with_suffix(".csv").write_text(buf.getvalue())
    doc = {"experiment": exp.name, "paper": exp.paper, "layout": layout,
           "columns": [{"header": h, "unit": "%" if k == "pct" else None} for h, _, k in cols],
           "n": plan.n, "rows": doc_rows}
    base.with_suffix(".json").write_text(json.dumps(doc, indent=2, allow_nan=False))
    return doc


# ============================================================================ running
@dataclass
class ReproduceResult:
    plan: Plan
    trained: list = field(default_factory=list)
    evaluated: list = field(default_factory=list)
    tables: list = field(default_factory=list)
    figures: list = field(default_factory=list)
    skipped: list = field(default_factory=list)


class _Datasets:
    """Test splits built once per data configuration."""

    def __init__(self):
        self.cache: dict = {}

    def test(self, cfg):
        from .data import build_datasets
        key = (cfg.data.name, cfg.data.root, cfg.data.split_seed, cfg.data.test_subset)
        if key not in self.cache:
            self.cache[key] = build_datasets(cfg.data)
        return self.cache[key].test


def _resolve_device(device: Optional[str]) -> str:
    import torch
    if device in (None, "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def reproduce(name: str | Experiment, out: str | Path = "runs", device: Optional[str] = None,
              n: Optional[int] = None, dataset: Optional[str] = None,
              configs_root: str | Path | None = None, methods: Optional[Sequence[str]] = None,
              data_root: Optional[str] = None, dry_run: bool = False,
              progress: Optional[bool] = None, batch_size: int = 256, seed: int = 0,
              log: Callable[[str], None] = print) -> ReproduceResult:
    """Run experiment ``name`` (see the module docstring); ``dry_run`` only prints the plan.

    Raises ``NotImplementedError`` (before anything runs) when a run needs a method this build
    lacks, ``KeyError`` for an unknown experiment, ``FileNotFoundError`` for a missing config
    or dataset.
    """
    plan = plan_experiment(name, out, configs_root, n, dataset, methods, device, data_root, progress)
    log(format_plan(plan))
    result = ReproduceResult(plan)
    if dry_run:
        return result
    if plan.not_implemented:
        lines = [f"  {rp.run.config} ({rp.run.label}): {'; '.join(rp.missing)}"
                 for rp in plan.not_implemented]
        raise NotImplementedError(
            f"experiment {plan.experiment.name} needs methods that are not implemented in this "
            "build:\n" + "\n".join(lines) +
            "\nnothing was run; restrict the experiment with --method to run the others")
    from .training import train
    dev = _resolve_device(device)
    for rp in plan.runs:
        if rp.status == "done":
            log(f"skip training {rp.run.key}: done (epoch {rp.epoch}/{rp.epochs})")
            result.skipped.append(rp.run_dir)
            continue
        log(f"train {rp.run.key}: {rp.status} (epoch {rp.epoch}/{rp.epochs}) -> {rp.run_dir}")
        train(rp.cfg, resume=True)
        rp.status, rp.epoch = run_status(rp.run_dir, rp.epochs)
        result.trained.append(rp.run_dir)
    data = _Datasets()
    _evaluate_all(plan, result, data, dev, batch_size, seed, progress, log)
    for lay in plan.experiment.layouts:
        assemble_table(plan, lay)
        result.tables.append(plan.output_dir / f"{lay}.md")
        log(f"table {lay}: {plan.output_dir / lay}.{{md,csv,json}}")
    for fp in plan.figures:
        fp.status = figure_status(fp, plan.experiment)      # trainings above may have run
        if fp.status == "done":
            log(f"skip figure {fp.figure.name}: up to date")
            result.skipped.extend(fp.outputs)
            continue
        _draw_figure(fp, plan, data, dev, seed, batch_size)
        result.figures.extend(fp.outputs)
        log(f"figure {fp.figure.kind}: " + ", ".join(str(o) for o in fp.outputs))
    _write_summary(plan, result)
    return result


def _evaluate_all(plan, result, data, dev, batch_size, seed, progress, log) -> None:
    from .evaluation import evaluate, write_record
    from .training.checkpoint import load_checkpoint
    surrogates = None
    for ev in plan.evaluations:
        rp = ev.run
        want = plan.experiment.images(ev.suite, plan.n)
        ev.status = record_status(ev.path, want, rp.epochs)
        if ev.status == "done":
            log(f"skip {ev.kind} {ev.suite or ''} of {rp.run.key}: {ev.path} exists")
            result.skipped.append(ev.path)
            continue
        log(f"evaluate {rp.run.key}: {ev.suite or ev.kind} -> {ev.path}")
        if ev.kind == "profile":
            from .evaluation.records import to_jsonable
            doc = profile_run(rp.run_dir, rp.cfg, dev, n=plan.n)
            ev.path.write_text(json.dumps(to_jsonable(doc), indent=2))
            result.evaluated.append(ev.path)
            continue
        model, cfg, meta = load_checkpoint(rp.run_dir, device=dev)
        test = data.test(rp.cfg)
        n = len(test) if want is None else min(want, len(test))
        if ev.kind == "dwdt":
            from .evaluation.suites import load_subset
            X, Y, _ = load_subset(test, n, seed)
            doc = mean_lyapunov_derivative(model, X, Y, batch_size, dev)
            doc.update(size=len(test), epoch=meta.get("epoch"), seed=seed)
            ev.path.write_text(json.dumps(doc, indent=2))
            result.evaluated.append(ev.path)
            continue
        sur = None
        if ev.suite == "strong" and plan.experiment.surrogates:
            if surrogates is None:
                surrogates = [(r.label, load_checkpoint(plan.out / r.key, device=dev)[0])
                              for r in plan.experiment.surrogates]
            sur = surrogates
        record = evaluate(model, test, ev.suite, n=n, seed=seed, batch_size=batch_size, device=dev,
                          surrogate=sur, progress=progress is not False, model_name=rp.run.label,
                          meta=meta, config=cfg, checkpoint=str(meta.get("path", rp.run_dir)),
                          dataset_name=rp.dataset)
        write_record(record, ev.path)
        result.evaluated.append(ev.path)


def _draw_figure(fp: FigurePlan, plan: Plan, data: _Datasets, dev: str, seed: int,
                 batch_size: int) -> None:
    from . import analysis
    opts = dict(fp.figure.options)
    plan.output_dir.mkdir(parents=True, exist_ok=True)
    kind, out = fp.figure.kind, fp.outputs
    if kind == "dynamics":
        analysis.plot_training_dynamics({rp.run.label: rp.run_dir for rp in fp.runs}, out[0],
                                        title=f"{plan.experiment.paper}: training dynamics")
        return
    if kind in ("curves", "loss_weights"):
        pairs = [(rp, _merged_record(rp, plan.experiment.suites)) for rp in fp.runs]
        recs = [rec for _, rec in pairs if rec is not None]
        if kind == "curves":
            analysis.plot_accuracy_vs_eps(recs, out[0])
            analysis.plot_accuracy_vs_severity(recs, out[1])
        else:
            labels = [rp.run.label for rp, rec in pairs if rec is not None]
            rows = analysis.plot_loss_weight_sweep(recs, out[0], labels=labels)
            out[0].with_suffix(".json").write_text(json.dumps(rows, indent=2))
        return
    from .training.checkpoint import load_checkpoint
    if kind == "tsne":
        models = [(rp.run.label, load_checkpoint(rp.run_dir, device=dev)[0]) for rp in fp.runs]
        test = data.test(fp.runs[0].cfg)
        X, Y = analysis.sample_per_class(test, opts.pop("n_per_class", 400), seed=seed)
        summary = analysis.plot_tsne(models, X, Y, out[0], seed=seed, batch_size=batch_size,
                                     device=dev, **opts)
        out[0].with_suffix(".json").write_text(json.dumps(summary, indent=2))
        return
    if kind == "basins":
        import torch
        rp = fp.runs[0]
        model, cfg, _ = load_checkpoint(rp.run_dir, device="cpu")
        test = data.test(rp.cfg)
        X = torch.stack([torch.as_tensor(test[i][0]) for i in range(len(test))])
        Y = torch.as_tensor([int(test[i][1]) for i in range(len(test))])
        bm = analysis.plot_basins(model, out[0], data=(X, Y), rho=cfg.loss.rho, seed=seed, **opts)
        out[0].with_suffix(".json").write_text(json.dumps(bm.summary(), indent=2))
        return
    raise ValueError(f"unknown figure kind {kind!r}")


def _write_summary(plan: Plan, result: ReproduceResult) -> None:
    exp = plan.experiment
    lines = [f"# {exp.paper} — `{exp.name}`\n", exp.description + "\n"]
    for lay in exp.layouts:
        p = plan.output_dir / f"{lay}.md"
        if p.is_file():
            body = p.read_text().split("\n", 1)[1] if p.read_text().startswith("# ") else p.read_text()
            lines.append(f"## {lay}\n{body}")
    for fp in plan.figures:
        for o in fp.outputs:
            if o.is_file():
                lines.append(f"![{fp.figure.name}]({o.name})\n")
    lines.append("## Runs\n")
    lines.append(_markdown(["Method", "Config", "Folder", "Epoch"],
                           [[rp.run.label, rp.run.config, str(rp.run_dir),
                             f"{rp.epoch}/{rp.epochs}"] for rp in plan.runs], text_columns=3))
    plan.output_dir.mkdir(parents=True, exist_ok=True)
    (plan.output_dir / "README.md").write_text("\n".join(lines))


# ============================================================================ CLI
def add_reproduce_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Arguments of ``zubovnet reproduce`` (see :func:`run_reproduce`)."""
    parser.add_argument("experiment", nargs="?", default=None,
                        help="experiment name (see --list)")
    parser.add_argument("--list", action="store_true", help="list the experiments and exit")
    parser.add_argument("--dataset", default=None,
                        help="keep only the runs on this dataset (svhn, cifar10, ...)")
    parser.add_argument("--method", action="append", default=None, metavar="METHOD",
                        help="keep only this method (config stem or label; repeatable)")
    parser.add_argument("--device", default=None,
                        help="cpu, cuda, cuda:N (default: the configs' auto)")
    parser.add_argument("--dry-run", action="store_true", help="print the plan, run nothing")
    parser.add_argument("--n", type=int, default=None,
                        help="test images per evaluation (default: the experiment's; paper "
                             "tables: the whole test split)")
    parser.add_argument("--out", default="runs",
                        help="root of the run folders and tables (default runs)")
    parser.add_argument("--configs", default=None, help="configs folder (default: the project's)")
    parser.add_argument("--data-root", default=None, help="override data.root of every config")
    parser.add_argument("--batch-size", type=int, default=256, help="evaluation batch size")
    parser.add_argument("--seed", type=int, default=0, help="evaluation seed (default 0)")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    return parser


def run_reproduce(args: argparse.Namespace) -> int:
    """Execute ``zubovnet reproduce``; returns the exit code (0 ok, 2 error)."""
    if args.list or not args.experiment:
        width = max(len(e.name) for e in EXPERIMENTS.values())
        for e in EXPERIMENTS.values():
            print(f"{e.name:<{width}}  {e.paper:<22} {e.description}")
        if not args.list:
            print("\nusage: zubovnet reproduce EXPERIMENT [--dry-run] [--dataset D] [--device D] "
                  "[--n N] [--out DIR]", file=sys.stderr)
            return 2
        return 0
    if args.threads:
        import torch
        torch.set_num_threads(args.threads)
    try:
        reproduce(args.experiment, out=args.out, device=args.device, n=args.n,
                  dataset=args.dataset, configs_root=args.configs, methods=args.method,
                  data_root=args.data_root, dry_run=args.dry_run,
                  progress=False if args.no_progress else None, batch_size=args.batch_size,
                  seed=args.seed)
    except NotImplementedError as e:
        print(f"error: not implemented: {e}", file=sys.stderr)
        return 2
    except (KeyError, ValueError, FileNotFoundError) as e:
        msg = e.args[0] if isinstance(e, KeyError) and e.args else e
        print(f"error: {msg}", file=sys.stderr)
        return 2
    return 0


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry point: ``python -m zubovnet.reproduce EXPERIMENT ...``."""
    parser = add_reproduce_arguments(argparse.ArgumentParser(prog="zubovnet reproduce"))
    return run_reproduce(parser.parse_args(argv))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
