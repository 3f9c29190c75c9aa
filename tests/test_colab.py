"""minidraw.colab: where the notebooks read and write, on Colab and off it (no network, nothing mounted)."""
import sys
import types
from pathlib import Path

import pytest

from minidraw import colab

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def on_colab(monkeypatch):
    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))


@pytest.fixture
def off_colab(monkeypatch):
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)


def test_on_colab_follows_the_google_colab_module(monkeypatch, off_colab):
    assert not colab.on_colab()
    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    assert colab.on_colab()


def test_run_dir_off_colab_is_runs_in_the_working_directory(monkeypatch, tmp_path, off_colab):
    monkeypatch.setattr(colab, "DRIVE", tmp_path)          # a "Drive" off Colab is not used
    assert colab.run_dir("draw-mnist") == Path("runs") / "draw-mnist"


def test_run_dir_on_colab_without_drive_is_local(monkeypatch, tmp_path, on_colab):
    monkeypatch.setattr(colab, "DRIVE", tmp_path / "drive" / "MyDrive")   # not mounted
    assert colab.run_dir("draw-mnist") == Path("runs") / "draw-mnist"
    assert not (tmp_path / "drive").exists()                               # nothing created


def test_run_dir_on_colab_with_drive_mounted_is_on_drive(monkeypatch, tmp_path, on_colab):
    drive = tmp_path / "MyDrive"
    drive.mkdir()
    monkeypatch.setattr(colab, "DRIVE", drive)
    assert colab.run_dir("aligndraw-mnist") == drive / "minidraw" / "runs" / "aligndraw-mnist"
    assert sorted(drive.iterdir()) == []                                   # nothing created


def test_the_drive_is_colabs_mount_point():
    assert colab.DRIVE == Path("/content/drive/MyDrive")


def test_book_file_finds_the_books_files_from_any_working_directory(monkeypatch, tmp_path):
    monkeypatch.delenv(colab.BOOK_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    assert colab.book_file("checkpoints") == REPO / "book" / "checkpoints"   # this source checkout
    assert colab.book_file(Path("checkpoints") / "classifiers") == REPO / "book" / "checkpoints" / "classifiers"
    assert colab.book_file("checkpoints/no_such_file.pt") is None


def test_book_file_prefers_the_folder_the_environment_names(monkeypatch, tmp_path):
    (tmp_path / "checkpoints").mkdir()
    monkeypatch.setenv(colab.BOOK_ENV, str(tmp_path))
    monkeypatch.chdir(REPO)
    assert colab.book_file("checkpoints") == tmp_path / "checkpoints"


def test_book_file_falls_back_to_the_working_directory(monkeypatch, tmp_path):
    """An installed minidraw (not a checkout), e.g. on Colab: the working directory, else None."""
    monkeypatch.delenv(colab.BOOK_ENV, raising=False)
    monkeypatch.setattr(colab, "__file__", str(tmp_path / "site-packages" / "minidraw" / "colab.py"))
    monkeypatch.chdir(tmp_path)
    assert colab.book_file("checkpoints") is None
    (tmp_path / "checkpoints" / "classifiers").mkdir(parents=True)
    assert colab.book_file("checkpoints/classifiers") == tmp_path / "checkpoints" / "classifiers"
