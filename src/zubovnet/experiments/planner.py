"""Planning and status: what an experiment runs, what is done already and what is skipped.

:func:`plan_experiment` resolves an :class:`~.catalogue.Experiment` into a :class:`Plan` — one
:class:`RunPlan` per training run (``OUT/<config path without .yaml>``, the folder ``zubovnet
train`` uses too), one :class:`EvalPlan` per evaluation record and one :class:`FigurePlan` per
figure — each with its current status read from small JSON files only:

* a run is ``done`` when ``checkpoints/latest.json`` records ``epoch == train.epochs``,
  ``partial`` when it records fewer (training resumes), ``todo`` without it
  (:func:`run_status`); a method missing from this build is ``NOT IMPLEMENTED``
  (:func:`missing_methods`);
* an evaluation record (``RUN/eval_<suite>.json``; the extras ``RUN/lyapunov_derivative.json``
  of Table V and ``RUN/profile.json`` of Table IV) is ``done`` when it belongs to the final
  epoch and covers at least the requested number of test images, ``stale (...)`` otherwise
  (:func:`record_status`);
* a figure is ``stale`` when a checkpoint or record it reads is newer than it
  (:func:`figure_status`).

:func:`format_plan` prints the plan (``zubovnet reproduce EXPERIMENT --dry-run``).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

from .catalogue import Experiment, Figure, Run, get_experiment

__all__ = ["RunPlan", "EvalPlan", "FigurePlan", "Plan", "plan_experiment", "format_plan",
           "run_status", "record_status", "figure_status", "missing_methods",
           "default_configs_root"]


# ============================================================================ status
def default_configs_root() -> Path:
    """The project's ``configs/`` folder (next to ``src/``), else ``./configs``."""
    here = Path(__file__).resolve().parents[3] / "configs"
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
    from ..models import available_models
    from ..training.objectives import available_objectives
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
    from ..config import load_config
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
