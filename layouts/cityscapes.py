"""Cityscapes (fine annotations), as leftImg8bit_trainvaltest.zip and gtFine_trainvaltest.zip unpack:

    leftImg8bit/<split>/<city>/<stem>_leftImg8bit.png + gtFine/<split>/<city>/<stem>_gtFine_labelIds.png

The 19 evaluation classes of cityscapesScripts' labels.py (label id -> train id); every other id is void.
Where a user made `_gtFine_labelTrainIds.png` (createTrainIdLabelImgs.py), those are read instead (0-18,
255 void). Splits: train, val, test.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from layouts.core import DataLayout, incomplete, mapping_text, no_split, value_decoder

CLASSES = (  # label id, name, colour
    (7, "road", (128, 64, 128)),
    (8, "sidewalk", (244, 35, 232)),
    (11, "building", (70, 70, 70)),
    (12, "wall", (102, 102, 156)),
    (13, "fence", (190, 153, 153)),
    (17, "pole", (153, 153, 153)),
    (19, "traffic light", (250, 170, 30)),
    (20, "traffic sign", (220, 220, 0)),
    (21, "vegetation", (107, 142, 35)),
    (22, "terrain", (152, 251, 152)),
    (23, "sky", (70, 130, 180)),
    (24, "person", (220, 20, 60)),
    (25, "rider", (255, 0, 0)),
    (26, "car", (0, 0, 142)),
    (27, "truck", (0, 0, 70)),
    (28, "bus", (0, 60, 100)),
    (31, "train", (0, 80, 100)),
    (32, "motorcycle", (0, 0, 230)),
    (33, "bicycle", (119, 11, 32)),
)
NAMES = tuple(name for _, name, _ in CLASSES)
HOLDS = "gtFine/<split>/<city>/<stem>_gtFine_labelIds.png for every leftImg8bit image"


def find(root: Path) -> DataLayout | None:
    left = root / "leftImg8bit"
    if not left.is_dir():
        return None
    gt = root / "gtFine"
    if not gt.is_dir():
        raise incomplete(gt, "Cityscapes", "gtFine/ beside leftImg8bit/ (gtFine_trainvaltest.zip)")
    train_ids = any(gt.glob("*/*/*_gtFine_labelTrainIds.png"))
    suffix = "_gtFine_labelTrainIds.png" if train_ids else "_gtFine_labelIds.png"
    images, masks, splits = {}, {}, {}
    for split_dir in sorted(p for p in left.iterdir() if p.is_dir()):
        ids = []
        for image in sorted(split_dir.glob("*/*_leftImg8bit.png")):
            stem = image.name.removesuffix("_leftImg8bit.png")
            mask = gt / split_dir.name / image.parent.name / f"{stem}{suffix}"
            if not mask.is_file():
                raise incomplete(mask, "Cityscapes", HOLDS)
            images[stem], masks[stem] = image, (mask,)
            ids.append(stem)
        if ids:
            splits[split_dir.name] = tuple(ids)
    if train_ids:
        values = tuple(range(len(NAMES)))
        rule = "_gtFine_labelTrainIds.png: train ids 0-18 as the 19 evaluation classes, 255 = void"
    else:
        values = tuple(label for label, _, _ in CLASSES)
        rule = f"_gtFine_labelIds.png: {mapping_text(NAMES, values)}; every other label id -> void"
    fix = "the masks hold Cityscapes label ids (0-33, -1 as 255): download gtFine again"
    colors = np.array([color for _, _, color in CLASSES], dtype=np.uint8)
    return DataLayout(
        "Cityscapes",
        root,
        NAMES,
        colors,
        values,
        rule,
        images=images,
        masks=masks,
        splits=splits,
        decode=value_decoder(values, rule, fix, rest_void=True),
        fix=fix,
        hold_out="val" not in splits,
        missing_split=no_split("Cityscapes", splits),
    )
