"""Shipped checkpoints load by name, offline, and reproduce their recorded clean count."""
from pathlib import Path

import numpy as np
import pytest
import torch

from zubovnet import load_pretrained
from zubovnet.pretrained import available_pretrained, pretrained_path

DATA = Path(__file__).parent / "data"
NAMES = available_pretrained()


def test_unknown_name_is_a_one_line_error_listing_the_names():
    with pytest.raises(KeyError, match="unknown pretrained model 'nope'; available"):
        pretrained_path("pretrained:nope")


@pytest.mark.skipif(not NAMES, reason="no pretrained checkpoints shipped")
@pytest.mark.parametrize("name", NAMES)
def test_pretrained_reproduces_its_recorded_clean_count_on_200_images(name):
    model, cfg, claim = load_pretrained(f"pretrained:{name}")
    assert not model.training and claim["name"] == name and claim["records"]
    data = np.load(DATA / f"{cfg.data.name}_test200.npz")
    x = torch.from_numpy(data["images"]).float() / 255
    y = torch.from_numpy(data["labels"]).long()
    with torch.no_grad():
        pred = torch.cat([model(x[i:i + 100]).argmax(1) for i in range(0, len(x), 100)])
    assert int((pred == y).sum()) == claim["check"]["correct"]
    assert claim["check"]["n"] == len(y) == 200
    # every headline number names its sample count and the command that produced it
    for key, entry in claim["results"].items():
        assert entry["n"] and entry["record_command"], key


@pytest.mark.skipif(not NAMES, reason="no pretrained checkpoints shipped")
def test_eval_accepts_a_pretrained_name(tmp_path):
    from zubovnet.cli import main
    from zubovnet.data import DatasetNotFoundError, build_datasets
    _, cfg, _ = load_pretrained(NAMES[0])
    try:
        build_datasets(cfg.data)
    except DatasetNotFoundError:
        pytest.skip(f"{cfg.data.name} is not on this machine")
    out = tmp_path / "rec.json"
    assert main(["eval", f"pretrained:{NAMES[0]}", "--suite", "clean", "--n", "8",
                 "--out", str(out), "--no-progress", "--device", "cpu"]) in (0, 1)
    assert out.exists()
