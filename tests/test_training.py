"""The trainer: loss decreases, min_step guard, checkpoints, exact resume after a kill."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from zubovnet.data import build_datasets
from zubovnet.models import StepSizeUnderflowError, build_model
from zubovnet.training import build_objective, load_checkpoint, train
from zubovnet.training.trainer import fill_data_fields


def _batch(cfg, n=64):
    splits = build_datasets(cfg.data)
    fill_data_fields(cfg, splits)
    xs, ys = zip(*[splits.test[i] for i in range(n)])
    return splits, torch.stack(xs), torch.as_tensor([int(v) for v in ys])


def test_optimiser_steps_reduce_total_loss(small_cfg):
    _, x, y = _batch(small_cfg)
    torch.manual_seed(0)
    model = build_model(small_cfg)
    objective = build_objective(small_cfg, model)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    losses, logs = [], None
    for _ in range(12):
        torch.manual_seed(1)           # same counterexample/boundary randomness every step
        loss, logs = objective(model, x, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] - 0.1, losses
    assert {"L_cla", "L_fc", "L_con", "L_sep", "W_y", "W_other"} <= set(logs)


def test_min_step_underflow_is_a_clear_error(small_cfg):
    small_cfg.model.ode.min_step = 1e-2
    small_cfg.model.ode.rtol_eval = small_cfg.model.ode.atol_eval = 1e-12
    torch.manual_seed(0)
    model = build_model(small_cfg).eval()
    with torch.no_grad():                                     # make the field stiff
        model.dynamics.net[2].weight.mul_(200.0)
    with pytest.raises(StepSizeUnderflowError, match="min_step"):
        model(torch.rand(4, 1, 8, 8))


def test_trajectory_and_nfe(small_cfg):
    torch.manual_seed(0)
    model = build_model(small_cfg).eval()
    out = model.forward_all(torch.rand(5, 1, 8, 8))
    assert out.trajectory.shape == (small_cfg.model.ode.gamma + 1, 5, small_cfg.model.state_dim)
    assert model.ode.last_nfe > 0
    assert model.ode.describe()["rtol"] == small_cfg.model.ode.rtol_eval
    model.train()
    assert model.ode.describe()["rtol"] == small_cfg.model.ode.rtol_train


def _tiny_run_cfg(small_cfg, out):
    small_cfg.train.epochs = 3
    small_cfg.train.milestones = [2]
    small_cfg.train.max_steps_per_epoch = 2
    small_cfg.data.batch_size = 32
    small_cfg.train.out_dir = str(out)
    return small_cfg


def test_checkpoint_roundtrip_and_metrics(small_cfg, tmp_path):
    cfg = _tiny_run_cfg(small_cfg, tmp_path / "run")
    cfg.train.epochs = 2
    res = train(cfg)
    model, cfg2, meta = load_checkpoint(tmp_path / "run")
    assert meta["epoch"] == 2 and len(meta["metrics"]) == 2
    for k, v in res.model.state_dict().items():
        assert torch.equal(v, model.state_dict()[k])
    header = (tmp_path / "run" / "metrics.csv").read_text().splitlines()[0].split(",")
    for col in ("L_cla", "L_fc", "L_con", "L_sep", "W_y", "W_other", "val_acc", "lr"):
        assert col in header
    assert not model.training
    assert sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir()) == \
        ["epoch_0001", "epoch_0002", "latest.json"]


def _weights(run):
    latest = json.loads((run / "checkpoints" / "latest.json").read_text())
    return load_file(str(run / "checkpoints" / latest["path"] / "model.safetensors")), latest["epoch"]


@pytest.mark.slow
def test_kill_then_resume_matches_uninterrupted_run(small_cfg, tmp_path):
    import yaml
    from zubovnet.config import config_to_dict
    cfg = _tiny_run_cfg(small_cfg, tmp_path / "a")
    cfg.train.max_steps_per_epoch = 4
    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(config_to_dict(cfg)))
    cmd = [sys.executable, "-m", "zubovnet.cli", "train", str(tmp_path / "cfg.yaml")]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    subprocess.run(cmd + ["--out", str(tmp_path / "a")], check=True, env=env, capture_output=True)

    # second run: SIGKILL as soon as the first epoch's checkpoint is on disk, then --resume
    proc = subprocess.Popen(cmd + ["--out", str(tmp_path / "b")], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    latest = tmp_path / "b" / "checkpoints" / "latest.json"
    t0 = time.time()
    while not latest.exists() and proc.poll() is None and time.time() - t0 < 120:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    _, epoch_at_kill = _weights(tmp_path / "b")
    assert epoch_at_kill < 3, "the run finished before it could be killed"
    subprocess.run(cmd + ["--out", str(tmp_path / "b"), "--resume"], check=True, env=env,
                   capture_output=True)
    wa, ea = _weights(tmp_path / "a")
    wb, eb = _weights(tmp_path / "b")
    assert ea == eb == 3
    for k in wa:
        assert torch.equal(wa[k], wb[k]), k
    ha = json.loads((tmp_path / "a" / "checkpoints" / "epoch_0003" / "checkpoint.json").read_text())
    hb = json.loads((tmp_path / "b" / "checkpoints" / "epoch_0003" / "checkpoint.json").read_text())
    assert [r["train_loss"] for r in ha["metrics"]] == [r["train_loss"] for r in hb["metrics"]]


def test_adjoint_gradients_match_direct_backprop(small_cfg):
    from zubovnet.models import solver_override
    small_cfg.model.ode.rtol_eval = small_cfg.model.ode.atol_eval = 1e-7
    torch.manual_seed(0)
    model = build_model(small_cfg).double().eval()
    x = torch.rand(4, 1, 8, 8, dtype=torch.float64)
    params = [p for p in model.parameters() if p.requires_grad]

    def grads():
        return torch.autograd.grad(model(x).pow(2).sum(), params, allow_unused=True)

    direct = grads()
    with solver_override(model, adjoint=True):
        assert model.ode.adjoint
        adjoint = grads()
    assert not model.ode.adjoint                               # restored
    for a, b in zip(direct, adjoint):
        if a is not None:
            assert torch.allclose(a, b, rtol=1e-4, atol=1e-7)
    with solver_override(model, solver="rk4", step_size=0.05):
        rk4 = grads()
    for a, b in zip(direct, rk4):
        if a is not None:
            assert torch.allclose(a, b, rtol=1e-3, atol=1e-6)


def test_resume_accepts_a_setting_added_later_at_its_default_and_refuses_other_changes():
    from dataclasses import asdict

    from zubovnet.config import Config
    from zubovnet.errors import RunFolderError
    from zubovnet.training.run_folder import resume_changes
    current = asdict(Config())
    saved = asdict(Config())
    del saved["train"]["compile_searches"]               # a run saved before the option existed
    assert resume_changes(saved, current) == {}
    current["train"]["compile_searches"] = True           # a speed option: may change on resume
    assert resume_changes(saved, current) == {"train.compile_searches": (None, True)}
    del saved["loss"]["rho"]                              # lacking, but now not at its default
    current["loss"]["rho"] = 0.5
    with pytest.raises(RunFolderError, match="loss.rho"):
        resume_changes(saved, current)
