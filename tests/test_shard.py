"""Evaluation sharded over ``torchrun`` processes: one merged record, equal to the single-process one."""
import json
import os
import subprocess
import sys

import pytest
import torch
from record_helpers import strip_volatile

from zubovnet.config import Config
from zubovnet.evaluation.shard import SINGLE, Shard
from zubovnet.models import build_model
from zubovnet.training.checkpoint import save_checkpoint


def test_every_unit_has_exactly_one_rank():
    for world in (1, 2, 3, 5):
        shards = [Shard(r, world) for r in range(world)]
        for unit in range(40):
            assert sum(s.mine(unit) for s in shards) == 1
    assert SINGLE.main and not SINGLE.active and all(SINGLE.mine(u) for u in range(9))


@pytest.mark.parametrize("rank, world", [(2, 2), (-1, 2), (0, 0)])
def test_an_impossible_shard_is_refused(rank, world):
    with pytest.raises(ValueError, match="not a valid shard"):
        Shard(rank, world)


def _ode_checkpoint(tmp_path):
    cfg = Config()
    cfg.name = "node"
    cfg.model.name = "neural_ode"
    cfg.model.cnn_widths = [8, 8, 8]
    cfg.model.state_dim = 8
    cfg.model.ode.hidden = 16
    torch.manual_seed(0)
    save_checkpoint(tmp_path / "run", 1, build_model(cfg), cfg)
    return tmp_path / "run"


SETTINGS = """\
eval:
  paper_steps: 3
  white_box: [fgsm, pgd, apgd]
  corruptions: [gaussian_noise, contrast, brightness]
  severities: [1, 3, 5]
  square_queries: 20
  autoattack_square_queries: 20
  rigorous:
    pgd_steps: 3
    pgd_restarts: 2
    apgd_steps: 3
    square_queries: 20
    aa_square_queries: 20
    large_eps_steps: 3
    grad_n: 8
"""


@pytest.mark.slow
def test_two_process_evaluation_writes_the_single_process_record(tmp_path):
    """An adaptive-solver Neural ODE (its batches couple their examples), every suite that
    applies, odd batch counts: the record of ``torchrun --nproc_per_node 2`` equals the
    single-process record field for field."""
    run = _ode_checkpoint(tmp_path)
    (tmp_path / "eval.yaml").write_text(SETTINGS)
    args = [str(run), "--suite", "all", "--images", "40", "--batch-size", "8",
            "--no-progress", "--settings", str(tmp_path / "eval.yaml")]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    one = subprocess.run([sys.executable, "-m", "zubovnet", "eval", *args, "--out",
                          str(tmp_path / "one.json")], capture_output=True, text=True, env=env)
    assert one.returncode in (0, 1), one.stderr
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                          "--standalone", "-m", "zubovnet", "eval", *args, "--out",
                          str(tmp_path / "two.json")], capture_output=True, text=True, env=env)
    assert two.returncode == one.returncode, two.stderr[-3000:]
    a = json.loads((tmp_path / "one.json").read_text())
    b = json.loads((tmp_path / "two.json").read_text())
    assert b["distributed"]["world_size"] == 2 and "distributed" not in a
    assert len(a["results"]) > 20
    assert strip_volatile(a["results"]) == strip_volatile(b["results"])
    assert strip_volatile(a["verdicts"]) == strip_volatile(b["verdicts"])
    assert not list(tmp_path.glob("two.json.state*"))
    assert two.stdout.count("record:") == 1          # rank 0 alone reports and writes
