"""`zubovnet reproduce`: the configs of every paper experiment, the plan, and a real tiny run.

* every YAML under configs/ loads, every run config builds its model, writes into its own run
  folder, and the paper configs carry the paper's hyper-parameters (§IV-A) and each
  experiment's switch;
* every experiment of the paper's tables and figures is registered, has its configs, and
  runs through ``--dry-run``; statuses (done / partial / todo / stale) follow the files;
* a tiny digits experiment trains, evaluates and writes its tables and figure; a second call
  skips every training and evaluation; an unknown method stops before anything runs.
"""
import argparse
import json
import types
from pathlib import Path

import pytest
import torch
import yaml

import zubovnet
from zubovnet.analysis import mean_lyapunov_derivative
from zubovnet.config import config_to_dict, load_config
from zubovnet.data import dataset_info
from zubovnet.evaluation.records import add_result, new_record, result_entry, write_record
from zubovnet.experiments import (EXPERIMENTS, Experiment, Figure, Run, add_reproduce_arguments,
                                  assemble_table, default_configs_root, get_experiment,
                                  missing_methods, plan_experiment, record_status,
                                  register_experiment, reproduce, run_reproduce, run_status)
from zubovnet.profile import profile_run

CONFIGS = default_configs_root()
ALL_YAML = sorted(CONFIGS.rglob("*.yaml"))
RUN_YAML = [p for p in ALL_YAML if not p.name.startswith("_")]   # "_*.yaml": partial bases
PAPER_DATASETS = ("svhn", "cifar10", "cifar100", "tiny_imagenet")
METHODS = ("zubovnet", "neural_ode", "resnet18", "projnode", "sodef", "fxts", "lyanet")


def _rel(p: Path) -> str:
    return p.relative_to(CONFIGS).as_posix()


def _args(argv):
    return add_reproduce_arguments(argparse.ArgumentParser()).parse_args(argv)


# ----------------------------------------------------------------------------- configs
def test_configs_folder_is_found_and_populated():
    assert CONFIGS.is_dir() and len(RUN_YAML) >= 60


@pytest.mark.parametrize("path", ALL_YAML, ids=_rel)
def test_every_config_loads(path):
    cfg = load_config(path)
    assert cfg.train.epochs > 0


_BUILT: dict[str, int] = {}     # model section (data fields filled) -> parameters


@pytest.mark.parametrize("path", RUN_YAML, ids=_rel)
def test_every_run_config_builds_its_model(path):
    """Construct (not train) the model of every run config, with the shapes and statistics of
    its dataset filled in from the registry as training does.  The construction-time
    equilibrium optimisation is cut to one step (not where the regions are made invariant:
    their disjointness is checked on the real equilibria); configs with the same model section share one
    build (about 50 distinct models, a few seconds on one core)."""
    from zubovnet.training.trainer import fill_data_fields
    cfg = load_config(path)
    fill_data_fields(cfg, types.SimpleNamespace(**dataset_info(cfg.data.name)))
    if not cfg.model.invariance.enabled:    # invariance checks the real equilibria's spacing
        cfg.model.equilibria.steps = min(cfg.model.equilibria.steps, 1)
    key = json.dumps(config_to_dict(cfg)["model"], sort_keys=True)
    if key not in _BUILT:
        torch.manual_seed(0)
        model = zubovnet.build_model(cfg)
        assert isinstance(model, torch.nn.Module)
        _BUILT[key] = sum(p.numel() for p in model.parameters())
    assert _BUILT[key] > 0


def test_every_run_config_writes_into_its_own_folder():
    """``configs/X/Y.yaml`` trains into ``runs/X/Y`` — the folder reproduce uses too."""
    seen = set()
    for p in RUN_YAML:
        cfg = load_config(p)
        assert cfg.train.out_dir == "runs/" + _rel(p)[:-5], p
        assert cfg.name not in seen, f"two configs named {cfg.name}"
        seen.add(cfg.name)


@pytest.mark.parametrize("ds", PAPER_DATASETS)
def test_paper_configs_carry_the_paper_hyperparameters(ds):
    """The paper's §IV-A training and model settings, for every method of Tables I and II."""
    for method in METHODS:
        cfg = load_config(CONFIGS / ds / f"{method}.yaml")
        assert cfg.model.name == method and cfg.data.name == ds
        t, o, lc, m = cfg.train, cfg.model.ode, cfg.loss, cfg.model
        assert (t.lr, t.betas, t.weight_decay, t.milestones, t.lr_gamma, t.epochs) == \
            (1e-3, [0.9, 0.999], 0.0, [90], 0.1, 140)
        assert cfg.data.batch_size == 128 and t.max_steps_per_epoch is None
        assert (o.solver, o.rtol_train, o.atol_train, o.rtol_eval, o.atol_eval) == \
            ("dopri5", 0.1, 0.1, 1e-3, 1e-3)
        assert (o.T, o.gamma, o.hidden, o.activation) == (1.0, 10, 256, "tanh")
        assert m.extractor == "resnet18" and m.state_dim == 256
        assert (m.lyapunov.classifier, m.lyapunov.z_widths, m.lyapunov.u_widths) == \
            ("piacnn", [256, 256, 1], [256, 256])
        assert (lc.lambda_fc, lc.lambda_con, lc.lambda_sep, lc.beta) == (1.5, 0.12, 0.9, 0.85)
        assert (lc.counterexample_steps, lc.counterexample_step_size) == (5, 1.2)
        assert (lc.boundary.variants, lc.boundary.radius_max, lc.boundary.max_classes) == (20, 0.5, 30)
        assert lc.consistency_samples is None and cfg.adversarial.method == "none"


def test_table3_adversarial_configs():
    for stem, base, method in (("pgd_at", "resnet18", "pgd_at"), ("trades", "resnet18", "trades"),
                               ("mart", "resnet18", "mart"),
                               ("zubovnet_trades", "zubovnet", "trades")):
        cfg = load_config(CONFIGS / "cifar10" / f"{stem}.yaml")
        assert cfg.model.name == base and cfg.adversarial.method == method
        assert cfg.adversarial.eps == pytest.approx(8 / 255)
        assert cfg.adversarial.step_size == pytest.approx(2 / 255) and cfg.adversarial.steps == 10


def _diff(path: str, ref: str = "cifar10/paper_literal.yaml") -> dict:
    """Settings of a config that differ from ``ref`` (name and out_dir aside); the paper's own
    ablations, sweeps and solver rows vary the paper-literal Zubov-Net."""
    from zubovnet.config import config_to_dict

    def flat(d, pre=""):
        out = {}
        for k, v in d.items():
            if isinstance(v, dict):
                out.update(flat(v, f"{pre}{k}."))
            else:
                out[pre + k] = v
        return out
    a = flat(config_to_dict(load_config(CONFIGS / ref)))
    b = flat(config_to_dict(load_config(CONFIGS / path)))
    return {k: b[k] for k in b if a[k] != b[k] and k not in ("name", "train.out_dir")}


ALIGNED = {"model.equilibria.assignment": "data", "loss.lambda_eq": 10.0, "loss.lambda_stab": 1.0,
           "loss.region_samples": 256, "loss.region_radius_power": 1.0,
           "loss.consistency_weight": "uniform"}


@pytest.mark.parametrize("ds", ["cifar10", "cifar100", "svhn", "tiny_imagenet", "fashion_mnist",
                                "digits", "synthetic2d"])
def test_default_zubovnet_is_the_paper_literal_one_plus_the_alignment_options(ds):
    assert _diff(f"{ds}/zubovnet.yaml", f"{ds}/paper_literal.yaml") == ALIGNED


def test_alignment_ablation_configs_change_exactly_their_switch():
    for ds in ("digits", "fashion_mnist"):
        ref = f"{ds}/alignment/paper_literal.yaml"
        assert _diff(f"{ds}/alignment/aligned.yaml", ref) == ALIGNED
        assert _diff(f"{ds}/alignment/eq.yaml", ref) == {"loss.lambda_eq": 10.0}
        assert _diff(f"{ds}/alignment/sum.yaml", ref) == {"loss.consistency_reduction": "sum"}
        assert _diff(f"{ds}/alignment/data.yaml", ref) == {"model.equilibria.assignment": "data"}
        assert _diff(f"{ds}/alignment/stab.yaml", ref) == {"loss.lambda_stab": 1.0}
        assert _diff(f"{ds}/alignment/uniform.yaml", ref) == {"loss.consistency_weight": "uniform"}
        assert _diff(f"{ds}/alignment/region.yaml", ref) == {"loss.region_samples": 256,
                                                             "loss.region_radius_power": 1.0}
        assert _diff(f"{ds}/alignment/aligned_beta0.1.yaml", ref) == {**ALIGNED, "loss.beta": 0.1}


def test_table5_ablations_change_exactly_their_switch():
    assert _diff("cifar10/ablation/cla_fc.yaml") == {"loss.lambda_con": 0.0, "loss.lambda_sep": 0.0}
    assert _diff("cifar10/ablation/no_con.yaml") == {"loss.lambda_con": 0.0}
    assert _diff("cifar10/ablation/no_sep.yaml") == {"loss.lambda_sep": 0.0}
    assert _diff("cifar10/ablation/no_sep_ineq.yaml") == {"loss.lambda_sep": 0.0,
                                                         "loss.consistency": "inequality"}
    assert _diff("cifar10/ablation/icnn.yaml") == {"model.lyapunov.classifier": "icnn"}
    assert _diff("cifar10/ablation/picnn.yaml") == {"model.lyapunov.classifier": "picnn"}


def test_table6_solver_and_horizon_rows():
    o = "model.ode."
    assert _diff("cifar10/solver/dopri5_tol1e-3.yaml") == {o + "rtol_train": 1e-3,
                                                           o + "atol_train": 1e-3}
    assert _diff("cifar10/solver/dopri5_tol1e-1.yaml") == {o + "rtol_eval": 0.1, o + "atol_eval": 0.1}
    assert _diff("cifar10/solver/rk4_step0.1.yaml") == {o + "solver": "rk4", o + "step_size": 0.1}
    assert _diff("cifar10/solver/euler_step0.1.yaml") == {o + "solver": "euler", o + "step_size": 0.1}
    for T, gamma in ((2, 15), (5, 30), (7, 40), (10, 60)):
        assert _diff(f"cifar10/solver/T{T}_gamma{gamma}.yaml") == {o + "T": float(T), o + "gamma": gamma}


def test_fig4_sweep_has_eight_distinct_weightings_around_the_paper():
    exp = get_experiment("fig4-loss-weights")
    triples = []
    for r in exp.rows:
        lc = load_config(CONFIGS / r.config).loss
        triples.append((lc.lambda_fc, lc.lambda_con, lc.lambda_sep))
        assert r.label == f"({lc.lambda_fc:g}, {lc.lambda_con:g}, {lc.lambda_sep:g})"
    assert len(triples) == 8 == len(set(triples)) and (1.5, 0.12, 0.9) in triples
    for r in exp.rows:   # one weight changed at a time
        assert len(_diff(r.config)) <= 1


def test_profile_and_fashion_budgets():
    for stem in ("resnet18", "neural_ode", "lyanet", "projnode", "zubovnet"):
        d = (_diff(f"cifar10/profile/{stem}.yaml", "cifar10/zubovnet.yaml") if stem == "zubovnet"
             else None)
        cfg = load_config(CONFIGS / "cifar10" / "profile" / f"{stem}.yaml")
        assert cfg.train.epochs == 5 and cfg.model.name == stem
    assert d == {"train.epochs": 5, "train.eval_every": 5}
    names = {}
    for stem in ("zubovnet", "neural_ode", "cnn"):
        cfg = load_config(CONFIGS / "fashion_mnist" / f"{stem}.yaml")
        names[stem] = cfg.model.name
        assert cfg.data.name == "fashion_mnist" and cfg.model.extractor == "cnn"
        assert (cfg.train.epochs, cfg.train.max_steps_per_epoch) == (10, 120)   # same budget
    assert names == {"zubovnet": "zubovnet", "neural_ode": "neural_ode", "cnn": "feedforward"}
    planar = load_config(CONFIGS / "synthetic2d" / "zubovnet.yaml")
    assert (planar.model.extractor, planar.model.state_dim, planar.data.name) == \
        ("identity", 2, "synthetic2d")


# ----------------------------------------------------------------------------- registry
def test_every_table_and_figure_of_the_paper_has_an_experiment():
    papers = {e.paper.split(" (")[0] for e in EXPERIMENTS.values()}
    for item in ("Table I", "Table II", "Table III", "Table IV", "Table V", "Table VI",
                 "Fig. 1(b)", "Fig. 3", "Fig. 4", "Fig. 5"):
        assert item in papers, item
    for ds in PAPER_DATASETS:
        assert f"table1-{ds}" in EXPERIMENTS and f"table2-{ds}" in EXPERIMENTS
    assert "fashion-mnist-study" in EXPERIMENTS
    for exp in EXPERIMENTS.values():
        for r in exp.rows + exp.surrogates + tuple(x for f in exp.figures for x in f.runs):
            assert (CONFIGS / r.config).is_file(), (exp.name, r.config)
        assert exp.rows and (exp.layouts or exp.figures), exp.name


def test_register_experiment_rejects_duplicates_and_unknown_layouts():
    exp = get_experiment("fig5-dynamics")
    with pytest.raises(KeyError):
        register_experiment(exp)
    with pytest.raises(ValueError, match="layout"):
        register_experiment(Experiment("x-bad", "x", "x", exp.rows, layouts=("table9",)))
    assert "x-bad" not in EXPERIMENTS


@pytest.mark.parametrize("name", list(EXPERIMENTS))
def test_dry_run_succeeds_for_every_experiment(name, tmp_path, capsys):
    assert run_reproduce(_args([name, "--dry-run", "--out", str(tmp_path)])) == 0
    out = capsys.readouterr().out
    exp = get_experiment(name)
    assert f"experiment {name}" in out
    for r in exp.rows:
        assert r.config in out
    assert "NOT IMPLEMENTED" not in out          # every method of the paper exists
    assert not any(tmp_path.iterdir())           # nothing written


def test_dry_run_status_follows_the_run_folders(tmp_path, capsys):
    def finish(key, epoch):
        ck = tmp_path / key / "checkpoints"
        ck.mkdir(parents=True)
        (ck / "latest.json").write_text(json.dumps({"epoch": epoch, "path": f"epoch_{epoch:04d}"}))
    finish("cifar10/zubovnet", 140)
    finish("cifar10/lyanet", 37)
    plan = plan_experiment("table1-cifar10", out=tmp_path)
    status = {rp.run.label: (rp.status, rp.epoch) for rp in plan.runs}
    assert status["Zubov-Net"] == ("done", 140)
    assert status["LyaNet"] == ("partial", 37)
    assert status["ResNet18"] == ("todo", 0)
    assert run_reproduce(_args(["table1-cifar10", "--dry-run", "--out", str(tmp_path)])) == 0
    out = capsys.readouterr().out
    zline = next(line for line in out.splitlines() if "cifar10/zubovnet.yaml" in line)
    lline = next(line for line in out.splitlines() if "cifar10/lyanet.yaml" in line)
    assert "done" in zline and "(epoch 140/140)" in zline
    assert "partial" in lline and "(epoch 37/140)" in lline
    # a record of the final epoch covering the whole test split is done; others are stale
    rec = tmp_path / "cifar10/zubovnet/eval_corruptions.json"
    rec.write_text(json.dumps({"model": {"epoch": 140}, "data": {"n": 10000, "size": 10000}}))
    assert record_status(rec, None, 140) == "done"
    assert record_status(rec, 500, 140) == "done"
    assert record_status(rec, None, 150) == "stale (epoch 140)"
    rec.write_text(json.dumps({"model": {"epoch": 140}, "data": {"n": 1000, "size": 10000}}))
    assert record_status(rec, None, 140) == "stale (n=1000)"
    assert record_status(rec, 1000, 140) == "done"
    assert record_status(tmp_path / "none.json", None, 1) == "todo"
    assert run_status(tmp_path / "cifar10/zubovnet", 200) == ("partial", 140)


def test_dataset_and_method_filters(tmp_path, capsys):
    plan = plan_experiment("table2", out=tmp_path, dataset="svhn")
    assert {rp.dataset for rp in plan.runs} == {"svhn"} and len(plan.rows) == 7
    assert plan.output_dir.name == "table2-svhn"
    plan = plan_experiment("table3-cifar10", out=tmp_path, methods=["zubovnet"])
    assert [rp.run.label for rp in plan.rows] == ["Zubov-Net"]
    assert {rp.run.label for rp in plan.runs} == {"Zubov-Net", "Neural ODE", "ResNet18"}
    assert run_reproduce(_args(["table3-cifar10", "--dataset", "svhn", "--dry-run",
                                "--out", str(tmp_path)])) == 2
    assert "no run left" in capsys.readouterr().err
    assert run_reproduce(_args(["no-such-experiment", "--dry-run"])) == 2


def test_table_layouts_from_records(tmp_path):
    """Table V from fake records: Avg is the mean of the ten robust numbers, dW/dt its own."""
    plan = plan_experiment("table5-ablation", out=tmp_path)
    corr = ("gaussian_noise", "glass_blur", "shot_noise", "speckle_noise", "motion_blur",
            "impulse_noise", "brightness", "contrast")
    for i, rp in enumerate(plan.rows):
        for suite in ("corruptions", "attacks"):
            rec = new_record(rp.run.label, data={"n": 100, "size": 10000}, meta={"epoch": 140})
            add_result(rec, result_entry("clean", "clean", "clean", 90 - i, 100))
            if suite == "corruptions":
                for j, c in enumerate(corr):
                    add_result(rec, result_entry(f"corruption/{c}", suite, "paper", 50 + j, 100))
            else:
                for j, a in enumerate(("fgsm", "pgd", "bim", "apgd", "jitter")):
                    for e, off in (("8/255", 0), ("16/255", -20)):
                        add_result(rec, result_entry(f"{a}@{e}", suite, "paper", 40 + j + off, 100))
            write_record(rec, rp.run_dir / f"eval_{suite}.json")
    (plan.rows[0].run_dir / "lyapunov_derivative.json").write_text(json.dumps({"mean_dWdt": -0.4}))
    doc = assemble_table(plan, "table5")
    headers = [c["header"] for c in doc["columns"]]
    assert headers == ["Orig", "Gauss", "Glass", "Shot", "Speckle", "Motion", "FGSM", "PGD",
                       "BIM", "APGD", "Jitter", "Avg", "dW/dt", "AR@10T"]
    row = doc["rows"][0]["values"]
    assert row["Orig"] == pytest.approx(90.0) and row["Motion"] == pytest.approx(54.0)
    assert row["BIM"] == pytest.approx(42.0)                          # 8/255 only
    assert row["Avg"] == pytest.approx((50 + 51 + 52 + 53 + 54 + 40 + 41 + 42 + 43 + 44) / 10)
    assert row["dW/dt"] == pytest.approx(-0.4) and doc["rows"][1]["values"]["dW/dt"] is None
    md = (plan.output_dir / "table5.md").read_text()
    assert "| w/o L_sep (Ineq) |" in md and "-0.4" in md
    lines = (plan.output_dir / "table5.csv").read_text().strip().splitlines()
    assert len(lines) == 8 and lines[0].startswith("dataset,method,config,Orig")


def test_table4_from_profiles(tmp_path):
    plan = plan_experiment("table4-profile", out=tmp_path)
    assert [e.kind for e in plan.evaluations] == ["profile"] * 5
    for i, rp in enumerate(plan.rows):
        rp.run_dir.mkdir(parents=True)
        (rp.run_dir / "profile.json").write_text(json.dumps(
            {"params_M": 11.0 + i, "train_time_per_epoch_s": 20.0 + i, "train_memory_GB": None,
             "inference_time_per_epoch_s": 1.5, "n": 10000, "size": 10000, "epoch": 5}))
    doc = assemble_table(plan, "table4")
    assert [r["method"] for r in doc["rows"]] == ["ResNet18", "Neural ODE", "LyaNet", "Proj-NODE",
                                                  "Zubov-Net"]
    assert doc["rows"][4]["values"] == {"Params (M)": 15.0, "Train Time/Epoch (s)": 24.0,
                                        "Train Memory (GB)": None, "Inference Time/Epoch (s)": 1.5}
    assert "CUDA only" in (plan.output_dir / "table4.md").read_text()
    assert record_status(plan.rows[0].run_dir / "profile.json", None, 5) == "done"


# ----------------------------------------------------------------------------- tiny real run
TINY = {"data": {"name": "digits", "val_fraction": 0.1, "batch_size": 64},
        "model": {"name": "zubovnet", "extractor": "cnn", "state_dim": 8, "cnn_widths": [8, 16],
                  "ode": {"hidden": 16},
                  "lyapunov": {"z_widths": [16, 16, 1], "u_widths": [16, 16]},
                  "equilibria": {"steps": 50}},
        "loss": {"consistency_samples": 32, "boundary": {"variants": 2}},
        "train": {"epochs": 1, "milestones": [1], "max_steps_per_epoch": 2, "progress": False,
                  "tensorboard": False, "device": "cpu"}}


def _tiny_configs(root: Path, extra: dict | None = None) -> Path:
    (root / "tiny").mkdir(parents=True)
    (root / "tiny" / "_base.yaml").write_text(yaml.safe_dump(TINY))
    for stem, model in (("zubovnet", "zubovnet"), ("neural_ode", "neural_ode")):
        body = {"base": "_base.yaml", "name": f"tiny-{stem}", "model": {"name": model},
                "train": {"out_dir": f"runs/tiny/{stem}"}}
        (root / "tiny" / f"{stem}.yaml").write_text(yaml.safe_dump(body))
    for stem, body in (extra or {}).items():
        (root / "tiny" / f"{stem}.yaml").write_text(yaml.safe_dump({"base": "_base.yaml", **body}))
    return root


@pytest.fixture
def tiny_experiment():
    runs = (Run("tiny/neural_ode.yaml", "Neural ODE"), Run("tiny/zubovnet.yaml", "Zubov-Net"))
    exp = register_experiment(Experiment(
        "test-tiny", "Test", "tiny digits models", runs, suites=("clean",), layouts=("table1",),
        figures=(Figure("dynamics", runs, "tiny_dynamics"),), n=16), replace=True)
    yield exp
    EXPERIMENTS.pop("test-tiny", None)


def test_reproduce_trains_evaluates_assembles_then_skips(tmp_path, tiny_experiment, monkeypatch):
    configs = _tiny_configs(tmp_path / "configs")
    out = tmp_path / "out"
    logs = []
    res = reproduce("test-tiny", out=out, configs_root=configs, device="cpu", log=logs.append)
    assert sorted(p.name for p in res.trained) == ["neural_ode", "zubovnet"]
    for stem in ("neural_ode", "zubovnet"):
        assert run_status(out / "tiny" / stem, 1) == ("done", 1)
        rec = json.loads((out / "tiny" / stem / "eval_clean.json").read_text())
        assert rec["data"]["n"] == 16 and rec["model"]["epoch"] == 1
    doc = json.loads((out / "reproduce/test-tiny/table1.json").read_text())
    assert [r["method"] for r in doc["rows"]] == ["Neural ODE", "Zubov-Net"]
    for row in doc["rows"]:
        rec = json.loads(Path(row["records"][0]).read_text())
        assert row["values"]["Clean"] == pytest.approx(100 * rec["results"]["clean"]["accuracy"])
        assert row["values"]["Gaussian"] is None                      # not evaluated: a dash
    md = (out / "reproduce/test-tiny/table1.md").read_text()
    assert "| Zubov-Net |" in md and "—" in md
    csv_lines = (out / "reproduce/test-tiny/table1.csv").read_text().strip().splitlines()
    assert len(csv_lines) == 3
    png = out / "reproduce/test-tiny/tiny_dynamics.png"
    assert png.stat().st_size > 5000
    assert (out / "reproduce/test-tiny/README.md").is_file()

    # Table IV numbers of a trained run (CPU: no memory figure)
    cfg = load_config(configs / "tiny" / "zubovnet.yaml")
    prof = profile_run(out / "tiny" / "zubovnet", cfg, "cpu", n=32)
    from zubovnet.training.checkpoint import load_checkpoint
    model = load_checkpoint(out / "tiny" / "zubovnet")[0]
    assert prof["params_M"] == pytest.approx(sum(p.numel() for p in model.parameters()) / 1e6)
    metrics = (out / "tiny" / "zubovnet" / "metrics.csv").read_text().splitlines()
    col = metrics[0].split(",").index("train_time")
    assert prof["train_time_per_epoch_s"] == pytest.approx(float(metrics[1].split(",")[col]))
    assert prof["train_memory_GB"] is None and prof["inference_time_per_epoch_s"] > 0
    assert (prof["n"], prof["size"], prof["epoch"]) == (32, 360, 1)

    # second call: every training, evaluation and figure is skipped
    import zubovnet.evaluation as ev
    import zubovnet.training as tr

    def boom(*a, **k):
        raise AssertionError("should have been skipped")
    monkeypatch.setattr(tr, "train", boom)
    monkeypatch.setattr(ev, "evaluate", boom)
    mtime = png.stat().st_mtime
    res2 = reproduce("test-tiny", out=out, configs_root=configs, device="cpu", log=logs.append)
    assert res2.trained == [] and res2.evaluated == [] and res2.figures == []
    assert len(res2.skipped) == 5 and png.stat().st_mtime == mtime
    assert json.loads((out / "reproduce/test-tiny/table1.json").read_text()) == doc
    # asking for more test images than the records hold re-evaluates
    plan = plan_experiment("test-tiny", out=out, configs_root=configs, n=32)
    assert {e.status for e in plan.evaluations} == {"stale (n=16)"}


def test_unknown_method_is_a_clear_error_and_runs_nothing(tmp_path, capsys):
    configs = _tiny_configs(tmp_path / "configs", {"ghost": {
        "name": "tiny-ghost", "model": {"name": "no_such_method"},
        "train": {"out_dir": "runs/tiny/ghost"}}})
    register_experiment(Experiment("test-ghost", "Test", "a method that does not exist",
                                   (Run("tiny/zubovnet.yaml", "Zubov-Net"),
                                    Run("tiny/ghost.yaml", "Ghost")),
                                   suites=("clean",), layouts=("table1",)), replace=True)
    try:
        out = tmp_path / "out"
        with pytest.raises(NotImplementedError, match="(?s)not implemented.*tiny/ghost.yaml"):
            reproduce("test-ghost", out=out, configs_root=configs, log=lambda s: None)
        assert not out.exists()
        argv = ["test-ghost", "--out", str(out), "--configs", str(configs)]
        assert run_reproduce(_args(argv)) == 2
        err = capsys.readouterr().err
        assert "not implemented" in err and "no_such_method" in err and "--method" in err
        assert run_reproduce(_args(argv + ["--dry-run"])) == 0
        assert "NOT IMPLEMENTED" in capsys.readouterr().out
        assert not out.exists()
    finally:
        EXPERIMENTS.pop("test-ghost", None)


def test_missing_adversarial_training_is_reported(monkeypatch):
    import zubovnet.training.objectives as obj
    cfg = load_config(CONFIGS / "cifar10" / "pgd_at.yaml")
    monkeypatch.setattr(obj, "available_objectives", lambda: ["ce", "zubov"])
    assert missing_methods(cfg) == ["adversarial training (adversarial.method=pgd_at)"]
    assert missing_methods(load_config(CONFIGS / "cifar10" / "zubovnet.yaml")) == []


# ----------------------------------------------------------------------------- Table V extra
def _planar(field: str):
    """A planar Zubov-Net (identity extractor, d = 2) whose field is replaced by a linear one."""
    from torch import nn
    from zubovnet.config import Config
    from zubovnet.models import build_model
    cfg = Config()
    m = cfg.model
    m.extractor, m.state_dim, m.in_channels, m.image_size, m.num_classes = "identity", 2, 2, 1, 3
    m.ode.hidden, m.lyapunov.z_widths, m.lyapunov.u_widths = 16, [16, 16, 1], [16, 16]
    m.equilibria.steps = 100
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    lin = nn.Linear(2, 2)
    with torch.no_grad():
        lin.weight.copy_(-torch.eye(2) if field == "to_c0" else torch.zeros(2, 2))
        lin.bias.copy_(model.equilibria[0] if field == "to_c0" else torch.full((2,), 1e-3))
    model.dynamics.net = lin
    return model


def test_mean_lyapunov_derivative_is_negative_under_a_field_into_the_equilibrium():
    """With f(h) = c_0 − h and the true class 0, convexity of V gives ∇V·f ≤ −V < 0."""
    model = _planar("to_c0")
    g = torch.Generator().manual_seed(0)
    x = torch.rand(20, 2, generator=g)
    y = torch.zeros(20, dtype=torch.long)
    got = mean_lyapunov_derivative(model, x, y, batch_size=8)
    assert got["fraction_negative"] == 1.0 and got["mean_dWdt"] < 0
    assert got["states"] == 20 * (model.ode.gamma + 1) and got["n"] == 20
    still = _planar("constant")              # f ≡ 1e-3: |dW/dt| ≤ 1e-3 |∇V| e^{-V}
    assert abs(mean_lyapunov_derivative(still, x, y)["mean_dWdt"]) < 1e-2
