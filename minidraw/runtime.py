"""Where computations run, and how library functions leave the caller's state alone.

* :func:`device` picks the device in one place — CUDA, then Apple's MPS, then the CPU —
  for the command line, the trainer, the evaluation and sampling.
* :func:`forked_rng` and :func:`seeded` run code with PyTorch's random generators forked:
  afterwards the caller's random state (CPU and every accelerator) is as it was.
* :func:`bf16_native` says whether a device multiplies bf16 matrices in hardware (where bf16
  autocast makes training faster rather than slower).
* :func:`evaluating` adds eval mode, restoring the model's own mode afterwards.

No minidraw function reseeds the caller's generators or leaves a model in another mode.
"""
from __future__ import annotations

from contextlib import ExitStack, contextmanager
from typing import Iterator, Optional

import torch


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def device(name: Optional[str | torch.device] = None, *, local_rank: int = 0) -> torch.device:
    """The device to run on: ``name`` when given (``"cpu"``, ``"cuda:1"``, ``"mps"``), else CUDA
    (device ``local_rank``, one per process under torchrun), then MPS, then the CPU.

    A device that is not there is a ``ValueError`` that says which devices are."""
    if name is not None and str(name) not in ("", "auto"):
        try:
            dev = torch.device(name)
        except (RuntimeError, TypeError) as e:
            raise ValueError(f"unknown device {name!r} ({e}); give cpu, cuda, cuda:N or mps") from None
        there = {"cpu": True, "cuda": torch.cuda.is_available(), "mps": _mps_available()}.get(dev.type, False)
        if not there or (dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count()):
            raise ValueError(f"device {name!r} is not available here; available: {', '.join(available())}")
        return dev
    if torch.cuda.is_available():
        return torch.device("cuda", local_rank)
    if _mps_available():
        return torch.device("mps")
    return torch.device("cpu")


def available() -> list[str]:
    """The devices this machine offers, e.g. ``["cuda:0", "cpu"]``."""
    out = [f"cuda:{i}" for i in range(torch.cuda.device_count())] if torch.cuda.is_available() else []
    return out + (["mps"] if _mps_available() else []) + ["cpu"]


def _cpu_flags() -> set[str]:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def bf16_native(where: torch.device) -> bool:
    """True when ``where`` multiplies bf16 matrices in hardware: a CUDA GPU with bf16 units (not a T4,
    which emulates them slowly), or an x86 CPU with AVX512-BF16 or AMX (Linux; there oneDNN's bf16
    matrix products run ~4× the float32 rate, measured in ``benchmarks/step_vs_plain.py``)."""
    if where.type == "cuda":
        try:
            return torch.cuda.is_bf16_supported(including_emulation=False)
        except TypeError:  # older torch
            return torch.cuda.is_bf16_supported()
    if where.type == "cpu":
        return bool(_cpu_flags() & {"avx512_bf16", "amx_bf16"}) and torch.backends.mkldnn.is_available()
    return False


@contextmanager
def forked_rng() -> Iterator[None]:
    """Inside: PyTorch's generators as they are, free to be reseeded. After: the CPU's and the current
    accelerator's random state is what it was before. Only the current CUDA device is forked: a process
    (one rank of many) draws its noise there, and forking the others would open a context on every GPU."""
    with ExitStack() as stack:
        cuda = [torch.cuda.current_device()] if torch.cuda.is_available() else []
        stack.enter_context(torch.random.fork_rng(devices=cuda, device_type="cuda"))   # the CPU, and CUDA's
        if _mps_available():
            stack.enter_context(torch.random.fork_rng(devices=[0], device_type="mps"))
        yield


@contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Inside: the random stream of ``seed``. After: the caller's random state, untouched."""
    with forked_rng():
        torch.manual_seed(seed)
        yield


@contextmanager
def eval_mode(model: torch.nn.Module) -> Iterator[torch.nn.Module]:
    """Inside: ``model`` in eval mode. After: its mode as it was."""
    was = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was)


@contextmanager
def evaluating(model: torch.nn.Module, seed: int) -> Iterator[torch.device]:
    """Inside: eval mode and the noise stream of ``seed``; yields the model's device. After: the
    model's mode and the caller's random state (CPU and accelerators) are as they were."""
    with eval_mode(model), seeded(seed):
        yield next(model.parameters()).device
