"""One device helper, and contexts that leave the caller's random state and module modes alone."""
import pytest
import torch

import minidraw
from minidraw import runtime


def test_device_prefers_cuda_then_mps_then_cpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(runtime, "_mps_available", lambda: False)
    assert minidraw.device() == torch.device("cpu") == runtime.device("auto")
    monkeypatch.setattr(runtime, "_mps_available", lambda: True)
    assert runtime.device() == torch.device("mps")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert runtime.device(local_rank=3) == torch.device("cuda", 3)


def test_named_devices_are_checked():
    assert runtime.device("cpu") == torch.device("cpu")
    with pytest.raises(ValueError, match="unknown device 'gpu'"):
        runtime.device("gpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="'cuda:0' is not available here; available: .*cpu"):
            runtime.device("cuda:0")


def test_seeded_and_evaluating_restore_the_random_state_and_the_mode():
    torch.manual_seed(5)
    expected = torch.rand(4)
    torch.manual_seed(5)
    with runtime.seeded(1):
        inside = torch.rand(2)
    with runtime.seeded(1):
        assert torch.equal(torch.rand(2), inside)                # the stream of the seed, every time
    assert torch.equal(torch.rand(4), expected)                  # and the caller's stream afterwards
    model = torch.nn.Sequential(torch.nn.Dropout(0.5), torch.nn.Linear(2, 2))
    model.train()
    with runtime.evaluating(model, seed=0) as dev:
        assert dev == torch.device("cpu") and not model.training and not model[0].training
    assert model.training and model[0].training
    model.eval()
    with pytest.raises(RuntimeError, match="boom"):
        with runtime.evaluating(model, seed=0):
            raise RuntimeError("boom")
    assert not model.training                                     # restored even after an error
