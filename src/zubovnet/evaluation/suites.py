"""Evaluation suites: :func:`evaluate` runs one or more suites on a model and returns a record.

One function per suite, all in :data:`SUITES` (name → function, in the order they run):

``clean``        accuracy on the clean test images (always run; every other suite uses it).
``corruptions``  the eight corruptions of Table I at severities 1–5
                 (:mod:`zubovnet.evaluation.corruptions`); headline = mean over severities,
                 per-severity numbers kept.
``attacks``      Table II: FGSM, BIM, PGD, APGD, Jitter at 8/255 and 16/255, 10 steps, step eps/8.
``strong``       Table III at 16/255: VNI-FGSM transferred from each surrogate (skipped, and
                 said so, without one), Square (5,000 queries), reference AutoAttack standard.
``rigorous``     the project's rigorous protocol (:mod:`zubovnet.evaluation.rigorous`).
``alignment``    PRoA–RoA alignment (:mod:`zubovnet.analysis.alignment`): ``AR(ρ, H, τ)`` at
                 ``T, 3T, 10T``, the nearest variant, per-shell rates, ``‖f(c_i)‖``, the share
                 of ``V̇_y < 0``, trajectory containment (Prop. 5), mean ``dW/dt`` (Table V);
                 models with equilibria and a Lyapunov function only.
``certify``      certified accuracy in L2 (0.1, 0.25, 0.5, 1.0) and L∞ (1/255, 2/255, 8/255)
                 with sound bounds (:mod:`zubovnet.evaluation.certified`): the region
                 certificate of Zubov-Net, the margin certificate of a classifier affine in
                 its features; the premises of each, and checks that attack it.
``all``          all of the above (``alignment``/``certify`` where the model supports them).

Input contract: ``model(x) -> logits (B, L)`` for ``x`` ``(B, C, H, W)`` in [0, 1] — any
classifier; ``dataset[i] -> (image (C, H, W) in [0, 1], label)``.  The evaluator puts the model
in eval mode (ODE blocks then use their evaluation tolerance, 1e-3 by default), asserts that
no module stays in training mode, and flags randomness in the forward pass.

Sample: the first ``n`` images of the dataset (``subset="first"``, default) or a random subset
drawn with ``torch.Generator().manual_seed(seed)`` (``subset="random"``; the indices are
recorded).  Every attack batch and corruption draws from its own seeded generator, so a number
does not depend on which other suites ran, nor on whether the evaluation was interrupted and
resumed (``state_path``: :mod:`zubovnet.evaluation.state`).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Optional

import torch
from torch import nn

from ..analysis.alignment import AlignmentSettings
from . import checks
from .certified import certify_suite
from .attacks import (PAPER_EPS, PAPER_STEP_FRACTION, PAPER_STEPS, SQUARE_QUERIES,
                      WHITE_BOX_ATTACKS, assert_eval_mode, eps_label, make_attack, map_batches,
                      predict, run_attack)
from .records import add_result, new_record, result_entry, to_jsonable, verdict
from .rigorous import SOLVER_ERRORS, RigorousSettings, run_rigorous
from .state import EvalState, fingerprint

__all__ = ["SUITES", "EvalSettings", "evaluate", "load_subset", "solver_settings",
           "load_eval_settings", "expand_suites", "CORRUPTION_SEED_RULE"]

CORRUPTION_SEED_RULE = (100_003, 1_009)
"""Corruption ``c`` (index) at severity ``s`` draws from ``seed·100003 + 1009·c + s``."""


@dataclass
class EvalSettings:
    """Every constant of the paper protocol (defaults: paper §IV-A) plus the rigorous one."""
    paper_eps: tuple = PAPER_EPS             # Table II budgets
    paper_steps: int = PAPER_STEPS           # iterations of BIM/PGD/APGD/Jitter/VNI-FGSM
    step_fraction: float = PAPER_STEP_FRACTION  # step size = eps * step_fraction
    white_box: tuple = WHITE_BOX_ATTACKS     # Table II attacks
    strong_eps: float = 16 / 255             # Table III budget
    vni_N: int = 5                           # VNI-FGSM neighbourhood samples
    vni_beta: float = 1.5                    # VNI-FGSM neighbourhood radius (x eps)
    square_queries: int = SQUARE_QUERIES     # Square (Table III) query budget
    autoattack_square_queries: Optional[int] = None  # None: reference 5,000
    autoattack: bool = True                  # False: Table III's AutoAttack recorded as skipped
    severities: tuple = (1, 2, 3, 4, 5)      # corruption severities
    corruptions: Optional[tuple] = None      # None: all eight of Table I
    determinism_n: int = 64                  # images of the determinism check
    determinism_rtol: float = 1e-5           # FLAG: two forwards differ by more (x max|logit|)
    rigorous: RigorousSettings = field(default_factory=RigorousSettings)
    alignment: AlignmentSettings = field(default_factory=AlignmentSettings)
    aligned_threshold: float = 0.9           # aligned_stability: FLAG if AR@10T is below
    certify_eps: tuple = (1 / 255, 2 / 255, 8 / 255)  # radii of the certified accuracy (L∞)
    certify_l2: tuple = (0.1, 0.25, 0.5, 1.0)  # radii of the certified accuracy (L2)
    certify_lipschitz_points: int = 16       # images of the empirical (lower) estimate of L_phi
    certify_attack_points: int = 32          # certified points attacked at their own L2 radius (0: off)
    certify_attack_steps: int = 100          # steps of that L2 PGD
    certify_attack_restarts: int = 5         # random restarts of that L2 PGD


def load_eval_settings(path) -> EvalSettings:
    """:class:`EvalSettings` from a YAML file: its ``eval:`` section (or the whole file), any
    subset of the fields, nested ``rigorous:`` / ``alignment:`` sections for
    :class:`RigorousSettings` / :class:`AlignmentSettings`; unknown keys are an error that lists
    the valid ones.  ``zubovnet eval --settings FILE``; ``docs/evaluation.md``."""
    from ..config import ConfigError, dataclass_from_dict, load_yaml
    data = load_yaml(path)
    if "eval" in data:          # a file with other sections: only ``eval:`` is read
        data = data["eval"]
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the eval section must be a mapping")
    return dataclass_from_dict(EvalSettings, data, "eval")


def expand_suites(suite: str | Iterable[str]) -> list[str]:
    """``"all"`` → every suite; a name or list of names → validated list in canonical order."""
    names = [suite] if isinstance(suite, str) else list(suite)
    out = set()
    for s in names:
        if s == "all":
            out.update(SUITES)
        elif s in SUITES:
            out.add(s)
        else:
            raise ValueError(f"unknown suite {s!r}; choose from {', '.join(tuple(SUITES) + ('all',))}")
    return [s for s in SUITES if s in out]


def load_subset(dataset, n: int, seed: int = 0, subset: str = "first"):
    """Stack ``n`` images of ``dataset``: ``(X (n, C, H, W), Y (n,) int64, indices)``.

    ``subset="first"``: indices ``0..n−1``; ``"random"``: ``randperm(len, generator seeded
    with seed)[:n]``.  ``n`` is capped at ``len(dataset)``.
    """
    size = len(dataset)
    n = min(int(n), size)
    if subset == "first":
        idx = list(range(n))
    elif subset == "random":
        g = torch.Generator().manual_seed(seed)
        idx = torch.randperm(size, generator=g)[:n].tolist()
    else:
        raise ValueError("subset must be 'first' or 'random'")
    xs, ys = [], []
    for i in idx:
        x, y = dataset[i]
        xs.append(torch.as_tensor(x, dtype=torch.float32))
        ys.append(int(y))
    X = torch.stack(xs)
    if X.min() < 0 or X.max() > 1:
        raise ValueError(f"dataset images must lie in [0, 1]; got [{X.min():.3f}, {X.max():.3f}]")
    return X, torch.as_tensor(ys, dtype=torch.long), idx


def solver_settings(model: nn.Module) -> list | None:
    """``describe()`` of every ODE block of ``model`` (in its current mode), or ``None``."""
    from ..models import ode_blocks
    blocks = ode_blocks(model)
    return [b.describe() for b in blocks] or None


def _surrogates(surrogate) -> list[tuple[str, nn.Module]]:
    if surrogate is None:
        return []
    if isinstance(surrogate, nn.Module):
        return [(getattr(surrogate, "eval_name", None) or type(surrogate).__name__, surrogate)]
    if isinstance(surrogate, dict):
        return list(surrogate.items())
    out = []
    for item in surrogate:
        if isinstance(item, nn.Module):
            out.extend(_surrogates(item))
        else:
            name, m = item
            out.append((str(name), m))
    return out


class _Progress:
    def __init__(self, enabled: bool):
        self.enabled = enabled
        self.bar = None

    def start(self, desc: str, total: int):
        self.close()
        if self.enabled:
            from tqdm.auto import tqdm
            self.bar = tqdm(total=total, desc=desc, unit="img", leave=False, dynamic_ncols=True)

    def tick(self, k: int):
        if self.bar is not None:
            self.bar.update(k)

    def stage(self, name: str):
        if self.bar is not None:
            self.bar.set_postfix_str(name)

    def close(self):
        if self.bar is not None:
            self.bar.close()
            self.bar = None


@dataclass
class _Run:
    """Everything the suite functions share for one evaluation."""
    model: nn.Module
    X: torch.Tensor
    Y: torch.Tensor
    settings: EvalSettings
    record: dict
    device: torch.device
    batch_size: int
    seed: int
    solver: list | None
    state: EvalState
    bar: _Progress
    requested: list
    config: Any = None
    surrogate: Any = None
    clean_correct: torch.Tensor | None = None
    num_classes: int = 0
    masks: dict = field(default_factory=dict)
    failures: dict = field(default_factory=dict)

    @property
    def n(self) -> int:
        return len(self.X)

    def verdict(self, v: dict, suite: str) -> None:
        self.record["verdicts"].append(to_jsonable({**v, "suite": suite}))

    def attack(self, key: str, suite: str, atk, **extra) -> Optional[torch.Tensor]:
        """Run ``atk`` on the sample as stage ``key``; record its entry; return the robust mask."""
        self.bar.stage(key)
        t1 = time.perf_counter()
        out = run_attack(self.model, atk, self.X, self.Y, self.batch_size, self.device,
                         self.bar.tick, cache=self.state.stage(key))
        robust = self.clean_correct & out.correct
        self.masks[key] = robust
        self.failures[key] = out.failures
        add_result(self.record, result_entry(
            key, suite, "paper", int(robust.sum()), self.n, attack=atk.describe(),
            solver=self.solver, wall_time_s=time.perf_counter() - t1,
            accuracy_adv_only=float(out.correct.float().mean()), solver_failures=out.failures,
            **extra))
        return robust

    def finish(self, name: str, t_start: float) -> None:
        w = time.perf_counter() - t_start
        self.record["suites"].setdefault(name, {"keys": [], "wall_time_s": None})["wall_time_s"] = w
        self.record["wall_time_s"][name] = w

    def explicit(self, name: str) -> bool:
        return "all" not in self.requested

    def region_level(self) -> tuple[float, str]:
        """The PRoA level ``ρ`` and where it comes from: the settings, else the config's
        ``loss.rho``, else the model's own ``proa_level``, else 0.9."""
        if self.settings.alignment.rho is not None:
            return float(self.settings.alignment.rho), "settings"
        loss = getattr(self.config, "loss", None)
        if loss is not None:
            return float(loss.rho), "config loss.rho"
        if hasattr(self.model, "proa_level"):
            return float(self.model.proa_level), "model proa_level"
        return 0.9, "default 0.9"


# --------------------------------------------------------------------------- suites
def clean_suite(r: _Run) -> None:
    """Clean accuracy (and the sanity checks): always run first."""
    r.verdict(checks.check_determinism(r.model, r.X[:r.settings.determinism_n].to(r.device),
                                       r.settings.determinism_rtol), "sanity")
    r.bar.start("clean", r.n)

    def compute(b: int, sl: slice) -> tuple[torch.Tensor, torch.Tensor]:
        xb, yb = r.X[sl].to(r.device), r.Y[sl].to(r.device)
        failed = torch.zeros(len(xb), dtype=torch.bool)
        try:
            return (predict(r.model, xb) == yb).cpu(), failed
        except SOLVER_ERRORS:
            correct = torch.zeros(len(xb), dtype=torch.bool)
            for j in range(len(xb)):
                try:
                    correct[j] = bool(predict(r.model, xb[j:j + 1])[0] == yb[j])
                except SOLVER_ERRORS:
                    failed[j] = True
            return correct, failed

    correct, failed, _ = map_batches(r.n, r.batch_size, compute, r.state.stage("clean"),
                                     r.bar.tick)
    r.state.put("clean/failed", int(failed.sum()))
    r.clean_correct = correct
    r.failures["clean"] = int(r.state.get("clean/failed") or 0)
    with torch.no_grad():
        r.num_classes = int(r.model(r.X[:1].to(r.device)).shape[1])
    add_result(r.record, result_entry("clean", "clean", "clean", int(correct.sum()), r.n,
                                      solver=r.solver, seed=r.seed,
                                      solver_failures=r.failures["clean"]))
    r.masks["clean"] = correct


def corruptions_suite(r: _Run) -> None:
    """Table I: every corruption at every severity on every image."""
    from . import corruptions as C
    s = r.settings
    names = tuple(s.corruptions or C.CORRUPTIONS)
    r.bar.start("corruptions", r.n * len(names) * len(s.severities))
    a, b = CORRUPTION_SEED_RULE
    units = [(ci, name, sev) for ci, name in enumerate(names) for sev in s.severities]
    first = r.state.reserve(len(units))
    shard = r.state.shard
    done: dict = {}
    for u, (ci, name, sev) in enumerate(units):      # one unit per corruption and severity
        key = f"corruption/{name}/{sev}"
        if r.state.get(key) is None and shard.mine(first + u):
            r.bar.stage(name)
            t1 = time.perf_counter()
            g = torch.Generator().manual_seed(r.seed * a + b * ci + sev)
            correct = 0
            for i in range(0, r.n, r.batch_size):
                xb = r.X[i:i + r.batch_size].to(r.device)
                yb = r.Y[i:i + r.batch_size].to(r.device)
                xc = C.corrupt(xb, name, sev, generator=g)
                if xc.shape != xb.shape or xc.min() < -1e-6 or xc.max() > 1 + 1e-6:
                    raise ValueError(f"corruption {name} (severity {sev}) left [0, 1]")
                correct += int((predict(r.model, xc) == yb).sum())
                r.bar.tick(len(xb))
            done[key] = (r.state.put(key, correct), time.perf_counter() - t1)
        else:
            r.bar.tick(r.n)
    done = shard.gather(done)
    for key, (correct, _) in done.items():
        if r.state.get(key) is None:           # another rank's unit
            r.state.put(key, correct)
    for ci, name in enumerate(names):
        per, total = {}, 0
        for sev in s.severities:
            got = r.state.get(f"corruption/{name}/{sev}")
            per[str(sev)] = got / r.n if r.n else None
            total += got
        wall = sum(done.get(f"corruption/{name}/{sev}", (0, 0.0))[1] for sev in s.severities)
        add_result(r.record, result_entry(
            f"corruption/{name}", "corruptions", "paper", total, r.n * len(s.severities),
            corruption={"name": name, "severities": list(s.severities),
                        "parameters": "Hendrycks & Dietterich CIFAR-10-C",
                        "generator_seed_rule": f"seed*{a} + {b}*index + severity"},
            solver=r.solver, wall_time_s=wall, seed=r.seed,
            images=r.n, per_severity=per, headline="mean over severities"))


def attacks_suite(r: _Run) -> None:
    """Table II: the five white-box attacks at both budgets."""
    s = r.settings
    r.bar.start("attacks", r.n * len(s.paper_eps) * len(s.white_box))
    for eps in s.paper_eps:
        for name in s.white_box:
            atk = make_attack(name, r.model, eps, steps=s.paper_steps,
                              step_size=eps * s.step_fraction, seed=r.seed)
            r.attack(f"{name}@{eps_label(eps)}", "attacks", atk)
    r.verdict(checks.check_solver_failures(
        {k: v for k, v in r.failures.items() if k.split("@")[0] in s.white_box}, r.n), "attacks")


def strong_suite(r: _Run) -> None:
    """Table III at ``strong_eps``: VNI-FGSM per surrogate (headline: worst case over all of
    them, null unless every one ran), Square, reference AutoAttack."""
    s = r.settings
    eps, lab = s.strong_eps, eps_label(s.strong_eps)
    surs = _surrogates(r.surrogate)
    r.bar.start("strong", r.n * (len(surs) + 2))
    before = dict(r.failures)
    if surs:
        worst = r.clean_correct.clone()
        desc = None
        for sname, smodel in surs:
            smodel.to(r.device).eval()
            assert_eval_mode(smodel)
            atk = make_attack("vnifgsm", r.model, eps, steps=s.paper_steps,
                              step_size=eps * s.step_fraction, seed=r.seed, surrogate=smodel,
                              surrogate_name=sname, N=s.vni_N, beta=s.vni_beta)
            worst &= r.attack(f"vnifgsm[{sname}]@{lab}", "strong", atk)
            desc = atk.describe()
        add_result(r.record, result_entry(
            f"vnifgsm@{lab}", "strong", "paper", int(worst.sum()), r.n,
            attack={**desc, "surrogate": [sn for sn, _ in surs]}, solver=r.solver,
            headline="worst case over surrogates", over=[f"vnifgsm[{sn}]@{lab}" for sn, _ in surs]))
    else:
        add_result(r.record, {"key": f"vnifgsm@{lab}", "suite": "strong", "protocol": "paper",
                              "attack": "vnifgsm-transfer", "accuracy": None, "correct": None,
                              "n": r.n, "eps": eps, "eps_label": lab,
                              "status": "skipped: no surrogate", "solver": r.solver})
    r.attack(f"square@{lab}", "strong", make_attack("square", r.model, eps, seed=r.seed,
                                                    n_queries=s.square_queries))
    if s.autoattack:
        aux = r.state.aux_path(f"autoattack@{lab}")
        aa = make_attack("autoattack", r.model, eps, seed=r.seed, num_classes=r.num_classes,
                         square_queries=s.autoattack_square_queries, batch_size=r.batch_size,
                         state_path=str(aux) if aux else None)
        r.attack(f"autoattack@{lab}", "strong", aa, reference=aa.describe().get("reference"))
        r.verdict(checks.check_autoattack(aa.describe()), "strong")
        r.verdict(checks.check_autoattack_labels(getattr(aa, "disagreements", 0), r.n), "strong")
    else:
        add_result(r.record, {"key": f"autoattack@{lab}", "suite": "strong", "protocol": "paper",
                              "attack": "autoattack", "accuracy": None, "correct": None,
                              "n": r.n, "eps": eps, "eps_label": lab,
                              "status": "skipped: EvalSettings.autoattack is False",
                              "solver": r.solver})
    r.verdict(checks.check_solver_failures(
        {k: v for k, v in r.failures.items() if k not in before}, r.n), "strong")


def rigorous_suite(r: _Run) -> None:
    """The rigorous protocol (:func:`run_rigorous`) with the paper protocol's masks."""
    rs = r.settings.rigorous
    stages = 6 + len(rs.pgd_losses) + (1 if (r.solver is not None and rs.rk4_attack) else 0) \
        - (0 if rs.autoattack else 1)
    r.bar.start("rigorous", r.n * stages)
    res = run_rigorous(r.model, r.X, r.Y, r.clean_correct, settings=rs,
                       batch_size=r.batch_size, device=r.device, seed=r.seed,
                       num_classes=r.num_classes, solver=r.solver, masks=r.masks,
                       state=r.state, tick=r.bar.tick, stage=r.bar.stage)
    for e in res.entries:
        add_result(r.record, e)
    for v in res.verdicts:
        r.verdict(v, "rigorous")
    if "worst_case" in res.masks:
        r.masks["rigorous/worst_case"] = res.masks["worst_case"]


def alignment_suite(r: _Run) -> None:
    """One entry per horizon, the report under ``record["alignment"]``, the verdict."""
    from ..analysis.alignment import AlignmentError, alignment_report, check_alignment_model
    try:
        check_alignment_model(r.model)
    except AlignmentError as e:
        if r.explicit("alignment"):
            raise
        r.record["suites"].setdefault("alignment", {"keys": [], "wall_time_s": None})
        r.verdict(verdict("aligned_stability", "n/a", str(e)), "alignment")
        return
    a = r.settings.alignment
    rho, rho_source = r.region_level()
    r.bar.stage("alignment")
    rep = r.state.compute("alignment/report", lambda: to_jsonable(alignment_report(
        r.model, a, x=r.X.to(r.device), y=r.Y.to(r.device), rho=rho, progress=r.bar.stage,
        beta=float(getattr(getattr(r.config, "loss", None), "beta", 0.85)))))
    rep["rho_source"] = rho_source
    r.record["alignment"] = rep
    for key, h in rep["horizons"].items():
        add_result(r.record, result_entry(
            f"alignment/ar@{key}", "alignment", "alignment", h["aligned_count"], rep["n"],
            solver=r.solver, seed=a.seed, metric="alignment rate AR(rho, H, tau)",
            rho=rep["rho"], tau=rep["tau"], horizon=h["horizon"], nearest=h["nearest"],
            inside=h["inside"], per_shell=h["per_shell"], n_per_class=a.n_per_class,
            classes=rep["classes"], error_norm=rep["solver"]["error_norm"],
            max_f_norm=rep["equilibria"]["max_f_norm"],
            max_re_eig=rep["equilibria"]["max_re_eig_max"], vdot_negative=rep["vdot_negative"]))
    c = rep.get("containment")
    if c and c["terminal_in_proa"]:
        add_result(r.record, result_entry(
            "alignment/containment", "alignment", "alignment", c["contained"],
            c["terminal_in_proa"], solver=r.solver, seed=a.seed,
            metric="Prop. 5: trajectories h(t_0..t_Gamma) inside {W_y < rho} among correct "
                   "test points with W_y(h(T)) < rho", mean_dW_dt=c["mean_dW_dt"],
            l_con_test=c["l_con_test"], terminal_in_proa_rate=c["terminal_in_proa_rate"],
            rho=rep["rho"]))
    ri = rep.get("reverse_inclusion")
    if ri:
        for key, num, den, what in (
                ("reverse@h0", "h0_inside_correct", "correct", "correct test points whose h(0) "
                 "lies in {W_y < rho}"),
                ("reverse@hT", "hT_inside_correct", "correct", "correct test points whose h(T) "
                 "lies in {W_y < rho}"),
                ("roa_in_proa", "roa_in_proa_count", "in_basin", "test points whose h(0) flows "
                 "to c_y by the horizon that start in {W_y < rho}")):
            add_result(r.record, result_entry(
                f"alignment/{key}", "alignment", "alignment", ri[num], ri[den],
                solver=r.solver, seed=a.seed, metric=f"reverse inclusion: {what}",
                rho=rep["rho"], tau=ri["tau"], horizon=ri["horizon"],
                per_class={k: (v[num] / v[den] if v[den] else None)
                           for k, v in ri["per_class"].items()}))
    r.verdict(checks.check_aligned_stability(rep, r.settings.aligned_threshold), "alignment")


SUITES: dict[str, Callable[[_Run], None]] = {
    "clean": clean_suite, "corruptions": corruptions_suite, "attacks": attacks_suite,
    "strong": strong_suite, "rigorous": rigorous_suite, "alignment": alignment_suite,
    "certify": certify_suite}
"""Every suite, in the order :func:`evaluate` runs them."""


def evaluate(model: nn.Module, dataset, suite: str | Iterable[str] = "clean", n: int = 1000,
             seed: int = 0, batch_size: int = 256, device: str | torch.device = "cpu",
             surrogate=None, progress: bool = True, model_name: str | None = None,
             meta: dict | None = None, *, config: Any = None, checkpoint: str | None = None,
             settings: EvalSettings | None = None, subset: str = "first",
             dataset_name: str | None = None, state_path: str | None = None,
             shard=None) -> dict:
    """Evaluate ``model`` on ``n`` images of ``dataset`` with ``suite``; return the record.

    Args:
        model: any classifier, ``(B, C, H, W)`` in [0, 1] → logits ``(B, L)``.
        dataset: indexable, ``dataset[i] = (image (C, H, W) in [0, 1], label)``.
        suite: a name of :data:`SUITES`, ``all``, or a list of them.
        n, seed, subset: the sample (see :func:`load_subset`) and the base seed.
        batch_size, device: batches of the attacks and forwards.
        surrogate: model(s) VNI-FGSM is crafted on (``nn.Module``, ``{name: module}`` or a list
            of modules / ``(name, module)``); ``None`` skips VNI-FGSM, and the record says so.
        progress: show a tqdm bar per suite.
        model_name, meta, config, checkpoint, dataset_name: recorded as given.
        settings: :class:`EvalSettings` (defaults: the documented protocols).
        state_path: per-image results are stored there as they are computed and read back by a
            later call with the same arguments (:mod:`zubovnet.evaluation.state`); the caller
            deletes it once the record is safe (:meth:`EvalState.remove`).
        shard: this process's :class:`~zubovnet.evaluation.shard.Shard` of an evaluation
            sharded over ``torchrun`` processes (default: single process).  Every rank returns
            the same record, equal to the single-process one (wall times and the
            ``distributed`` entry aside); the caller writes it from rank 0.

    Returns the record (:mod:`zubovnet.evaluation.records`): ``results`` maps keys such as
    ``clean``, ``corruption/gaussian_noise``, ``pgd@8/255``, ``autoattack@16/255``,
    ``rigorous/worst_case`` to entries; ``verdicts`` lists the checks.
    """
    requested = [suite] if isinstance(suite, str) else list(suite)
    suites = expand_suites(suite)
    s = settings or EvalSettings()
    if int(n) < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    if int(batch_size) < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    torch.manual_seed(seed)
    dev = torch.device(device)
    given_training = bool(model.training)
    model.to(dev).eval()
    assert_eval_mode(model)
    X, Y, idx = load_subset(dataset, n, seed, subset)
    n = len(X)
    solver = solver_settings(model)
    record = new_record(
        model_name or type(model).__name__, checkpoint=checkpoint, config=config, meta=meta,
        data={"dataset": dataset_name or type(dataset).__name__, "split": "test",
              "size": len(dataset), "n": n, "subset": subset,
              "indices": idx if subset == "random" else f"first {n}"},
        seed=seed, solver=solver, settings=s, device=str(dev),
        parameters=sum(p.numel() for p in model.parameters()), model_class=type(model).__name__)
    record["model"]["given_training"] = given_training
    record["suites_requested"] = suites
    key = fingerprint({"checkpoint": checkpoint, "epoch": (meta or {}).get("epoch"),
                       "overrides": (meta or {}).get("overrides"),
                       "suites": suites, "n": n, "seed": seed, "subset": subset,
                       "batch_size": batch_size, "settings": to_jsonable(s),
                       "surrogates": [sn for sn, _ in _surrogates(surrogate)],
                       "model": type(model).__name__})
    from .shard import SINGLE
    shard = shard or SINGLE
    if shard.active:
        record["distributed"] = shard.describe()
    state = EvalState(state_path, key, shard)
    record["resumed"] = state.resumed
    r = _Run(model=model, X=X, Y=Y, settings=s, record=record, device=dev,
             batch_size=int(batch_size), seed=seed, solver=solver, state=state,
             bar=_Progress(progress and shard.main), requested=requested, config=config, surrogate=surrogate)
    t_all = time.perf_counter()
    for name in ["clean"] + [x for x in suites if x != "clean"]:
        t0 = time.perf_counter()
        SUITES[name](r)
        r.finish(name, t0)
    r.bar.close()
    record["wall_time_s"]["total"] = time.perf_counter() - t_all
    return record
