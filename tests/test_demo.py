"""The demo end to end on a reduced budget, and the CLI entry points."""
import json

import pytest

from zubovnet.cli import main


@pytest.mark.slow
def test_demo_quick(tmp_path, capsys):
    assert main(["demo", "--quick", "--out", str(tmp_path), "--n", "24"]) == 0
    out = capsys.readouterr().out
    assert "zubovnet" in out and "neural_ode" in out and "pgd@8/255" in out
    assert "table1 layout" in out and "table3 layout" in out and "rigorous layout" in out
    assert "alignment layout" in out and "wall time (s):" in out and "total wall" in out
    res = json.loads((tmp_path / "results.json").read_text())
    for name in ("zubovnet", "neural_ode"):
        r = res["models"][name]
        assert {"clean", "corruption/gaussian_noise", "pgd@8/255", "apgd@16/255", "jitter@8/255",
                "square@16/255"} <= set(r["metrics"])
        assert any(k.startswith("vnifgsm") for k in r["metrics"])
        assert all(0.0 <= v <= 1.0 for v in r["metrics"].values())
        assert "rigorous/worst_case" in r["metrics"]
        assert r["n_test"] == 24 and r["n_strong"] == 16 and r["seed"] == 0
        # full split, strong, rigorous, and (Zubov-Net only: equilibria) alignment
        assert r["timings"]["train_s"] > 0 and len(r["records"]) == (4 if name == "zubovnet" else 3)
        assert r["config"]["model"]["name"] == name
        assert set(r["timings"]["eval_parts_s"]) >= {"clean+corruptions+attacks", "strong", "rigorous"}
    assert "alignment/ar@10T" in res["models"]["zubovnet"]["metrics"]
    assert res["protocol"]["name"] == "fast" and "total wall" in res["timings"]
    assert res["versions"]["torch"] and res["hardware"]["cores"]
    assert (tmp_path / "training_curves.png").stat().st_size > 1000


def test_demo_protocols_are_named_and_the_full_one_is_the_documented_protocol():
    from zubovnet.demo import PROTOCOLS, _settings
    from zubovnet.evaluation import EvalSettings
    full, fast = _settings(PROTOCOLS["full"], False), _settings(PROTOCOLS["fast"], False)
    ref = EvalSettings()
    assert full.rigorous == ref.rigorous and full.square_queries == ref.square_queries
    assert full.autoattack and full.alignment.n_per_class == ref.alignment.n_per_class
    assert full.rigorous.aa_attacks is None                     # AutoAttack standard, all four
    # the fast protocol keeps reference AutoAttack's white-box components once (inside the
    # rigorous worst case), with their standard parameters
    assert not fast.autoattack and fast.rigorous.autoattack
    assert fast.rigorous.aa_square_queries is None
    assert tuple(fast.rigorous.aa_attacks) == ("apgd-ce", "apgd-t")


def test_threads_default_follows_omp_num_threads(monkeypatch):
    from zubovnet.cli import default_threads
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert default_threads() == 3
    monkeypatch.delenv("OMP_NUM_THREADS")
    import os
    assert default_threads() == max(1, (os.cpu_count() or 1) // 2)


def test_info_lists_registries(capsys):
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert "zubovnet" in out and "neural_ode" in out and "digits" in out and "zubov" in out
