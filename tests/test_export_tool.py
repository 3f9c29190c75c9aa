"""tools/pretrained_models.py: the learning curve and the card of weights trained in stages."""
from __future__ import annotations

import importlib.util
import json
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
