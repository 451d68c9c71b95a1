"""The data layer: what a data set folder holds, recognised from the folder. One file of this package
per source format; FORMATS lists them in recognition order, and the rest of the project sees only
`describe` and the DataLayout it returns (layouts/core.py), never a format's name.

A release that nests one level deeper (Kaggle's Kvasir-SEG/Kvasir-SEG/) is found in the one folder inside
--data_dir; a folder no format recognises may still pair its images and masks by name (FALLBACK).

A format module has find(root) -> DataLayout | None: None when the folder is not of this format, a
UserError naming the missing file when it is recognisably this format but incomplete.
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
    YOUR_OWN_DATA,
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


def describe(data_dir: Path | str, masks: str | None = None) -> DataLayout:
    """The layout of `data_dir`, or of the one folder inside it where a release nests one level deeper
    (Kaggle's Kvasir-SEG/Kvasir-SEG/), or its images and masks paired by name (`masks`: which masks, where
    several pair; see layouts/paired.py). UserError describing the folder when none of them fits."""
    root = Path(data_dir)
    if not root.is_dir():
        raise UserError(
            f"--data_dir {root} not found: pass the folder of your data set ({YOUR_OWN_DATA}), or for VOC "
            f"prepare it with `python tools/voc.py --data_dir {root}`"
        )
    layout = recognise(root)
    inside = [p for p in root.iterdir() if p.is_dir() and not is_junk(p)]
    if layout is None and len(inside) == 1:
        layout = recognise(inside[0])
    if layout is not None and masks is not None:
        raise UserError(
            f"--masks {masks}: {root} is recognised as {layout.kind}, whose masks are fixed; --masks chooses "
            "among the masks of a release paired by name: leave it out"
        )
    if layout is not None:
        return layout
    if (root / "VOCdevkit").is_dir():
        voc = root / "VOCdevkit" / "VOC2012"
        raise UserError(
            f"{voc / 'ImageSets' / 'Segmentation' / 'trainaug.txt'} is missing: prepare VOC-aug with "
            f"`python tools/voc.py --data_dir {root}`"
        )
    return FALLBACK.find(root, masks)
