"""ADE20K as the scene-parsing benchmark ships it (ADEChallengeData2016.zip):

    images/{training,validation}/ADE_*.jpg + annotations/{training,validation}/ADE_*.png, objectInfo150.txt

150 classes named from objectInfo150.txt (its first name of each row); mask value 0 ("other") is void
and value k is class k-1, as every benchmark reads it. Splits: training -> train, validation -> val.
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
    paired_ids,
    single_files,
    value_decoder,
)
from utils import UserError

SPLITS = {"training": "train", "validation": "val"}


def read_object_info(path: Path) -> tuple[str, ...]:
    """objectInfo150.txt (tab-separated Idx, Ratio, Train, Val, Name; Name = "wall" or "building;edifice")
    -> the 150 first names, in index order."""
    rows = [line.split("\t") for line in path.read_text().splitlines()[1:] if line.strip()]
    names = tuple(row[-1].split(";")[0].split(",")[0].strip() for row in rows)
    if len(names) != 150:
        raise UserError(f"{path} lists {len(names)} classes, not ADE20K's 150: download the release again")
    return names


def find(root: Path) -> DataLayout | None:
    if not ((root / "images" / "training").is_dir() and (root / "annotations").is_dir()):
        return None
    info = root / "objectInfo150.txt"
    if not info.is_file():
        raise incomplete(
            info, "ADE20K", "objectInfo150.txt (the class names) beside images/ and annotations/"
        )
    names = read_object_info(info)
    images, masks, splits = {}, {}, {}
    for folder, split in SPLITS.items():
        image_dir, mask_dir = root / "images" / folder, root / "annotations" / folder
        if not image_dir.is_dir():
            continue
        if not mask_dir.is_dir():
            raise incomplete(mask_dir, "ADE20K", "annotations/<split>/ADE_*.png for every image")
        these, found = (
            by_stem(files_in(image_dir, {".jpg"})),
            by_stem(files_in(mask_dir, {".png"}), what="mask"),
        )
        splits[split] = tuple(paired_ids(these, found, image_dir, mask_dir))
        images |= these
        masks |= single_files(found)
    values = tuple(range(1, 151))
    rule = "value k -> class k-1 (objectInfo150.txt), 0 (other) -> void"
    fix = "ADE20K's annotations hold 0-150: download ADEChallengeData2016 again"
    return DataLayout(
        "ADE20K",
        root,
        names,
        VOC_PALETTE[:150].copy(),
        values,
        rule,
        images=images,
        masks=masks,
        splits=splits,
        decode=value_decoder(values, rule, fix, void=(0,)),
        fix=fix,
        hold_out="val" not in splits,
        missing_split=no_split("ADE20K", splits),
    )
