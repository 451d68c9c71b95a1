"""ISIC 2018 task 1 (lesion boundary segmentation), as the challenge's zips unpack:

    ISIC2018_Task1-2_<Split>_Input/ISIC_<n>.jpg + ISIC2018_Task1_<Split>_GroundTruth/ISIC_<n>_segmentation.png

Split = Training, Validation, Test; masks 0/255 (lesion = 255). LICENSE.txt and ATTRIBUTION.txt beside the
images are not images. A split whose ground truth was not downloaded is left out, and the run says so.
"""

from __future__ import annotations

from pathlib import Path

from layouts.core import (
    VOC_PALETTE,
    DataLayout,
    by_stem,
    files_in,
    incomplete,
    no_split,
    value_decoder,
)
from utils import UserError

SPLITS = {"Training": "train", "Validation": "val", "Test": "test"}
TAG = "_segmentation"
NAMES, VALUES = ("background", "lesion"), (0, 255)
RULE = "_segmentation.png: 0 -> background, 255 -> lesion"


def find(root: Path) -> DataLayout | None:
    inputs = {s: root / f"ISIC2018_Task1-2_{s}_Input" for s in SPLITS}
    if not any(folder.is_dir() for folder in inputs.values()):
        return None
    images, masks, splits, notes = {}, {}, {}, []
    for name, folder in inputs.items():
        truth = root / f"ISIC2018_Task1_{name}_GroundTruth"
        if not folder.is_dir():
            continue
        if not truth.is_dir():
            if name == "Training":
                raise incomplete(truth, "ISIC 2018 task 1", "an _Input and a _GroundTruth folder per split")
            notes.append(f"{truth} not found: no {SPLITS[name]} split")
            continue
        these = by_stem(files_in(folder))
        found = by_stem(files_in(truth, {".png"}), TAG, "mask")
        for image_id in these:
            if image_id not in found:
                raise incomplete(
                    truth / f"{image_id}{TAG}.png", "ISIC 2018 task 1", "a segmentation per image"
                )
        extra = sorted(set(found) - set(these))
        if extra:
            raise UserError(
                f"{len(extra)} mask(s) in {truth} without an image in {folder}: {', '.join(extra[:5])}"
            )
        images |= these
        masks |= {i: (found[i],) for i in these}
        splits[SPLITS[name]] = tuple(sorted(these))
    fix = "download the ground truth again: ISIC's _segmentation.png files hold 0 and 255"
    return DataLayout(
        "ISIC 2018",
        root,
        NAMES,
        VOC_PALETTE[:2].copy(),
        VALUES,
        RULE,
        images=images,
        masks=masks,
        splits=splits,
        decode=value_decoder(VALUES, RULE, fix),
        fix=fix,
        hold_out="val" not in splits,
        missing_split=no_split("ISIC 2018", splits),
        notes=tuple(notes),
        upright=False,
    )
