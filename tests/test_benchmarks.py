"""The benchmarks' own instruments, against known answers (the benchmarks are scripts)."""
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))


def test_flop_counter_counts_a_matmul_its_backward_and_a_gradient_inside_it():
    from bench_flops import FlopCounter
    a = torch.randn(8, 16, requires_grad=True)
    w = torch.randn(16, 4, requires_grad=True)
    with FlopCounter() as fwd:
        y = (a @ w).sum()
    assert fwd.get_total_flops() == 2 * 8 * 16 * 4
    with FlopCounter() as bwd:                   # torch.autograd.grad inside the counted region
        ga, gw = torch.autograd.grad(y, (a, w))
    assert bwd.get_total_flops() == 2 * (2 * 8 * 16 * 4)   # dA = G Wᵀ and dW = Aᵀ G
    torch.testing.assert_close(ga, w.sum(1).expand(8, 16))


def test_shard_benchmark_runs_torchrun_only_for_several_processes_and_compares_counts():
    from bench_eval_shards import _command, _counts, differing
    one = _command(1, "pretrained:x", "attacks", 10, Path("o.json"))
    two = _command(2, "pretrained:x", "attacks", 10, Path("o.json"))
    assert "torch.distributed.run" not in one and one[1:3] == ["-m", "zubovnet"]
    assert two[1:3] == ["-m", "torch.distributed.run"] and "--nproc_per_node" in two
    assert two[two.index("--nproc_per_node") + 1] == "2" and two[-len(one) + 1:] == one[1:]
    rec = {"results": {"clean": {"correct": 9, "n": 10, "wall_time_s": 1.0},
                       "pgd@8/255": {"correct": 3, "n": 10}}}
    other = {"results": {"clean": {"correct": 9, "n": 10, "wall_time_s": 2.0},
                         "pgd@8/255": {"correct": 4, "n": 10}}}
    assert _counts(rec) == {"clean": (9, 10), "pgd@8/255": (3, 10)}
    assert differing(rec, other) == ["pgd@8/255"] and differing(rec, rec) == []
    assert differing(rec, {"results": {"clean": {"correct": 9, "n": 10}}}) == ["pgd@8/255"]
