"""LoveDA (land cover from aerial images), as Train.zip, Val.zip and Test.zip unpack side by side:

    <Split>/<Domain>/images_png/<n>.png + <Split>/<Domain>/masks_png/<n>.png, Split = Train, Val, Test
    (Test ships no masks) and Domain = Urban, Rural

Mask values 1-7 are the classes (background, building, road, water, barren, forest, agriculture) and 0
is no-data, void, as the benchmark reads it. Splits: Train, Val.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from layouts.core import (
    DataLayout,
    by_stem,
    files_in,
    mapping_text,
    no_split,
    paired_ids,
    single_files,
    value_decoder,
)

NAMES = ("background", "building", "road", "water", "barren", "forest", "agriculture")
VALUES = tuple(range(1, 8))
COLORS = (
    (255, 255, 255),
    (255, 0, 0),
    (255, 255, 0),
    (0, 0, 255),
    (159, 129, 183),
    (0, 255, 0),
    (255, 195, 128),
)
RULE = f"{mapping_text(NAMES, VALUES)}; 0 (no-data) -> void"
SPLITS = {"Train": "train", "Val": "val"}


def find(root: Path) -> DataLayout | None:
    if not (root / "Train" / "Urban" / "images_png").is_dir() and not (root / "Train" / "Rural").is_dir():
        return None
    images, masks, splits = {}, {}, {}
    for folder, split in SPLITS.items():
        ids = []
        for domain in sorted(p for p in (root / folder).glob("*") if (p / "images_png").is_dir()):
            image_dir, mask_dir = domain / "images_png", domain / "masks_png"
            these = by_stem(files_in(image_dir, {".png"}))
            found = by_stem(files_in(mask_dir, {".png"}), what="mask")
            ids += paired_ids(these, found, image_dir, mask_dir)
            images |= these
            masks |= single_files(found)
        if ids:
            splits[split] = tuple(ids)
    fix = "LoveDA's masks hold 0-7: download the release again"
    return DataLayout(
        "LoveDA", root, NAMES, np.array(COLORS, dtype=np.uint8), VALUES, RULE, images=images, masks=masks,
        splits=splits, decode=value_decoder(VALUES, RULE, fix, void=(0,)), fix=fix,
        hold_out="val" not in splits, missing_split=no_split("LoveDA", splits),
        upright=False,
    )  # fmt: skip
