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
