"""Shared test helpers: small raw data sets built with tools/demo_data.py."""

import shutil
import subprocess
import sys
from pathlib import Path

from tools.demo_data import make_demo_data

ROOT = Path(__file__).resolve().parents[1]
_cache: dict[tuple, Path] = {}


def demo_raw(tmp_path_factory, train: int = 24, val: int = 8, seed: int = 0) -> Path:
    """A raw VOC 2012 + SBD demo tree, generated once per session and parameters (treat as read-only)."""
    key = (train, val, seed)
    if key not in _cache:
        _cache[key] = make_demo_data(tmp_path_factory.mktemp("raw"), seed=seed, train=train, val=val)
    return _cache[key]


def copy_tree(source: Path, dest: Path) -> Path:
    shutil.copytree(source, dest)
    return dest


def run_script(*args: str, cwd: Path = ROOT, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout)
