"""Evaluation sharded over processes: wall time of one process against ``torchrun`` with two,
interleaved (one, two, one, two, …), and the two records compared result for result.

    python benchmarks/bench_eval_shards.py RUN_OR_PRETRAINED --suite attacks --n 200 \\
        --repeats 2 --json docs/results/eval_shards.json --markdown docs/performance.md

Each process runs one thread (``OMP_NUM_THREADS=1``), so two processes use two cores; the
speed-up is bounded by the cores the machine has free.  The records must agree in every
result's counts (the sharding is exact: each rank evaluates a slice, rank 0 merges); the
benchmark says ``identical`` or lists the keys that differ.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _doc_section import write_section  # noqa: E402


def _command(procs: int, target: str, suite: str, n: int, out: Path) -> list[str]:
    tail = ["-m", "zubovnet", "eval", target, "--suite", suite, "--images", str(n), "--seed", "0",
            "--no-progress", "--out", str(out)]
    if procs == 1:
        return [sys.executable, *tail]
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node",
            str(procs), *tail]


def _counts(record: dict) -> dict:
    return {k: (e.get("correct"), e.get("n")) for k, e in record.get("results", {}).items()}


def differing(a: dict, b: dict) -> list[str]:
    """The result keys whose ``(correct, n)`` differ between records ``a`` and ``b`` (a key
    present in one record only differs)."""
    ca, cb = _counts(a), _counts(b)
    return sorted(k for k in set(ca) | set(cb) if ca.get(k) != cb.get(k))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("target", help="run folder, checkpoint or pretrained:NAME")
    p.add_argument("--suite", default="attacks")
    p.add_argument("--n", type=int, default=200)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--procs", type=int, default=2, help="processes of the sharded runs")
    p.add_argument("--json", default=None)
    p.add_argument("--markdown", default=None)
    a = p.parse_args(argv)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    times: dict[int, list[float]] = {1: [], a.procs: []}
    records: dict[int, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(a.repeats):
            for procs in (1, a.procs):
                out = Path(tmp) / f"p{procs}_r{r}.json"
                t0 = time.perf_counter()
                res = subprocess.run(_command(procs, a.target, a.suite, a.n, out), env=env,
                                     capture_output=True, text=True)
                times[procs].append(time.perf_counter() - t0)
                if res.returncode not in (0, 1):       # 1: a check FLAGged, the record is written
                    print(res.stderr[-2000:], file=sys.stderr)
                    return 2
                records[procs] = json.loads(out.read_text())
                print(f"repeat {r + 1}: {procs} process(es): {times[procs][-1]:.1f} s")
    one = _counts(records[1])
    differ = differing(records[1], records[a.procs])
    med = {k: statistics.median(v) for k, v in times.items()}
    row = {"target": a.target, "suite": a.suite, "n": a.n, "repeats": a.repeats,
           "procs": a.procs, "threads_per_process": 1, "wall_s": times, "median_s": med,
           "speedup": med[1] / med[a.procs], "results": len(one),
           "identical": not differ, "differ": differ, "cpu_count": os.cpu_count()}
    verdict = "identical" if not differ else f"DIFFER in {', '.join(differ)}"
    text = (f"Command: `python benchmarks/bench_eval_shards.py {a.target} --suite {a.suite} "
            f"--n {a.n} --repeats {a.repeats}` (1 thread per process, {os.cpu_count()} cores, "
            f"interleaved)\n\n"
            f"| processes | median wall (s) | runs (s) |\n|---:|---:|---|\n"
            + "".join(f"| {k} | {med[k]:.1f} | {', '.join(f'{t:.1f}' for t in v)} |\n"
                      for k, v in times.items())
            + f"\nSpeed-up {row['speedup']:.2f}× with {a.procs} processes; the records' "
              f"{len(one)} results (correct / n) are **{verdict}**.")
    print(text)
    if a.json:
        Path(a.json).write_text(json.dumps(row, indent=1) + "\n")
    if a.markdown:
        write_section(a.markdown, "bench_eval_shards", "Evaluation sharded over processes", text)
    return 0 if not differ else 1


if __name__ == "__main__":
    raise SystemExit(main())
