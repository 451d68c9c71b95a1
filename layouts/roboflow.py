"""Roboflow's "Semantic Segmentation Masks" export:

train/, valid/, test/: each holds the images, <name>_mask.png beside each, and _classes.csv
(header "Pixel Value, Class", then one `value, name` row a class)
"""

from __future__ import annotations

from pathlib import Path

from layouts.core import (
    MASK_TAG,
    VOC_PALETTE,
    DataLayout,
    by_stem,
    check_class_names,
    files_in,
    mapping_text,
    no_split,
    paired_ids,
    single_files,
    value_decoder,
    void_note,
)
from utils import UserError

SPLIT_FOLDERS = {"train": "train", "valid": "val", "test": "test"}  # folder -> split


def read_roboflow_classes(path: Path) -> tuple[tuple[str, ...], tuple[int, ...]]:
    """_classes.csv -> names and values, in the order of the values."""
    rows = []
    for line in path.read_text().splitlines()[1:]:
        value, _, name = line.partition(",")
        if not line.strip():
            continue
        if not value.strip().isdigit() or not name.strip():
            raise UserError(f"{path}: cannot read row '{line}': Roboflow writes `pixel value, class name`")
        rows.append((int(value), name.strip()))
    if not rows:
        raise UserError(f"{path} lists no classes: export the data set from Roboflow again")
    rows.sort()
    return check_class_names([n for _, n in rows], path), tuple(v for v, _ in rows)


def find(root: Path) -> DataLayout | None:
    folders = [root / f for f in SPLIT_FOLDERS if (root / f / "_classes.csv").is_file()]
    if not folders:
        return None
    tables = {folder: read_roboflow_classes(folder / "_classes.csv") for folder in folders}
    names, values = tables[folders[0]]
    for folder, table in tables.items():
        if table != (names, values):
            raise UserError(
                f"{folder / '_classes.csv'} lists other classes than {folders[0] / '_classes.csv'}: export "
                "every split from one Roboflow version"
            )
    images, masks, splits = {}, {}, {}
    for folder in folders:
        files = files_in(folder)
        these = by_stem(p for p in files if not p.stem.endswith(MASK_TAG))
        these_masks = by_stem((p for p in files if p.stem.endswith(MASK_TAG)), MASK_TAG, "mask")
        splits[SPLIT_FOLDERS[folder.name]] = tuple(paired_ids(these, these_masks, folder, folder))
        images |= these
        masks |= these_masks
    hold_out = not {"train", "val"} <= splits.keys()
    rule = f"as _classes.csv states them: {mapping_text(names, values)}" + void_note(values)
    fix = f"masks hold the pixel values of {folders[0] / '_classes.csv'}: export again"
    return DataLayout(
        "roboflow",
        root,
        names,
        VOC_PALETTE[: len(names)].copy(),
        values,
        rule,
        images=images,
        masks=single_files(masks),
        splits=splits,
        decode=value_decoder(values, rule, fix),
        fix=fix,
        hold_out=hold_out,
        missing_split=no_split("the Roboflow export", splits),
    )
