"""Every table layout: the paper's Tables I–VI and Fig. 4, the rigorous and alignment ones.

``render_table(records, layout)`` takes any list of records (:mod:`.records`) and returns a
Markdown table, one row per record (its model name); a number a record lacks is shown as
"—".  Accuracies are printed in percent with two decimals, as in the paper.

=========== ==============================================================================
``table1``  Clean, Gaussian, Glass, Shot, Impulse, Speckle, Motion, Brightness, Contrast, Avg
            (each corruption: mean over severities 1–5; Avg: mean of the eight)
``table2``  FGSM, PGD, BIM, APGD, Jitter at 8/255 and 16/255, Avg (of the ten), in the
            column order of the paper's Table II
``table3``  Orig, VNI, Square, AA (16/255)
``rigorous`` the rigorous numbers (one row per record) followed by every verdict
            (one row per record and check)
``alignment`` clean, corruption mean, rigorous worst case, AR at T / 3T / 10T, the nearest
            variant at 10T, trajectory containment (Prop. 5), mean dW/dt (Table V), max
            ‖f(c_i)‖, the paper's l_con on test trajectories and training time — records of one model (its suites'
            files) are merged by model name first
``certified`` clean, corruption mean, rigorous worst case, AR@10T, the reverse inclusion
            (``h(0)`` of correct points in their region; RoA ⊂ PRoA), certified accuracy in
            L2 and L∞ at every radius of the records, the certificate (unconditional or
            conditional) and training seconds per step — merged by model name, the record
            with more images winning where both hold a key
=========== ==============================================================================

Run-folder layouts (``zubovnet reproduce``, ``docs/reproduce.md``): :func:`layout_columns`
gives the columns of the paper's Tables I–VI and Fig. 4 as ``(header, getter(ctx), kind)``,
read from a row *context* ``ctx = {"record": merged evaluation record or None, "dwdt":
RUN/lyapunov_derivative.json or None, "profile": RUN/profile.json or None}``;
:func:`render_layout` writes a group of such rows as Markdown.

=========== ==============================================================================
``table1-3`` the columns above (:func:`table_columns`), rendered by :func:`render_table`
``table4``  Params (M), Train Time/Epoch (s), Train Memory (GB), Inference Time/Epoch (s)
            (from ``profile.json``; memory on CUDA only)
``table5``  Orig, Gauss, Glass, Shot, Speckle, Motion, FGSM, PGD, BIM, APGD, Jitter (8/255),
            Avg (of the ten robust numbers), dW/dt (from ``lyapunov_derivative.json``),
            AR@10T
``table6``  Orig, Gaussian, Glass, Shot, Speckle, Motion, FGSM, BIM, PGD, APGD, Jitter
            (8/255), Avg
``fig4``    Overall, Noise, Adversarial, Clean (:func:`zubovnet.analysis.category_scores`)
``alignment`` the alignment columns above, in percent with two decimals, plus dW/dt
=========== ==============================================================================
"""
from __future__ import annotations

from typing import Callable, Iterable, Optional

__all__ = ["LAYOUTS", "TABLE1_CORRUPTIONS", "TABLE2_ATTACKS", "render_table", "table_columns",
           "format_summary", "layout_columns", "format_cell", "markdown_table", "render_layout",
           "layout_note"]

DASH = "—"
LAYOUTS = ("table1", "table2", "table3", "rigorous", "alignment", "certified")
TABLE1_CORRUPTIONS = (("Gaussian", "gaussian_noise"), ("Glass", "glass_blur"),
                      ("Shot", "shot_noise"), ("Impulse", "impulse_noise"),
                      ("Speckle", "speckle_noise"), ("Motion", "motion_blur"),
                      ("Brightness", "brightness"), ("Contrast", "contrast"))
TABLE2_ATTACKS = (("FGSM", "fgsm"), ("PGD", "pgd"), ("BIM", "bim"), ("APGD", "apgd"),
                  ("Jitter", "jitter"))
TABLE2_EPS = ("8/255", "16/255")
RIGOROUS_COLUMNS = (("Clean", "clean"), ("PGD-10", "rigorous/pgd_paper"),
                    ("AutoAttack", "rigorous/autoattack"), ("PGD-DLR", "rigorous/pgd_margin"),
                    ("PGD-CW", "rigorous/pgd_cw"),
                    ("APGD-CE", "rigorous/apgd"), ("Square", "rigorous/square"),
                    ("PGD-RK4", "rigorous/pgd_margin_rk4"), ("Worst case", "rigorous/worst_case"),
                    ("Acc@large eps", "rigorous/large_eps"))

Getter = Callable[[dict], Optional[float]]


def _acc(key: str) -> Getter:
    def get(rec: dict) -> Optional[float]:
        e = rec.get("results", {}).get(key)
        return None if e is None else e.get("accuracy")
    return get


def _rigorous_pgd_paper(rec: dict) -> Optional[float]:
    got = _acc("rigorous/pgd_paper")(rec)
    if got is not None:
        return got
    eps = (rec.get("settings") or {}).get("rigorous", {}).get("eps")
    if eps is None:
        return None
    from .attacks import eps_label
    return _acc(f"pgd@{eps_label(eps)}")(rec) if "rigorous" in rec.get("suites", {}) else None


def _mean(getters: list[Getter]) -> Getter:
    def get(rec: dict) -> Optional[float]:
        vals = [g(rec) for g in getters]
        return None if any(v is None for v in vals) else sum(vals) / len(vals)
    return get


def table_columns(layout: str) -> list[tuple[str, Getter]]:
    """``[(header, getter(record) -> accuracy fraction or None), ...]`` of a numeric layout."""
    if layout == "table1":
        cols = [("Clean", _acc("clean"))]
        cors = [(h, _acc(f"corruption/{k}")) for h, k in TABLE1_CORRUPTIONS]
        return cols + cors + [("Avg", _mean([g for _, g in cors]))]
    if layout == "table2":
        cols = [(f"{h} {e}", _acc(f"{k}@{e}")) for h, k in TABLE2_ATTACKS for e in TABLE2_EPS]
        return cols + [("Avg", _mean([g for _, g in cols]))]
    if layout == "table3":
        return [("Orig", _acc("clean")), ("VNI", _acc("vnifgsm@16/255")),
                ("Square", _acc("square@16/255")), ("AA", _acc("autoattack@16/255"))]
    if layout == "rigorous":
        return [(h, _rigorous_pgd_paper if k == "rigorous/pgd_paper" else _acc(k))
                for h, k in RIGOROUS_COLUMNS]
    raise ValueError(f"unknown layout {layout!r}; choose from {', '.join(LAYOUTS)}")


def _fmt(v: Optional[float], digits: int) -> str:
    return DASH if v is None else f"{100 * v:.{digits}f}"


def _cell(text) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _md(header: list[str], rows: list[list[str]], align_right_from: int = 1) -> str:
    sep = ["---" if i < align_right_from else "---:" for i in range(len(header))]
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(sep) + " |"]
    lines += ["| " + " | ".join(_cell(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def _name(rec: dict) -> str:
    return (rec.get("model") or {}).get("name") or "?"


def _numbers(nums: dict, limit: int = 4) -> str:
    parts = []
    for k, v in (nums or {}).items():
        if isinstance(v, float):
            parts.append(f"{k}={v:.4g}")
        elif isinstance(v, (int, bool, str)) or v is None:
            parts.append(f"{k}={v}")
        if len(parts) >= limit:
            break
    return ", ".join(parts)


def _entry(rec: dict, key: str, field: str):
    e = rec.get("results", {}).get(key)
    return None if e is None else e.get(field)


def _corruption_mean(rec: dict) -> Optional[float]:
    return _mean([_acc(f"corruption/{k}") for _, k in TABLE1_CORRUPTIONS])(rec)


def _num(v, fmt: str) -> str:
    return DASH if v is None else format(v, fmt)


def render_alignment_table(records: Iterable[dict]) -> str:
    """The alignment layout (module docstring): accuracies and rates in percent."""
    from .records import merge_records
    header = ["Model", "Clean", "Corr. mean", "Worst case", "AR@T", "AR@3T", "AR@10T",
              "Nearest@10T", "Containment", "mean dW/dt", "max ‖f(c_i)‖", "L_con (test)",
              "train time (s)"]
    rows = []
    for r in merge_records(records):
        rows.append([_name(r), _fmt(_acc("clean")(r), 1), _fmt(_corruption_mean(r), 1),
                     _fmt(_acc("rigorous/worst_case")(r), 1),
                     _fmt(_acc("alignment/ar@1T")(r), 1), _fmt(_acc("alignment/ar@3T")(r), 1),
                     _fmt(_acc("alignment/ar@10T")(r), 1),
                     _fmt(_entry(r, "alignment/ar@10T", "nearest"), 1),
                     _fmt(_acc("alignment/containment")(r), 1),
                     _num(_entry(r, "alignment/containment", "mean_dW_dt"), ".3f"),
                     _num(_entry(r, "alignment/ar@10T", "max_f_norm"), ".3f"),
                     _num(_entry(r, "alignment/containment", "l_con_test"), ".3g"),
                     _num((r.get("model") or {}).get("train_time_s"), ".0f")])
    return _md(header, rows) + "\n"


def _steps(rec: dict) -> Optional[int]:
    t = (rec.get("config") or {}).get("train") or {}
    if t.get("epochs") and t.get("max_steps_per_epoch"):
        return int(t["epochs"]) * int(t["max_steps_per_epoch"])
    return None


def render_certified_table(records: Iterable[dict]) -> str:
    """The certified layout (module docstring)."""
    from .records import merge_records
    ordered = sorted(records, key=lambda r: (r.get("data") or {}).get("n") or 0)
    merged = merge_records(ordered)
    l2, linf = [], []
    for r in merged:
        for k, e in r.get("results", {}).items():
            if k.startswith("certify/l2@") and e.get("eps") not in [x[0] for x in l2]:
                l2.append((e.get("eps"), k[len("certify/l2@"):]))
            if k.startswith("certify/linf@") and e.get("eps") not in [x[0] for x in linf]:
                linf.append((e.get("eps"), k[len("certify/linf@"):]))
    l2.sort(key=lambda t: t[0])
    linf.sort(key=lambda t: t[0])
    header = (["Model", "Clean", "Corr. mean", "Worst case", "AR@10T", "h(0) in region",
               "RoA ⊂ PRoA"] + [f"L2 {lab}" for _, lab in l2] +
              [f"L∞ {lab}" for _, lab in linf] + ["Certificate", "s/step"])
    rows = []
    for r in merged:
        cert = (r.get("certify") or {}).get("certificate")
        tt, st = (r.get("model") or {}).get("train_time_s"), _steps(r)
        rows.append([_name(r), _fmt(_acc("clean")(r), 1), _fmt(_corruption_mean(r), 1),
                     _fmt(_acc("rigorous/worst_case")(r), 1),
                     _fmt(_acc("alignment/ar@10T")(r), 1),
                     _fmt(_acc("alignment/reverse@h0")(r), 1),
                     _fmt(_acc("alignment/roa_in_proa")(r), 1)]
                    + [_fmt(_acc(f"certify/l2@{lab}")(r), 1) for _, lab in l2]
                    + [_fmt(_acc(f"certify/linf@{lab}")(r), 1) for _, lab in linf]
                    + [cert or DASH, _num(tt / st if (tt and st) else None, ".2f")])
    return _md(header, rows) + "\n"


def _mark(rec: dict, layout: str, header: str) -> str:
    """The mark of an AutoAttack cell: ``"†"`` where its run was not the reference
    configuration, ``"‡"`` where the reference raised one of its own warnings (the
    ``autoattack`` check FLAGs; ``docs/evaluation.md``), ``""`` otherwise."""
    key = {"table3": {"AA": "autoattack@16/255"},
           "rigorous": {"AutoAttack": "rigorous/autoattack"}}.get(layout, {}).get(header)
    if key is None:
        return ""
    e = rec.get("results", {}).get(key) or {}
    settings = e.get("attack_settings") or {}
    if settings.get("reference") is False:
        return "†"
    return "‡" if settings.get("warnings") else ""


def render_table(records: Iterable[dict], layout: str, digits: int = 2,
                 bold_best: bool = False) -> str:
    """Markdown table of ``records`` in ``layout`` (``table1|table2|table3|rigorous``).

    One row per record, named by ``record["model"]["name"]``; missing cells "—"; values in
    percent with ``digits`` decimals; ``bold_best`` bolds each column's maximum (not in the
    rigorous layout, where lower is not "worse").
    """
    records = list(records)
    if layout == "alignment":
        return render_alignment_table(records)
    if layout == "certified":
        return render_certified_table(records)
    cols = table_columns(layout)
    header = ["Model"] + [h for h, _ in cols]
    values = [[g(r) for _, g in cols] for r in records]
    best = []
    for j in range(len(cols)):
        col = [v[j] for v in values if v[j] is not None]
        best.append(max(col) if col else None)
    marks = [[_mark(r, layout, h) for h, _ in cols] for r in records]
    rows = []
    for r, vals, mk in zip(records, values, marks):
        cells = []
        for j, v in enumerate(vals):
            c = _fmt(v, digits) + (mk[j] if v is not None else "")
            if (bold_best and layout != "rigorous" and v is not None and v == best[j]
                    and len(records) > 1):
                c = f"**{c}**"
            cells.append(c)
        rows.append([_name(r)] + cells)
    out = _md(header, rows)
    used = {m for mk in marks for m in mk if m}
    if "†" in used:
        out += ("\n† not the reference AutoAttack (the torchattacks fallback, a changed "
                "Square budget or a subset of its components; the autoattack check names what "
                "ran): not comparable with published AutoAttack numbers.\n")
    if "‡" in used:
        out += ("\n‡ the reference AutoAttack raised a warning of its own on this run (the "
                "autoattack check FLAGs and its reason quotes it): read the number as an upper "
                "bound that a stronger or adaptive attack may lower.\n")
    if layout == "rigorous":
        vrows = []
        for r in records:
            for v in r.get("verdicts", []):
                vrows.append([_name(r), v.get("suite", ""), v.get("check", ""),
                              v.get("status", ""), _numbers(v.get("numbers", {})),
                              v.get("reason", "")])
        out += "\n\n" + _md(["Model", "Suite", "Check", "Verdict", "Numbers", "Reason"], vrows,
                            align_right_from=99)
    return out + "\n"


# --------------------------------------------------------------------------- run-folder layouts
CtxGetter = Callable[[dict], Optional[float]]

TABLE56_CORRUPTIONS = (("Gauss", "gaussian_noise"), ("Glass", "glass_blur"),
                       ("Shot", "shot_noise"), ("Speckle", "speckle_noise"),
                       ("Motion", "motion_blur"))
TABLE6_ATTACKS = (("FGSM", "fgsm"), ("BIM", "bim"), ("PGD", "pgd"), ("APGD", "apgd"),
                  ("Jitter", "jitter"))


def _on_record(get: Getter) -> CtxGetter:
    """A record getter applied to a row context's merged record (``{}`` when missing)."""
    return lambda ctx: get(ctx["record"] or {})


def _on_extra(name: str, key: str) -> CtxGetter:
    return lambda ctx: (ctx.get(name) or {}).get(key)


def _entry_of(key: str, field: str) -> CtxGetter:
    return _on_record(lambda rec: _entry(rec, key, field))


def layout_columns(layout: str) -> list[tuple[str, CtxGetter, str]]:
    """``[(header, getter(ctx), kind)]`` of ``layout``; ``kind`` is ``pct`` (a fraction printed
    in percent) or ``num``; ``ctx`` holds the row's merged ``record`` and its extras
    (module docstring)."""
    if layout in ("table1", "table2", "table3"):
        return [(h, _on_record(g), "pct") for h, g in table_columns(layout)]
    if layout in ("table5", "table6"):
        attacks = TABLE2_ATTACKS if layout == "table5" else TABLE6_ATTACKS
        corr = (TABLE56_CORRUPTIONS if layout == "table5"
                else (("Gaussian", "gaussian_noise"),) + TABLE56_CORRUPTIONS[1:])
        robust = [(h, _on_record(_acc(f"corruption/{k}")), "pct") for h, k in corr]
        robust += [(h, _on_record(_acc(f"{k}@8/255")), "pct") for h, k in attacks]
        cols = [("Orig", _on_record(_acc("clean")), "pct")] + robust
        cols.append(("Avg", _mean([g for _, g, _ in robust]), "pct"))
        if layout == "table5":
            cols.append(("dW/dt", _on_extra("dwdt", "mean_dWdt"), "num"))
            cols.append(("AR@10T", _on_record(_acc("alignment/ar@10T")), "pct"))
        return cols
    if layout == "alignment":
        return [("Clean", _on_record(_acc("clean")), "pct"),
                ("Corr. mean", _on_record(_corruption_mean), "pct"),
                ("Worst case", _on_record(_acc("rigorous/worst_case")), "pct"),
                ("AR@T", _on_record(_acc("alignment/ar@1T")), "pct"),
                ("AR@3T", _on_record(_acc("alignment/ar@3T")), "pct"),
                ("AR@10T", _on_record(_acc("alignment/ar@10T")), "pct"),
                ("Nearest@10T", _entry_of("alignment/ar@10T", "nearest"), "pct"),
                ("Containment", _on_record(_acc("alignment/containment")), "pct"),
                ("dW/dt", _entry_of("alignment/containment", "mean_dW_dt"), "num"),
                ("max ‖f(c_i)‖", _entry_of("alignment/ar@10T", "max_f_norm"), "num"),
                ("L_con (test)", _entry_of("alignment/containment", "l_con_test"), "num"),
                ("Train time (s)", _on_record(lambda rec: (rec.get("model") or {})
                                              .get("train_time_s")), "num")]
    if layout == "table4":
        return [("Params (M)", _on_extra("profile", "params_M"), "num"),
                ("Train Time/Epoch (s)", _on_extra("profile", "train_time_per_epoch_s"), "num"),
                ("Train Memory (GB)", _on_extra("profile", "train_memory_GB"), "num"),
                ("Inference Time/Epoch (s)",
                 _on_extra("profile", "inference_time_per_epoch_s"), "num")]
    if layout == "fig4":
        from ..analysis.loss_weights import category_scores
        return [(h, (lambda k: _on_record(lambda rec: category_scores(rec)[k]))(k), "pct")
                for h, k in (("Overall", "overall"), ("Noise", "noise"),
                             ("Adversarial", "adversarial"), ("Clean", "clean"))]
    raise ValueError(f"unknown layout {layout!r}")


def format_cell(v: Optional[float], kind: str) -> str:
    """A cell of :func:`layout_columns`: ``pct`` in percent with two decimals, ``num`` with
    four significant digits (one decimal from 1000 on), "—" when missing."""
    if kind == "pct":
        return _fmt(v, 2)
    if v is None:
        return DASH
    return f"{v:.4g}" if abs(v) < 1000 else f"{v:.1f}"


def markdown_table(header: list[str], rows: list[list[str]], text_columns: int = 1) -> str:
    """A Markdown table; the first ``text_columns`` columns left-aligned, the rest right."""
    return _md(header, rows, align_right_from=text_columns) + "\n"


def render_layout(contexts: list[dict], layout: str, labels: list[str]) -> str:
    """Markdown of the row ``contexts`` (named ``labels``) in ``layout``: Tables I–III through
    :func:`render_table` (best value of each column in bold), the others one row per context
    with :func:`format_cell`; Fig. 4's first column names the loss weights."""
    if layout in ("table1", "table2", "table3"):
        recs = [c["record"] or {"model": {"name": label}, "results": {}}
                for c, label in zip(contexts, labels)]
        return render_table(recs, layout, bold_best=True)
    cols = layout_columns(layout)
    first = "Loss weights (λ1, λ2, λ3)" if layout == "fig4" else "Method"
    header = [first] + [h for h, _, _ in cols]
    rows = [[label] + [format_cell(g(c), k) for _, g, k in cols]
            for c, label in zip(contexts, labels)]
    return markdown_table(header, rows)


def layout_note(contexts: list[dict], layout: str) -> Optional[str]:
    """The footnote of ``layout`` for these rows (Table IV without a memory figure), or None."""
    if layout == "table4" and any((c["profile"] or {}).get("train_memory_GB") is None
                                  for c in contexts):
        return "\nTraining memory is measured on CUDA only (— on CPU).\n"
    return None


# --------------------------------------------------------------------------- console
_VERDICT_FOR = {"large_eps": "rigorous/large_eps", "square_vs_apgd": "rigorous/square",
                "aligned_stability": "alignment/ar@10T",
                "weak_vs_strong": "rigorous/worst_case", "rk4_attack": "rigorous/pgd_margin_rk4"}


def format_summary(record: dict, digits: int = 2) -> str:
    """Plain-text summary: every number with its sample count and, where a check belongs to a
    number, its verdict beside it; then every verdict."""
    m = record.get("model", {})
    head = f"{m.get('name')} ({m.get('class')}, {m.get('parameters') or 0:,} parameters)"
    if m.get("checkpoint"):
        head += f"  checkpoint: {m['checkpoint']}"
    lines = [head]
    if record.get("solver"):
        sv = record["solver"][0]
        lines.append(f"  solver: {sv.get('solver')} rtol={sv.get('rtol')} atol={sv.get('atol')} "
                     f"T={sv.get('T')} adjoint={sv.get('adjoint')}")
    beside: dict[str, dict] = {}
    for v in record.get("verdicts", []):
        key = _VERDICT_FOR.get(v["check"])
        if v["check"] == "autoattack":
            key = "rigorous/autoattack" if v.get("suite") == "rigorous" else "autoattack@16/255"
        if key:
            beside[key] = v
    width = max([len(k) for k in record.get("results", {})] + [10])
    for key, e in record.get("results", {}).items():
        acc = e.get("accuracy")
        txt = e.get("status") if acc is None else f"{100 * acc:6.{digits}f}%"
        count = (f"{e['images']}x{len(e['per_severity'])}" if e.get("images") and
                 e.get("per_severity") else e.get("n"))
        line = f"  {key:<{width}}  {txt}  (n={count})"
        if e.get("per_severity"):
            line += "  per severity: " + " ".join(
                f"{100 * a:.1f}" if a is not None else DASH for a in e["per_severity"].values())
        if key in beside:
            v = beside[key]
            line += f"  [{v['status']}] {v['reason']}"
        lines.append(line)
    lines.append("  verdicts:")
    for v in record.get("verdicts", []):
        lines.append(f"    [{v['status']}] {v.get('suite', '')}/{v['check']}: {v['reason']}")
    walls = record.get("wall_time_s", {})
    lines.append("  wall time: " + ", ".join(f"{k} {t:.1f}s" for k, t in walls.items()
                                              if isinstance(t, (int, float))))
    return "\n".join(lines)
