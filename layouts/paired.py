"""Any release whose images and masks pair by name, when no format recognises it (BUSI, ...):

    side by side:     <dir>/<name>.<ext> + <dir>/<name><tag>.<ext>       (BUSI: "benign (1)_mask.png")
    sibling folders:  <A>/<name>.<ext> + <B>/<name>[<tag>].<ext>, B named like masks (masks, labels, gt, ...)

Tags: TAGS, any case, optionally numbered (BUSI's "_mask_1": a second mask of the same image; an image's
masks are united). The id is the image's path under --data_dir without its extension. The classes are
the values found (layouts.core.discovered_classes); val is held out. The run prints how the files were
paired; a mask that could belong to two images, or an image with masks of two tags, is an error that
lists them.
"""

from __future__ import annotations

import re
from functools import partial
from pathlib import Path

import numpy as np

from layouts.core import (
    IMAGE_SUFFIXES,
    VOC_PALETTE,
    DataLayout,
    discovered_classes,
    is_junk,
    no_split,
    read_mask_values,
    to_classes,
    value_table,
)
from utils import UserError

EXPECTS = "images and masks that pair by name (<name>_mask.png beside <name>.png, or masks/ beside images/)"
TAGS = (
    "_mask",
    "_masks",
    "_segmentation",
    "_seg",
    "_label",
    "_labels",
    "_gt",
    "_manual1",
    "_annotation",
    "-mask",
)
TAGGED = re.compile("(" + "|".join(re.escape(t) for t in TAGS) + r")(_\d+)?$", re.IGNORECASE)
MASK_FOLDER = re.compile(r"mask|label|annot|^gt|_gt|ground|truth|seg|manual|target", re.IGNORECASE)
DEPTH = 4  # folders below --data_dir searched


def image_files(root: Path) -> list[Path]:
    """Files of an image suffix under root, DEPTH folders down, junk (._*, __MACOSX, hidden) left out."""
    found, folders = [], [root]
    for _ in range(DEPTH + 1):
        below = []
        for folder in folders:
            for path in sorted(folder.iterdir()):
                if is_junk(path):
                    continue
                if path.is_dir():
                    below.append(path)
                elif path.suffix.lower() in IMAGE_SUFFIXES:
                    found.append(path)
        folders = below
    return found


def mask_key(path: Path, root: Path) -> tuple[tuple[str, ...], str, str] | None:
    """(folders with the mask folder as "*", name without tag, tag) of a mask file; None for an image."""
    parts = path.relative_to(root).parent.parts
    tag = TAGGED.search(path.stem)
    name = path.stem[: tag.start()] if tag else path.stem
    marked = [i for i, part in enumerate(parts) if MASK_FOLDER.search(part)]
    if marked:
        i = marked[-1]
        return (*parts[:i], "*", *parts[i + 1 :]), name, tag.group(1).lower() if tag else ""
    return (parts, name, tag.group(1).lower()) if tag else None


def image_keys(path: Path, root: Path) -> list[tuple[tuple[str, ...], str]]:
    """The keys a mask of this image may have: beside it, or with one of its folders swapped."""
    parts = path.relative_to(root).parent.parts
    return [(parts, path.stem)] + [((*parts[:i], "*", *parts[i + 1 :]), path.stem) for i in range(len(parts))]


def decode_union(files: tuple[Path, ...], lookup: np.ndarray, rule: str, fix: str) -> np.ndarray:
    """The mask files of one image (one, or several numbered ones: united) -> class indices."""
    stored = read_mask_values(files[0], fix)
    for path in files[1:]:
        stored = np.maximum(stored, read_mask_values(path, fix))
    return to_classes(stored, lookup, files[0], rule, fix)


def pair(root: Path) -> tuple[list[Path], dict[tuple, list[Path]], dict[Path, list[tuple]]] | None:
    """(images, mask files by key, image -> the keys of its masks) under root; None when no file there is
    named or placed like a mask. UserError for a mask two images could own, or masks of two tags."""
    masks_of: dict[tuple, list[Path]] = {}
    images: list[Path] = []
    tags: dict[tuple, set[str]] = {}
    for path in image_files(root):
        key = mask_key(path, root)
        if key is None:
            images.append(path)
        else:
            masks_of.setdefault(key[:2], []).append(path)
            tags.setdefault(key[:2], set()).add(key[2])
    if not masks_of or not images:
        return None
    pairs = {image: [k for k in image_keys(image, root) if k in masks_of] for image in images}
    owners: dict[tuple, list[Path]] = {}
    for image, keys in pairs.items():
        for key in keys:
            owners.setdefault(key, []).append(image)
    unclear = [
        f"{', '.join(str(p) for p in masks_of[k])} <- {' or '.join(str(i) for i in owners[k])}"
        for k in owners
        if len(owners[k]) > 1
    ]
    unclear += [
        f"{image} -> {' and '.join(str(p) for k in keys for p in masks_of[k])}"
        for image, keys in pairs.items()
        if len(keys) > 1 or any(len(tags[k]) > 1 for k in keys)
    ]
    if unclear:
        raise UserError(
            f"cannot pair the images and masks of {root} by name: {'; '.join(unclear[:4])}: rename the files "
            "so that each mask names one image (README, 'Train on your own data')"
        )
    return images, masks_of, pairs


def check_complete(root: Path, masks_of: dict[tuple, list[Path]], pairs: dict[Path, list[tuple]]) -> None:
    """UserError listing images without a mask and masks without an image: nothing is skipped silently."""
    lonely = [str(image) for image, keys in pairs.items() if not keys]
    owned = {k for keys in pairs.values() for k in keys}
    orphans = [str(p) for k, paths in masks_of.items() if k not in owned for p in paths]
    if lonely or orphans:
        raise UserError(
            f"{len(lonely)} image(s) without a mask and {len(orphans)} mask(s) without an image in "
            f"{root}, e.g. {', '.join((lonely + orphans)[:5])}: add or remove them"
        )


def find(root: Path) -> DataLayout | None:
    if not root.is_dir() or (root / "JPEGImages").is_dir():  # a VOC-style export without its class list
        return None
    found = pair(root)
    if found is None:
        return None
    images, masks_of, pairs = found
    check_complete(root, masks_of, pairs)
    ids = {str(image.relative_to(root).with_suffix("")): image for image in images}
    masks = {i: tuple(sorted(masks_of[pairs[image][0]])) for i, image in ids.items()}
    fix = "the masks hold one value per class (0/255 or 0/1 for one object class)"
    names, values, rule = discovered_classes(sorted(p for m in masks.values() for p in m), root, fix)
    example = next(iter(ids))
    notes = [
        f"paired {len(ids)} images with their masks by name, e.g. {ids[example].relative_to(root)} + "
        f"{masks[example][0].relative_to(root)}"
    ]
    several = sum(len(m) > 1 for m in masks.values())
    if several:
        notes.append(f"{several} image(s) have several numbered masks: each image's masks are united")
    decode = partial(decode_union, lookup=value_table(values), rule=rule, fix=fix)
    return DataLayout(
        "paired by name", root, names, VOC_PALETTE[: len(names)].copy(), values, rule, images=ids,
        masks=masks, splits={"train": tuple(sorted(ids))}, decode=decode, fix=fix, hold_out=True,
        missing_split=no_split(f"the images of {root}", ["train", "val"]), notes=tuple(notes),
    )  # fmt: skip
