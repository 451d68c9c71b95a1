"""What the masks of a release paired by name (layouts/paired.py) mean, read from the masks themselves:

values, one per class: the classes are the values found (layouts.core.discovered_classes), an image's
    numbered masks united (BUSI);
per-image instance ids (every mask 0..k, k varying, up to at least INSTANCES): foreground above 0;
RGB colours, one per class: named from a colour table beside them (class_dict.csv, label_colors.txt,
    a CVAT labelmap.txt; a class named void, unlabelled or ignore is void), else one class per colour
    found (black first, as background);
parts (several sets of masks that never overlap, left and right lung): one class each.
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
from PIL import Image

from layouts.core import (
    IGNORE_INDEX,
    LOSSY_SUFFIXES,
    VOC_PALETTE,
    YOUR_OWN_DATA,
    cached,
    check_class_names,
    classes_of_values,
    decode_colors,
    mapping_text,
    read_mask_values,
    read_rgb,
    to_classes,
    value_table,
)
from layouts.cvat import read_labelmap
from utils import UserError, reading

COLOR_TABLES = ("class_dict.csv", "label_colors.txt", "labelmap.txt")
VOID_NAMES = {"void", "unlabelled", "unlabeled", "ignore", "__ignore__"}
INSTANCES = 5  # masks of ids 0..k with k up to at least this (and three different k) are instances
SAMPLES = 3


@dataclass(frozen=True)
class Meaning:
    names: tuple[str, ...]
    colors: np.ndarray
    values: tuple[int, ...]
    rule: str
    decode: Callable[[tuple[Path, ...]], np.ndarray]
    fix: str
    notes: tuple[str, ...] = ()


def part_name(choice: str) -> str:
    """The class name of the masks `choice` names (ManualMask/leftMask -> leftMask, _lesion -> lesion)."""
    return choice.rsplit("/", 1)[-1].strip("_-. ") or choice


def read_meaning(root: Path, files_of: dict[str, tuple[Path, ...]], parts: list[str]) -> Meaning:
    masks = sorted({files[0] for files in files_of.values()})
    if parts:
        return part_classes(root, files_of, parts)
    if any(is_colour(path) for path in masks[:: max(1, len(masks) // SAMPLES)][:SAMPLES]):
        return colour_classes(root, masks)
    return value_classes(root, sorted({p for files in files_of.values() for p in files}))


# Values


def value_lists(paths: list[Path], fix: str) -> list[np.ndarray]:
    """The distinct values of each mask file, sorted; cached (layouts.core.cached) while unchanged."""

    def scan() -> np.ndarray:
        return np.concatenate([np.append(np.unique(read_mask_values(p, fix)), -1) for p in paths])

    flat = cached("value-lists", [(p,) for p in paths], scan).astype(np.int64)
    return np.split(flat, np.flatnonzero(flat == -1) + 1)[:-1]


def are_instances(lists: list[np.ndarray]) -> bool:
    """Every mask's values are 0..k (minus the -1 end), k varies (three or more), the largest >= INSTANCES."""
    tops = set()
    for values in lists:
        values = values[:-1]
        if values[0] != 0 or values[-1] != len(values) - 1:
            return False
        tops.add(int(values[-1]))
    return len(tops) >= 3 and max(tops) >= INSTANCES


def decode_union(files: tuple[Path, ...], lookup: np.ndarray, rule: str, fix: str) -> np.ndarray:
    """The mask files of one image (one, or several numbered ones: united) -> class indices."""
    stored = read_mask_values(files[0], fix)
    for path in files[1:]:
        stored = np.maximum(stored, read_mask_values(path, fix))
    return to_classes(stored, lookup, files[0], rule, fix)


def decode_instances(files: tuple[Path, ...], fix: str) -> np.ndarray:
    """Instance ids -> 1 where above 0 (any of the files), 0 elsewhere."""
    stored = read_mask_values(files[0], fix) > 0
    for path in files[1:]:
        stored |= read_mask_values(path, fix) > 0
    return stored.astype(np.uint8)


def value_classes(root: Path, masks: list[Path]) -> Meaning:
    fix = "the masks hold one value per class (0/255 or 0/1 for one object class)"
    lists = value_lists(masks, fix)
    if are_instances(lists):
        tops = [len(values) - 2 for values in lists]
        rule = (
            f"per-image instance ids (each mask 0..k, k from {min(tops)} to {max(tops)}): foreground where "
            "above 0"
        )
        names = ("background", "foreground")
        return Meaning(names, VOC_PALETTE[:2].copy(), (0, 255), rule, partial(decode_instances, fix=fix), fix)
    found = sorted(set(np.concatenate(lists).tolist()) - {-1})
    names, values, rule = classes_of_values(
        found, root, any(p.suffix.lower() in LOSSY_SUFFIXES for p in masks)
    )
    decode = partial(decode_union, lookup=value_table(values), rule=rule, fix=fix)
    return Meaning(names, VOC_PALETTE[: len(names)].copy(), values, rule, decode, fix)


# Parts


def decode_parts(files: tuple[Path, ...], highs: tuple[int, ...], fix: str) -> np.ndarray:
    """One mask file per part -> class k + 1 where part k's file holds its higher value, 0 elsewhere."""
    classes = np.zeros(read_mask_values(files[0], fix).shape, np.uint8)
    for k, (path, high) in enumerate(zip(files, highs, strict=True)):
        stored = read_mask_values(path, fix)
        if stored.shape != classes.shape:
            raise UserError(
                f"mask {path} is {stored.shape[1]}x{stored.shape[0]}, its other parts are not: {fix}"
            )
        classes[stored == high] = k + 1
    return classes


def part_classes(root: Path, files_of: dict[str, tuple[Path, ...]], parts: list[str]) -> Meaning:
    fix = "each part's masks hold two values (0/255 or 0/1)"
    highs = []
    for k, part in enumerate(parts):
        lists = value_lists(sorted(files[k] for files in files_of.values()), fix)
        found = sorted(set(np.concatenate(lists).tolist()) - {-1})
        if len(found) != 2:
            raise UserError(
                f"the {part} masks of {root} hold the values {found[:8]}: a part is one object, {fix}; "
                "choose one set of masks with --masks"
            )
        highs.append(found[1])
    names = check_class_names(["background", *parts], root / "(the mask folders)")
    values = tuple(range(len(names)))
    rule = f"one class per set of masks: {mapping_text(names, values)} (where a part's mask is {highs[0]})"
    decode = partial(decode_parts, highs=tuple(highs), fix=fix)
    return Meaning(names, VOC_PALETTE[: len(names)].copy(), values, rule, decode, fix)


# Colours


def is_colour(path: Path) -> bool:
    """Whether a mask file stores RGB colours (channels that differ), not one value per pixel."""
    with reading(path, "mask", "check that it opens in an image viewer"), Image.open(path) as image:
        if image.mode not in ("RGB", "RGBA"):
            return False
        pixels = np.asarray(image)[..., :3]
    return bool((pixels != pixels[..., :1]).any())


def codes(rgb: np.ndarray) -> np.ndarray:
    return (rgb[..., 0].astype(np.int64) << 16) | (rgb[..., 1].astype(np.int64) << 8) | rgb[..., 2]


def color_text(code: int) -> str:
    return f"({code >> 16 & 255},{code >> 8 & 255},{code & 255})"


def read_color_table(path: Path) -> tuple[list[str], list[tuple[int, int, int]]]:
    """names, colours of class_dict.csv (name,r,g,b), label_colors.txt (r g b name) or labelmap.txt."""
    if path.name.lower() == "labelmap.txt":
        names, colors = read_labelmap(path)
        return list(names), [tuple(int(v) for v in c) for c in colors]
    names, colors = [], []
    try:
        if path.suffix.lower() == ".csv":
            rows = list(csv.DictReader(path.read_text().splitlines()))
            for row in rows:
                row = {k.strip().lower(): v.strip() for k, v in row.items() if k}
                name = row.get("name") or row.get("class") or next(iter(row.values()))
                names.append(name)
                colors.append((int(row["r"]), int(row["g"]), int(row["b"])))
        else:
            for line in (line.split() for line in path.read_text().splitlines() if line.strip()):
                colors.append((int(line[0]), int(line[1]), int(line[2])))
                names.append(" ".join(line[3:]))
    except (ValueError, KeyError, IndexError, StopIteration):
        raise UserError(
            f"cannot read the colour table {path}: write it as CSV with columns name,r,g,b "
            "(class_dict.csv) or as `r g b name` lines (label_colors.txt)"
        ) from None
    if len(set(colors)) < len(colors):
        raise UserError(f"{path} gives two classes the same colour: masks could not tell them apart")
    return names, colors


def color_table(root: Path, mask: Path) -> Path | None:
    """The colour table nearest the masks: in the mask's folder or one above it up to root, else anywhere
    under root (the first in name order)."""
    folder = mask.parent
    while True:
        for name in COLOR_TABLES:
            for path in sorted(folder.glob("*")):
                if path.name.lower() == name and path.is_file():
                    return path
        if folder == root or root not in folder.parents:
            break
        folder = folder.parent
    anywhere = sorted(p for name in COLOR_TABLES for p in root.rglob(name) if p.is_file())
    return anywhere[0] if anywhere else None


def colour_classes(root: Path, masks: list[Path]) -> Meaning:
    table = color_table(root, masks[0])
    if table is not None:
        names, colors = read_color_table(table)
        void = [name.lower() in VOID_NAMES for name in names]
        kept = [(n, c) for n, c, v in zip(names, colors, void, strict=True) if not v]
        indices = [IGNORE_INDEX if v else sum(not w for w in void[:k]) for k, v in enumerate(void)]
        class_names = check_class_names([n for n, _ in kept], table)
        listed = ", ".join(f"{color_text(codes(np.array(c)))} {n}" + (" = void" if v else "")
                           for n, c, v in zip(names, colors, void, strict=True))  # fmt: skip
        rule = f"RGB colours, one per class, from {table.relative_to(root)}: {listed}"
        fix = f"add the colour to {table}, or correct the mask"
        decode = partial(
            decode_colors, colors=np.array(colors, np.uint8), indices=indices, source=table, fix=fix
        )
        kept_colors = np.array([c for _, c in kept], np.uint8)
        return Meaning(class_names, kept_colors, tuple(range(len(kept))), rule, decode, fix)
    fix = "masks of colours hold one colour per class"

    def scan() -> np.ndarray:
        return np.unique(np.concatenate([np.unique(codes(read_rgb(p, fix))) for p in masks]))

    found = cached("colours", [(p,) for p in masks], scan).tolist()
    if len(found) > IGNORE_INDEX:
        raise UserError(
            f"the masks in {root} hold {len(found)} colours: that is no colour per class (a photograph?); "
            f"give a colour table (class_dict.csv: name,r,g,b) beside them ({YOUR_OWN_DATA})"
        )
    names = [
        "background" if code == 0 else f"color_{color_text(code)[1:-1].replace(',', '_')}" for code in found
    ]
    colors = np.array([[c >> 16 & 255, c >> 8 & 255, c & 255] for c in found], np.uint8)
    rule = "RGB colours, one class per colour found (no colour table beside them): " + ", ".join(
        f"{color_text(c)} {n}" for c, n in zip(found, names, strict=True)
    )
    decode = partial(
        decode_colors, colors=colors, indices=list(range(len(found))), source="the scan", fix=fix
    )
    return Meaning(tuple(names), colors, tuple(range(len(found))), rule, decode, fix)
