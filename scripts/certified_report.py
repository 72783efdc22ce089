"""The certified-regions tables (docs/certified.md), from committed records only:

    python scripts/certified_report.py [--markdown docs/certified.md]

reads ``docs/results/certified/<model>_{main,rigorous}.json`` (``scripts/certified_ablation.sh
eval``; the ablation at 2,400 steps) and ``docs/results/fashion_mnist_study/<model>_*.json``
(the certified models at the study's 12,000 steps), renders each group with ``zubovnet table
--layout certified`` and prints it, or writes it between the ``certified_results`` markers of
the document.  A model without a record is listed as such, never estimated.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from _doc_section import write_section  # noqa: E402
from zubovnet.evaluation.tables import render_table  # noqa: E402

ABLATION = (("default", "today's default"), ("invariant", "+ invariance by construction"),
            ("inside", "+ data inside the regions"), ("certified", "certified"),
            ("lipschitz_cnn", "1-Lipschitz CNN"))
STUDY = (("zubovnet", "Zubov-Net (default)"), ("zubovnet_certified", "Zubov-Net (certified)"),
         ("lipschitz_cnn", "1-Lipschitz CNN"), ("cnn", "CNN"))


def _records(folder: Path, rows, suffixes) -> tuple[list[dict], list[str]]:
    recs, missing = [], []
    for stem, label in rows:
        found = [folder / f"{stem}_{s}.json" for s in suffixes
                 if (folder / f"{stem}_{s}.json").is_file()]
        if not found:
            missing.append(label)
        for p in found:
            rec = json.loads(p.read_text())
            rec["model"] = {**rec.get("model", {}), "name": label}
            recs.append(rec)
    return recs, missing


def report() -> str:
    out = []
    abl, miss = _records(ROOT / "docs/results/certified", ABLATION, ("rigorous", "main"))
    out.append("### Ablation at 2,400 steps\n")
    out.append("Fashion-MNIST, seed 0, dopri5 at rtol = atol = 10⁻³; clean, corruption mean, "
               "alignment and certified accuracy on the first 1,000 test images, the rigorous "
               "worst case at 8/255 on the first 200; `h(0) in region`: correctly classified "
               "points whose `h(0)` lies in their own region; `RoA ⊂ PRoA`: points flowing to "
               "their equilibrium by 10T that start in the region; certified accuracy in L2 "
               "and L∞ (correct and certified radius ≥ ε); s/step: training seconds per step "
               "(two runs sharing the 2-core machine). Records: `docs/results/certified/`; commands: "
               "`scripts/certified_ablation.sh train 2 && scripts/certified_ablation.sh eval 2`, "
               "then `zubovnet table docs/results/certified/*.json --layout certified`.\n")
    out.append(render_table(abl, "certified") if abl else "(no records yet)\n")
    if miss:
        out.append(f"\nNo record yet: {', '.join(miss)}.\n")
    study, miss = _records(ROOT / "docs/results/fashion_mnist_study", STUDY,
                           ("rigorous", "clean", "corruptions", "alignment", "certify"))
    out.append("\n### At the study's budget (12,000 steps)\n")
    out.append("Same protocol, the study's records (`docs/results/fashion_mnist_study/`, "
               "`scripts/fashion_mnist_full_study.sh eval`).\n")
    out.append(render_table(study, "certified") if study else "(no records yet)\n")
    if miss:
        out.append(f"\nNo record yet: {', '.join(miss)}.\n")
    return "\n".join(out)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--markdown", default=None, help="document to write the tables into")
    a = ap.parse_args(argv)
    text = report()
    print(text)
    if a.markdown:
        write_section(a.markdown, "certified_results", "Results", text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
