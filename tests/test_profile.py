"""The Table IV profile: rows, ratios to Neural ODE, the table layout and the CLI record."""
import argparse
import copy
import json

import pytest
import torch

from zubovnet.config import Config
from zubovnet.models import build_model
from zubovnet.profile import (add_profile_arguments, format_profile_table, profile_models,
                              run_profile)

# a tiny model (the widths of ``small_cfg``) as ``--set`` overrides of the command line
TINY = ["model.state_dim=8", "model.cnn_widths=[8,16]", "model.ode.hidden=32",
        "model.lyapunov.z_widths=[32,32,1]", "model.lyapunov.u_widths=[32,32]",
        "model.equilibria.steps=50", "loss.boundary.variants=2", "loss.counterexample_steps=1"]


@pytest.fixture
def tiny_cfg(small_cfg):
    """``tiny_cfg(name)``: the shared tiny digits config (conftest ``small_cfg``) for ``name``."""
    def make(name: str) -> Config:
        cfg = copy.deepcopy(small_cfg)
        cfg.model.name = name
        return cfg
    return make


def test_profile_rows_side_by_side_with_ratios(tiny_cfg):
    cfgs = [tiny_cfg("neural_ode"), tiny_cfg("zubovnet")]
    rows = profile_models(cfgs, steps=2, batch_size=16, device="cpu", synthetic=True, isolate=False)
    assert [r["model"] for r in rows] == ["neural_ode", "zubovnet"]
    for r, cfg in zip(rows, cfgs):
        # parameters counted on the model the configuration builds (data fields filled in)
        c = Config(model=cfg.model)
        c.model.num_classes, c.model.in_channels, c.model.image_size = 10, 1, 8
        torch.manual_seed(0)
        assert r["params_m"] * 1e6 == pytest.approx(sum(p.numel() for p in build_model(c).parameters()))
        assert r["steps"] == 2 and r["batch_size"] == 16 and r["epoch_extrapolated"]
        assert r["train_step_s"] > 0 and r["infer_step_s"] > 0
        # extrapolated to the digits epoch: ceil(1437 / 16) = 90 batches, ceil(360 / 16) = 23
        assert r["train_epoch_s"] == pytest.approx(r["train_step_s"] * 90)
        assert r["infer_epoch_s"] == pytest.approx(r["infer_step_s"] * 23)
        assert r["train_mem_gb"] >= 0 and r["train_mem_peak_gb"] >= r["train_mem_gb"] - 1e-12
        assert r["memory_method"] in ("rss_hwm_increase_per_step", "rss_peak_increase")
    assert rows[0]["params_m_ratio"] == pytest.approx(1.0)
    assert rows[1]["train_epoch_s_ratio"] == pytest.approx(rows[1]["train_epoch_s"] / rows[0]["train_epoch_s"])
    table = format_profile_table(rows)
    assert "| Model | Params (M) | Train Time/Epoch (s) | Train Memory (GB) | Inference Time/Epoch (s) |" in table
    assert "| Neural ODE |" in table and "| Zubov-Net |" in table and "Ratios to Neural ODE" in table


def test_profile_on_the_real_split_and_without_reference(tiny_cfg):
    rows = profile_models([tiny_cfg("feedforward")], steps=2, batch_size=32, device="cpu",
                          isolate=False)
    r = rows[0]
    assert r["train_size"] == 1293 and r["test_size"] == 360     # digits train minus validation
    assert r["params_m_ratio"] is None and "Ratios" not in format_profile_table(rows)


def test_profile_cli_writes_a_record(tmp_path, capsys):
    out = tmp_path / "profile.json"
    parser = add_profile_arguments(argparse.ArgumentParser())
    args = parser.parse_args(["feedforward", "neural_ode", "--dataset", "digits", "--synthetic",
                              "--steps", "2", "--batch-size", "8", "--device", "cpu",
                              "--no-isolate", "--out", str(out)]
                             + [a for t in TINY for a in ("--set", t)])
    assert run_profile(args) == 0
    printed = capsys.readouterr().out
    assert "| Feed-forward |" in printed and "Ratios to Neural ODE" in printed
    record = json.loads(out.read_text())
    assert [r["model"] for r in record["rows"]] == ["feedforward", "neural_ode"]
    assert record["settings"]["steps"] == 2 and record["environment"]["torch"] == torch.__version__
    assert record["configs"][1]["model"]["state_dim"] == 8


@pytest.mark.slow
def test_profile_isolated_subprocess(tiny_cfg):
    rows = profile_models([tiny_cfg("feedforward")], steps=2, batch_size=8, device="cpu",
                          synthetic=True, isolate=True)
    assert rows[0]["memory_method"].endswith("_subprocess") and rows[0]["train_step_s"] > 0
