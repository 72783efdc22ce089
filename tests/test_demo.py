"""The demo end to end on a reduced budget, and the CLI entry points."""
import json

import pytest

from zubovnet.cli import main


@pytest.mark.slow
def test_demo_quick(tmp_path, capsys):
    assert main(["demo", "--quick", "--out", str(tmp_path), "--n", "24", "--strong-n", "8"]) == 0
    out = capsys.readouterr().out
    assert "zubovnet" in out and "neural_ode" in out and "pgd@8/255" in out
    assert "table1 layout" in out and "table3 layout" in out
    res = json.loads((tmp_path / "results.json").read_text())
    for name in ("zubovnet", "neural_ode"):
        r = res["models"][name]
        assert {"clean", "corruption/gaussian_noise", "pgd@8/255", "apgd@16/255", "jitter@8/255",
                "square@16/255"} <= set(r["metrics"])
        assert any(k.startswith("vnifgsm") for k in r["metrics"])
        assert all(0.0 <= v <= 1.0 for v in r["metrics"].values())
        assert r["n_test"] == 24 and r["n_strong"] == 8 and r["seed"] == 0
        assert r["timings"]["train_s"] > 0 and len(r["records"]) == 2
        assert r["config"]["model"]["name"] == name
    assert res["versions"]["torch"] and res["hardware"]["cores"]
    assert (tmp_path / "training_curves.png").stat().st_size > 1000


def test_info_lists_registries(capsys):
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert "zubovnet" in out and "neural_ode" in out and "digits" in out and "zubov" in out
