import os
import pickle

import pytest
import torch

import utils
from utils import save_atomically


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


def test_save_atomically_keeps_the_old_file_when_saving_fails(tmp_path):
    last = tmp_path / "last.pth"
    save_atomically({"epoch": 1}, last)
    with pytest.raises(pickle.PicklingError):
        save_atomically({"epoch": 2, "bad": lambda: None}, last)  # a lambda cannot be saved
    assert torch.load(last, weights_only=True) == {"epoch": 1}
    assert os.listdir(tmp_path) == ["last.pth"]
