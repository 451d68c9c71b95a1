"""CVAT's "Segmentation mask 1.1" export:

labelmap.txt (name:r,g,b:parts:actions lines), JPEGImages/<id>.<ext>, SegmentationClass/<id>.png (RGB,
one colour per label), ImageSets/Segmentation/default.txt (every id; the split is held out from it)
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import numpy as np

from layouts.core import (
    DataLayout,
    by_stem,
    check_class_names,
    decode_colors,
    files_in,
    list_splits,
    paired_ids,
    parse_color,
    read_list,
    single_files,
)
from utils import UserError


def read_labelmap(path: Path) -> tuple[tuple[str, ...], np.ndarray]:
    """CVAT's labelmap.txt: `name:r,g,b:parts:actions` lines (and # comments) -> names, colours."""
    names, colors = [], []
    for line in path.read_text().splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        fields = line.split(":")
        if len(fields) < 2:
            raise UserError(f"{path}: cannot read line '{line}': CVAT writes name:r,g,b::")
        names.append(fields[0].strip())
        colors.append(parse_color(fields[1], path, line))
    if not names:
        raise UserError(f"{path} lists no labels: export again with CVAT's 'Segmentation mask 1.1'")
    if len(set(colors)) < len(colors):
        raise UserError(f"{path} gives two labels the same colour: masks could not tell them apart")
    return check_class_names(names, path), np.array(colors, dtype=np.uint8)


def find(root: Path) -> DataLayout | None:
    labelmap = root / "labelmap.txt"
    if not labelmap.is_file():
        return None
    names, colors = read_labelmap(labelmap)
    image_dir, mask_dir = root / "JPEGImages", root / "SegmentationClass"
    if not image_dir.is_dir():
        raise UserError(
            f"{image_dir} not found: export from CVAT with 'Save images' ticked, or copy the images there"
        )
    images = by_stem(files_in(image_dir))
    masks = by_stem(files_in(mask_dir, {".png"}), what="mask")
    lists = root / "ImageSets" / "Segmentation"
    every = lists / "default.txt"
    splits, hold_out, missing = list_splits(
        lists,
        lambda: (
            sorted(read_list(every)) if every.is_file() else paired_ids(images, masks, image_dir, mask_dir)
        ),
    )
    fix = "add its label to labelmap.txt (name:r,g,b::) or export the masks from CVAT again"
    return DataLayout(
        "cvat",
        root,
        names,
        colors,
        tuple(range(len(names))),
        f"colours of {labelmap}",
        images=images,
        masks=single_files(masks),
        splits=splits,
        decode=partial(
            decode_colors, colors=colors, indices=list(range(len(names))), source=labelmap, fix=fix
        ),
        fix=fix,
        hold_out=hold_out,
        missing_split=missing,
    )
