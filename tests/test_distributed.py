"""Many processes: each rank on its own GPU before any CUDA work, and a loss that becomes NaN on one rank stops
every rank at the same step (none is left waiting in a collective)."""
import multiprocessing
from datetime import timedelta

import pytest
import torch
import torch.distributed as dist

from minidraw import distributed
from minidraw.configs import TrainConfig
from minidraw.draw import Draw, DrawConfig
from minidraw.errors import UserError
from minidraw.train import TrainingDiverged, train_step


def test_each_rank_takes_its_own_gpu_before_the_process_group(monkeypatch):
    """With a faked torch.cuda of 4 GPUs, rank 2 of 4 sets cuda:2 as its device, then starts NCCL; a LOCAL_RANK
    beyond the GPUs is one clear error."""
    calls = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    monkeypatch.setattr(torch.cuda, "set_device", lambda d: calls.append(("set_device", d)))
    monkeypatch.setattr(dist, "is_initialized", lambda: False)
    monkeypatch.setattr(dist, "init_process_group", lambda backend, **kw: calls.append(("init", backend)))
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("RANK", "2")
    monkeypatch.setenv("LOCAL_RANK", "2")
    assert distributed.setup() == (2, 4, 2)
    assert calls == [("set_device", 2), ("init", "nccl")]
    monkeypatch.setenv("LOCAL_RANK", "5")
    with pytest.raises(UserError, match="at most the number of GPUs"):
        distributed.setup()
    calls.clear()
    monkeypatch.setenv("WORLD_SIZE", "1")
    assert distributed.setup() == (2, 1, 5) and calls == []                  # one process: no group, no device set


def _rank(rank: int, world: int, init_file: str, results) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world,
                            timeout=timedelta(seconds=60))
    torch.manual_seed(0)
    model = Draw(DrawConfig(A=8, B=8, T=2, read_N=2, write_N=2, enc_size=8, dec_size=8, z_size=2))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x = (torch.rand(4, 1, 8, 8) > 0.5).float()
    outcome = (rank, None, "")
    for step in range(1, 6):
        if rank == 1 and step == 3:
            with torch.no_grad():
                model.c0.fill_(float("nan"))                                 # this rank's bound becomes NaN
        try:
            train_step(model, opt, (x,), TrainConfig(cpu_bf16=False), step)
        except TrainingDiverged as e:
            outcome = (rank, step, str(e))
            break
    results.put(outcome)
    dist.destroy_process_group()


def test_a_nan_on_one_rank_stops_every_rank_at_the_same_step(tmp_path):
    ctx = multiprocessing.get_context("spawn")
    results = ctx.Queue()
    procs = [ctx.Process(target=_rank, args=(r, 2, str(tmp_path / "init"), results)) for r in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert all(p.exitcode == 0 for p in procs), [p.exitcode for p in procs]
    got = sorted(results.get(timeout=5) for _ in procs)
    assert [(r, s) for r, s, _ in got] == [(0, 3), (1, 3)], got
    assert "on another process" in got[0][2] and "became nan" in got[1][2]
