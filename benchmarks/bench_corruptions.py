"""Throughput of the batched torch corruptions vs ``imagecorruptions`` (per image, numpy).

For each corruption of ``zubovnet.evaluation.corruptions.CORRUPTIONS`` at one severity, on
random RGB images: images per second of ``corrupt`` on the whole batch (CPU, torch), and of
the ``imagecorruptions`` package (``pip install imagecorruptions-imaug``) called once per image.
The package hard-codes the ImageNet-C severity tables, so the reference call is

* glass blur and motion blur, whose cost depends on the parameters: the package's own stages
  (``skimage`` blur, ``_shuffle_pixels_njit_glass_blur``; ``_motion_blur``) at the CIFAR-10-C
  parameters of the severity;
* the other six, whose cost does not: the package's corruption function at the same severity
  number (ImageNet-C parameter).

Prints a Markdown table and, with ``--write``, puts it in the "Speed" section of a Markdown file
(between the ``<!-- speed:start -->`` and ``<!-- speed:end -->`` markers).

Usage::

    python benchmarks/bench_corruptions.py --n 512 --size 32 --severity 3 --threads 2 1 \
        --write docs/corruptions.md
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import sys
import time
from importlib import metadata
from typing import Callable, Dict, List, Optional

import numpy as np
import torch

from zubovnet.evaluation.corruptions import CIFAR10C_PARAMS, CORRUPTIONS, corrupt

START, END = "<!-- speed:start -->", "<!-- speed:end -->"


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def best_time(fn: Callable[[], object], repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def reference_functions(severity: int, size: int) -> Optional[Dict[str, Callable[[np.ndarray], np.ndarray]]]:
    """One callable per corruption: uint8 HWC image -> corrupted float image in [0, 255]."""
    try:
        import imagecorruptions.corruptions as ref
        from skimage.filters import gaussian
    except ImportError:
        return None
    sigma, delta, iterations = CIFAR10C_PARAMS["glass_blur"][severity - 1]
    radius, msigma = CIFAR10C_PARAMS["motion_blur"][severity - 1]
    rng = np.random.default_rng(0)

    def glass(img: np.ndarray) -> np.ndarray:
        q = np.uint8(gaussian(img / 255.0, sigma=sigma, channel_axis=-1) * 255)
        seed = int(rng.integers(2**31))
        q = ref._shuffle_pixels_njit_glass_blur(size, size, q, (sigma, delta, iterations), seed)
        return np.clip(gaussian(q / 255.0, sigma=sigma, channel_axis=-1), 0, 1) * 255

    def motion(img: np.ndarray) -> np.ndarray:
        angle = rng.uniform(-45, 45)
        return np.clip(ref._motion_blur(img, radius=radius, sigma=msigma, angle=angle), 0, 255)

    fns: Dict[str, Callable[[np.ndarray], np.ndarray]] = {"glass_blur": glass, "motion_blur": motion}
    for name in CORRUPTIONS:
        if name not in fns:
            fn = getattr(ref, name)
            fns[name] = lambda img, fn=fn: fn(img, severity)
    return fns


def run(n: int, size: int, severity: int, threads: List[int], repeats: int) -> List[dict]:
    g = torch.Generator().manual_seed(0)
    x = torch.rand(n, 3, size, size, generator=g)
    imgs = [a for a in (x.permute(0, 2, 3, 1).numpy() * 255).round().astype(np.uint8)]
    refs = reference_functions(severity, size)
    rows = []
    for name in CORRUPTIONS:
        ours = {}
        for t in threads:
            torch.set_num_threads(t)
            corrupt(x[:8], name, severity, generator=1)  # warm-up
            ours[t] = n / best_time(lambda: corrupt(x, name, severity, generator=1), repeats)
        theirs = None
        if refs is not None:
            fn = refs[name]
            fn(imgs[0])  # warm-up (numba compiles the shuffle loop on first use)
            theirs = n / best_time(lambda: [fn(img) for img in imgs], repeats)
        rows.append({"name": name, "ours": ours, "ref": theirs})
        mine = "  ".join(f"{v:9.0f} ({t} thr)" for t, v in ours.items())
        print(f"{name:15s} ours {mine} img/s   reference "
              f"{'n/a' if theirs is None else f'{theirs:10.0f}'} img/s", file=sys.stderr)
    return rows


def markdown(rows: List[dict], args: argparse.Namespace, command: str) -> str:
    try:
        ref_version = metadata.version("imagecorruptions-imaug")
    except metadata.PackageNotFoundError:
        ref_version = "not installed"
    threads = args.threads
    lines = [
        f"Command: `{command}`",
        "",
        f"Hardware: {cpu_model()}, {os.cpu_count()} logical cores; torch "
        f"{torch.__version__} ({', '.join(map(str, threads))} threads); numpy {np.__version__}; "
        f"imagecorruptions-imaug {ref_version}. Load average (1 min) before / after: "
        f"{args.load_before:.1f} / {args.load_after:.1f}.",
        "",
        f"{args.n} random RGB images of {args.size}x{args.size}, severity {args.severity}; "
        f"best of {args.repeats} runs; in brackets, the ratio to the reference.",
        "",
        "| corruption | "
        + " | ".join(f"ours, batched torch, {t} thr. (img/s)" for t in threads)
        + " | imagecorruptions, per image (img/s) | reference parameters |",
        "|---|" + "---:|" * len(threads) + "---:|---|",
    ]
    for r in rows:
        ref = "n/a" if r["ref"] is None else f"{r['ref']:,.0f}"
        params = "CIFAR-10-C" if r["name"] in ("glass_blur", "motion_blur") else "ImageNet-C"
        mine = " | ".join(
            f"{r['ours'][t]:,.0f}" + ("" if r["ref"] is None else f" ({r['ours'][t] / r['ref']:.1f}x)")
            for t in threads
        )
        lines.append(f"| {r['name']} | {mine} | {ref} | {params} |")
    return "\n".join(lines) + "\n"


def write_section(path: str, table: str) -> None:
    block = f"{START}\n{table}{END}"
    text = open(path).read() if os.path.exists(path) else ""
    if START in text and END in text:
        text = re.sub(re.escape(START) + r".*?" + re.escape(END), lambda _: block, text, flags=re.S)
    else:
        text = text.rstrip("\n") + f"\n\n## Speed\n\n{block}\n"
    with open(path, "w") as f:
        f.write(text)


def main(argv: Optional[List[str]] = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n", type=int, default=512, help="number of images (default 512)")
    p.add_argument("--size", type=int, default=32, help="image side in pixels (default 32)")
    p.add_argument("--severity", type=int, default=3, help="severity 1..5 (default 3)")
    p.add_argument("--threads", type=int, nargs="+", default=[2],
                   help="torch.set_num_threads values to time ours with (default 2)")
    p.add_argument("--repeats", type=int, default=3, help="timed runs, best kept (default 3)")
    p.add_argument("--write", metavar="MD", default=None,
                   help="Markdown file whose Speed section receives the table")
    args = p.parse_args(argv)
    command = "python benchmarks/bench_corruptions.py " + " ".join(sys.argv[1:] if argv is None else argv)
    args.load_before = os.getloadavg()[0]
    rows = run(args.n, args.size, args.severity, args.threads, args.repeats)
    args.load_after = os.getloadavg()[0]
    table = markdown(rows, args, command.strip())
    print(table)
    if args.write:
        write_section(args.write, table)


if __name__ == "__main__":
    main()
