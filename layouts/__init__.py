"""The data layer: what a data set folder holds, recognised from the folder. One file of this package
per source format; FORMATS lists them in recognition order, and the rest of the project sees only
`describe` and the DataLayout it returns (layouts/core.py), never a format's name.

A release that nests one level deeper (Kaggle's Kvasir-SEG/Kvasir-SEG/) is found in the one folder inside
--data_dir; a folder no format recognises may still pair its images and masks by name (FALLBACK).

A format module has EXPECTS (what it looks for, for the error when nothing matches) and
find(root) -> DataLayout | None: None when the folder is not of this format, a UserError naming the
missing file when it is recognisably this format but incomplete.
"""

from __future__ import annotations

from pathlib import Path

from layouts import (
    ade20k,
    carvana,
    cityscapes,
    cvat,
    drive,
    dsb2018,
    isbi_stack,
    isic,
    kvasir,
    labelme,
    loveda,
    paired,
    pet,
    plain,
    roboflow,
    voc_aug,
)
from layouts.core import (
    IGNORE_INDEX,
    IMAGE_SUFFIXES,
    VAL_FRACTION,
    VOC_PALETTE,
    DataLayout,
    colorize,
    exif_orientation,
    held_out,
    indices_from_colors,
    invalid_labels,
    is_junk,
    mapping_text,
    palette,
    upright_size,
)
from layouts.voc_aug import VOC_CLASS_NAMES, VOC_NUM_CLASSES
from utils import UserError

FORMATS = (
    voc_aug,
    labelme,
    cvat,
    roboflow,
    cityscapes,
    ade20k,
    loveda,
    drive,
    isic,
    pet,
    dsb2018,
    carvana,
    isbi_stack,
    kvasir,
    plain,
)
FALLBACK = paired  # tried last, after the formats at the folder and one level inside it

__all__ = [
    "FALLBACK",
    "FORMATS",
    "IGNORE_INDEX",
    "IMAGE_SUFFIXES",
    "VAL_FRACTION",
    "VOC_CLASS_NAMES",
    "VOC_NUM_CLASSES",
    "VOC_PALETTE",
    "DataLayout",
    "colorize",
    "describe",
    "exif_orientation",
    "held_out",
    "indices_from_colors",
    "invalid_labels",
    "mapping_text",
    "palette",
    "upright_size",
]


def recognise(root: Path) -> DataLayout | None:
    for source_format in FORMATS:
        layout = source_format.find(root)
        if layout is not None:
            return layout
    return None


def describe(data_dir: Path | str) -> DataLayout:
    """The layout of `data_dir`, or of the one folder inside it where a release nests one level deeper
    (Kaggle's Kvasir-SEG/Kvasir-SEG/); UserError saying what was expected when it is none of them."""
    root = Path(data_dir)
    layout = recognise(root)
    if layout is not None:
        return layout
    inside = [p for p in root.iterdir() if p.is_dir() and not is_junk(p)] if root.is_dir() else []
    if len(inside) == 1:
        layout = recognise(inside[0])
        if layout is not None:
            return layout
    layout = FALLBACK.find(root)
    if layout is not None:
        return layout
    voc = root / "VOCdevkit" / "VOC2012"
    raise UserError(
        f"no data set found in {root}: for VOC-aug, split file "
        f"{voc / 'ImageSets' / 'Segmentation' / 'trainaug.txt'} is missing (prepare the data set with "
        f"`python tools/voc.py --data_dir {root}`); for your own data, --data_dir must hold "
        + ", ".join(f.EXPECTS for f in (*FORMATS[1:], FALLBACK))
        + " (README, 'Train on your own data')"
    )
