"""`minidraw` / `python -m minidraw`: the commands and their help."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from minidraw.cli import main

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("argv, expect", [
    (["--help"], "prepare"), (["train", "--help"], "examples"), (["sample", "--help"], "--animation"),
    (["prepare", "coco", "--help"], "--coco-root"), (["prepare", "mnist", "--help"], "--root"),
    (["prepare", "shapes", "--help"], "--split"),
])
def test_help(argv, expect, capsys):
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 0 and expect in capsys.readouterr().out


def test_python_dash_m_runs_the_same_command():
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = subprocess.run([sys.executable, "-m", "minidraw", "--help"], capture_output=True, text=True, env=env)
    assert out.returncode == 0 and "train" in out.stdout and "sample" in out.stdout


def test_prepare_coco_on_the_tiny_fixture(tmp_path, capsys):
    assert main(["prepare", "coco", "--tiny", "--coco-root", str(tmp_path / "raw"), "--out", str(tmp_path / "coco"),
                 "--min-count", "1", "--quiet"]) == 0
    assert "coco32_train.npz" in capsys.readouterr().out
    assert json.loads((tmp_path / "coco" / "meta.json").read_text())["size"] == 32
    assert main(["prepare", "coco", "--coco-root", str(tmp_path / "nowhere"), "--out", str(tmp_path / "x")]) == 2
    assert "error" in capsys.readouterr().err


def test_prepare_mnist_checks_a_folder(mnist_dir, tmp_path, capsys):
    assert main(["prepare", "mnist", "--root", str(mnist_dir)]) == 0
    assert "test: 10000 digits" in capsys.readouterr().out
    assert main(["prepare", "mnist", "--root", str(tmp_path)]) == 2
    assert "MINIDRAW_DATA" in capsys.readouterr().err


def test_prepare_shapes_snapshot(tmp_path):
    assert main(["prepare", "shapes", "--out", str(tmp_path / "s.npz"), "--n", "20", "--split", "heldout"]) == 0
    snap = np.load(tmp_path / "s.npz")
    assert snap["images"].shape == (20, 32, 32, 3) and snap["images"].dtype == np.uint8
    assert snap["captions"].shape[0] == 20 and (snap["lengths"] > 0).all()
