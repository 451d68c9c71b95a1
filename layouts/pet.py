"""The Oxford-IIIT Pet data set, as images.tar.gz and annotations.tar.gz unpack side by side:

    images/<Breed>_<n>.jpg + annotations/trimaps/<Breed>_<n>.png, annotations/trainval.txt and test.txt

Trimaps hold 1 = pet, 2 = background, 3 = border. The border is the annotators' uncertain band around
the pet, so it is void: neither trained on nor scored. The splits are trainval.txt (val held out of it)
and test.txt; macOS ._* files and the stray .mat files in images/ are not images.
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
    single_files,
    value_decoder,
)

NAMES, VALUES = ("background", "pet"), (2, 1)
RULE = "trimaps: 2 -> background, 1 -> pet, 3 (border) -> void"
LISTS = {"trainval": "train", "test": "test"}


def read_pet_list(path: Path) -> tuple[str, ...]:
    """trainval.txt / test.txt rows: `<name> <class id> <species> <breed id>` -> the names."""
    return tuple(line.split()[0] for line in path.read_text().splitlines() if line.strip() and line[0] != "#")


def find(root: Path) -> DataLayout | None:
    trimaps = root / "annotations" / "trimaps"
    if not (trimaps.is_dir() and (root / "images").is_dir()):
        return None
    images = by_stem(files_in(root / "images", {".jpg", ".jpeg", ".png"}))
    masks = by_stem(files_in(trimaps, {".png"}), what="mask")
    splits = {}
    for name, split in LISTS.items():
        path = root / "annotations" / f"{name}.txt"
        if not path.is_file():
            raise incomplete(path, "Oxford-IIIT Pet", "annotations/trainval.txt and test.txt")
        splits[split] = read_pet_list(path)
        for image_id in splits[split]:
            if image_id not in images:
                raise incomplete(
                    root / "images" / f"{image_id}.jpg", "Oxford-IIIT Pet", "an image per listed name"
                )
            if image_id not in masks:
                raise incomplete(trimaps / f"{image_id}.png", "Oxford-IIIT Pet", "a trimap per listed name")
    fix = "the trimaps hold 1, 2 and 3: download annotations.tar.gz again"
    return DataLayout(
        "Oxford-IIIT Pet",
        root,
        NAMES,
        VOC_PALETTE[:2].copy(),
        VALUES,
        RULE,
        images=images,
        masks=single_files(masks),
        splits=splits,
        decode=value_decoder(VALUES, RULE, fix, void=(3,)),
        fix=fix,
        hold_out=True,
        missing_split=no_split("Oxford-IIIT Pet", [*splits, "val"]),
    )
