"""DRIVE (Digital Retinal Images for Vessel Extraction), as the release unpacks:

    <split>/images/<nn>_<split>.tif        the photographs (split = training, test)
    <split>/1st_manual/<nn>_manual1.gif    the first observer's vessels: 0 background, 255 vessel
    <split>/mask/<nn>_<split>_mask.gif     the field of view: 255 inside, 0 outside

Paired by the number nn. Vessel = 255 in 1st_manual (the first observer: the ground truth papers score
against); outside the field of view (mask/ = 0) is void, neither trained on nor scored, as DRIVE results
are reported. Splits: training (val held out of it), test.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import numpy as np

from layouts.core import (
    IGNORE_INDEX,
    VOC_PALETTE,
    DataLayout,
    incomplete,
    no_split,
    read_mask_values,
    to_classes,
    value_table,
)

NAMES, VALUES = ("background", "vessel"), (0, 255)
RULE = "1st_manual: 0 -> background, 255 -> vessel; outside the field of view (mask/ = 0) -> void"
HOLDS = "images/<nn>_<split>.tif, 1st_manual/<nn>_manual1.gif and mask/<nn>_<split>_mask.gif for every image"
FOLDERS = {"training": "train", "test": "test"}


def decode(files: tuple[Path, ...], lookup: np.ndarray, fix: str) -> np.ndarray:
    """(manual, field of view) -> class indices, void outside the field of view."""
    manual, fov = files
    classes = to_classes(read_mask_values(manual, fix), lookup, manual, RULE, fix)
    classes[read_mask_values(fov, fix) == 0] = IGNORE_INDEX
    return classes


def find(root: Path) -> DataLayout | None:
    if not list((root / "training" / "images").glob("*_training.tif")):
        return None
    images, masks, splits, notes = {}, {}, {}, []
    for folder, split in FOLDERS.items():
        tifs = sorted((root / folder / "images").glob(f"*_{folder}.tif"))
        if folder == "test" and tifs and not (root / folder / "1st_manual").is_dir():
            notes.append(
                f"{root / folder / '1st_manual'} not found: no test split (its images have no labels)"
            )
            continue
        for tif in tifs:
            number = tif.stem.split("_")[0]
            files = (
                root / folder / "1st_manual" / f"{number}_manual1.gif",
                root / folder / "mask" / f"{number}_{folder}_mask.gif",
            )
            for path in files:
                if not path.is_file():
                    raise incomplete(path, "DRIVE", HOLDS)
            images[tif.stem], masks[tif.stem] = tif, files
        if tifs:
            splits[split] = tuple(t.stem for t in tifs)
    fix = "download DRIVE again: its 1st_manual GIFs hold 0 and 255"
    return DataLayout(
        "DRIVE",
        root,
        NAMES,
        VOC_PALETTE[:2].copy(),
        VALUES,
        RULE,
        images=images,
        masks=masks,
        splits=splits,
        decode=partial(decode, lookup=value_table(VALUES), fix=fix),
        fix=fix,
        hold_out=True,
        missing_split=no_split("DRIVE", [*splits, "val"]),
        notes=tuple(notes),
        upright=False,
    )
