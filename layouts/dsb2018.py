"""Data Science Bowl 2018 (nuclei), as stage1_train.zip unpacks:

    stage1_train/<id>/images/<id>.png (RGBA) + stage1_train/<id>/masks/*.png (one 0/255 PNG per nucleus)

--data_dir is the folder holding stage1_train/, or stage1_train/ itself. Nucleus = the union of an
image's masks. The union is made once per image and kept in the cache folder (layouts.core.cache_dir,
keyed by the nucleus files' names, sizes and times), so twenty to a hundred PNGs are not re-read every
epoch. No split: val is held out.
"""

from __future__ import annotations

import os
from functools import partial
from pathlib import Path

import numpy as np
from PIL import Image

from layouts.core import (
    VOC_PALETTE,
    DataLayout,
    cache_dir,
    files_in,
    files_stamp,
    incomplete,
    no_split,
    read_mask_values,
    to_classes,
    value_table,
)
from utils import replaced_atomically

NAMES, VALUES = ("background", "nucleus"), (0, 255)
RULE = "the union of an image's nucleus masks: 0 -> background, 255 -> nucleus"
HOLDS = "<id>/images/<id>.png and <id>/masks/*.png (one per nucleus) for every id"


def union(files: tuple[Path, ...], fix: str) -> np.ndarray:
    """The nucleus masks of one image -> one uint8 0/255 mask, from the cache when made before."""
    cached = cache_dir() / "dsb2018" / f"{files[0].parent.parent.name}-{files_stamp([files])}.png"
    try:
        with Image.open(cached) as image:
            return np.array(image)
    except OSError:
        pass
    mask = np.zeros_like(read_mask_values(files[0], fix))
    for path in files:
        mask |= np.where(read_mask_values(path, fix) > 0, 255, 0).astype(np.uint8)
    try:
        cached.parent.mkdir(parents=True, exist_ok=True)
        with replaced_atomically(cached, tag=f".{os.getpid()}") as tmp:
            Image.fromarray(mask).save(tmp, format="PNG")
    except OSError:
        pass  # a read-only cache folder: read the files every time
    return mask


def decode(files: tuple[Path, ...], lookup: np.ndarray, fix: str) -> np.ndarray:
    return to_classes(union(files, fix), lookup, files[0], RULE, fix)


def find(root: Path) -> DataLayout | None:
    folder = root / "stage1_train" if (root / "stage1_train").is_dir() else root
    samples = sorted(p for p in folder.iterdir() if (p / "images").is_dir()) if folder.is_dir() else []
    if not any((p / "images" / f"{p.name}.png").is_file() and (p / "masks").is_dir() for p in samples):
        return None
    images, masks = {}, {}
    for sample in samples:
        image, nuclei = sample / "images" / f"{sample.name}.png", files_in(sample / "masks", {".png"})
        if not image.is_file():
            raise incomplete(image, "Data Science Bowl 2018", HOLDS)
        if not nuclei:
            raise incomplete(sample / "masks" / "*.png", "Data Science Bowl 2018", HOLDS)
        images[sample.name], masks[sample.name] = image, tuple(nuclei)
    fix = "the nucleus masks hold 0 and 255: download stage1_train.zip again"
    return DataLayout(
        "Data Science Bowl 2018",
        root,
        NAMES,
        VOC_PALETTE[:2].copy(),
        VALUES,
        RULE,
        images=images,
        masks=masks,
        splits={"train": tuple(images)},
        decode=partial(decode, lookup=value_table(VALUES), fix=fix),
        fix=fix,
        hold_out=True,
        missing_split=no_split("Data Science Bowl 2018", ["train", "val"]),
        notes=(f"nucleus masks: united once per image, kept in {cache_dir() / 'dsb2018'}",),
        upright=False,
    )
