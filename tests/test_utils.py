import argparse
import os

import pytest
import torch

import utils
from utils import duration_seconds, save_atomically


def test_save_atomically_writes_once_and_links(tmp_path):
    best, last = tmp_path / "best.pth", tmp_path / "last.pth"
    save_atomically({"epoch": 1, "w": torch.arange(4.0)}, best, last)
    assert best.stat().st_ino == last.stat().st_ino  # one file under two names
    assert torch.load(best, weights_only=True)["epoch"] == 1

    save_atomically({"epoch": 2, "w": torch.zeros(4)}, last)  # a later epoch that is not the best
    assert torch.load(last, weights_only=True)["epoch"] == 2
    kept = torch.load(best, weights_only=True)
    assert kept["epoch"] == 1 and torch.equal(kept["w"], torch.arange(4.0))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.pth", "last.pth"]  # no temporary left


def test_save_atomically_copies_without_hard_links(tmp_path, monkeypatch):
    def no_links(src, dst):
        raise OSError("hard links not supported")

    monkeypatch.setattr(utils.os, "link", no_links)
    best, last = tmp_path / "best.pth", tmp_path / "last.pth"
    save_atomically({"epoch": 3}, best, last)
    assert best.stat().st_ino != last.stat().st_ino
    assert best.read_bytes() == last.read_bytes()
    assert torch.load(best, weights_only=True) == {"epoch": 3}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.pth", "last.pth"]


def test_save_atomically_keeps_the_old_files_when_writing_fails(tmp_path, monkeypatch):
    best, last = tmp_path / "best.pth", tmp_path / "last.pth"
    save_atomically({"epoch": 1}, best, last)

    def disk_full(obj, f):
        f.write(b"half a checkpoint")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(utils.torch, "save", disk_full)
    with pytest.raises(OSError, match="No space left"):
        save_atomically({"epoch": 2}, best, last)
    assert torch.load(best, weights_only=True) == {"epoch": 1}
    assert torch.load(last, weights_only=True) == {"epoch": 1}
    assert sorted(os.listdir(tmp_path)) == ["best.pth", "last.pth"]  # the half-written file is gone


@pytest.mark.parametrize(
    "text, seconds", [("90s", 90), ("20m", 1200), ("1.5h", 5400), ("1h30m", 5400), ("45", 45)]
)
def test_a_duration_is_read_in_seconds(text, seconds):
    assert duration_seconds(text) == seconds


@pytest.mark.parametrize("text", ["", "abc", "m", "-5m"])
def test_a_text_that_is_no_duration_is_refused(text):
    with pytest.raises(argparse.ArgumentTypeError, match="is not a duration"):
        duration_seconds(text)
