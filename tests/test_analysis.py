"""Figures (zubovnet.analysis): each writes a real PNG, and the numbers behind it are right.

The planar-model tests use flows with known answers: ``f ≡ 0`` (nothing moves, so the true
basin of a point is its nearest equilibrium and the decision is ``argmin V`` at the point)
and ``f(h) = c₀ − h`` (everything converges to ``c₀``).
"""
import argparse
import csv
import math

import numpy as np
import pytest
import torch
from torch import nn

from zubovnet.analysis import (accuracy_vs_eps, accuracy_vs_severity, add_figures_arguments,
                               alignment_profile, basin_map, category_scores, feature_summary,
                               final_features, merge_records, normalise_to_max, perturb,
                               plot_accuracy_vs_eps, plot_accuracy_vs_severity, plot_alignment,
                               plot_basins, plot_loss_weight_sweep, plot_training_dynamics,
                               plot_tsne, read_metrics, run_figures, sample_per_class,
                               tsne_embedding)
from zubovnet.analysis._common import is_png
from zubovnet.config import Config
from zubovnet.evaluation.records import add_result, new_record, result_entry, write_record
from zubovnet.models import build_model


def _assert_png(path, min_bytes=5000):
    """A real, non-blank PNG: signature, size, and pixels that are not all one colour."""
    import matplotlib.image as mpimg
    assert is_png(path), path
    assert path.stat().st_size > min_bytes
    img = mpimg.imread(str(path))
    assert img.ndim == 3 and img.shape[0] > 100 and img.shape[1] > 100
    assert float(img[..., :3].std()) > 0.01


# ----------------------------------------------------------------------------- models
def _planar_cfg(num_classes=3) -> Config:
    cfg = Config()
    m = cfg.model
    m.name, m.extractor, m.state_dim = "zubovnet", "identity", 2
    m.in_channels, m.image_size, m.num_classes = 2, 1, num_classes
    m.ode.hidden = 16
    m.lyapunov.z_widths, m.lyapunov.u_widths = [16, 16, 1], [16, 16]
    m.equilibria.norm, m.equilibria.steps = 1.5, 100
    cfg.data.name = "synthetic2d"
    return cfg


def _planar_model(field: str, num_classes=3):
    torch.manual_seed(0)
    cfg = _planar_cfg(num_classes)
    if field == "zero":      # dopri5's first step on a zero field is the 1e-6 underflow floor
        cfg.model.ode.solver, cfg.model.ode.step_size = "rk4", 0.25
    model = build_model(cfg).eval()
    if field == "zero":
        last = model.dynamics.net[-1]
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)
    elif field == "to_c0":                       # f(h) = c0 − h
        lin = nn.Linear(2, 2)
        with torch.no_grad():
            lin.weight.copy_(-torch.eye(2))
            lin.bias.copy_(model.equilibria[0])
        model.dynamics.net = lin
    return model


@pytest.fixture(scope="module")
def digits_model():
    """An untrained tiny Zubov-Net on 8x8 digits and a few test images per class."""
    from zubovnet.data import build_datasets
    cfg = Config()
    m = cfg.model
    m.state_dim, m.cnn_widths, m.ode.hidden = 8, [8, 16], 16
    m.lyapunov.z_widths, m.lyapunov.u_widths = [16, 16, 1], [16, 16]
    m.equilibria.steps = 50
    splits = build_datasets(cfg.data)
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    return model, splits.test


# ----------------------------------------------------------------------------- basins
def test_basins_of_the_zero_field_are_the_voronoi_cells_of_the_equilibria():
    model = _planar_model("zero")
    bm = basin_map(model, xlim=(-2, 2), ylim=(-2, 2), resolution=25, rho=0.9)
    gx, gy = np.meshgrid(bm.xs, bm.ys)
    H = np.stack([gx, gy], -1)
    C = model.equilibria.numpy()
    d = np.linalg.norm(H[..., None, :] - C, axis=-1)
    expected = np.where(d.min(-1) <= bm.capture_radius, d.argmin(-1), -1)
    assert np.array_equal(bm.basin, expected)
    assert np.allclose(bm.endpoints, H, atol=1e-5)          # nothing moved
    with torch.no_grad():
        Ht = torch.as_tensor(H.reshape(-1, 2), dtype=torch.float32)
        W = model.lyapunov(Ht).numpy().reshape(25, 25, -1)
        dec = model.energy(Ht).argmin(1).numpy().reshape(25, 25)
    assert np.allclose(bm.lyapunov, W, atol=1e-6)
    assert np.array_equal(bm.decision, dec)
    # the capture radius is a quarter of the closest pair of equilibria
    pair = min(np.linalg.norm(C[i] - C[j]) for i in range(3) for j in range(i + 1, 3))
    assert bm.capture_radius == pytest.approx(pair / 4, rel=1e-5)
    s = bm.summary()
    assert s["proa_fraction"] == pytest.approx(float((W < 0.9).any(-1).mean()))
    mis = ((W < 0.9) & (expected[..., None] != np.arange(3))).any(-1)
    assert np.array_equal(bm.misaligned, mis)


def test_every_point_flows_into_c0_under_a_globally_attracting_field(tmp_path):
    model = _planar_model("to_c0")
    bm = basin_map(model, xlim=(-3, 3), ylim=(-3, 3), resolution=15, horizon_factor=10.0)
    assert (bm.basin == 0).all()
    assert bm.summary()["unconverged_fraction"] == 0.0
    c0 = model.equilibria[0].numpy()
    assert np.abs(bm.endpoints - c0).max() < 1e-2          # |h(10) − c0| = e^{-10}|h(0) − c0|


def test_plot_basins_writes_the_picture(tmp_path):
    model = _planar_model("zero", num_classes=4)
    g = torch.Generator().manual_seed(0)
    x = torch.rand(60, 2, generator=g)
    y = torch.arange(60) % 4
    path = tmp_path / "basins.png"
    bm = plot_basins(model, path, data=(x, y), resolution=40, n_trajectories=8)
    _assert_png(path)
    assert 0.0 <= bm.extra["accuracy"] <= 1.0
    with torch.no_grad():
        assert bm.extra["accuracy"] == pytest.approx(float((model(x).argmax(1) == y).float().mean()))


def test_basins_refuse_a_state_space_that_is_not_a_plane(digits_model):
    with pytest.raises(ValueError, match="state_dim = 2"):
        basin_map(digits_model[0], resolution=5)


# ----------------------------------------------------------------------------- t-SNE
def test_sample_per_class_is_balanced_sorted_and_seeded(digits_model):
    _, test = digits_model
    X, Y = sample_per_class(test, 4, seed=1)
    assert X.shape == (40, 1, 8, 8) and torch.equal(torch.bincount(Y), torch.full((10,), 4))
    assert torch.equal(Y, Y.sort().values)
    X2, _ = sample_per_class(test, 4, seed=1)
    X3, _ = sample_per_class(test, 4, seed=2)
    assert torch.equal(X, X2) and not torch.equal(X, X3)


def test_perturbations_respect_their_threat_models(digits_model):
    model, test = digits_model
    X, Y = sample_per_class(test, 2)
    eps = 8 / 255
    adv = perturb(model, X, Y, "fgsm", eps=eps)
    delta = (adv - X).abs()
    assert delta.max() <= eps + 1e-6 and adv.min() >= 0 and adv.max() <= 1
    # FGSM moves every pixel by exactly eps unless the clip to [0, 1] stops it
    free = (X > eps) & (X < 1 - eps)
    assert torch.allclose(delta[free], torch.full_like(delta[free], eps), atol=1e-6)
    noisy = perturb(model, X, Y, "gaussian", severity=3, seed=0)
    assert noisy.min() >= 0 and noisy.max() <= 1 and not torch.equal(noisy, X)
    assert torch.equal(noisy, perturb(model, X, Y, "gaussian", severity=3, seed=0))
    assert torch.equal(perturb(model, X, Y, "clean"), X)
    with pytest.raises(ValueError):
        perturb(model, X, Y, "blur")


def test_feature_summary_scores_separated_clusters_high():
    g = torch.Generator().manual_seed(0)
    y = torch.arange(40) % 2
    tight = torch.stack([y * 10.0, y * 0.0], 1) + 0.01 * torch.randn(40, 2, generator=g)
    mixed = torch.randn(40, 2, generator=g)
    s1 = feature_summary(tight, y, y)
    s2 = feature_summary(mixed, y, 1 - y)
    assert s1["silhouette"] > 0.95 and abs(s2["silhouette"]) < 0.3
    assert s1["accuracy"] == 1.0 and s2["accuracy"] == 0.0 and s1["n"] == 40


def test_plot_tsne_writes_one_panel_per_model_and_condition(tmp_path, digits_model):
    model, test = digits_model
    X, Y = sample_per_class(test, 3, num_classes=4)
    feats = final_features(model, X)
    assert feats.shape == (12, 8)
    emb = tsne_embedding(feats, perplexity=5)
    assert emb.shape == (12, 2) and np.isfinite(emb).all()
    path = tmp_path / "tsne.png"
    summary = plot_tsne({"a": model}, X, Y, path, perplexity=5)
    _assert_png(path)
    assert set(summary["a"]) == {"clean", "fgsm", "gaussian"}
    with torch.no_grad():
        clean_acc = float((model(X).argmax(1) == Y).float().mean())
    assert summary["a"]["clean"]["accuracy"] == pytest.approx(clean_acc)


# ----------------------------------------------------------------------------- dynamics
def _write_metrics(path, rows):
    keys = list(dict.fromkeys(k for r in rows for k in r))
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=keys)
        w.writeheader()
        w.writerows(rows)


def test_read_metrics_and_plot_training_dynamics(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    rows = [{"epoch": e, "L_cla": 2.0 / e, "L_fc": 1.0 / e, "L_sep": -e, "W_y": 0.5 - 0.05 * e,
             "W_other": 0.8 + 0.01 * e, "train_loss": 3.0 / e, "train_acc": 0.1 * e,
             "val_acc": "" if e == 1 else 0.1 * e} for e in range(1, 6)]
    _write_metrics(run / "metrics.csv", rows)
    got = read_metrics(run)
    assert len(got) == 5 and got[2]["L_cla"] == pytest.approx(2.0 / 3)
    assert math.isnan(got[0]["val_acc"]) and got[1]["val_acc"] == pytest.approx(0.2)
    path = tmp_path / "dyn.png"
    drawn = plot_training_dynamics({"zubov": run}, path)
    _assert_png(path)
    assert len(drawn) == 7 and not any("consistency" in t for t in drawn)   # no L_con logged
    with pytest.raises(FileNotFoundError):
        read_metrics(tmp_path / "nothing")


# ----------------------------------------------------------------------------- records
def _record(name, clean, attacks=None, corruptions=None, loss=None):
    rec = new_record(name, config={"loss": loss} if loss else None,
                     data={"dataset": "x", "n": 100, "size": 100})
    add_result(rec, result_entry("clean", "clean", "clean", int(round(100 * clean)), 100))
    for (att, eps), acc in (attacks or {}).items():
        from zubovnet.evaluation.attacks import eps_label
        add_result(rec, result_entry(f"{att}@{eps_label(eps)}", "attacks", "paper",
                                     int(round(100 * acc)), 100,
                                     attack={"attack": att, "eps": eps, "eps_label": eps_label(eps)}))
    for cname, per in (corruptions or {}).items():
        mean = sum(per) / len(per)
        add_result(rec, result_entry(f"corruption/{cname}", "corruptions", "paper",
                                     int(round(500 * mean)), 500, images=100,
                                     per_severity={str(i + 1): a for i, a in enumerate(per)}))
    return rec


def test_curves_start_at_clean_accuracy_and_are_sorted(tmp_path):
    a = _record("A", 0.9, attacks={("fgsm", 16 / 255): 0.3, ("fgsm", 8 / 255): 0.5,
                                   ("pgd", 8 / 255): 0.4})
    b = _record("A", 0.9, corruptions={"gaussian_noise": [0.8, 0.7, 0.6, 0.5, 0.4],
                                       "contrast": [0.9, 0.8, 0.7, 0.6, 0.5]})
    merged = merge_records([a, b])
    assert len(merged) == 1 and "fgsm@8/255" in merged[0]["results"] \
        and "corruption/contrast" in merged[0]["results"]
    eps = accuracy_vs_eps(merged[0])
    assert eps["fgsm"] == [(0.0, 0.9), (pytest.approx(8 / 255), 0.5), (pytest.approx(16 / 255), 0.3)]
    sev = accuracy_vs_severity(merged[0])
    assert sev["gaussian_noise"] == [(0, 0.9), (1, 0.8), (2, 0.7), (3, 0.6), (4, 0.5), (5, 0.4)]
    out = plot_accuracy_vs_severity([a, b, _record("B", 0.8, corruptions={
        "gaussian_noise": [0.7] * 5, "contrast": [0.6] * 5})], tmp_path / "sev.png")
    _assert_png(tmp_path / "sev.png")
    assert [p[1] for p in out["A"]["mean"]] == pytest.approx([0.9, 0.85, 0.75, 0.65, 0.55, 0.45])
    plot_accuracy_vs_eps([a, b], tmp_path / "eps.png")
    _assert_png(tmp_path / "eps.png")
    with pytest.raises(ValueError):
        plot_accuracy_vs_eps([b], tmp_path / "none.png")


def test_loss_weight_sweep_normalises_each_metric_to_its_maximum(tmp_path):
    from zubovnet.evaluation.tables import TABLE1_CORRUPTIONS, TABLE2_ATTACKS
    recs = []
    for i, (clean, noise, adv) in enumerate([(0.9, 0.6, 0.3), (0.8, 0.7, 0.5)]):
        recs.append(_record(f"cfg{i}", clean,
                            attacks={(k, e): adv for _, k in TABLE2_ATTACKS
                                     for e in (8 / 255, 16 / 255)},
                            corruptions={k: [noise] * 5 for _, k in TABLE1_CORRUPTIONS},
                            loss={"lambda_fc": 1.5, "lambda_con": 0.12 * (i + 1), "lambda_sep": 0.9}))
    s = category_scores(recs[0])
    assert s == pytest.approx({"clean": 0.9, "noise": 0.6, "adversarial": 0.3, "overall": 0.6})
    assert normalise_to_max([1.0, None, 2.0]) == [50.0, None, 100.0]
    rows = plot_loss_weight_sweep(recs, tmp_path / "lw.png")
    _assert_png(tmp_path / "lw.png")
    assert rows[0]["label"] == "(1.5, 0.12, 0.9)" and rows[1]["label"] == "(1.5, 0.24, 0.9)"
    for m in ("clean", "noise", "adversarial", "overall"):
        assert max(r["normalised"][m] for r in rows) == pytest.approx(100.0)
    assert rows[0]["normalised"]["adversarial"] == pytest.approx(60.0)


def _alignment_record(name, rates):
    """A record of the alignment suite: ``rates`` maps a horizon key to its AR; one populated
    shell of two (the outer one, as in high dimension), two classes."""
    rec = _record(name, 0.9)
    rec["alignment"] = {"rho": 0.9, "n": 40, "horizons": {
        k: {"aligned": a, "nearest": min(1.0, a + 0.1),
            "per_shell": [{"W_range": [0.0, 0.45], "n": 0, "aligned": None},
                          {"W_range": [0.45, 0.9], "n": 40, "aligned": a}],
            "per_class": {"1": a / 2, "0": a}} for k, a in rates.items()}}
    return rec


def test_alignment_figure_orders_horizons_and_keeps_empty_shells(tmp_path):
    rec = _alignment_record("Z", {"10T": 0.5, "1T": 0.8, "3T": 0.6})
    p = alignment_profile(rec)
    assert p["horizons"] == [(1.0, 0.8, pytest.approx(0.9)), (3.0, 0.6, pytest.approx(0.7)),
                             (10.0, 0.5, pytest.approx(0.6))]
    assert p["last"] == "10T"
    assert p["shells"] == [(0.0, 0.45, 0, None), (0.45, 0.9, 40, 0.5)]
    assert p["classes"] == [(0, 0.5), (1, 0.25)]
    assert alignment_profile(_record("N", 0.9)) is None
    out = plot_alignment([rec, _record("N", 0.9), _alignment_record("Y", {"1T": 1.0, "10T": 0.9})],
                         tmp_path / "al.png")
    _assert_png(tmp_path / "al.png")
    assert list(out) == ["Z", "Y"]
    with pytest.raises(ValueError, match="no alignment report"):
        plot_alignment([_record("N", 0.9)], tmp_path / "none.png")


# ----------------------------------------------------------------------------- CLI
def _args(argv):
    return add_figures_arguments(argparse.ArgumentParser()).parse_args(argv)


def test_figures_cli_curves_dynamics_and_basins(tmp_path, capsys):
    a = _record("A", 0.9, attacks={("fgsm", 8 / 255): 0.5},
                corruptions={"gaussian_noise": [0.8, 0.7, 0.6, 0.5, 0.4]})
    write_record(a, tmp_path / "recs" / "eval_all.json")
    assert run_figures(_args(["curves", str(tmp_path / "recs"), "--out", str(tmp_path / "f")])) == 0
    _assert_png(tmp_path / "f" / "curves_eps.png")
    _assert_png(tmp_path / "f" / "curves_severity.png")
    write_record(_alignment_record("A", {"1T": 0.7}), tmp_path / "al" / "eval_alignment.json")
    out = str(tmp_path / "f")
    assert run_figures(_args(["alignment", str(tmp_path / "al"), "--out", out])) == 0
    _assert_png(tmp_path / "f" / "alignment.png")
    import json
    assert json.loads((tmp_path / "f" / "alignment.json").read_text())["A"]["last"] == "1T"
    assert run_figures(_args(["alignment", str(tmp_path / "recs"), "--out", out])) == 2

    run = tmp_path / "run"
    run.mkdir()
    _write_metrics(run / "metrics.csv", [{"epoch": e, "L_cla": 1.0 / e, "train_acc": 0.2 * e}
                                         for e in (1, 2, 3)])
    assert run_figures(_args(["dynamics", str(run), "--out", str(tmp_path / "f"),
                              "--labels", "mine"])) == 0
    _assert_png(tmp_path / "f" / "dynamics.png")

    from zubovnet.training.checkpoint import save_checkpoint
    cfg = _planar_cfg(num_classes=4)
    cfg.model.ode.solver, cfg.model.ode.step_size = "rk4", 0.25
    model = _planar_model("zero", num_classes=4)
    save_checkpoint(tmp_path / "planar", 1, model, cfg)
    assert run_figures(_args(["basins", str(tmp_path / "planar"), "--out", str(tmp_path / "f"),
                              "--resolution", "30"])) == 0
    _assert_png(tmp_path / "f" / "basins.png")
    assert (tmp_path / "f" / "basins.json").is_file()
    assert run_figures(_args(["dynamics", str(tmp_path / "nothing"), "--out", str(tmp_path)])) == 2
    assert "no metrics.csv" in capsys.readouterr().err
