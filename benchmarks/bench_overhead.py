"""Zubov-Net's cost against the Neural ODE's, side by side in one process (interleaved).

For each setting (the small CNN at d = 32 on 28×28×1 images, ResNet-18 at d = 256 on
32×32×3) the models — Neural ODE, Zubov-Net (the default: with the alignment mechanism) and
the paper-literal Zubov-Net — each take one training step in turn (A, B, C, A, B, C, …), so
that whatever else the machine does hits all of them alike; the same for inference (eval mode,
evaluation tolerance).  Reported: the median step time, the ratio to the Neural ODE, the
per-part breakdown of Zubov-Net's step (forward, region points, counterexamples, consistency,
equilibria, boundary points, separation, backward + optimiser) and the training memory:
on CUDA the peak allocated bytes of a step; on CPU the bytes of the tensors autograd saves for
the backward pass plus parameters, gradients and Adam's state (what a training step holds at
its peak, counted exactly in-process instead of a noisy RSS reading).

    python benchmarks/bench_overhead.py --settings small resnet --steps 8 --threads 1 \\
        --json docs/results/overhead.json --markdown docs/performance.md
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import torch

from _doc_section import write_section
from zubovnet.config import load_config
from zubovnet.models import build_model
from zubovnet.training.objectives import build_objective
from zubovnet.training.timing import PartTimer

ROOT = Path(__file__).resolve().parents[1]
SETTINGS = {
    "small": {"label": "small CNN, d = 32, 28×28×1", "base": "configs/fashion_mnist",
              "shape": (1, 28, 28), "over": []},
    "resnet": {"label": "ResNet-18, d = 256, 32×32×3", "base": "configs/cifar10",
               "shape": (3, 32, 32), "over": []},
    "digits": {"label": "small CNN, d = 32, 8×8×1 (the demo)", "base": "configs/digits",
               "shape": (1, 8, 8), "over": []},
}
MODELS = (("neural_ode", "Neural ODE", ()), ("zubovnet", "Zubov-Net", ()),
          ("paper_literal", "Zubov-Net (paper-literal)", ()))
# --reference-paths: Zubov-Net with each fast path replaced by its reference (the test oracle):
# bisection projection and boundary search, the head's conditioning recomputed at every call
REFERENCE_PATHS = (("zubovnet", "Zubov-Net (reference paths: bisection, conditioning per call)",
                    ("loss.projection=bisection", "loss.boundary.rule=bisection"),
                    {"freeze_conditioning": False}),
                   ("zubovnet", "Zubov-Net (conditioning per call)", (),
                    {"freeze_conditioning": False}))
# --compiled: Zubov-Net with torch.compile'd W in the sampling searches (train.compile_searches)
COMPILED = (("zubovnet", "Zubov-Net (compiled searches)", ("train.compile_searches=true",), {}),)
# --recompute: Zubov-Net with L_sep's head evaluations recomputed in backward (loss.boundary.recompute)
RECOMPUTE = (("zubovnet", "Zubov-Net (L_sep recomputed in backward)",
              ("loss.boundary.recompute=true",), {}),)
# --estimators: Zubov-Net with the cheaper estimators (docs/performance.md), one change at a time
ESTIMATORS = (("zubovnet", "Zubov-Net (persistent counterexamples, 1 step)",
               ("loss.counterexample_mode=persistent", "loss.counterexample_steps=1"), {}),
              ("zubovnet", "Zubov-Net (persistent, 1 step; 3 boundary directions per pair)",
               ("loss.counterexample_mode=persistent", "loss.counterexample_steps=1",
                "loss.boundary.variants=2"), {}),
              ("zubovnet", "Zubov-Net (persistent, 1 step; 3 per pair; Zubov terms every 2)",
               ("loss.counterexample_mode=persistent", "loss.counterexample_steps=1",
                "loss.boundary.variants=2", "loss.zubov_every=2"), {}))
SAMPLE_SIZES = {   # --sample-sizes: Zubov-Net with fewer consistency / region / boundary samples
    "half": ("loss.consistency_samples=128", "loss.region_samples=128",
             "loss.boundary.variants=10"),
    "quarter": ("loss.consistency_samples=64", "loss.region_samples=64",
                "loss.boundary.variants=5"),
}


def _config(setting: dict, stem: str, over=()):
    cfg = load_config(ROOT / setting["base"] / f"{stem}.yaml", list(setting["over"]) + list(over))
    c, h, w = setting["shape"]
    m = cfg.model
    m.in_channels, m.image_size, m.num_classes = c, h, 10
    m.mean, m.std = [0.5] * c, [0.25] * c
    cfg.train.device = "cpu"
    return cfg


class _SavedBytes:
    """Bytes of the tensors autograd saves for backward while active."""

    def __init__(self):
        self.bytes = 0
        self._seen: set[int] = set()

    def pack(self, t):
        key = id(t.untyped_storage()) if hasattr(t, "untyped_storage") else id(t)
        if key not in self._seen:
            self._seen.add(key)
            self.bytes += t.untyped_storage().nbytes()
        return t

    def __enter__(self):
        self._ctx = torch.autograd.graph.saved_tensors_hooks(self.pack, lambda t: t)
        self._ctx.__enter__()
        return self

    def __exit__(self, *a):
        self._ctx.__exit__(*a)


def _state_bytes(model, opt) -> int:
    n = sum(p.numel() * p.element_size() for p in model.parameters())
    n += sum(b.numel() * b.element_size() for b in model.buffers())
    grads = n
    adam = sum(v.numel() * v.element_size() for st in opt.state.values() for v in st.values()
               if torch.is_tensor(v))
    return n + grads + adam


class Bench:
    def __init__(self, name, label, cfg, device, batch, objective_attrs=None):
        self.name, self.label, self.cfg, self.device = name, label, cfg, device
        torch.manual_seed(0)
        self.model = build_model(cfg).to(device)
        self.objective = build_objective(cfg, self.model)
        for k, v in (objective_attrs or {}).items():
            setattr(self.objective, k, v)
        self.opt = torch.optim.Adam(self.model.parameters(), lr=1e-4)
        g = torch.Generator().manual_seed(0)
        c, h, w = cfg.model.in_channels, cfg.model.image_size, cfg.model.image_size
        self.x = torch.rand(batch, c, h, w, generator=g).to(device)
        self.y = (torch.arange(batch) % 10).to(device)
        self.timer = PartTimer(device)
        if hasattr(self.objective, "timer"):
            self.objective.timer = self.timer
        self.steps: list[float] = []
        self.infer: list[float] = []
        self.parts: list[dict] = []
        self.memory: list[int] = []

    def _sync(self):
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def train_step(self, record=True):
        self.model.train()
        self.timer.reset()
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        self._sync()
        t0 = time.perf_counter()
        saved = _SavedBytes()
        with saved:
            loss, _ = self.objective(self.model, self.x, self.y)
        self._sync()
        t1 = time.perf_counter()
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        self._sync()
        t2 = time.perf_counter()
        if record:
            self.steps.append(t2 - t0)
            parts = dict(self.timer.totals)
            parts["other (losses, logs)"] = max(0.0, (t1 - t0) - sum(parts.values()))
            parts["backward + optimiser"] = t2 - t1
            self.parts.append(parts)
            self.memory.append(torch.cuda.max_memory_allocated(self.device)
                               if self.device.type == "cuda"
                               else saved.bytes + _state_bytes(self.model, self.opt))

    @torch.no_grad()
    def inference(self):
        self.model.eval()
        self._sync()
        t = time.perf_counter()
        self.model(self.x)
        self._sync()
        self.infer.append(time.perf_counter() - t)

    def summary(self) -> dict:
        # a model whose terms alternate between steps (loss.zubov_every > 1): the mean step,
        # not the median of a two-valued sample
        agg = statistics.mean if getattr(self.cfg.loss, "zubov_every", 1) > 1 \
            else statistics.median
        parts: dict[str, float] = {}
        for k in {k for p in self.parts for k in p}:
            parts[k] = agg(p.get(k, 0.0) for p in self.parts)
        return {"model": self.label, "config": self.name, "step_s": agg(self.steps),
                "steps": self.steps, "inference_s": statistics.median(self.infer),
                "memory_bytes": max(self.memory), "parts_s": parts,
                "parameters": sum(p.numel() for p in self.model.parameters())}


def run(settings, steps, warmup, batch, device, sample_sizes=False,
        reference_paths=False, compiled=False, recompute=False, estimators=False) -> dict:
    out = {"settings": {}, "steps": steps, "warmup": warmup, "batch": batch,
           "device": str(device), "threads": torch.get_num_threads(),
           "torch": torch.__version__, "cpu": platform.processor() or platform.machine(),
           "memory_rule": ("CUDA max_memory_allocated per step" if device.type == "cuda" else
                           "bytes saved for backward + parameters, buffers, gradients, Adam state")}
    for key in settings:
        st = SETTINGS[key]
        models = [m + ({},) for m in MODELS]
        if reference_paths:
            models += list(REFERENCE_PATHS)
        if compiled:
            models += list(COMPILED)
        if recompute:
            models += list(RECOMPUTE)
        if estimators:
            models += list(ESTIMATORS)
        if sample_sizes:
            models += [("zubovnet", f"Zubov-Net ({k}: {', '.join(o.split('.')[-1] for o in v)})",
                        v, {}) for k, v in SAMPLE_SIZES.items()]
        benches = [Bench(stem, label, _config(st, stem, over), device, batch, attrs)
                   for stem, label, over, attrs in models]
        for b in benches:
            for _ in range(warmup):
                b.train_step(record=False)
        for _ in range(steps):            # interleaved: A, B, C, A, B, C, ...
            for b in benches:
                b.train_step()
            for b in benches:
                b.inference()
        rows = [b.summary() for b in benches]
        ref = rows[0]
        for r in rows:
            r["step_ratio"] = r["step_s"] / ref["step_s"]
            r["inference_ratio"] = r["inference_s"] / ref["inference_s"]
            r["memory_ratio"] = r["memory_bytes"] / ref["memory_bytes"]
            r["extra_s"] = r["step_s"] - ref["step_s"]
        out["settings"][key] = {"label": st["label"], "rows": rows}
        print(markdown({**out, "settings": {key: out["settings"][key]}}), flush=True)
    return out


def markdown(res: dict) -> str:
    lines = []
    for key, s in res["settings"].items():
        lines.append(f"**{s['label']}** — batch {res['batch']}, {res['device']}, "
                     f"{res['threads']} thread(s), median of {res['steps']} interleaved steps "
                     f"after {res['warmup']} warm-up steps")
        lines.append("")
        lines.append("| model | train step (s) | ÷ Neural ODE | extra (s) | inference (s) | ÷ | "
                     "train memory (MB) | ÷ |")
        lines.append("|---|---:|---:|---:|---:|---:|---:|---:|")
        for r in s["rows"]:
            lines.append(f"| {r['model']} | {r['step_s']:.3f} | {r['step_ratio']:.2f}× | "
                         f"{r['extra_s']:+.3f} | {r['inference_s']:.4f} | "
                         f"{r['inference_ratio']:.2f}× | {r['memory_bytes'] / 2**20:.1f} | "
                         f"{r['memory_ratio']:.2f}× |")
        lines.append("")
        parts = sorted({k for r in s["rows"][1:] for k in r["parts_s"]})
        lines.append("| part of the step (median s) | " + " | ".join(r["model"] for r in
                                                                  s["rows"]) + " |")
        lines.append("|---|" + "---:|" * len(s["rows"]))
        for p in parts:
            lines.append(f"| {p} | " + " | ".join(f"{r['parts_s'].get(p, 0.0):.3f}"
                                                   for r in s["rows"]) + " |")
        lines.append("")
    return "\n".join(lines)


def write_markdown(path: Path, text: str, command: str) -> None:
    write_section(path, "bench_overhead", "Zubov-Net against the Neural ODE (interleaved)",
                  f"Command: `{command}`\n\n{text}".rstrip())


def add_setting_arguments(p: argparse.ArgumentParser, steps: int, warmup: int) -> None:
    """The arguments every step benchmark shares (this one and ``bench_flops.py``)."""
    p.add_argument("--settings", nargs="+", default=["small", "resnet"], choices=list(SETTINGS))
    p.add_argument("--steps", type=int, default=steps)
    p.add_argument("--warmup", type=int, default=warmup)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device", default="cpu")
    p.add_argument("--sample-sizes", action="store_true",
                   help="add Zubov-Net rows with the sample sizes of SAMPLE_SIZES")


def main(argv=None) -> int:
    import sys
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_setting_arguments(p, steps=8, warmup=2)
    p.add_argument("--reference-paths", action="store_true",
                   help="add Zubov-Net rows with the reference implementations of the fast paths")
    p.add_argument("--compiled", action="store_true",
                   help="add a Zubov-Net row with train.compile_searches=true")
    p.add_argument("--recompute", action="store_true",
                   help="add a Zubov-Net row with loss.boundary.recompute=true")
    p.add_argument("--estimators", action="store_true",
                   help="add Zubov-Net rows with the cheaper estimators of ESTIMATORS")
    p.add_argument("--json", default=None, help="write the numbers here")
    p.add_argument("--merge", action="store_true",
                   help="replace only these settings in --json (and the Markdown) and keep the "
                        "others")
    p.add_argument("--markdown", default=None, help="update this Markdown file's section")
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    res = run(a.settings, a.steps, a.warmup, a.batch, torch.device(a.device), a.sample_sizes,
              a.reference_paths, a.compiled, a.recompute, a.estimators)
    cmd = "python benchmarks/bench_overhead.py " + " ".join(sys.argv[1:] if argv is None else argv)
    res["command"] = cmd
    if a.merge and a.json and Path(a.json).exists():   # keep the other settings of the file
        old = json.loads(Path(a.json).read_text())
        res["settings"] = {**old.get("settings", {}), **res["settings"]}
        res["command"] = cmd = f"{old.get('command', '')}; then {cmd}"
    if a.json:
        Path(a.json).parent.mkdir(parents=True, exist_ok=True)
        Path(a.json).write_text(json.dumps(res, indent=2) + "\n")
    if a.markdown:
        write_markdown(Path(a.markdown), markdown(res), cmd)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
