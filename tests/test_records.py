"""Records (JSON round trip, schema), Markdown tables, and the eval/table command line."""
from __future__ import annotations

import argparse
import json
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from digits_helpers import digits, train_mlp
from zubovnet.evaluation import EvalSettings, evaluate, render_table
from zubovnet.evaluation import cli
from zubovnet.evaluation.records import (SCHEMA, load_records, new_record, result_entry,
                                         add_result, to_jsonable, validate_record, verdict,
                                         write_record)
from zubovnet.evaluation.tables import table_columns

TABLE1 = ["Model", "Clean", "Gaussian", "Glass", "Shot", "Impulse", "Speckle", "Motion",
          "Brightness", "Contrast", "Avg"]
TABLE2 = ["Model"] + [f"{a} {e}" for a in ("FGSM", "PGD", "BIM", "APGD", "Jitter")
                      for e in ("8/255", "16/255")] + ["Avg"]
TABLE3 = ["Model", "Orig", "VNI", "Square", "AA"]

_digits = digits


def _train_mlp(seed=0, epochs=15):
    return train_mlp(seed, epochs, hidden=64)


@pytest.fixture(scope="module")
def mlp():
    return _train_mlp()


@pytest.fixture(scope="module")
def test_set():
    return _digits().test


def _header(md: str) -> list[str]:
    return [c.strip() for c in md.splitlines()[0].strip("|").split("|")]


def _row(md: str, i: int = 0) -> list[str]:
    return [c.strip() for c in md.splitlines()[2 + i].strip("|").split("|")]


def _synthetic(name: str, acc: dict) -> dict:
    rec = new_record(name, seed=0)
    for key, a in acc.items():
        add_result(rec, result_entry(key, "synthetic", "paper", round(a * 100), 100))
    return rec


# --------------------------------------------------------------------------- records
def test_to_jsonable_and_strict_json():
    data = to_jsonable({"a": torch.tensor([1.0, 2.0]), "b": float("nan"), "c": (1, 2),
                        "d": torch.tensor(3), "e": float("inf")})
    assert data == {"a": [1.0, 2.0], "b": None, "c": [1, 2], "d": 3, "e": None}
    json.dumps(data, allow_nan=False)


def test_verdict_contract():
    v = verdict("x", "FLAG", "because", gap=0.5)
    assert v == {"check": "x", "status": "FLAG", "reason": "because", "numbers": {"gap": 0.5}}
    with pytest.raises(ValueError):
        verdict("x", "maybe", "")


def test_record_round_trip_and_schema(mlp, test_set, tmp_path):
    settings = EvalSettings(paper_eps=(8 / 255,), white_box=("fgsm", "pgd"))
    rec = evaluate(mlp, test_set, ["clean", "attacks"], n=32, seed=3, progress=False,
                   model_name="mlp", meta={"epoch": 7, "metrics": [{"acc": 0.9}]},
                   checkpoint="runs/mlp", settings=settings, dataset_name="digits")
    assert rec["schema"] == SCHEMA
    assert rec["model"]["name"] == "mlp" and rec["model"]["epoch"] == 7
    assert rec["model"]["checkpoint"] == "runs/mlp" and rec["seed"] == 3
    assert rec["data"] == {"dataset": "digits", "split": "test", "size": len(test_set), "n": 32,
                           "subset": "first", "indices": "first 32"}
    assert rec["solver"] is None                      # no ODE block
    versions = rec["environment"]["versions"]
    for pkg in ("python", "torch", "torchvision", "torchdiffeq", "torchattacks", "zubovnet"):
        assert pkg in versions
    assert versions["torch"] == torch.__version__.split("+")[0] or versions["torch"]
    assert rec["environment"]["hardware"]["cpu_count"] >= 1
    assert set(rec["wall_time_s"]) >= {"clean", "attacks", "total"}
    pgd = rec["results"]["pgd@8/255"]
    assert pgd["protocol"] == "paper" and pgd["n"] == 32 and pgd["seed"] == 3
    assert pgd["steps"] == 10 and pgd["step_size"] == pytest.approx(1 / 255)
    assert pgd["eps"] == pytest.approx(8 / 255) and pgd["tolerance"] is None
    assert pgd["accuracy"] == pgd["correct"] / 32 <= rec["results"]["clean"]["accuracy"]
    assert {v["check"] for v in rec["verdicts"]} == {"determinism", "solver_failures"}

    path = write_record(rec, tmp_path / "eval_attacks.json")
    text = path.read_text()
    assert "NaN" not in text and "Infinity" not in text
    back = load_records([path])
    assert back == [json.loads(json.dumps(to_jsonable(rec)))]
    assert load_records(tmp_path) == back              # a folder: its eval_*.json


def test_validate_record_rejects_broken_records(tmp_path):
    rec = new_record("m")
    validate_record(rec)
    with pytest.raises(ValueError, match="lacks"):
        validate_record({k: v for k, v in rec.items() if k != "results"})
    with pytest.raises(ValueError, match="schema"):
        validate_record({**rec, "schema": "other/0"})
    bad = tmp_path / "eval_bad.json"
    bad.write_text(json.dumps({"hello": 1}))
    with pytest.raises(ValueError):
        load_records([bad])


def test_random_subset_is_seeded_and_recorded(mlp, test_set):
    a = evaluate(mlp, test_set, "clean", n=16, seed=5, subset="random", progress=False)
    b = evaluate(mlp, test_set, "clean", n=16, seed=5, subset="random", progress=False)
    idx = a["data"]["indices"]
    assert idx == b["data"]["indices"] and len(set(idx)) == 16 and idx != list(range(16))
    assert a["results"]["clean"]["accuracy"] == b["results"]["clean"]["accuracy"]


def test_corruptions_suite_records_every_severity_and_renders_table1(mlp, test_set):
    from zubovnet.evaluation.corruptions import CORRUPTIONS
    rec = evaluate(mlp, test_set, "corruptions", n=16, seed=1, progress=False, model_name="mlp")
    again = evaluate(mlp, test_set, "corruptions", n=16, seed=1, progress=False)
    assert len(CORRUPTIONS) == 8
    for name in CORRUPTIONS:
        e = rec["results"][f"corruption/{name}"]
        per = e["per_severity"]
        assert list(per) == ["1", "2", "3", "4", "5"] and e["images"] == 16
        assert e["accuracy"] == pytest.approx(sum(per.values()) / 5)   # headline: the mean
        assert e["correct"] == round(sum(per.values()) * 16) and e["n"] == 80
        assert again["results"][f"corruption/{name}"]["per_severity"] == per  # seeded
    # contrast 0.15 at severity 5 is far harder than 0.75 at severity 1
    per = rec["results"]["corruption/contrast"]["per_severity"]
    assert per["5"] <= per["1"]
    row = _row(render_table([rec], "table1"))
    assert row[0] == "mlp" and "—" not in row


# --------------------------------------------------------------------------- tables
def test_tables_have_the_paper_columns_and_values():
    cors = ["gaussian_noise", "glass_blur", "shot_noise", "impulse_noise", "speckle_noise",
            "motion_blur", "brightness", "contrast"]
    full = {"clean": 0.97, **{f"corruption/{c}": 0.5 + 0.01 * i for i, c in enumerate(cors)},
            **{f"{a}@{e}": 0.40 for a in ("fgsm", "pgd", "bim", "apgd", "jitter")
               for e in ("8/255", "16/255")},
            "vnifgsm@16/255": 0.23, "square@16/255": 0.25, "autoattack@16/255": 0.07}
    full["jitter@16/255"] = 0.30
    partial = {"clean": 0.91, "fgsm@8/255": 0.5}
    recs = [_synthetic("Zubov-Net", full), _synthetic("Neural ODE", partial)]

    t1 = render_table(recs, "table1")
    assert _header(t1) == TABLE1
    row = _row(t1)
    assert row[0] == "Zubov-Net" and row[1] == "97.00" and row[2] == "50.00"
    assert row[-1] == f"{100 * sum(0.5 + 0.01 * i for i in range(8)) / 8:.2f}"
    assert _row(t1, 1)[1] == "91.00" and _row(t1, 1)[2] == "—" and _row(t1, 1)[-1] == "—"

    t2 = render_table(recs, "table2")
    assert _header(t2) == TABLE2
    assert _row(t2)[1] == "40.00" and _row(t2)[-2] == "30.00"
    assert _row(t2)[-1] == f"{100 * (9 * 0.40 + 0.30) / 10:.2f}"
    assert _row(t2, 1)[1] == "50.00" and _row(t2, 1)[2] == "—"

    t3 = render_table(recs, "table3")
    assert _header(t3) == TABLE3
    assert _row(t3)[1:] == ["97.00", "23.00", "25.00", "7.00"]
    assert _row(t3, 1)[1:] == ["91.00", "—", "—", "—"]
    assert "**97.00**" in render_table(recs, "table3", bold_best=True)

    with pytest.raises(ValueError):
        render_table(recs, "table9")
    assert [h for h, _ in table_columns("table3")] == TABLE3[1:]


def test_autoattack_cells_are_marked_when_not_the_reference_or_when_it_warned():
    recs = [_synthetic(n, {"clean": 0.9, "autoattack@16/255": 0.1})
            for n in ("reference", "fallback", "warned")]
    settings = [{"reference": True, "warnings": []}, {"reference": False, "warnings": []},
                {"reference": True, "warnings": ["Square Attack has decreased the robust "
                                                 "accuracy of 0.40%."]}]
    for rec, s in zip(recs, settings):
        rec["results"]["autoattack@16/255"]["attack_settings"] = s
    md = render_table(recs, "table3")
    assert [_row(md, i)[-1] for i in range(3)] == ["10.00", "10.00†", "10.00‡"]
    assert "\n† not the reference" in md and "\n‡ the reference AutoAttack raised" in md
    assert "†" not in render_table(recs[::2], "table3")      # no footnote without its mark
    assert "‡" not in render_table(recs[:2], "table3")


def test_rigorous_layout_lists_every_verdict():
    rec = _synthetic("m", {"clean": 0.9, "rigorous/worst_case": 0.2, "rigorous/large_eps": 0.0})
    rec["verdicts"] = [dict(verdict("large_eps", "pass", "accuracy 0%", accuracy=0.0),
                            suite="rigorous"),
                       dict(verdict("zero_gradients", "FLAG", "masked | gradients",
                                    frac_zero_margin=1.0), suite="rigorous")]
    md = render_table([rec], "rigorous")
    first, second = md.split("\n\n")
    assert _header(first)[0] == "Model" and "Worst case" in _header(first)
    assert _row(first)[_header(first).index("Worst case")] == "20.00"
    assert _header(second) == ["Model", "Suite", "Check", "Verdict", "Numbers", "Reason"]
    assert _row(second, 1)[2:4] == ["zero_gradients", "FLAG"]
    assert "masked \\| gradients" in second                  # pipes are escaped


def test_tables_render_from_a_real_record(mlp, test_set):
    settings = EvalSettings(paper_eps=(8 / 255, 16 / 255), square_queries=20,
                            autoattack_square_queries=20, strong_eps=0.3)
    rec = evaluate(mlp, test_set, ["attacks"], n=16, progress=False, model_name="mlp",
                   settings=settings)
    row = _row(render_table([rec], "table2"))
    assert row[0] == "mlp" and "—" not in row
    assert all(0 <= float(c) <= 100 for c in row[1:])


def test_strong_suite_says_skipped_without_surrogate(mlp, test_set):
    settings = EvalSettings(square_queries=20, autoattack_square_queries=20, strong_eps=0.3)
    rec = evaluate(mlp, test_set, "strong", n=16, progress=False, settings=settings)
    res = rec["results"]
    assert res["vnifgsm@0.3"]["status"] == "skipped: no surrogate"
    assert res["vnifgsm@0.3"]["accuracy"] is None
    assert res["square@0.3"]["attack_settings"]["queries"] == 20
    assert res["autoattack@0.3"]["accuracy"] <= 0.05     # an undefended MLP falls at 0.3
    aa = {v["check"]: v for v in rec["verdicts"]}["autoattack"]
    assert aa["status"] == "FLAG" and "not the reference" in aa["reason"]   # 20 Square queries
    rec2 = evaluate(mlp, test_set, "strong", n=16, progress=False, settings=settings,
                    surrogate={"self": mlp})
    assert rec2["results"]["vnifgsm@0.3"]["accuracy"] is not None
    assert "vnifgsm[self]@0.3" in rec2["results"]


# --------------------------------------------------------------------------- command line
def _parse(add, argv):
    return add(argparse.ArgumentParser()).parse_args(argv)


def test_eval_cli_writes_a_record_and_table_cli_renders_it(mlp, tmp_path, monkeypatch, capsys):
    from zubovnet.config import Config
    ckpt = tmp_path / "run"
    ckpt.mkdir()
    loaded = []

    def fake_load(path, device="cpu", overrides=None):
        loaded.append((str(path), device))
        cfg = Config()
        cfg.name = "tiny-mlp"
        return mlp, cfg, {"epoch": 3, "metrics": [], "path": str(path)}
    monkeypatch.setattr(cli, "load_checkpoint", fake_load)

    args = _parse(cli.add_eval_arguments, [str(ckpt), "--suite", "clean", "--n", "24",
                                           "--device", "cpu", "--no-progress"])
    assert cli.run_eval(args) == 0
    out = ckpt / "eval_clean.json"
    assert out.exists() and loaded == [(str(ckpt), "cpu")]
    rec = load_records([out])[0]
    assert rec["model"]["name"] == "tiny-mlp" and rec["model"]["epoch"] == 3
    assert rec["data"]["n"] == 24 and rec["data"]["dataset"] == "digits"
    assert rec["config"]["name"] == "tiny-mlp"
    printed = capsys.readouterr().out
    assert "clean" in printed and "[pass]" in printed and str(out) in printed

    md = tmp_path / "t.md"
    targs = _parse(cli.add_table_arguments, [str(out), "--layout", "table3", "--out", str(md)])
    assert cli.run_table(targs) == 0
    assert _header(md.read_text()) == TABLE3 and _row(md.read_text())[0] == "tiny-mlp"

    # --out with several checkpoints is refused
    args = _parse(cli.add_eval_arguments, [str(ckpt), str(ckpt), "--out", str(tmp_path / "x.json")])
    assert cli.run_eval(args) == 2


def test_eval_cli_on_a_real_checkpoint(tmp_path, capsys):
    pytest.importorskip("safetensors")
    from zubovnet.config import Config
    from zubovnet.models import build_model
    from zubovnet.training.checkpoint import save_checkpoint
    cfg = Config()
    cfg.name = "ff"
    cfg.model.name = "feedforward"
    cfg.model.cnn_widths = [8, 8, 8]
    cfg.model.state_dim = 8
    model = build_model(cfg)
    save_checkpoint(tmp_path / "run", 1, model, cfg)
    out = tmp_path / "rec.json"
    assert cli.main(["eval", str(tmp_path / "run"), "--n", "16", "--device", "cpu",
                     "--no-progress", "--out", str(out)]) == 0
    rec = load_records([out])[0]
    assert rec["model"]["name"] == "ff" and rec["model"]["class"] == "FeedForward"
    assert math.isclose(rec["results"]["clean"]["accuracy"] * 16,
                        rec["results"]["clean"]["correct"])


def test_the_recorded_command_names_no_path_of_this_machine():
    from zubovnet.evaluation.records import command_line
    assert command_line(["/home/u/proj/.venv/bin/zubovnet", "eval", "runs/x", "--n", "8"]) == \
        "zubovnet eval runs/x --n 8"
    assert command_line(["/opt/src/zubovnet/__main__.py", "eval", "runs/x"]) == \
        "python -m zubovnet eval runs/x"
    assert command_line([]) is None


def test_certified_layout_merges_the_two_samples_and_reads_every_radius():
    def rec(n, results, **extra):
        return {"model": {"name": "m", "train_time_s": 240.0},
                "config": {"train": {"epochs": 2, "max_steps_per_epoch": 60}},
                "data": {"n": n}, "results": {k: {"accuracy": v, "n": n, "eps": e}
                                              for k, (v, e) in results.items()},
                "verdicts": [], **extra}
    big = rec(1000, {"clean": (0.9, None), "certify/l2@0.5": (0.4, 0.5),
                     "certify/l2@0.1": (0.7, 0.1), "certify/linf@2/255": (0.5, 2 / 255),
                     "alignment/reverse@h0": (0.95, None)},
              certify={"certificate": "unconditional"})
    small = rec(200, {"clean": (0.8, None), "certify/l2@0.5": (0.35, 0.5),
                      "rigorous/worst_case": (0.3, 8 / 255)})
    md = render_table([big, small], "certified")
    head, row = _header(md), _row(md)
    assert head[head.index("L2 0.1") + 1] == "L2 0.5"           # radii in increasing order
    cell = dict(zip(head, row))
    assert cell["Clean"] == "90.0" and cell["L2 0.5"] == "40.0"  # the 1,000-image record wins
    assert cell["Worst case"] == "30.0" and cell["h(0) in region"] == "95.0"
    assert cell["Certificate"] == "unconditional" and cell["s/step"] == "2.00"
