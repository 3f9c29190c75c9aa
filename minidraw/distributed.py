"""Many processes under ``torchrun``: the process group, and decisions every process takes together.

Each process is one rank of ``WORLD_SIZE``; ``LOCAL_RANK`` says which GPU of its machine it uses, and
:func:`setup` makes that GPU the process's current device before any CUDA work, so that its tensors, DDP's
buffers and every collective live on ``cuda:LOCAL_RANK`` (NCCL refuses two ranks on one GPU). A flag that any
one process raises — a time limit, a signal, a loss that became NaN — is all-reduced (:func:`agree`), so that
all stop at the same step and none is left waiting in a collective the others never join.
"""
from __future__ import annotations

import os
from datetime import timedelta

import torch
import torch.distributed as dist

from .errors import UserError

# How long a collective may wait. Rank 0 evaluates (the test bound, caption fidelity) while the others wait at
# the next step's all-reduce: the default NCCL watchdog (10 minutes) can be shorter than a long evaluation.
TIMEOUT = timedelta(hours=2)


def setup() -> tuple[int, int, int]:
    """(rank, world size, local rank), starting the process group under torchrun: NCCL with this process on
    ``cuda:LOCAL_RANK`` when there are GPUs, gloo on the CPU otherwise."""
    rank, world = int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if world > 1 and not dist.is_initialized():
        if torch.cuda.is_available():
            if local >= torch.cuda.device_count():
                raise UserError(f"LOCAL_RANK={local} but this machine has {torch.cuda.device_count()} GPU(s): give "
                                "torchrun --nproc_per_node at most the number of GPUs")
            torch.cuda.set_device(local)                         # before any CUDA work: cuda:LOCAL_RANK is ours
            dist.init_process_group("nccl", timeout=TIMEOUT)
        else:
            dist.init_process_group("gloo", timeout=TIMEOUT)
    return rank, world, local


def agree(flags: list[bool]) -> list[bool]:
    """Each flag, true when it is true on any process (an all-reduced maximum), so that processes
    decide together; the flags as they are when ``torch.distributed`` is not running. One tiny
    all-reduce: cheap enough for every step."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return [bool(f) for f in flags]
    on = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")
    # (the current device is cuda:LOCAL_RANK: setup() made it so)
    t = torch.tensor([float(bool(f)) for f in flags], device=on)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return [bool(v) for v in t.tolist()]
