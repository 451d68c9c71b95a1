"""Kvasir-SEG (polyps in colonoscopy), as kvasir-seg.zip unpacks:

    images/<id>.jpg + masks/<id>.jpg (JPEG masks of three equal channels; white = polyp), kavsir_bboxes.json

(A copy without kavsir_bboxes.json is the plain layout, which reads binary JPEG masks the same way.)
JPEG blurs the masks' edges, so a mask is read by a threshold: polyp where the grey level is 128 or more
(layouts.core.binary_jpeg; a JPEG mask that is not close to two levels is refused). No split: val is
held out.
"""

from __future__ import annotations

from pathlib import Path

from layouts.core import (
    VOC_PALETTE,
    DataLayout,
    by_stem,
    files_in,
    no_split,
    paired_ids,
    single_files,
    value_decoder,
)

NAMES, VALUES = ("background", "polyp"), (0, 255)
RULE = "JPEG masks read by a threshold: grey < 128 -> background, >= 128 -> polyp"


def find(root: Path) -> DataLayout | None:
    image_dir, mask_dir = root / "images", root / "masks"
    masks = by_stem(files_in(mask_dir, {".jpg", ".jpeg"}), what="mask")
    if not (image_dir.is_dir() and masks and (root / "kavsir_bboxes.json").is_file()):
        return None
    images = by_stem(files_in(image_dir))
    ids = paired_ids(images, masks, image_dir, mask_dir)
    fix = "Kvasir-SEG's masks are black (background) and white (polyp): download kvasir-seg.zip again"
    return DataLayout(
        "Kvasir-SEG",
        root,
        NAMES,
        VOC_PALETTE[:2].copy(),
        VALUES,
        RULE,
        images=images,
        masks=single_files(masks),
        splits={"train": tuple(ids)},
        decode=value_decoder(VALUES, RULE, fix),
        fix=fix,
        hold_out=True,
        missing_split=no_split("Kvasir-SEG", ["train", "val"]),
        upright=False,
    )
