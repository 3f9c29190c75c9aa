"""tools/pretrained_models.py: the learning curve and the card of weights trained in stages."""
from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import pytest

TOOL = Path(__file__).resolve().parents[1] / "tools" / "pretrained_models.py"


@pytest.fixture(scope="module")
def tool():
    spec = importlib.util.spec_from_file_location("pretrained_models", TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_next_stage_extends_the_committed_curve(tool, tmp_path, monkeypatch):
    monkeypatch.setattr(tool, "CURVES", tmp_path)
    (tmp_path / "m.csv").write_text("step,minutes,test_bound,fidelity_seen\n1000,5.0,200.0,50.0\n2000,10.0,180.0,70.0\n")
    run = tmp_path / "run"
    run.mkdir()
    rows = [{"step": 100, "bound": 170.0, "seconds": 60.0}, {"step": 100, "test_bound": 175.0, "test_se": 1.0},
            {"step": 100, "seconds": 61.0, "fidelity_seen": 80.0, "fidelity_seen_by_template": {}}]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    tool.write_curve("m", run, after=True)
    curve = tool.read_curve_rows(tmp_path / "m.csv")
    assert [r["step"] for r in curve] == [1000, 2000, 2100]                  # counted on from the last row
    assert curve[-1]["minutes"] == pytest.approx(10.0 + 61.0 / 60, abs=0.01)
    assert curve[-1]["fidelity_seen"] == 80.0 and curve[0]["test_bound"] == 200.0
    tool.write_curve("m", run)                                               # a run from scratch: its rows alone
    assert [r["step"] for r in tool.read_curve_rows(tmp_path / "m.csv")] == [100]


def test_a_run_from_another_runs_checkpoint_follows_that_runs_curve(tool, tmp_path, monkeypatch):
    import torch
    monkeypatch.setattr(tool, "CURVES", tmp_path / "curves")
    first, second = tmp_path / "s0", tmp_path / "s0-2"
    for run, init, steps in ((first, "", (1000, 2000)), (second, str(first / "checkpoint.pt"), (500,))):
        run.mkdir()
        torch.save({"train": {"init": init}, "step": steps[-1]}, run / "checkpoint.pt")
        rows = [r for step in steps for r in ({"step": step, "seconds": step / 100},
                                              {"step": step, "fidelity_seen": step / 100, "fidelity_seen_by_template": {}})]
        (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert tool.stage_runs(second) == [first, second] and tool.stage_runs(first) == [first]
    tool.write_curve("m", second)                   # stage 1's rows, then stage 2's counted on from them
    curve = tool.read_curve_rows(tmp_path / "curves" / "m.csv")
    assert [r["step"] for r in curve] == [1000, 2000, 2500]
    assert curve[-1]["minutes"] == pytest.approx((20 + 5) / 60, abs=0.01) and curve[-1]["fidelity_seen"] == 5.0
    shutil.rmtree(first)                            # the first run's directory is gone: only what is at hand
    assert tool.stage_runs(second) == [second]


def test_the_card_lists_each_stage_with_what_changed(tool):
    first = {"lr": 2e-3, "max_steps": 28000, "init": "", "model": {"T": 16}}
    second = {"lr": 5e-4, "max_steps": 10000, "init": "aligndraw-mnist", "beta1": 0.9,
              "model": {"T": 16, "what_adversary": 12.0}}
    lines = tool.stages("aligndraw-mnist", {"stages": [{"step": 28000, "train": first}, {"step": 10000, "train": second}]})
    text = "\n".join(lines)
    assert "1. 28,000 steps, `minidraw train --config aligndraw-mnist --out RUN`" in text
    assert "2. 10,000 steps" in text and "lr=0.0005 max_steps=10000 model.what_adversary=12.0`" in text
    assert "beta1" not in text and "model.T" not in text                    # newer fields and unchanged ones: not
    assert tool.stages("aligndraw-mnist", {"step": 5}) == []


def test_every_seed_is_measured_from_its_own_run_and_only_under_the_protocol(tmp_path):
    import torch
    spec = importlib.util.spec_from_file_location("recipe_seeds", TOOL.parent / "recipe_seeds.py")
    seeds_tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(seeds_tool)
    for run in ("m-s0", "m-s0-2", "m-s1", "m-s10", "other-s0", "m-s2", "m-sx"):  # m-s2: no checkpoint yet
        (tmp_path / run).mkdir()
        if run != "m-s2":
            (tmp_path / run / "checkpoint.pt").write_bytes(b"")
    found = seeds_tool.seed_runs("m", tmp_path)
    assert {k: v.name for k, v in found.items()} == {0: "m-s0", 1: "m-s1", 10: "m-s10"}
    # a run trained before the validation compositions existed is refused, not reported
    torch.save({"kind": "draw", "config": {}, "model": {}, "step": 5, "train": {"seed": 1, "max_steps": 5}},
               tmp_path / "m-s1" / "checkpoint.pt")
    (tmp_path / "m-s0").rename(tmp_path / "x0")
    (tmp_path / "m-s0-2").rename(tmp_path / "x1")
    (tmp_path / "m-s10").rename(tmp_path / "x2")
    with pytest.raises(SystemExit, match="without validation compositions"):
        seeds_tool.measure("m", tmp_path, None)
    torch.save({"kind": "draw", "config": {}, "model": {}, "step": 3,
                "train": {"seed": 1, "max_steps": 5, "heldout_val": True}}, tmp_path / "m-s1" / "checkpoint.pt")
    with pytest.raises(SystemExit, match="measure a finished run"):                  # stopped early: not a result
        seeds_tool.measure("m", tmp_path, None)
