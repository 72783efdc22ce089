"""Evaluation suites: :func:`evaluate` runs one or more suites on a model and returns a record.

Suites (SPEC §5):

``clean``        accuracy on the clean test images (always computed; every other suite uses it).
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
``certify``      the certified radius of Proposition 6 (:mod:`zubovnet.analysis.certify`):
                 certified accuracy at 1/255, 2/255, 8/255 and the median radius, with sound
                 Lipschitz bounds, conditional on forward invariance (the alignment rate is
                 reported beside it); Zubov-Net only.
``all``          all of the above (``alignment``/``certify`` where the model supports them).

Input contract: ``model(x) -> logits (B, L)`` for ``x`` ``(B, C, H, W)`` in [0, 1] — any
classifier; ``dataset[i] -> (image (C, H, W) in [0, 1], label)``.  The evaluator puts the model
in eval mode (ODE blocks then use their evaluation tolerance, 1e-3 by default), asserts that
no module stays in training mode, and flags randomness in the forward pass.

Sample: the first ``n`` images of the dataset (``subset="first"``, default) or a random subset
drawn with ``torch.Generator().manual_seed(seed)`` (``subset="random"``; the indices are
recorded).  ``torch.manual_seed(seed)`` is called first; every attack and corruption draws
from its own seeded generator, so a number does not depend on which other suites ran.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Iterable, Optional

import torch
from torch import nn

from .attacks import (PAPER_EPS, PAPER_STEP_FRACTION, PAPER_STEPS, WHITE_BOX_ATTACKS,
                      assert_eval_mode, eps_label, forward_determinism, make_attack, predict,
                      run_attack)
from .records import add_result, new_record, result_entry, to_jsonable, verdict
from ..analysis.alignment import AlignmentSettings
from .rigorous import SOLVER_ERRORS, RigorousSettings, run_rigorous

__all__ = ["SUITES", "EvalSettings", "evaluate", "load_subset", "solver_settings",
           "expand_suites"]

SUITES = ("clean", "corruptions", "attacks", "strong", "rigorous", "alignment", "certify")


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
    square_queries: int = 5000               # Square (Table III) query budget
    autoattack_square_queries: Optional[int] = None  # None: reference 5,000
    autoattack: bool = True                  # False: Table III's AutoAttack recorded as skipped
    severities: tuple = (1, 2, 3, 4, 5)      # corruption severities
    corruptions: Optional[tuple] = None      # None: all eight of Table I
    determinism_n: int = 64                  # images of the determinism check
    determinism_rtol: float = 1e-5           # FLAG: two forwards differ by more (x max|logit|)
    rigorous: RigorousSettings = field(default_factory=RigorousSettings)
    alignment: AlignmentSettings = field(default_factory=AlignmentSettings)
    aligned_threshold: float = 0.9           # verdict aligned_stability: FLAG if AR@10T is below
    certify_eps: tuple = (1 / 255, 2 / 255, 8 / 255)  # radii of the certified accuracy (L∞)
    certify_lipschitz_points: int = 16       # images of the empirical (lower) estimate of L_phi


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
            raise ValueError(f"unknown suite {s!r}; choose from {', '.join(SUITES + ('all',))}")
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
    try:
        from ..models import ode_blocks
    except Exception:  # pragma: no cover
        return None
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


def evaluate(model: nn.Module, dataset, suite: str | Iterable[str] = "clean", n: int = 1000,
             seed: int = 0, batch_size: int = 256, device: str | torch.device = "cpu",
             surrogate=None, progress: bool = True, model_name: str | None = None,
             meta: dict | None = None, *, config: Any = None, checkpoint: str | None = None,
             settings: EvalSettings | None = None, subset: str = "first",
             dataset_name: str | None = None) -> dict:
    """Evaluate ``model`` on ``n`` images of ``dataset`` with ``suite``; return the record.

    Args:
        model: any classifier, ``(B, C, H, W)`` in [0, 1] → logits ``(B, L)``.
        dataset: indexable, ``dataset[i] = (image (C, H, W) in [0, 1], label)``.
        suite: ``clean|corruptions|attacks|strong|rigorous|all`` or a list of them.
        n, seed, subset: the sample (see :func:`load_subset`) and the base seed.
        batch_size, device: batches of the attacks and forwards.
        surrogate: model(s) VNI-FGSM is crafted on (``nn.Module``, ``{name: module}`` or a list
            of modules / ``(name, module)``); ``None`` skips VNI-FGSM, and the record says so.
        progress: show a tqdm bar per suite.
        model_name, meta, config, checkpoint, dataset_name: recorded as given.
        settings: :class:`EvalSettings` (defaults: the documented protocols).

    Returns the record (:mod:`zubovnet.evaluation.records`): ``results`` maps keys such as
    ``clean``, ``corruption/gaussian_noise``, ``pgd@8/255``, ``autoattack@16/255``,
    ``rigorous/worst_case`` to entries; ``verdicts`` lists the checks.
    """
    suites = expand_suites(suite)
    s = settings or EvalSettings()
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
    record["suites_requested"] = suites
    bar = _Progress(progress)
    t_all = time.perf_counter()

    def add_verdict(v, suite_name):
        v = dict(v)
        v["suite"] = suite_name
        record["verdicts"].append(to_jsonable(v))

    # ---- sanity: eval mode and determinism
    add_verdict(verdict("eval_mode", "pass",
                        "evaluated in eval mode (asserted for every module)" +
                        ("; the model was handed over in train mode and switched" if
                         given_training else ""), given_training=given_training), "sanity")
    xd = X[:s.determinism_n].to(dev)
    det = forward_determinism(model, xd)
    tol = s.determinism_rtol * max(1.0, det["scale"])
    ok = det["max_abs_diff"] <= tol and det["argmax_agree"]
    add_verdict(verdict("determinism", "pass" if ok else "FLAG",
                        "two forward passes agree" if ok else
                        "two forward passes on the same input differ: randomness in forward "
                        "(attack with expectation over transformation, AutoAttack 'rand')",
                        tolerance=tol, **det), "sanity")

    # ---- clean (always)
    t0 = time.perf_counter()
    bar.start("clean", n)
    clean_correct = torch.zeros(n, dtype=torch.bool)
    for i in range(0, n, batch_size):
        xb = X[i:i + batch_size].to(dev)
        clean_correct[i:i + len(xb)] = (predict(model, xb) == Y[i:i + len(xb)].to(dev)).cpu()
        bar.tick(len(xb))
    with torch.no_grad():
        num_classes = int(model(X[:1].to(dev)).shape[1])
    wall = time.perf_counter() - t0
    add_result(record, result_entry("clean", "clean", "clean", int(clean_correct.sum()), n,
                                    solver=solver, wall_time_s=wall, seed=seed))
    record["suites"]["clean"]["wall_time_s"] = wall
    record["wall_time_s"]["clean"] = wall
    masks: dict[str, torch.Tensor] = {"clean": clean_correct}

    def finish(name, t_start):
        w = time.perf_counter() - t_start
        record["suites"].setdefault(name, {"keys": [], "wall_time_s": None})["wall_time_s"] = w
        record["wall_time_s"][name] = w

    def attack_entry(key, suite_name, atk, extra=None):
        bar.stage(key)
        t1 = time.perf_counter()
        try:
            adv_correct = run_attack(model, atk, X, Y, batch_size, dev, bar.tick)
        except SOLVER_ERRORS as err:  # an adversarial input the ODE solver cannot integrate
            msg = f"{type(err).__name__}: {err}"
            add_result(record, {"key": key, "suite": suite_name, "protocol": "paper",
                                "accuracy": None, "correct": None, "n": n,
                                "status": f"error: {msg}", "attack_settings": atk.describe(),
                                "eps": atk.eps, "eps_label": eps_label(atk.eps),
                                "solver": solver, "wall_time_s": time.perf_counter() - t1})
            add_verdict(verdict("attack_errors", "FLAG", f"{key} failed: {msg}", key=key),
                        suite_name)
            return None, None
        robust = clean_correct & adv_correct
        masks[key] = robust
        e = result_entry(key, suite_name, "paper", int(robust.sum()), n, attack=atk.describe(),
                         solver=solver, wall_time_s=time.perf_counter() - t1,
                         accuracy_adv_only=adv_correct.float().mean().item(), **(extra or {}))
        add_result(record, e)
        return e, robust

    # ---- corruptions
    if "corruptions" in suites:
        try:
            from . import corruptions as C
        except ImportError as e:  # pragma: no cover - module shipped with the package
            raise ImportError("the corruptions suite needs zubovnet.evaluation.corruptions") from e
        names = tuple(s.corruptions or C.CORRUPTIONS)
        t0 = time.perf_counter()
        bar.start("corruptions", n * len(names) * len(s.severities))
        for ci, name in enumerate(names):
            bar.stage(name)
            t1 = time.perf_counter()
            per = {}
            total = 0
            for sev in s.severities:
                g = torch.Generator().manual_seed(seed * 100_003 + 1_009 * ci + sev)
                correct = 0
                for i in range(0, n, batch_size):
                    xb, yb = X[i:i + batch_size].to(dev), Y[i:i + batch_size].to(dev)
                    xc = C.corrupt(xb, name, sev, generator=g)
                    if xc.shape != xb.shape or xc.min() < -1e-6 or xc.max() > 1 + 1e-6:
                        raise ValueError(f"corruption {name} (severity {sev}) left [0, 1]")
                    correct += int((predict(model, xc) == yb).sum())
                    bar.tick(len(xb))
                per[str(sev)] = correct / n if n else None
                total += correct
            add_result(record, result_entry(
                f"corruption/{name}", "corruptions", "paper", total, n * len(s.severities),
                corruption={"name": name, "severities": list(s.severities),
                            "parameters": "Hendrycks & Dietterich CIFAR-10-C",
                            "generator_seed_rule": "seed*100003 + 1009*index + severity"},
                solver=solver, wall_time_s=time.perf_counter() - t1, seed=seed,
                images=n, per_severity=per, headline="mean over severities"))
        finish("corruptions", t0)

    # ---- white-box attacks of Table II
    if "attacks" in suites:
        t0 = time.perf_counter()
        bar.start("attacks", n * len(s.paper_eps) * len(s.white_box))
        for eps in s.paper_eps:
            for name in s.white_box:
                atk = make_attack(name, model, eps, steps=s.paper_steps,
                                  step_size=eps * s.step_fraction, seed=seed)
                attack_entry(f"{name}@{eps_label(eps)}", "attacks", atk)
        finish("attacks", t0)

    # ---- strong attacks of Table III
    if "strong" in suites:
        t0 = time.perf_counter()
        eps, lab = s.strong_eps, eps_label(s.strong_eps)
        surs = _surrogates(surrogate)
        bar.start("strong", n * (len(surs) + 2))
        if surs:
            worst = clean_correct.clone()
            for sname, smodel in surs:
                smodel.to(dev).eval()
                assert_eval_mode(smodel)
                atk = make_attack("vnifgsm", model, eps, steps=s.paper_steps,
                                  step_size=eps * s.step_fraction, seed=seed, surrogate=smodel,
                                  surrogate_name=sname, N=s.vni_N, beta=s.vni_beta)
                _, rob = attack_entry(f"vnifgsm[{sname}]@{lab}", "strong", atk)
                if rob is not None:
                    worst &= rob
            add_result(record, result_entry(
                f"vnifgsm@{lab}", "strong", "paper", int(worst.sum()), n,
                attack={**atk.describe(), "surrogate": [sn for sn, _ in surs]}, solver=solver,
                headline="worst case over surrogates",
                over=[f"vnifgsm[{sn}]@{lab}" for sn, _ in surs]))
        else:
            add_result(record, {"key": f"vnifgsm@{lab}", "suite": "strong", "protocol": "paper",
                                "attack": "vnifgsm-transfer", "accuracy": None, "correct": None,
                                "n": n, "eps": eps, "eps_label": lab,
                                "status": "skipped: no surrogate", "solver": solver})
        attack_entry(f"square@{lab}", "strong",
                     make_attack("square", model, eps, seed=seed, n_queries=s.square_queries))
        if s.autoattack:
            aa = make_attack("autoattack", model, eps, seed=seed, num_classes=num_classes,
                             square_queries=s.autoattack_square_queries, batch_size=batch_size)
            attack_entry(f"autoattack@{lab}", "strong", aa)
            d = aa.describe()
            warns = d.get("warnings", [])
            why = ("AutoAttack's own checks: " + "; ".join(warns) if warns else
                   "AutoAttack's own checks raised no warning")
            why += "" if d.get("reference") else " (not the reference configuration)"
            add_verdict(verdict("autoattack_flags", "FLAG" if warns else "pass", why, eps=eps,
                                warnings=warns, reference=d.get("reference"),
                                implementation=d.get("implementation")), "strong")
        else:
            add_result(record, {"key": f"autoattack@{lab}", "suite": "strong", "protocol": "paper",
                                "attack": "autoattack", "accuracy": None, "correct": None,
                                "n": n, "eps": eps, "eps_label": lab,
                                "status": "skipped: EvalSettings.autoattack is False",
                                "solver": solver})
        finish("strong", t0)

    # ---- rigorous protocol
    if "rigorous" in suites:
        t0 = time.perf_counter()
        r = s.rigorous
        has_ode = solver is not None
        stages = 5 + (0 if (f"pgd@{eps_label(r.eps)}" in masks) else 1) + \
            (1 if (has_ode and r.rk4_attack) else 0) - (0 if r.autoattack else 1)
        bar.start("rigorous", n * stages)
        res = run_rigorous(model, X, Y, clean_correct, settings=r, batch_size=batch_size,
                           device=dev, seed=seed, num_classes=num_classes, solver=solver,
                           masks=masks, tick=bar.tick, stage=bar.stage)
        for e in res.entries:
            add_result(record, e)
        for v in res.verdicts:
            add_verdict(v, "rigorous")
        finish("rigorous", t0)

    # ---- alignment of the prescribed regions with the flow's basins
    if "alignment" in suites:
        t0 = time.perf_counter()
        requested = [suite] if isinstance(suite, str) else list(suite)
        _alignment_suite(record, model, X, Y, s, config, dev, explicit="all" not in requested,
                         solver=solver, stage=bar.stage)
        finish("alignment", t0)

    # ---- certified radius (Prop. 6)
    if "certify" in suites:
        t0 = time.perf_counter()
        requested = [suite] if isinstance(suite, str) else list(suite)
        _certify_suite(record, model, X, Y, clean_correct, s, config, dev,
                       explicit="all" not in requested, solver=solver, stage=bar.stage)
        finish("certify", t0)

    bar.close()
    record["wall_time_s"]["total"] = time.perf_counter() - t_all
    return record


def _config_rho(s: EvalSettings, config: Any) -> tuple[float, str]:
    if s.alignment.rho is not None:
        return float(s.alignment.rho), "settings"
    loss = getattr(config, "loss", None)
    return ((float(loss.rho), "config loss.rho") if loss is not None else (0.9, "default 0.9"))


def _alignment_suite(record: dict, model: nn.Module, X: torch.Tensor, Y: torch.Tensor,
                     s: EvalSettings, config: Any, dev: torch.device, explicit: bool,
                     solver, stage) -> None:
    """The ``alignment`` suite: one entry per horizon, the full report under
    ``record["alignment"]`` and the ``aligned_stability`` verdict."""
    from ..analysis.alignment import AlignmentError, alignment_report
    from .records import add_result, result_entry, to_jsonable, verdict
    try:
        from ..analysis.alignment import check_alignment_model
        check_alignment_model(model)
    except AlignmentError as e:
        if explicit:
            raise
        record["suites"].setdefault("alignment", {"keys": [], "wall_time_s": None})
        record["verdicts"].append(to_jsonable({**verdict("aligned_stability", "n/a", str(e)),
                                               "suite": "alignment"}))
        return
    a = s.alignment
    rho, rho_source = _config_rho(s, config)
    rep = alignment_report(model, a, x=X.to(dev), y=Y.to(dev), rho=rho, progress=stage)
    rep["rho_source"] = rho_source
    record["alignment"] = to_jsonable(rep)
    for key, h in rep["horizons"].items():
        add_result(record, result_entry(
            f"alignment/ar@{key}", "alignment", "alignment", h["aligned_count"], rep["n"],
            solver=solver, seed=a.seed, metric="alignment rate AR(rho, H, tau)",
            rho=rep["rho"], tau=rep["tau"], horizon=h["horizon"], nearest=h["nearest"],
            inside=h["inside"], per_shell=h["per_shell"], n_per_class=a.n_per_class,
            max_f_norm=rep["equilibria"]["max_f_norm"],
            max_re_eig=rep["equilibria"]["max_re_eig_max"],
            vdot_negative=rep["vdot_negative"],
            classes=rep["classes"], error_norm=rep["solver"]["error_norm"]))
    c = rep.get("containment")
    if c and c["terminal_in_proa"]:
        add_result(record, result_entry(
            "alignment/containment", "alignment", "alignment", c["contained"],
            c["terminal_in_proa"], solver=solver, seed=a.seed,
            metric="Prop. 5: trajectories h(t_0..t_Gamma) inside {W_y < rho} among correct "
                   "test points with W_y(h(T)) < rho", mean_dW_dt=c["mean_dW_dt"],
            l_con_test=c["l_con_test"],
            terminal_in_proa_rate=c["terminal_in_proa_rate"], rho=rep["rho"]))
    hkeys = list(rep["horizons"])
    last = rep["horizons"][hkeys[-1]]
    ok = last["aligned"] >= s.aligned_threshold
    eq = rep["equilibria"]
    reason = (f"AR@{hkeys[-1]} = {last['aligned']:.3f} (nearest {last['nearest']:.3f}, "
              f"max ||f(c_i)|| {eq['max_f_norm']:.3g}, max Re eig J_f(c_i) "
              f"{eq['max_re_eig_max']:+.3g})")
    reason += (" >= " if ok else " < ") + f"{s.aligned_threshold:g}: " + (
        "the PRoAs flow to their equilibria" if ok else
        "points of the PRoAs do not reach their own equilibrium; Prop. 5 and the certified "
        "radius of Prop. 6 assume they do")
    record["verdicts"].append(to_jsonable({**verdict(
        "aligned_stability", "pass" if ok else "FLAG", reason, ar=last["aligned"],
        threshold=s.aligned_threshold, nearest=last["nearest"], max_f_norm=eq["max_f_norm"]),
        "suite": "alignment"}))


def _certify_suite(record: dict, model: nn.Module, X: torch.Tensor, Y: torch.Tensor,
                   clean_correct: torch.Tensor, s: EvalSettings, config: Any, dev: torch.device,
                   explicit: bool, solver, stage) -> None:
    """The ``certify`` suite: certified accuracy at ``s.certify_eps`` (Prop. 6), the bounds, the
    soundness check of ``L_φ`` against an empirical lower estimate, the alignment rate beside
    it and, when the rigorous suite ran, certified ≤ empirical robust accuracy."""
    from ..analysis.certify import (UnsupportedLayerError, certified_radius,
                                    empirical_lipschitz, extractor_lipschitz, lyapunov_lipschitz)
    from .attacks import eps_label
    from .records import add_result, result_entry, to_jsonable, verdict

    def na(reason: str) -> None:
        record["suites"].setdefault("certify", {"keys": [], "wall_time_s": None})
        record["verdicts"].append(to_jsonable({**verdict("certified_radius", "n/a", reason),
                                               "suite": "certify"}))

    head = getattr(model, "head", None)
    if head is None or not hasattr(head, "convex") or not hasattr(model, "features"):
        msg = (f"the certify suite needs a Zubov-Net (a Lyapunov head); "
               f"{type(model).__name__} has none")
        if explicit:
            raise TypeError(msg)
        return na(msg)
    try:
        L_phi = extractor_lipschitz(model.extractor, tuple(X.shape[1:]))
        L_g = lyapunov_lipschitz(head).to(dev)
    except UnsupportedLayerError as e:
        if explicit:
            raise
        return na(str(e))
    rho, rho_source = _config_rho(s, config)
    stage("certify")
    with torch.no_grad():
        h0 = torch.cat([model.features(X[i:i + 512].to(dev)) for i in range(0, len(X), 512)])
        Yd = Y.to(dev)
        W0 = model.lyapunov(h0, Yd)
        dist0 = (h0 - model.equilibria[Yd]).norm(dim=1)
    radius = certified_radius(W0, dist0, L_g[Yd], float(head.delta), L_phi, rho).cpu()
    correct = clean_correct.cpu()
    n = len(X)
    in_proa = (W0.cpu() < rho)
    g = torch.Generator().manual_seed(record.get("seed", 0) or 0)
    pick = torch.randperm(n, generator=g)[:s.certify_lipschitz_points]
    L_emp = empirical_lipschitz(model.extractor, X[pick].to(dev), generator=g)
    cond = ("conditional on forward invariance of {W_y < rho} and disjoint regions "
            "(Props. 3-5); the alignment rate measures the first")
    ar = None
    if "alignment" in record:
        ar = record["alignment"]["horizons"]
    else:
        from ..analysis.alignment import AlignmentError, alignment_report
        try:
            ar = alignment_report(model, s.alignment, rho=rho)["horizons"]
        except AlignmentError:
            ar = None
    ar_last = None if ar is None else ar[list(ar)[-1]]["aligned"]
    summary = {"L_phi": L_phi, "L_phi_empirical_lower": L_emp, "L_g_max": float(L_g.max()),
               "L_g_mean": float(L_g.mean()), "delta": float(head.delta), "rho": rho,
               "rho_source": rho_source, "norm": "Linf (image) -> L2 (state)",
               "h0_in_proa": float(in_proa.float().mean()),
               "median_radius": float(radius.median()),
               "median_radius_correct": float(radius[correct].median()) if correct.any() else None,
               "alignment_rate_10T": ar_last, "condition": cond}
    record["certify"] = to_jsonable(summary)
    for eps in s.certify_eps:
        cert = correct & (radius >= eps)
        add_result(record, result_entry(
            f"certify@{eps_label(eps)}", "certify", "certified (Prop. 6)", int(cert.sum()), n,
            solver=solver, eps=eps, eps_label=eps_label(eps), norm="Linf",
            median_radius=summary["median_radius"], L_phi=L_phi, L_g_max=summary["L_g_max"],
            alignment_rate_10T=ar_last, condition=cond))
    sound = L_phi >= L_emp * (1 - 1e-4)
    record["verdicts"].append(to_jsonable({**verdict(
        "lipschitz_bound", "pass" if sound else "FLAG",
        (f"the bound L_phi = {L_phi:.4g} is above the empirical estimate {L_emp:.4g}" if sound
         else f"the 'bound' L_phi = {L_phi:.4g} is below an empirical estimate {L_emp:.4g}: "
              "the certified radii are not sound"), L_phi=L_phi, empirical=L_emp),
        "suite": "certify"}))
    aligned = ar_last is not None and ar_last >= s.aligned_threshold
    record["verdicts"].append(to_jsonable({**verdict(
        "certificate_condition", "pass" if aligned else "FLAG",
        (f"AR@10T = {ar_last:.3f}: " if ar_last is not None else "no alignment measured: ") +
        ("the regions flow to their equilibria, the condition of the certificate holds for "
         "this share of the regions" if aligned else
         "the regions are not shown to be forward invariant; the certified radii certify "
         "region membership of h(0) only, not the prediction"), ar=ar_last),
        "suite": "certify"}))
    worst = record["results"].get("rigorous/worst_case")
    if worst is not None and worst.get("accuracy") is not None:
        eps_r = worst.get("eps")
        cert = correct & (radius >= (eps_r or 0.0))
        c_acc = float(cert.float().mean())
        ok = c_acc <= worst["accuracy"] + 1e-12
        record["verdicts"].append(to_jsonable({**verdict(
            "certified_vs_empirical", "pass" if ok else "FLAG",
            f"certified {100 * c_acc:.2f}% <= empirical worst case {100 * worst['accuracy']:.2f}%"
            if ok else f"certified {100 * c_acc:.2f}% exceeds the empirical worst case "
            f"{100 * worst['accuracy']:.2f}% at the same eps: a bound or the attack is wrong",
            certified=c_acc, empirical=worst["accuracy"], eps=eps_r), "suite": "certify"}))
