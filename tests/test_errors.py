"""Bad inputs and faults, as a new user — and a hostile one — would try them.

Every case asserts the exit status (2 for an error), that stderr is **one line** naming the
problem, and that no file of an existing run changed.  ``docs/errors.md`` lists the errors.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import pytest
import torch

from zubovnet import cli
from zubovnet.config import Config, config_to_dict


def _tree_hash(folder: Path) -> dict:
    return {str(p.relative_to(folder)): hashlib.md5(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def run(argv, capsys) -> tuple[int, str, str]:
    try:
        code = cli.main([str(a) for a in argv])
    except SystemExit as e:              # argparse
        code = e.code if isinstance(e.code, int) else 2
    out = capsys.readouterr()
    return code, out.out, out.err


def assert_one_line_error(code, err, match):
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert code == 2, (code, err)
    assert len(lines) == 1, err
    assert match.lower() in lines[0].lower(), (match, lines[0])


TINY = ["model.name=feedforward", "model.cnn_widths=[8, 8]", "model.state_dim=8",
        "train.epochs=1", "train.max_steps_per_epoch=2", "train.progress=false",
        "train.tensorboard=false", "data.name=digits"]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A finished one-epoch run on digits (a feed-forward CNN) and its YAML config."""
    root = tmp_path_factory.mktemp("errors")
    cfg_file = root / "tiny.yaml"
    cfg_file.write_text("data:\n  name: digits\nmodel:\n  name: feedforward\n  cnn_widths: [8, 8]\n"
                        "  state_dim: 8\ntrain:\n  epochs: 1\n  max_steps_per_epoch: 2\n"
                        "  progress: false\n  tensorboard: false\n")
    run_dir = root / "run"
    assert cli.main(["train", str(cfg_file), "--out", str(run_dir)]) == 0
    return cfg_file, run_dir


@pytest.fixture
def guard(tiny_run):
    """Yields the run; afterwards asserts that none of its files changed."""
    before = _tree_hash(tiny_run[1])
    yield tiny_run
    assert _tree_hash(tiny_run[1]) == before


# --------------------------------------------------------------------------- configs
OK = "data:\n  name: digits\n"
CONFIG_CASES = [
    ("missing file", None, [], "no such config file"),
    ("empty file", "", [], "empty"),
    ("duplicate key", "train:\n  epochs: 2\n  epochs: 3\n", [], "duplicate key 'epochs'"),
    ("broken yaml", "train: [1, 2\n", [], "not valid yaml"),
    ("top level list", "- 1\n- 2\n", [], "must be a mapping"),
    ("unknown key", "train:\n  epoch: 2\n", [], "unknown key"),
    ("unknown section", "trian:\n  epochs: 2\n", [], "unknown key"),
    ("epochs 0", OK, ["train.epochs=0"], "train.epochs"),
    ("negative lr", OK, ["train.lr=-1"], "train.lr"),
    ("batch size 0", OK, ["data.batch_size=0"], "data.batch_size"),
    ("tolerance 0", OK, ["model.ode.rtol_eval=0"], "model.ode.rtol_eval"),
    ("gamma 0", OK, ["model.ode.gamma=0"], "model.ode.gamma"),
    ("T 0", OK, ["model.ode.T=0"], "model.ode.T"),
    ("rho above 1", OK, ["loss.rho=1.5"], "loss.rho"),
    ("rho 0", OK, ["loss.rho=0"], "loss.rho"),
    ("val fraction 1", OK, ["data.val_fraction=1.0"], "data.val_fraction"),
    ("state dim 0", OK, ["model.state_dim=0"], "model.state_dim"),
    ("bogus solver", OK, ["model.ode.solver=bogus45"], "model.ode.solver"),
    ("bogus extractor", OK, ["model.extractor=vgg"], "model.extractor"),
    ("device tpu", OK, ["train.device=tpu"], "train.device"),
    ("epochs not a number", OK, ["train.epochs=many"], "train.epochs"),
    ("override without =", OK, ["train.epochs"], "section.key=value"),
    ("override into a value", "train:\n  epochs: 2\n", ["train.epochs.x=1"], "not a section"),
    ("z widths not ending in 1", OK, ["model.lyapunov.z_widths=[16, 2]"], "z_widths"),
    ("u widths mismatch", OK, ["model.lyapunov.u_widths=[16]"], "u_widths"),
    ("boundary tol 0", OK, ["loss.boundary.tol=0"], "loss.boundary.tol"),
    ("bogus adversarial method", OK, ["adversarial.method=fgsm"], "adversarial.method"),
    ("mean per channel", OK, ["model.mean=[0.1, 0.2]"], "model.mean"),
    ("milestone 0", OK, ["train.milestones=[0]"], "train.milestones"),
    ("one beta", OK, ["train.betas=[0.9]"], "train.betas"),
    ("consistency samples 0", OK, ["loss.consistency_samples=0"], "consistency_samples"),
    ("bogus assignment", OK, ["model.equilibria.assignment=random"], "assignment"),
    ("infinite lr", OK, ["train.lr=.inf"], "finite"),
    ("bogus dataset", OK, ["data.name=imagenet"], "imagenet"),
    ("bogus model", OK, ["model.name=transformer"], "unknown model"),
]


@pytest.mark.parametrize("name,text,overrides,match", CONFIG_CASES,
                         ids=[c[0] for c in CONFIG_CASES])
def test_bad_configs(name, text, overrides, match, tmp_path, capsys):
    cfg = tmp_path / "c.yaml"
    if text is not None:
        cfg.write_text(text)
    base = TINY if name in ("bogus dataset", "bogus model") else []
    code, _, err = run(["train", cfg if text is not None else tmp_path / "nope.yaml",
                        *base, *overrides, "--out", tmp_path / "run"], capsys)
    assert_one_line_error(code, err, match)
    assert not (tmp_path / "run" / "config.yaml").exists()      # nothing written


def test_scientific_notation_is_a_number(tmp_path):
    from zubovnet.config import load_config
    (tmp_path / "c.yaml").write_text("train:\n  lr: 1e-3\n")     # PyYAML reads a string
    assert load_config(tmp_path / "c.yaml").train.lr == 1e-3


# --------------------------------------------------------------------------- run folders
def test_training_into_a_finished_run_is_refused(guard, capsys):
    cfg, run_dir = guard
    code, _, err = run(["train", cfg, "--out", run_dir], capsys)
    assert_one_line_error(code, err, "not empty")


def test_resume_and_overwrite_together(guard, capsys):
    cfg, run_dir = guard
    code, _, err = run(["train", cfg, "--out", run_dir, "--resume", "--overwrite"], capsys)
    assert_one_line_error(code, err, "exclude each other")


def test_resume_with_a_changed_model_is_refused_with_the_keys(guard, capsys):
    cfg, run_dir = guard
    code, _, err = run(["train", cfg, "model.state_dim=16", "train.epochs=2", "--out", run_dir,
                        "--resume"], capsys)
    assert_one_line_error(code, err, "model.state_dim")


def test_a_second_writer_is_refused_with_the_holders_pid(guard, capsys):
    cfg, run_dir = guard
    lock = run_dir / ".lock"
    import socket
    lock.write_text(json.dumps({"pid": os.getpid(), "host": socket.gethostname()}))
    try:
        code, _, err = run(["train", cfg, "--out", run_dir, "--resume"], capsys)
    finally:
        lock.unlink()
    assert_one_line_error(code, err, f"process {os.getpid()}")


def test_run_folder_that_is_a_file(tmp_path, tiny_run, capsys):
    (tmp_path / "f").write_text("x")
    code, _, err = run(["train", tiny_run[0], "--out", tmp_path / "f"], capsys)
    assert_one_line_error(code, err, "is a file")


def test_a_stale_lock_is_taken_over(tmp_path, tiny_run, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / ".lock").write_text(json.dumps({"pid": 2 ** 22 + 12345, "host": os.uname()[1]}))
    code, _, err = run(["train", tiny_run[0], "--out", out], capsys)
    assert code == 0 and "stale lock" in err and not (out / ".lock").exists()


def test_resume_applies_a_longer_schedule_and_says_so(tmp_path, tiny_run, capsys):
    out = tmp_path / "run"
    shutil.copytree(tiny_run[1], out)
    code, stdout, _ = run(["train", tiny_run[0], "train.epochs=2", "train.lr=0.002",
                           "--out", out, "--resume"], capsys)
    assert code == 0
    assert "train.epochs 1 -> 2 (applied)" in stdout and "train.lr 0.001 -> 0.002" in stdout
    meta = json.loads((out / "checkpoints" / "epoch_0002" / "checkpoint.json").read_text())
    assert meta["epoch"] == 2
    assert meta["optimizer"]["param_groups"][0]["lr"] == pytest.approx(0.002)


def test_ctrl_c_saves_nothing_half_written_and_says_how_to_resume(tmp_path, tiny_run, capsys,
                                                                   monkeypatch):
    from zubovnet.training import objectives
    calls = {"n": 0}
    orig = objectives.CrossEntropyObjective.__call__

    def interrupted(self, model, x, y):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return orig(self, model, x, y)
    monkeypatch.setattr(objectives.CrossEntropyObjective, "__call__", interrupted)
    out = tmp_path / "run"
    code, _, err = run(["train", tiny_run[0], "train.epochs=3", "--out", out], capsys)
    assert code == 130 and "--resume" in err and len(err.strip().splitlines()) == 1
    ck = out / "checkpoints"
    assert [p.name for p in ck.iterdir() if p.name.startswith(".")] == []   # no temp folder
    assert json.loads((ck / "latest.json").read_text())["epoch"] == 1
    assert not (out / ".lock").exists()


# --------------------------------------------------------------------------- checkpoints
def _copy(run_dir, tmp_path):
    out = tmp_path / "copy"
    shutil.copytree(run_dir, out)
    return out


def test_latest_json_pointing_outside_is_refused(tmp_path, tiny_run, capsys):
    run_dir = _copy(tiny_run[1], tmp_path)
    (run_dir / "checkpoints" / "latest.json").write_text(json.dumps({"path": "../../../etc"}))
    code, _, err = run(["eval", run_dir, "--n", "8", "--no-progress"], capsys)
    assert_one_line_error(code, err, "refusing to read outside")


def test_corrupt_latest_json_names_the_file(tmp_path, tiny_run, capsys):
    run_dir = _copy(tiny_run[1], tmp_path)
    (run_dir / "checkpoints" / "latest.json").write_text("{not json")
    code, _, err = run(["eval", run_dir, "--n", "8", "--no-progress"], capsys)
    assert_one_line_error(code, err, "latest.json")


def test_truncated_weights_name_the_file(tmp_path, tiny_run, capsys):
    run_dir = _copy(tiny_run[1], tmp_path)
    w = run_dir / "checkpoints" / "epoch_0001" / "model.safetensors"
    w.write_bytes(w.read_bytes()[:5])
    code, _, err = run(["eval", run_dir, "--n", "8", "--no-progress"], capsys)
    assert_one_line_error(code, err, "model.safetensors")


def test_damaged_weights_name_the_file(tmp_path, tiny_run, capsys):
    run_dir = _copy(tiny_run[1], tmp_path)
    w = run_dir / "checkpoints" / "epoch_0001" / "model.safetensors"
    data = bytearray(w.read_bytes())
    data[10:200] = b"\x00" * 190
    w.write_bytes(bytes(data))
    code, _, err = run(["eval", run_dir, "--n", "8", "--no-progress"], capsys)
    assert_one_line_error(code, err, "model.safetensors")


def test_missing_checkpoint_json_names_the_file(tmp_path, tiny_run, capsys):
    run_dir = _copy(tiny_run[1], tmp_path)
    (run_dir / "checkpoints" / "epoch_0001" / "checkpoint.json").unlink()
    code, _, err = run(["eval", run_dir, "--n", "8", "--no-progress"], capsys)
    assert_one_line_error(code, err, "checkpoint.json")


def test_a_truncated_latest_checkpoint_falls_back_to_the_previous(tmp_path, tiny_run, capsys):
    out = tmp_path / "run"
    shutil.copytree(tiny_run[1], out)
    assert run(["train", tiny_run[0], "train.epochs=2", "--out", out, "--resume"], capsys)[0] == 0
    w = out / "checkpoints" / "epoch_0002" / "model.safetensors"
    w.write_bytes(b"")
    code, stdout, err = run(["eval", out, "--n", "8", "--no-progress"], capsys)
    assert code == 0 and "previous checkpoint" in err and "epoch_0001" in err


def test_a_failed_save_leaves_no_temporary_folder(tmp_path, monkeypatch):
    from zubovnet.models import build_model
    from zubovnet.training import checkpoint as ckmod
    cfg = Config()
    cfg.model.name, cfg.model.cnn_widths, cfg.model.state_dim = "feedforward", [8, 8], 8
    model = build_model(cfg)

    def boom(*a, **k):
        raise OSError("disk full")
    monkeypatch.setattr(ckmod, "save_file", boom)
    with pytest.raises(OSError, match="disk full"):
        ckmod.save_checkpoint(tmp_path / "run", 1, model, cfg)
    assert list((tmp_path / "run" / "checkpoints").iterdir()) == []


# --------------------------------------------------------------------------- eval, table, ...
EVAL_CASES = [
    ("n 0", ["--n", "0"], "positive integer"),
    ("batch size 0", ["--batch-size", "0"], "positive integer"),
    ("n not a number", ["--n", "ten"], "positive integer"),
    ("device tpu", ["--device", "tpu"], "unknown device"),
    ("bogus suite", ["--suite", "bogus"], "unknown suite"),
    ("bogus subset", ["--subset", "last"], "invalid choice"),
    ("alignment on a CNN", ["--suite", "alignment", "--n", "8"], "alignment suite needs"),
    ("unknown config key in --set", ["--set", "model.nope=1"], "unknown key"),
    ("settings file missing", ["--settings", "/nonexistent/s.yaml"], "no such config file"),
    ("threads 0", ["--threads", "0"], "positive integer"),
    ("unknown pretrained name", [], None),
]


@pytest.mark.parametrize("name,args,match", EVAL_CASES, ids=[c[0] for c in EVAL_CASES])
def test_bad_eval_arguments(name, args, match, guard, tmp_path, capsys):
    _, run_dir = guard
    if match is None:   # the checkpoint itself is the bad input
        run_dir, match = "pretrained:nope", "unknown pretrained model 'nope'"
    code, _, err = run(["eval", run_dir, *args, "--no-progress", "--out", tmp_path / "r.json"],
                       capsys)
    assert_one_line_error(code, err, match)
    assert not (tmp_path / "r.json").exists()


def test_eval_of_a_missing_checkpoint(tmp_path, capsys):
    code, _, err = run(["eval", tmp_path / "nothing", "--n", "8"], capsys)
    assert_one_line_error(code, err, "no checkpoint at")


def test_eval_does_not_replace_a_record(guard, tmp_path, capsys):
    _, run_dir = guard
    rec = tmp_path / "r.json"
    rec.write_text("{}")
    code, _, err = run(["eval", run_dir, "--n", "8", "--out", rec], capsys)
    assert_one_line_error(code, err, "--overwrite")
    assert rec.read_text() == "{}"


def test_eval_out_below_a_file_fails_before_work(guard, tmp_path, capsys):
    _, run_dir = guard
    (tmp_path / "f").write_text("x")
    code, _, err = run(["eval", run_dir, "--n", "8", "--out", tmp_path / "f" / "r.json"], capsys)
    assert_one_line_error(code, err, "not a folder")


def test_eval_out_with_two_checkpoints(guard, tmp_path, capsys):
    _, run_dir = guard
    code, _, err = run(["eval", run_dir, run_dir, "--out", tmp_path / "r.json"], capsys)
    assert_one_line_error(code, err, "exactly one checkpoint")


def test_demo_with_a_bogus_suite_fails_before_training(tmp_path, capsys):
    code, _, err = run(["demo", "--suite", "bogus", "--out", tmp_path / "demo"], capsys)
    assert_one_line_error(code, err, "unknown demo suite")
    assert not (tmp_path / "demo" / "zubovnet").exists()


def test_table_of_a_missing_record(tmp_path, capsys):
    code, _, err = run(["table", tmp_path / "no.json", "--layout", "table1"], capsys)
    assert_one_line_error(code, err, "no.json")


def test_table_of_a_file_that_is_not_a_record(tmp_path, capsys):
    (tmp_path / "x.json").write_text(json.dumps({"hello": 1}))
    code, _, err = run(["table", tmp_path / "x.json", "--layout", "table1"], capsys)
    assert_one_line_error(code, err, "record lacks")


def test_profile_of_an_unknown_model(capsys):
    code, _, err = run(["profile", "transformer", "--synthetic", "--steps", "1"], capsys)
    assert_one_line_error(code, err, "transformer")


def test_basin_figure_of_a_model_without_a_plane(guard, tmp_path, capsys):
    _, run_dir = guard
    code, _, err = run(["figures", "basins", run_dir, "--out", tmp_path], capsys)
    assert_one_line_error(code, err, "basin")


# --------------------------------------------------------------------------- model inputs
@pytest.fixture(scope="module")
def model():
    from zubovnet.models import build_model
    cfg = Config()
    cfg.model.cnn_widths, cfg.model.state_dim, cfg.model.ode.hidden = [8, 8], 8, 16
    cfg.model.lyapunov.z_widths, cfg.model.lyapunov.u_widths = [16, 16, 1], [16, 16]
    cfg.model.equilibria.steps = 20
    return build_model(cfg).eval()


INPUT_CASES = [
    ("nan", lambda: torch.full((2, 1, 8, 8), float("nan")), "NaN"),
    ("inf", lambda: torch.full((2, 1, 8, 8), float("inf")), "NaN or Inf"),
    ("uint8", lambda: torch.zeros(2, 1, 8, 8, dtype=torch.uint8), "divide uint8"),
    ("32x32 into an 8x8 model", lambda: torch.rand(2, 1, 32, 32), "(B, 1, 8, 8)"),
    ("three channels", lambda: torch.rand(2, 3, 8, 8), "(B, 1, 8, 8)"),
    ("empty batch", lambda: torch.rand(0, 1, 8, 8), "empty batch"),
    ("0-255 floats", lambda: torch.rand(2, 1, 8, 8) * 255, "[0, 1]"),
    ("not a tensor", lambda: [[0.0]], "tensor"),
]


@pytest.mark.parametrize("name,make,match", INPUT_CASES, ids=[c[0] for c in INPUT_CASES])
def test_model_input_contract(name, make, match, model):
    from zubovnet.models.inputs import InputError
    with pytest.raises(InputError) as e:
        model(make())
    assert match in str(e.value) and "\n" not in str(e.value)


def test_input_contract_can_be_switched_off(model):
    model.input_contract.enabled = False
    try:
        assert model(torch.rand(2, 1, 8, 8) * 255).shape == (2, 10)
    finally:
        model.input_contract.enabled = True
