"""Many processes under ``torchrun``: the process group, and decisions every process takes together.

Each process is one rank of ``WORLD_SIZE``; ``LOCAL_RANK`` says which device of its machine it uses. A flag
that any one process raises (a time limit, a signal) is all-reduced, so that all stop at the same step and
none is left waiting in a collective the others never join.
"""
from __future__ import annotations

import os

import torch
import torch.distributed as dist


def setup() -> tuple[int, int, int]:
    """(rank, world size, local rank), starting the process group under torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return int(os.environ.get("RANK", "0")), world, int(os.environ.get("LOCAL_RANK", "0"))


def agree(flags: list[bool]) -> list[bool]:
    """Each flag, true when it is true on any process (an all-reduced maximum), so that processes
    decide together; the flags as they are when ``torch.distributed`` is not running. One tiny
    all-reduce: cheap enough for every step."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return [bool(f) for f in flags]
    on = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")
    t = torch.tensor([float(bool(f)) for f in flags], device=on)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return [bool(v) for v in t.tolist()]
