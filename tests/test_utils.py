import argparse
import os
import subprocess
import sys

import pytest
import torch

import utils
from tests.helpers import ROOT
from utils import UserError, duration_seconds, save_atomically, select_amp


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
    with pytest.raises(UserError, match=r"cannot write .*last\.pth: the disk is full"):
        save_atomically({"epoch": 2}, best, last)
    assert torch.load(best, weights_only=True) == {"epoch": 1}
    assert torch.load(last, weights_only=True) == {"epoch": 1}
    assert sorted(os.listdir(tmp_path)) == ["best.pth", "last.pth"]  # the half-written file is gone


def test_a_disk_that_fills_under_torch_save_is_named_with_the_space_needed(tmp_path, monkeypatch):
    def filled(obj, f):  # what torch.save raises when the disk fills in the middle of its zip archive
        f.write(b"part of a checkpoint")
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 40511872 vs 40511760")

    monkeypatch.setattr(utils.torch, "save", filled)
    monkeypatch.setattr(utils.shutil, "disk_usage", lambda path: type("Usage", (), {"free": 3 * 2**20})())
    state = {"model": {"w": torch.zeros(2**20)}}  # 4 MiB of tensors
    with pytest.raises(UserError) as error:
        save_atomically(state, tmp_path / "last.pth")
    assert str(error.value) == (
        f"cannot write {tmp_path / 'last.pth'}: the disk is full (3.0 MiB free on {tmp_path}, the file needs "
        "about 4.0 MiB); free some space or write elsewhere (--save_dir)"
    )
    assert os.listdir(tmp_path) == []


def test_a_failed_write_with_space_to_spare_is_not_called_a_full_disk(tmp_path, monkeypatch):
    def broken(obj, f):
        raise RuntimeError("some other failure")

    monkeypatch.setattr(utils.torch, "save", broken)
    with pytest.raises(RuntimeError, match="some other failure"):
        save_atomically({"epoch": 1}, tmp_path / "last.pth")


@pytest.mark.parametrize(
    "text, seconds", [("90s", 90), ("20m", 1200), ("1.5h", 5400), ("1h30m", 5400), ("45", 45)]
)
def test_a_duration_is_read_in_seconds(text, seconds):
    assert duration_seconds(text) == seconds


@pytest.mark.parametrize("text", ["", "abc", "m", "-5m"])
def test_a_text_that_is_no_duration_is_refused(text):
    with pytest.raises(argparse.ArgumentTypeError, match="is not a duration"):
        duration_seconds(text)


@pytest.mark.parametrize(
    ("capability", "dtype"),
    [((7, 5), torch.float16), ((7, 0), torch.float16), ((8, 0), torch.bfloat16), ((9, 0), torch.bfloat16)],
)  # T4, V100 (bf16 emulated only: fp16), A100, H100
def test_amp_auto_on_a_gpu_is_bf16_from_compute_capability_8_and_fp16_below(monkeypatch, capability, dtype):
    monkeypatch.setattr(utils.torch.cuda, "get_device_capability", lambda device=None: capability)
    monkeypatch.setattr(utils.torch.cuda, "is_bf16_supported", lambda including_emulation=True: True)
    assert select_amp("auto", torch.device("cuda", 0)) is dtype


def test_process_age_counts_from_the_process_s_start_not_from_the_call():
    code = "import time; time.sleep(0.5); from utils import process_age; print(process_age())"
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert 0.5 <= float(result.stdout) < 30  # the half second before the call is counted (Linux: /proc)


def test_progress_without_a_terminal_writes_plain_lines_not_bar_frames(capsys):
    with utils.Progress(4, "val") as bar:  # under pytest standard error is not a terminal
        bar.update(2)
        bar.show(loss="0.5000")
        bar.update(2)
        bar.show(loss="0.4000")  # within LOG_SECONDS of the first line: not written
    err = capsys.readouterr().err
    assert err == "val: 50% (2/4 img), loss 0.5000\n" and "\r" not in err
