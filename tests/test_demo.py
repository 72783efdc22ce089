"""The demo end to end on a reduced budget, and the CLI entry points."""
import json

import pytest

from zubovnet.cli import main


@pytest.mark.slow
def test_demo_quick(tmp_path, capsys):
    assert main(["demo", "--quick", "--out", str(tmp_path), "--n", "64"]) == 0
    out = capsys.readouterr().out
    assert "zubovnet" in out and "neural_ode" in out and "pgd_8/255" in out
    res = json.loads((tmp_path / "results.json").read_text())
    for name in ("zubovnet", "neural_ode"):
        r = res["models"][name]
        assert set(r["metrics"]) >= {"clean", "gaussian_noise_s3", "pgd_8/255", "pgd_16/255"}
        assert all(0.0 <= v <= 1.0 for v in r["metrics"].values())
        assert r["n_test"] == 64 and r["seed"] == 0 and r["timings"]["train_s"] > 0
        assert r["config"]["model"]["name"] == name
    assert res["versions"]["torch"] and res["hardware"]["cores"]
    assert (tmp_path / "training_curves.png").stat().st_size > 1000


def test_info_lists_registries(capsys):
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert "zubovnet" in out and "neural_ode" in out and "digits" in out and "zubov" in out
