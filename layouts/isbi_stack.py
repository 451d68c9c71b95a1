"""ISBI 2012 (EM segmentation challenge) as the challenge ships it:

    train-volume.tif + train-labels.tif: 30-page TIFF stacks of 512x512 slices (labels 0 = membrane,
    255 = cell); test-volume.tif has no labels

One slice per id (slice_00 .. slice_29). The pages are written once as PNGs into the cache folder
(layouts.core.cache_dir, keyed by the stacks' sizes and times; atomic), and read from there. No split:
val is held out.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
from PIL import Image, ImageSequence

from layouts.core import VOC_PALETTE, DataLayout, cache_dir, files_stamp, incomplete, no_split, value_decoder
from utils import UserError, reading

NAMES, VALUES = ("membrane", "cell"), (0, 255)
RULE = "train-labels.tif: 0 -> membrane, 255 -> cell"


def pages(path: Path) -> list[np.ndarray]:
    with reading(path, fix="download the challenge's stacks again"), Image.open(path) as stack:
        return [np.array(page) for page in ImageSequence.Iterator(stack)]


def prepared(volume: Path, labels: Path) -> Path:
    """The folder of the stacks' pages as images/slice_<k>.png and masks/slice_<k>.png, made once."""
    folder = cache_dir() / f"isbi2012-{files_stamp([(volume, labels)])}"
    if folder.is_dir():
        return folder
    slices, masks = pages(volume), pages(labels)
    if len(slices) != len(masks) or any(s.shape != m.shape for s, m in zip(slices, masks, strict=False)):
        raise UserError(f"{volume} and {labels} do not hold the same slices: download both again")
    tmp = folder.with_name(f".{folder.name}.{os.getpid()}.tmp")
    for name, arrays in (("images", slices), ("masks", masks)):
        (tmp / name).mkdir(parents=True, exist_ok=True)
        for k, array in enumerate(arrays):
            Image.fromarray(array).save(tmp / name / f"slice_{k:02d}.png")
    try:
        os.replace(tmp, folder)
    except OSError:  # another process made it first
        shutil.rmtree(tmp, ignore_errors=True)
    return folder


def find(root: Path) -> DataLayout | None:
    volume, labels = root / "train-volume.tif", root / "train-labels.tif"
    if not volume.is_file():
        return None
    if not labels.is_file():
        raise incomplete(labels, "ISBI 2012", "train-volume.tif and train-labels.tif")
    folder = prepared(volume, labels)
    ids = tuple(p.stem for p in sorted((folder / "images").glob("slice_*.png")))
    fix = "train-labels.tif holds 0 and 255: download it again"
    return DataLayout(
        "ISBI 2012 stacks",
        root,
        NAMES,
        VOC_PALETTE[:2].copy(),
        VALUES,
        RULE,
        images={i: folder / "images" / f"{i}.png" for i in ids},
        masks={i: (folder / "masks" / f"{i}.png",) for i in ids},
        splits={"train": ids},
        decode=value_decoder(VALUES, RULE, fix),
        fix=fix,
        hold_out=True,
        missing_split=no_split("ISBI 2012's training stack", ["train", "val"]),
        notes=(f"slices of {volume.name} and {labels.name}: pages written once to {folder}",),
        upright=False,
    )
