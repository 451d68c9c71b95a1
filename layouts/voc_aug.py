"""PASCAL VOC 2012 augmented with SBD, as tools/voc.py prepares it:

    VOCdevkit/VOC2012/{JPEGImages/<id>.jpg, SegmentationClassAug/<id>.png, ImageSets/Segmentation/*.txt}

Masks hold class indices 0-20, 255 = void; the splits are the list files (trainaug.txt, val.txt, ...).
"""

from __future__ import annotations

from pathlib import Path

from layouts.core import VOC_PALETTE, DataLayout, read_list, value_decoder

VOC_CLASS_NAMES = (
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair",
    "cow", "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa",
    "train", "tvmonitor",
)  # fmt: skip
VOC_NUM_CLASSES = len(VOC_CLASS_NAMES)


def find(root: Path) -> DataLayout | None:
    voc = root / "VOCdevkit" / "VOC2012"
    if not voc.is_dir():
        return None
    lists = voc / "ImageSets" / "Segmentation"
    splits = {p.stem: read_list(p) for p in sorted(lists.glob("*.txt"))} if lists.is_dir() else {}
    ids = sorted({i for split in splits.values() for i in split})
    prepare = f"`python tools/voc.py --data_dir {root}`"
    values = tuple(range(VOC_NUM_CLASSES))
    fix = f"re-run {prepare} with --force"
    return DataLayout(
        "voc-aug",
        root,
        VOC_CLASS_NAMES,
        VOC_PALETTE[:VOC_NUM_CLASSES].copy(),
        values,
        "class indices, 255 = void",
        images={i: voc / "JPEGImages" / f"{i}.jpg" for i in ids},
        masks={i: (voc / "SegmentationClassAug" / f"{i}.png",) for i in ids},
        splits=splits,
        decode=value_decoder(values, "class indices, 255 = void", fix),
        fix=fix,
        train_split="trainaug",
        missing_split=lambda split: (
            f"split file {lists / f'{split}.txt'} not found: prepare the data set with {prepare}"
        ),
        missing_files=f"run {prepare} and check that the downloads are complete",
    )
