"""What Zubov-Net's sample sizes buy: accuracy and alignment against training time.

Trains the digits Zubov-Net (``configs/digits/zubovnet.yaml``, the demo's budget: 20 epochs)
once per row of :data:`bench_overhead.SAMPLE_SIZES` plus the default, one process of one thread
per job, evaluates each with the ``alignment`` suite (clean accuracy on every test image,
``AR@T/3T/10T`` with the suite's 200 points in each class's PRoA) and writes the table (clean %,
AR@T/3T/10T, seconds per training epoch) to ``docs/performance.md`` between markers and the
numbers to JSON.  The per-step time *ratios* come from ``bench_overhead.py --sample-sizes``
(interleaved); the epoch times here are per-run wall clock and only indicative.

    python benchmarks/bench_sample_size.py --jobs 2 --out runs/sample_size \\
        --json docs/results/sample_size.json --markdown docs/performance.md
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from _doc_section import write_section  # noqa: E402
from bench_overhead import SAMPLE_SIZES  # noqa: E402

CONFIG = "configs/digits/zubovnet.yaml"
ROWS = {"default": (), **SAMPLE_SIZES}


def _zubovnet(*args: str) -> None:
    """Run a ``zubovnet`` command; exit status 1 (a check FLAGged: the record is written) is
    not a failure here — the table reports the numbers, FLAG or not."""
    env = dict(os.environ, OMP_NUM_THREADS="1")
    rc = subprocess.run([sys.executable, "-m", "zubovnet.cli", *args], env=env, cwd=ROOT,
                        stdout=subprocess.DEVNULL).returncode
    if rc not in (0, 1):
        raise RuntimeError(f"zubovnet {' '.join(args)} failed with exit status {rc}")


def one(name: str, over: tuple, out: Path, seed: int) -> dict:
    run = out / name
    _zubovnet("train", CONFIG, *over, f"train.seed={seed}", "train.progress=false",
              "train.tensorboard=false", "--out", str(run), "--resume")
    rec_path = out / f"{name}_alignment.json"
    if not rec_path.exists():
        _zubovnet("eval", str(run), "--suite", "alignment", "--n", "360", "--seed", "0",
                  "--no-progress", "--out", str(rec_path))
    rec = json.loads(rec_path.read_text())
    with open(run / "metrics.csv") as fh:
        epochs = list(csv.DictReader(fh))
    res = rec["results"]
    return {"name": name, "overrides": list(over), "clean": res["clean"]["accuracy"],
            **{f"ar@{h}": res[f"alignment/ar@{h}"]["accuracy"] for h in ("1T", "3T", "10T")},
            "epoch_s_median": sorted(float(r["train_time"]) for r in epochs)[len(epochs) // 2],
            "epochs": len(epochs), "record": str(rec_path.relative_to(ROOT))}


def markdown(rows: list[dict], command: str) -> str:
    lines = [f"Command: `{command}`", "",
             "| sample sizes | clean % | AR@T | AR@3T | AR@10T | s / epoch (median, wall) |",
             "|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        what = r["name"] + (f" ({', '.join(r['overrides'])})" if r["overrides"] else "")
        lines.append(f"| {what} | {100 * r['clean']:.1f} | {r['ar@1T']:.3f} | {r['ar@3T']:.3f} | "
                     f"{r['ar@10T']:.3f} | {r['epoch_s_median']:.1f} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--out", default="runs/sample_size")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", default=None)
    p.add_argument("--markdown", default=None)
    a = p.parse_args(argv)
    out = ROOT / a.out
    out.mkdir(parents=True, exist_ok=True)
    with ThreadPoolExecutor(a.jobs) as ex:
        rows = list(ex.map(lambda kv: one(kv[0], kv[1], out, a.seed), ROWS.items()))
    cmd = "python benchmarks/bench_sample_size.py " + " ".join(sys.argv[1:] if argv is None else argv)
    text = markdown(rows, cmd)
    print(text)
    if a.json:
        Path(a.json).write_text(json.dumps({"command": cmd, "config": CONFIG, "rows": rows},
                                           indent=2) + "\n")
    if a.markdown:
        write_section(a.markdown, "bench_sample_size",
                      "Sample sizes: accuracy and alignment against time", text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
