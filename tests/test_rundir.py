"""One run per directory: a second run on the same --out is refused naming the process that holds it; a run
killed with -9 leaves nothing that stops the next; bad training settings are refused before any data is read."""
import os
import signal
import subprocess
import sys
import time

import pytest

from minidraw import rundir
from minidraw.cli import main

TINY = ["--set", "max_steps=2", "eval_every=0", "eval_examples=8", "batch_size=4", "model.T=2", "model.enc_size=8",
        "model.dec_size=8", "model.z_size=2", "--quiet"]


@pytest.fixture(autouse=True)
def _offline_mnist(monkeypatch, mnist_dir):
    monkeypatch.setenv("MINIDRAW_DATA", str(mnist_dir.parent))


def fails(capsys, argv, *words):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert all(w in err for w in words), err
    return err


def _holder(out):
    """Another process that holds the run directory (as a run does) until it is killed."""
    code = (f"import time; from minidraw.rundir import locked\nwith locked({str(out)!r}):\n"
            "    print('held', flush=True)\n    time.sleep(300)")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_a_second_run_on_the_same_folder_is_refused_and_a_killed_one_blocks_nothing(tmp_path, capsys):
    out = tmp_path / "run"
    holder = _holder(out)
    try:
        err = fails(capsys, ["train", "--preset", "draw_mnist_small", *TINY, "--out", str(out)],
                    "in use by another run", f"process {holder.pid}", "another --out")
        assert not (out / rundir.CHECKPOINT).exists()
    finally:
        os.kill(holder.pid, signal.SIGKILL)                          # kill -9: the OS releases the lock
        holder.wait()
    assert main(["train", "--preset", "draw_mnist_small", *TINY, "--out", str(out)]) == 0
    assert [r["step"] for r in rundir.read_metrics(out) if "bound" in r] == [1, 2]
    assert err


def test_the_lock_is_released_when_the_run_ends(tmp_path):
    with rundir.locked(tmp_path / "a"):
        with pytest.raises(rundir.RunDirectoryBusy):
            with rundir.locked(tmp_path / "a"):                      # the same process, a second open file: refused
                pass
    with rundir.locked(tmp_path / "a") as out:                       # released: taken again
        assert out == tmp_path / "a"


@pytest.mark.parametrize("sets,words", [
    (["batch_size=0"], ["batch_size must be at least 1, got 0"]),
    (["batch_size=-1"], ["batch_size must be at least 1"]),
    (["max_steps=-5"], ["max_steps must be at least 1"]),
    (["max_minutes=-1"], ["max_minutes must be a finite number, 0 or more"]),
    (["lr=inf"], ["lr must be a finite number above 0"]),
])
def test_bad_settings_are_refused_before_the_data_is_read(tmp_path, capsys, sets, words):
    start = time.perf_counter()
    fails(capsys, ["train", "--preset", "aligndraw_mnist_small", "--set", *sets, "--out", str(tmp_path / "r")], *words)
    assert time.perf_counter() - start < 10 and not (tmp_path / "r" / rundir.CHECKPOINT).exists()


def test_the_command_line_limits_and_the_out_folder_are_checked(tmp_path, capsys):
    fails(capsys, ["train", "--preset", "draw_mnist_small", "--max-steps", "0", "--out", str(tmp_path / "r")],
          "max_steps must be at least 1")
    fails(capsys, ["train", "--preset", "draw_mnist_small", "--max-minutes", "-1", "--out", str(tmp_path / "r")],
          "max_minutes must be")
    (tmp_path / "file").write_text("x")
    fails(capsys, ["train", "--preset", "draw_mnist_small", *TINY, "--out", str(tmp_path / "file")],
          "is a file, not a folder")


def test_settings_are_typed_by_their_fields_from_toml_and_set_alike(tmp_path, capsys):
    from minidraw.configs import load_config
    f = tmp_path / "r.toml"
    f.write_text('preset = "draw_mnist_small"\nclip = 10\nmax_steps = 3e3\n')
    cfg = load_config(None, f, ["clip=2.5"])
    assert (cfg.clip, cfg.max_steps) == (2.5, 3000) and isinstance(cfg.max_steps, int)
    for text, words in (('lr = "abc"\n', "lr in"), ("model = 5\n", "must be a table"), ("max_steps = 2.5\n",
                        "max_steps in"), ("lr = = 1\n", "is not valid TOML")):
        f.write_text('preset = "draw_mnist_small"\n' + text)
        fails(capsys, ["train", "--config", str(f), "--out", str(tmp_path / "r")], words, str(f))
