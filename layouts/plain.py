"""The project's plain layout (README, "Train on your own data"):

    images/<id>.<ext>, masks/<id>.<ext> or <id>_mask.<ext> (PNG, GIF, TIFF, BMP; binary JPEG),
    classes.txt (optional), splits/<split>.txt (optional)

RGB colour masks without classes.txt are left to layouts/paired.py (a class per colour).

Mask values: a classes.txt line `name = value` states the value a class has in the masks. Otherwise
masks hold class indices (line numbers, 255 = void), except that two listed classes with masks holding
only 0 and 255 are 0 and 255. Without classes.txt the classes are the values found in the masks (see
layouts.core.discovered_classes).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from layouts.core import (
    VOC_PALETTE,
    YOUR_OWN_DATA,
    DataLayout,
    by_stem,
    check_class_names,
    discovered_classes,
    files_in,
    found_mask_values,
    list_splits,
    mapping_text,
    mask_files,
    paired_ids,
    parse_color,
    single_files,
    value_decoder,
    void_note,
)
from layouts.paired_masks import is_colour
from utils import UserError


def read_plain_classes(path: Path) -> tuple[tuple[str, ...], np.ndarray, tuple[int, ...] | None]:
    """classes.txt: `name`, `name = value` or either followed by `: r,g,b`, one class a line in index
    order -> names, colours (the VOC colour map's where a line gives none), and the values the lines
    state (None when none does)."""
    names, colors, values = [], [], []
    for line in (line for line in path.read_text().splitlines() if line.strip()):
        named, _, color = line.partition(":")
        name, equals, value = named.partition("=")
        names.append(name.strip())
        colors.append(parse_color(color, path, line) if color.strip() else tuple(VOC_PALETTE[len(colors)]))
        if equals:
            if not value.strip().isdigit() or int(value) > 65535:
                raise UserError(f"{path}: line '{line}' gives no mask value: write `name = value` (0-65535)")
            values.append(int(value))
    if values and len(values) != len(names):
        raise UserError(
            f"{path} states the mask value of some classes only: write `name = value` on every line"
        )
    if len(set(values)) != len(values):
        raise UserError(f"{path} gives two classes one mask value: masks could not tell them apart")
    return check_class_names(names, path), np.array(colors, dtype=np.uint8), tuple(values) or None


def find(root: Path) -> DataLayout | None:
    classes = root / "classes.txt"
    image_dir, mask_dir = root / "images", root / "masks"
    listed = classes.is_file()
    if not listed and not (image_dir.is_dir() and mask_dir.is_dir()):
        return None
    images, masks = by_stem(files_in(image_dir)), mask_files(mask_dir)
    if not listed and masks and is_colour(next(iter(masks.values()))):
        return None  # colour masks without a class list: read by colour as a release paired by name
    splits, hold_out, missing = list_splits(
        root / "splits", lambda: paired_ids(images, masks, image_dir, mask_dir)
    )
    fix = (
        f"masks hold the line numbers of {classes} (0 = first line) and 255 for void, or the values that "
        f"its lines state as `name = value` ({YOUR_OWN_DATA})"
    )
    names, colors, values = read_plain_classes(classes) if listed else ((), np.zeros((0, 3), np.uint8), None)
    rule = "class indices, 255 = void"
    if values is not None:
        rule = f"as classes.txt states them: {mapping_text(names, values)}" + void_note(values)
    elif listed and len(names) == 2 and set(found_mask_values(sorted(masks.values()), fix)) == {0, 255}:
        values, rule = (
            (0, 255),
            f"two classes listed and the masks hold only 0 and 255: {mapping_text(names, (0, 255))}",
        )
    elif listed:
        values = tuple(range(len(names)))
    else:
        if not masks:
            raise UserError(f"no masks in {mask_dir}: put the masks there ({YOUR_OWN_DATA})")
        fix = f"a value missing from the others: list the classes in {classes} as `name = value` lines"
        names, values, rule = discovered_classes(sorted(masks.values()), mask_dir, fix)
        names, colors, rule = (
            check_class_names(list(names), classes),
            VOC_PALETTE[: len(names)].copy(),
            f"no classes.txt, {rule}",
        )
    return DataLayout(
        "plain",
        root,
        names,
        colors,
        values,
        rule,
        images=images,
        masks=single_files(masks),
        splits=splits,
        decode=value_decoder(values, rule, fix),
        fix=fix,
        hold_out=hold_out,
        missing_split=missing,
    )
