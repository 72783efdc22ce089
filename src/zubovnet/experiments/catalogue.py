"""The experiment catalogue: one :class:`Experiment` per table and figure of the paper.

An experiment is a grid of runs (one YAML file of ``configs/`` each, a :class:`Run`), the
evaluation suites applied to every row, the table layouts assembled from the records (see
:data:`LAYOUT_SUITES` and :func:`zubovnet.evaluation.tables.layout_columns`) and the figures
drawn (:class:`Figure`).  Entries are declarative: :func:`register_experiment` only checks them
and adds them to :data:`EXPERIMENTS`; planning is :mod:`.planner`, running :mod:`.runner`.

Runs are shared between experiments (Table I and Table II use the same models; the "Ours" row
of Tables V and VI is the Table I Zubov-Net), so each model is trained and evaluated once.
See ``docs/reproduce.md``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

__all__ = ["Run", "Figure", "Experiment", "EXPERIMENTS", "LAYOUT_SUITES", "DATASETS",
           "TABLE12_METHODS", "register_experiment", "get_experiment", "list_experiments"]


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
        stems = (("paper_literal", "paper-literal (the paper's objective)"),
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
