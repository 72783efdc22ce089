"""The tables of the Fashion-MNIST study at a real budget, from its committed records only:

    python scripts/fashion_mnist_study_report.py [--records DIR] [--markdown FILE.md]

reads ``DIR/<model>_<suite>.json`` (default ``docs/results/fashion_mnist_study``, written by
``scripts/fashion_mnist_full_study.sh eval``) and prints — or writes between the
``fashion_mnist_study`` markers of ``FILE.md`` — which model has which record, the paper's
Tables I–III, the rigorous table with its verdicts, the alignment and certified-radius tables,
and Zubov-Net's deltas over the Neural ODE next to the paper's CIFAR-10 deltas.  Every table
names the ``zubovnet table`` command that renders it from the same records; a model without a
record is listed as such, never estimated.
"""
from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from _doc_section import write_section  # noqa: E402
from zubovnet.evaluation.records import merge_records  # noqa: E402
from zubovnet.evaluation.tables import render_table, table_columns  # noqa: E402

#: (config stem of configs/fashion_mnist/study/, label), in the paper's row order
MODELS = (("cnn", "CNN"), ("neural_ode", "Neural ODE"), ("projnode", "Proj-NODE"),
          ("sodef", "SODEF"), ("fxts", "FxTS-Net"), ("lyanet", "LyaNet"),
          ("paper_literal", "Zubov-Net (paper-literal)"), ("zubovnet", "Zubov-Net"),
          ("neural_ode_pgd_at", "Neural ODE + PGD-AT"),
          ("neural_ode_trades", "Neural ODE + TRADES"), ("zubovnet_trades", "Zubov-Net (TRADES)"))
SUITES = ("clean", "corruptions", "attacks", "strong", "rigorous", "alignment", "certify")
#: (table title, layout, suites whose records it reads)
TABLES = (("Table I — corruptions (n = 1,000; each corruption: mean over severities 1–5)",
           "table1", ("corruptions",)),
          ("Table II — white-box attacks, paper protocol (n = 1,000; 10 steps, step ε/8)",
           "table2", ("attacks",)),
          ("Table III — transfer, query and AutoAttack at 16/255 (n = 500)", "table3",
           ("strong",)),
          ("Rigorous protocol at 8/255 (n = 500) with every verdict", "rigorous", ("rigorous",)),
          ("Alignment of the PRoAs with the flow's basins", "alignment",
           ("alignment", "rigorous", "corruptions")))
#: the paper's CIFAR-10 deltas of Zubov-Net over the Neural ODE (Tables I and II), points
PAPER_DELTAS = {"clean": -0.16, "noise average": 4.21, "attack average": 16.36}


def load(records_dir: Path) -> dict[str, dict[str, dict]]:
    """``{stem: {suite: record}}`` of the records present, each renamed to its label."""
    out: dict[str, dict[str, dict]] = {}
    for stem, label in MODELS:
        for suite in SUITES:
            p = records_dir / f"{stem}_{suite}.json"
            if p.is_file():
                rec = json.loads(p.read_text())
                rec["model"] = {**rec.get("model", {}), "name": label}
                out.setdefault(stem, {})[suite] = rec
    return out


def status_table(records: dict) -> str:
    lines = ["| model | " + " | ".join(SUITES) + " |", "|---|" + ":---:|" * len(SUITES)]
    for stem, label in MODELS:
        have = records.get(stem, {})
        lines.append(f"| {label} | " + " | ".join("✓" if s in have else "—" for s in SUITES)
                     + " |")
    return "\n".join(lines)


def training_table(records_dir: Path) -> str:
    """Epochs trained, last validation accuracy and training seconds of each kept run
    (``DIR/in_progress/<model>/metrics.csv``, written by the study script's ``stash``)."""
    lines = ["| model | epochs trained | last validation accuracy | training time (s, sum) |",
             "|---|---:|---:|---:|"]
    for stem, label in MODELS:
        p = records_dir / "in_progress" / stem / "metrics.csv"
        if not p.is_file():
            lines.append(f"| {label} | — | — | — |")
            continue
        rows = list(csv.DictReader(p.open()))
        val = next((r["val_acc"] for r in reversed(rows) if r.get("val_acc")), None)
        secs = sum(float(r["train_time"]) for r in rows if r.get("train_time"))
        lines.append(f"| {label} | {rows[-1]['epoch'] if rows else 0} | "
                     f"{'—' if val is None else f'{100 * float(val):.2f} %'} | {secs:.0f} |")
    return "\n".join(lines)


def certify_table(records: dict) -> str:
    lines = ["| model | n | ε | certified accuracy | median radius | L_φ | AR@10T |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for stem, label in MODELS:
        rec = records.get(stem, {}).get("certify")
        for key, e in sorted((rec or {}).get("results", {}).items()):
            if key.startswith("certify@"):
                lines.append(f"| {label} | {e['n']} | {e['eps_label']} | "
                             f"{100 * e['accuracy']:.1f} % | {e['median_radius']:.3g} | "
                             f"{e['L_phi']:.3g} | {e['alignment_rate_10T']:.3f} |")
    return "\n".join(lines)


def _acc(rec: dict | None, key: str):
    e = (rec or {}).get("results", {}).get(key)
    return None if e is None else e.get("accuracy")


def headline(records: dict) -> str:
    """One row per model: the paper protocol's three averages, reference AutoAttack at 16/255,
    the rigorous worst case at 8/255 with its FLAGs, AR@10T and certified accuracy at 8/255."""
    t1, t2 = dict(table_columns("table1")), dict(table_columns("table2"))
    t3, rig = dict(table_columns("table3")), dict(table_columns("rigorous"))
    lines = ["| model | clean | noise avg (T. I) | attack avg (T. II) | AutoAttack 16/255 "
             "(T. III) | rigorous worst 8/255 | rigorous FLAGs | AR@10T | certified 8/255 |",
             "|---|---:|---:|---:|---:|---:|---|---:|---:|"]

    def pct(v):
        return "—" if v is None else f"{100 * v:.2f}"
    for stem, label in MODELS:
        r = records.get(stem)
        if not r:
            continue
        cells = [t1["Clean"](r["corruptions"]) if "corruptions" in r else _acc(r.get("clean"),
                                                                                "clean"),
                 t1["Avg"](r["corruptions"]) if "corruptions" in r else None,
                 t2["Avg"](r["attacks"]) if "attacks" in r else None,
                 t3["AA"](r["strong"]) if "strong" in r else None,
                 rig["Worst case"](r["rigorous"]) if "rigorous" in r else None]
        flags = [v["check"] for v in r.get("rigorous", {}).get("verdicts", [])
                 if v.get("status") == "FLAG"]
        ar = _acc(r.get("alignment"), "alignment/ar@10T")
        cert = _acc(r.get("certify"), "certify@8/255")
        lines.append(f"| {label} | " + " | ".join(pct(c) for c in cells) + " | "
                     + (", ".join(flags) if flags else ("none" if "rigorous" in r else "—"))
                     + f" | {pct(ar)} | {pct(cert)} |")
    return "\n".join(lines)


def deltas(records: dict) -> str:
    """Zubov-Net − Neural ODE under both protocols, beside the paper's CIFAR-10 deltas."""
    t1, t2 = dict(table_columns("table1")), dict(table_columns("table2"))
    rig = dict(table_columns("rigorous"))
    z, n = records.get("zubovnet", {}), records.get("neural_ode", {})
    rows = (("clean", "corruptions", t1["Clean"], PAPER_DELTAS["clean"]),
            ("noise average (Table I Avg)", "corruptions", t1["Avg"],
             PAPER_DELTAS["noise average"]),
            ("attack average (Table II Avg)", "attacks", t2["Avg"],
             PAPER_DELTAS["attack average"]),
            ("rigorous worst case at 8/255", "rigorous", rig["Worst case"], None))
    lines = ["| Zubov-Net − Neural ODE (points) | this study | paper, CIFAR-10 |",
             "|---|---:|---:|"]
    for name, suite, get, paper in rows:
        a = get(z[suite]) if suite in z else None
        b = get(n[suite]) if suite in n else None
        ours = "— (record missing)" if a is None or b is None else f"{100 * (a - b):+.2f}"
        lines.append(f"| {name} | {ours} | {'—' if paper is None else f'{paper:+.2f}'} |")
    return "\n".join(lines)


def report(records_dir: Path) -> str:
    records = load(records_dir)
    rel = records_dir.relative_to(ROOT) if records_dir.is_relative_to(ROOT) else records_dir
    parts = [f"Records: `{rel}/<model>_<suite>.json`; rendered by "
             f"`python scripts/fashion_mnist_study_report.py`.", "",
             "**Headline** (every cell from the records below; % of the images each suite "
             "names)", "", headline(records), "",
             "Training (3,000 validation images; runs kept by the study script's `stash`):", "",
             training_table(records_dir), "", "Records present:", "",
             status_table(records), ""]
    for title, layout, suites in TABLES:
        rows = merge_records(records[stem][s] for stem, _ in MODELS if stem in records
                             for s in suites if s in records[stem])
        files = " ".join(f"{rel}/*_{s}.json" for s in suites)
        parts += [f"**{title}** — `zubovnet table {files} --layout {layout}`", ""]
        parts.append(render_table(rows, layout, bold_best=True).rstrip() if rows else
                     "(no record yet)")
        parts.append("")
    parts += ["**Certified accuracy (Prop. 6)**", "", certify_table(records), "",
              "**Zubov-Net's deltas over the Neural ODE**", "", deltas(records)]
    return "\n".join(parts)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--records", default=str(ROOT / "docs/results/fashion_mnist_study"))
    p.add_argument("--markdown", default=None, help="write between this file's markers")
    p.add_argument("--label", default=None, metavar="STEM",
                   help="print the table label of one config stem and exit (used by the figures)")
    a = p.parse_args(argv)
    if a.label is not None:
        print(dict(MODELS).get(a.label, a.label))
        return 0
    text = report(Path(a.records).resolve())
    print(text)
    if a.markdown:
        write_section(a.markdown, "fashion_mnist_study", "The study at 12,000 steps", text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
