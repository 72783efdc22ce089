"""Executing a plan: train every run, evaluate every row, assemble the tables, draw the figures.

:func:`reproduce` (``zubovnet reproduce EXPERIMENT``):

1. **trains** each run of the plan (:mod:`.planner`) into its folder with
   ``train(cfg, resume=True)``: a ``done`` run is skipped, a ``partial`` one resumes from its
   last epoch;
2. **evaluates** each row with each suite into ``RUN/eval_<suite>.json`` (the file ``zubovnet
   eval --suite <suite>`` writes), skipped when the record is ``done``; Table V adds
   ``RUN/lyapunov_derivative.json`` (:func:`zubovnet.analysis.mean_lyapunov_derivative`),
   Table IV ``RUN/profile.json`` (:func:`zubovnet.profile.profile_run`);
3. **assembles** the tables in the paper's layouts (:func:`assemble_table`, the layouts of
   :mod:`zubovnet.evaluation.tables`) as Markdown, CSV and JSON and draws the figures, under
   ``OUT/reproduce/<experiment>/`` with a ``README.md`` summary.

A method that is not in this build stops the experiment before anything runs, with a message
naming it; ``dry_run`` prints the plan and runs nothing.  See ``docs/reproduce.md``.
"""
from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Optional, Sequence

from .catalogue import DATASETS, LAYOUT_SUITES, Experiment
from .planner import (FigurePlan, Plan, RunPlan, figure_status, format_plan, plan_experiment,
                      record_status, run_status)

__all__ = ["ReproduceResult", "reproduce", "assemble_table"]


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
    from ..evaluation.tables import layout_columns, layout_note, render_layout
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
        md.append(render_layout(sub, layout, [c["run"].run.label for c in sub]))
    note = layout_note(ctxs, layout)
    if note:
        md.append(note)
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
        from ..data import build_datasets
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
    from ..training import train
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
    from ..evaluation import evaluate, write_record
    from ..training.checkpoint import load_checkpoint
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
            from ..evaluation.records import to_jsonable
            from ..profile import profile_run
            doc = profile_run(rp.run_dir, rp.cfg, dev, n=plan.n)
            ev.path.write_text(json.dumps(to_jsonable(doc), indent=2))
            result.evaluated.append(ev.path)
            continue
        model, cfg, meta = load_checkpoint(rp.run_dir, device=dev)
        test = data.test(rp.cfg)
        n = len(test) if want is None else min(want, len(test))
        if ev.kind == "dwdt":
            from ..analysis.lyapunov_rate import mean_lyapunov_derivative
            from ..evaluation.suites import load_subset
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
    from .. import analysis
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
    from ..training.checkpoint import load_checkpoint
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
    from ..evaluation.tables import markdown_table
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
    lines.append(markdown_table(["Method", "Config", "Folder", "Epoch"],
                                [[rp.run.label, rp.run.config, str(rp.run_dir),
                                  f"{rp.epoch}/{rp.epochs}"] for rp in plan.runs],
                                text_columns=3))
    plan.output_dir.mkdir(parents=True, exist_ok=True)
    (plan.output_dir / "README.md").write_text("\n".join(lines))
