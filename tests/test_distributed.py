"""torch.distributed training on CPU (gloo, 2 processes): gradient averaging and rank sync."""
import os
import socket

import pytest
import torch
import torch.multiprocessing as mp


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank, world, port, out_dir, cfg_dict):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE=str(world),
                      RANK=str(rank), LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    import torch.distributed as dist
    from zubovnet.config import config_from_dict
    from zubovnet.training import train
    from zubovnet.training.trainer import _average_gradients
    dist.init_process_group("gloo", rank=rank, world_size=world)
    # 1. averaged half-batch gradients == full-batch gradient (mean loss, no BatchNorm)
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(5, 7), torch.nn.Tanh(), torch.nn.Linear(7, 3))
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(8, 5, generator=g), torch.randint(0, 3, (8,), generator=g)
    half = slice(4 * rank, 4 * rank + 4)
    torch.nn.functional.cross_entropy(net(x[half]), y[half]).backward()
    _average_gradients(net, world)
    torch.save([p.grad for p in net.parameters()], f"{out_dir}/grad{rank}.pt")
    # 2. a full training run: every rank ends with the same parameters
    result = train(config_from_dict(cfg_dict))
    torch.save(result.model.state_dict(), f"{out_dir}/state{rank}.pt")
    dist.destroy_process_group()


@pytest.mark.slow
def test_two_process_training_keeps_ranks_in_sync(small_cfg, tmp_path):
    from zubovnet.config import config_to_dict
    cfg = small_cfg
    cfg.model.name = "neural_ode"
    cfg.train.epochs = 1
    cfg.train.max_steps_per_epoch = 2
    cfg.data.batch_size = 32
    cfg.train.out_dir = str(tmp_path / "run")
    mp.spawn(_worker, args=(2, _free_port(), str(tmp_path), config_to_dict(cfg)), nprocs=2, join=True)

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(5, 7), torch.nn.Tanh(), torch.nn.Linear(7, 3))
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(8, 5, generator=g), torch.randint(0, 3, (8,), generator=g)
    torch.nn.functional.cross_entropy(net(x), y).backward()
    for rank in (0, 1):
        for a, b in zip(torch.load(tmp_path / f"grad{rank}.pt"), [p.grad for p in net.parameters()]):
            assert torch.allclose(a, b, atol=1e-6)
    s0, s1 = torch.load(tmp_path / "state0.pt"), torch.load(tmp_path / "state1.pt")
    for k in s0:
        assert torch.equal(s0[k], s1[k]), k
    assert (tmp_path / "run" / "checkpoints" / "epoch_0001" / "model.safetensors").exists()
