"""Ship a trained run as a pretrained checkpoint (``zubovnet.pretrained``), as it was done:

    python scripts/export_pretrained.py RUN NAME RECORD.json [RECORD.json ...]

writes ``src/zubovnet/resources/pretrained/NAME/{model.safetensors, claim.json}`` (the claim's
numbers are read from the records) and, once per dataset, the first 200 test images as
``tests/data/<dataset>_test200.npz`` (uint8), which ``tests/test_pretrained.py`` uses to
reproduce each claim's clean count exactly without the dataset.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

from zubovnet.data import build_datasets
from zubovnet.evaluation.suites import load_subset
from zubovnet.pretrained import export_pretrained
from zubovnet.training.checkpoint import checkpoint_config

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str]) -> int:
    run, name, *records = argv
    from zubovnet.config import config_from_dict
    cfg = config_from_dict(checkpoint_config(run))
    path = ROOT / "tests" / "data" / f"{cfg.data.name}_test200.npz"
    if not path.exists():
        x, y, _ = load_subset(build_datasets(cfg.data).test, 200)
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(path, images=(x * 255).round().to(torch.uint8).numpy(),
                            labels=y.numpy())
    data = np.load(path)
    x = torch.from_numpy(data["images"]).float() / 255
    y = torch.from_numpy(data["labels"]).long()
    folder = export_pretrained(run, name, records, x, y)
    print(f"wrote {folder}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
