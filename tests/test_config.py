"""Typed config loading: unknown keys, wrong types, overrides, base files."""
import pytest

from zubovnet.config import Config, ConfigError, config_from_dict, config_to_dict, load_config


def test_defaults_are_the_paper_values():
    c = Config()
    assert (c.loss.lambda_fc, c.loss.lambda_con, c.loss.lambda_sep, c.loss.beta) == (1.5, 0.12, 0.9, 0.85)
    assert (c.model.ode.rtol_train, c.model.ode.rtol_eval, c.model.ode.T, c.model.ode.gamma) == (0.1, 1e-3, 1.0, 10)
    assert (c.train.lr, c.train.epochs, c.train.milestones, c.data.batch_size) == (1e-3, 140, [90], 128)
    assert c.model.lyapunov.z_widths == [256, 256, 1] and c.model.lyapunov.delta == 0.5
    assert (c.loss.counterexample_steps, c.loss.counterexample_step_size) == (5, 1.2)


def test_unknown_key_lists_valid_keys():
    with pytest.raises(ConfigError) as e:
        config_from_dict({"loss": {"lambda_cn": 1.0}})
    msg = str(e.value)
    assert "lambda_cn" in msg and "lambda_con" in msg and "loss" in msg


def test_wrong_type_is_an_error():
    with pytest.raises(ConfigError, match="train.epochs"):
        config_from_dict({"train": {"epochs": "many"}})
    with pytest.raises(ConfigError):
        config_from_dict({"model": {"ode": {"adjoint": "yes"}}})
    assert config_from_dict({"loss": {"beta": 1}}).loss.beta == 1.0        # int accepted as float
    assert config_from_dict({"train": {"lr": "1e-3"}}).train.lr == 1e-3   # PyYAML's string


def test_overrides_and_base(tmp_path):
    (tmp_path / "base.yaml").write_text("train:\n  epochs: 7\n  lr: 0.01\nmodel:\n  state_dim: 16\n")
    (tmp_path / "exp.yaml").write_text("base: base.yaml\ntrain:\n  epochs: 9\n")
    cfg = load_config(tmp_path / "exp.yaml", ["model.ode.solver=rk4", "train.milestones=[3, 5]"])
    assert cfg.train.epochs == 9 and cfg.train.lr == 0.01 and cfg.model.state_dim == 16
    assert cfg.model.ode.solver == "rk4" and cfg.train.milestones == [3, 5]
    with pytest.raises(ConfigError):
        load_config(None, ["train.nope=1"])
    assert config_from_dict(config_to_dict(cfg)) == cfg
