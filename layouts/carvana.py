"""Carvana (Kaggle's Image Masking Challenge) and milesial/Pytorch-UNet's layout, which reads it:

    Carvana:   train/<id>.jpg (or train_hq/) + train_masks/<id>_mask.gif, GIFs of palette indices 0/1
    milesial:  imgs/<id>.<ext> + masks/<id>.<ext> or masks/<id>_mask.<ext>

Mask values are read as stored (a GIF's palette indices, as milesial reads them), so predictions are
written 0/1 for Carvana. The classes are the values found (layouts.core.discovered_classes). No split:
val is held out.
"""

from __future__ import annotations

from pathlib import Path

from layouts.core import (
    VOC_PALETTE,
    DataLayout,
    by_stem,
    discovered_classes,
    files_in,
    mask_files,
    no_split,
    paired_ids,
    read_palette_indices,
    single_files,
    value_decoder,
)


def find(root: Path) -> DataLayout | None:
    notes = ()
    if (root / "train_masks").is_dir() and ((root / "train").is_dir() or (root / "train_hq").is_dir()):
        kind, mask_dir = "Carvana", root / "train_masks"
        image_dir = root / "train_hq" if (root / "train_hq").is_dir() else root / "train"
        if image_dir.name == "train_hq" and (root / "train").is_dir():
            notes = (f"images from {image_dir} (train_hq: the same photographs, less compressed)",)
    elif (root / "imgs").is_dir() and (root / "masks").is_dir():
        kind, image_dir, mask_dir = "milesial imgs/masks", root / "imgs", root / "masks"
    else:
        return None
    images, masks = by_stem(files_in(image_dir)), mask_files(mask_dir)
    ids = paired_ids(images, masks, image_dir, mask_dir)
    fix = f"the masks of {mask_dir} hold one value per class (0/1 or 0/255 for one object class)"
    names, values, rule = discovered_classes(sorted(masks.values()), mask_dir, fix, read=read_palette_indices)
    return DataLayout(
        kind,
        root,
        names,
        VOC_PALETTE[: len(names)].copy(),
        values,
        rule,
        images=images,
        masks=single_files(masks),
        splits={"train": tuple(ids)},
        decode=value_decoder(values, rule, fix, read=read_palette_indices),
        fix=fix,
        hold_out=True,
        missing_split=no_split(kind, ["train", "val"]),
        notes=notes,
    )
