"""``zubovnet eval`` as a program: exit codes, validation before work, resumable records."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from record_helpers import strip_volatile

from zubovnet.config import Config
from zubovnet.models import build_model
from zubovnet.training.checkpoint import save_checkpoint


def _checkpoint(tmp_path, name="feedforward"):
    cfg = Config()
    cfg.name = "ff"
    cfg.model.name = name
    cfg.model.cnn_widths = [8, 8, 8]
    cfg.model.state_dim = 8
    torch.manual_seed(0)
    model = build_model(cfg)
    save_checkpoint(tmp_path / "run", 1, model, cfg)
    return tmp_path / "run"


def _eval(*args, **kw):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "zubovnet.cli", "eval", *map(str, args)],
                          capture_output=True, text=True, env=env, **kw)


def test_exit_codes_pass_flag_error(tmp_path):
    run = _checkpoint(tmp_path)
    ok = _eval(run, "--n", "8", "--no-progress", "--out", tmp_path / "a.json")
    assert ok.returncode == 0, ok.stderr
    # a suite that does not apply to the model: one line, exit 2, no record
    wrong = _eval(run, "--n", "8", "--suite", "alignment", "--no-progress",
                  "--out", tmp_path / "b.json")
    assert wrong.returncode == 2 and wrong.stderr.strip().count("\n") == 0
    assert "alignment suite needs" in wrong.stderr and not (tmp_path / "b.json").exists()
    bad = _eval(run, "--n", "0", "--out", tmp_path / "c.json")
    assert bad.returncode == 2 and "positive integer" in bad.stderr
    assert _eval(run, "--device", "tpu").returncode == 2
    again = _eval(run, "--n", "8", "--no-progress", "--out", tmp_path / "a.json")
    assert again.returncode == 2 and "--overwrite" in again.stderr
    assert _eval(run, "--n", "8", "--no-progress", "--out", tmp_path / "a.json",
                 "--overwrite").returncode == 0


def test_a_flag_exits_1(tmp_path):
    cfg_run = _checkpoint(tmp_path, "zubovnet")            # an untrained Zubov-Net is not aligned
    out = tmp_path / "al.json"
    r = _eval(cfg_run, "--n", "8", "--suite", "alignment", "--no-progress", "--out", out)
    assert r.returncode == 1, r.stderr
    rec = json.loads(out.read_text())
    assert any(v["check"] == "aligned_stability" and v["status"] == "FLAG"
               for v in rec["verdicts"])


@pytest.mark.slow
def test_killed_evaluation_resumes_to_the_same_record(tmp_path):
    run = _checkpoint(tmp_path)
    args = ["--suite", "attacks", "--n", "96", "--batch-size", "8", "--no-progress"]
    ref = tmp_path / "ref.json"
    assert _eval(run, *args, "--out", ref).returncode == 0
    out = tmp_path / "res.json"
    state = tmp_path / "res.json.state.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    p = subprocess.Popen([sys.executable, "-m", "zubovnet.cli", "eval", str(run), *args,
                          "--out", str(out)], env=env, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    t0 = time.time()
    while time.time() - t0 < 120:
        if state.exists():
            try:
                d = json.loads(state.read_text())
                if sum(len(v) for v in d["batches"].values()) >= 30:
                    break
            except (ValueError, KeyError):
                pass
        time.sleep(0.05)
    p.send_signal(signal.SIGKILL)
    p.wait()
    assert not out.exists() and state.exists()
    done = json.loads(state.read_text())
    assert 0 < sum(len(v) for v in done["batches"].values()) < 10 * 12
    r = _eval(run, *args, "--out", out)
    assert r.returncode == 0, r.stderr
    assert "resumed" in r.stdout and not state.exists()
    a, b = json.loads(ref.read_text()), json.loads(out.read_text())
    assert b["resumed"] is True
    assert strip_volatile(a["results"]) == strip_volatile(b["results"])
    assert strip_volatile(a["verdicts"]) == strip_volatile(b["verdicts"])


def test_settings_file_sets_nested_fields_and_refuses_unknown_keys(tmp_path):
    from zubovnet.config import ConfigError
    from zubovnet.evaluation.suites import EvalSettings, load_eval_settings
    f = tmp_path / "s.yaml"
    f.write_text("eval:\n  square_queries: 100\n  paper_eps: [0.01]\n"
                 "  rigorous:\n    pgd_restarts: 2\n  alignment:\n    n_per_class: 7\n")
    s = load_eval_settings(f)
    ref = EvalSettings()
    assert s.square_queries == 100 and s.paper_eps == (0.01,)
    assert s.rigorous.pgd_restarts == 2 and s.rigorous.pgd_steps == ref.rigorous.pgd_steps
    assert s.alignment.n_per_class == 7 and s.alignment.horizons == ref.alignment.horizons
    f.write_text("eval:\n  rigorous:\n    pgd_restart: 2\n")
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['pgd_restart'\] in eval.rigorous"):
        load_eval_settings(f)


def test_several_suites_in_one_record_and_config_changes_before_the_model_is_built(tmp_path):
    run = _checkpoint(tmp_path)
    out = tmp_path / "c.json"
    r = _eval(run, "--n", "8", "--suite", "clean,certify", "--no-progress", "--out", out,
              "--settings", _settings(tmp_path))
    assert r.returncode in (0, 1), r.stderr
    rec = json.loads(out.read_text())
    assert rec["suites_requested"] == ["clean", "certify"]
    for key in ("clean", "certify/l2@0.5", "certify/linf@2/255"):
        assert rec["results"][key]["accuracy"] is not None, key
    assert rec["certify"]["kind"] == "margin" and rec["certify"]["certificate"] == "unconditional"
    assert len(rec["certify"]["radius_l2"]) == 8
    zrun = _checkpoint(tmp_path / "z", "zubovnet")
    zout = tmp_path / "z.json"
    r = _eval(zrun, "--n", "8", "--suite", "certify", "--no-progress", "--out", zout,
              "--set", "model.invariance.enabled=true", "--settings", _settings(tmp_path))
    # these equilibria (d = 64, 500 steps) are 4.23 apart: regions of level 0.9 could overlap
    assert r.returncode == 2 and "may overlap" in r.stderr and not zout.exists()
    r = _eval(zrun, "--n", "8", "--suite", "certify", "--no-progress", "--out", zout,
              "--set", "model.invariance.enabled=true", "--set", "loss.rho=0.85",
              "--settings", _settings(tmp_path))
    assert r.returncode in (0, 1), r.stderr
    rec = json.loads(zout.read_text())
    assert rec["model"]["overrides"] == ["model.invariance.enabled=true", "loss.rho=0.85"]
    assert rec["certify"]["rho"] == 0.85
    assert rec["certify"]["premises"]["forward_invariance"]["source"] == "construction"
    bad = _eval(zrun, "--n", "8", "--set", "model.invariance.enabled=maybe", "--no-progress",
                "--out", tmp_path / "bad.json")
    assert bad.returncode == 2 and bad.stderr.strip().count("\n") == 0
    assert "model.invariance.enabled" in bad.stderr
    wrong = _eval(zrun, "--suite", "clean,nope")
    assert wrong.returncode == 2 and "nope" in wrong.stderr


def _settings(tmp_path):
    p = tmp_path / "fast.yaml"
    p.write_text("eval:\n  certify_attack_points: 4\n  certify_attack_steps: 5\n"
                 "  certify_attack_restarts: 1\n  certify_lipschitz_points: 2\n")
    return p
