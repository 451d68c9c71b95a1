"""labelme's examples/semantic_segmentation/labelme2voc.py export:

class_names.txt, JPEGImages/<id>.<any>, SegmentationClassPNG/ (SegmentationClass/ in newer labelme)
<id>.png palette PNGs of class indices (255 = __ignore__), ImageSets/Segmentation/*.txt (optional)
"""

from __future__ import annotations

from pathlib import Path

from layouts.core import (
    VOC_PALETTE,
    DataLayout,
    by_stem,
    check_class_names,
    files_in,
    list_splits,
    paired_ids,
    read_class_names,
    single_files,
    value_decoder,
)


def find(root: Path) -> DataLayout | None:
    class_list = root / "class_names.txt"
    if not class_list.is_file():
        return None
    names = check_class_names(read_class_names(class_list), class_list)
    image_dir = root / "JPEGImages"
    mask_dir = root / "SegmentationClassPNG"
    mask_dir = mask_dir if mask_dir.is_dir() else root / "SegmentationClass"
    images = by_stem(files_in(image_dir))  # labelme keeps the original bytes behind a .jpg name
    masks = by_stem(files_in(mask_dir, {".png"}), what="mask")
    splits, hold_out, missing = list_splits(
        root / "ImageSets" / "Segmentation", lambda: paired_ids(images, masks, image_dir, mask_dir)
    )
    fix = f"re-run labelme2voc.py with every label of {class_list} in --labels"
    values = tuple(range(len(names)))
    return DataLayout(
        "labelme",
        root,
        names,
        VOC_PALETTE[: len(names)].copy(),
        values,
        "class indices, 255 = void",
        images=images,
        masks=single_files(masks),
        splits=splits,
        decode=value_decoder(values, "class indices, 255 = void", fix),
        fix=fix,
        hold_out=hold_out,
        missing_split=missing,
    )
