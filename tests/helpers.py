"""Shared test helpers: small raw data sets built with tools/demo_data.py."""

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from tools.demo_data import make_demo_data
from tools.voc import prepare

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


def prepared_tree(root: Path, samples: dict, splits: dict) -> Path:
    """A prepared tree (what tools/voc.py leaves) from arrays: samples maps id -> (RGB HxWx3, mask HxW)."""
    voc = root / "VOCdevkit" / "VOC2012"
    for folder in ("JPEGImages", "SegmentationClassAug", "ImageSets/Segmentation"):
        (voc / folder).mkdir(parents=True, exist_ok=True)
    for image_id, (image, mask) in samples.items():
        Image.fromarray(np.asarray(image, dtype=np.uint8)).save(
            voc / "JPEGImages" / f"{image_id}.jpg", quality=95
        )
        Image.fromarray(np.asarray(mask, dtype=np.uint8), mode="L").save(
            voc / "SegmentationClassAug" / f"{image_id}.png"
        )
    for split, ids in splits.items():
        (voc / "ImageSets" / "Segmentation" / f"{split}.txt").write_text("".join(f"{i}\n" for i in ids))
    return root


def prepared_demo(tmp_path_factory, train: int = 24, val: int = 8, seed: int = 0) -> Path:
    """A demo tree already run through tools/voc.py, generated once per session (treat as read-only)."""
    key = ("prepared", train, val, seed)
    if key not in _cache:
        root = copy_tree(
            demo_raw(tmp_path_factory, train, val, seed), tmp_path_factory.mktemp("prepared") / "data"
        )
        prepare(root, workers=1, progress=False)
        _cache[key] = root
    return _cache[key]
