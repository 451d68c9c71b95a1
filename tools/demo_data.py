"""Write a small synthetic data set in the raw PASCAL VOC 2012 + SBD formats, for offline runs and tests.

    python tools/demo_data.py --out data/demo [--seed 0] [--train 160] [--val 48] [--prepare]

Each image shows a few objects on a low-saturation background; an object's colour decides its class
(10 hues x 2 brightnesses = the 20 VOC object classes), its shape and size do not. The tree mirrors the
real downloads, so that tools/voc.py prepares it exactly as it prepares VOC 2012 + SBD:

    <out>/VOCdevkit/VOC2012/JPEGImages/<id>.jpg
    <out>/VOCdevkit/VOC2012/SegmentationClass/<id>.png     palette PNG, 255 = void border
    <out>/VOCdevkit/VOC2012/ImageSets/Segmentation/{train,val}.txt
    <out>/VOCdevkit/VOCaug/dataset/cls/<id>.mat             GTcls: Boundaries, Segmentation, CategoriesPresent
    <out>/VOCdevkit/VOCaug/dataset/{train,val}.txt

As in the real sets, SBD annotates some VOC train ids (where VOC's own mask must win) and some VOC val
ids (which must stay out of trainaug). trainaug has exactly --train ids and val --val ids.
"""

from __future__ import annotations

import argparse
import colorsys
import sys
from pathlib import Path

import numpy as np
import scipy.io
import scipy.ndimage
import scipy.sparse
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from layouts import IGNORE_INDEX, VOC_NUM_CLASSES, VOC_PALETTE  # noqa: E402
from tools.voc import prepare  # noqa: E402


def class_colours() -> np.ndarray:
    """RGB uint8 colour of each object class 1..20 (row 0 unused): 10 hues x 2 brightnesses."""
    colours = np.zeros((VOC_NUM_CLASSES, 3), dtype=np.uint8)
    for c in range(1, VOC_NUM_CLASSES):
        hue, dark = divmod(c - 1, 2)
        r, g, b = colorsys.hsv_to_rgb(hue / 10, 0.85, 0.5 if dark else 0.95)
        colours[c] = np.round(np.array([r, g, b]) * 255)
    return colours


CLASS_COLOURS = class_colours()


def draw_sample(rng: np.random.Generator, classes: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """One image HxWx3 uint8 and its class mask HxW uint8 (0..20, no void) with the given objects."""
    portrait = rng.random() < 0.35
    long_side, short_side = int(rng.integers(120, 181)), int(rng.integers(85, 125))
    height, width = (long_side, short_side) if portrait else (short_side, long_side)

    # Background: smooth low-saturation blotches, never the saturated colours of objects.
    coarse = rng.random((4, 4, 3)) * 0.5 + 0.25
    grey = coarse.mean(axis=2, keepdims=True)
    coarse = grey + 0.2 * (coarse - grey)
    zoom = (height / 4, width / 4, 1)
    image = scipy.ndimage.zoom(coarse, zoom, order=1)[:height, :width] * 255
    mask = np.zeros((height, width), dtype=np.uint8)

    yy, xx = np.mgrid[:height, :width]
    for c in classes:
        cy, cx = rng.uniform(0.15, 0.85) * height, rng.uniform(0.15, 0.85) * width
        ry, rx = rng.uniform(0.12, 0.3) * height, rng.uniform(0.12, 0.3) * width
        shape = rng.integers(3)
        if shape == 0:  # ellipse
            inside = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1
        elif shape == 1:  # rectangle
            inside = (abs(yy - cy) <= ry) & (abs(xx - cx) <= rx)
        else:  # triangle pointing up
            inside = (yy <= cy + ry) & (abs(xx - cx) <= (yy - (cy - ry)) / 2 * rx / ry)
        shade = rng.uniform(0.85, 1.1, size=3)
        image[inside] = np.clip(CLASS_COLOURS[c] * shade, 0, 255)
        mask[inside] = c
    image += rng.normal(0, 6, size=image.shape)
    return np.clip(image, 0, 255).astype(np.uint8), mask


def void_border(mask: np.ndarray, width: int = 2) -> np.ndarray:
    """The mask with VOC's void band (255) along every object boundary, as VOC annotators drew it."""
    edge = np.zeros(mask.shape, dtype=bool)
    edge[:, 1:] |= mask[:, 1:] != mask[:, :-1]
    edge[1:, :] |= mask[1:, :] != mask[:-1, :]
    band = scipy.ndimage.binary_dilation(edge, iterations=width)
    return np.where(band, IGNORE_INDEX, mask).astype(np.uint8)


def save_sbd_mat(path: Path, mask: np.ndarray) -> None:
    """Write an SBD class annotation: struct GTcls with Boundaries, Segmentation, CategoriesPresent."""
    boundaries = np.empty((VOC_NUM_CLASSES - 1, 1), dtype=object)
    present = np.array([c for c in np.unique(mask) if c != 0], dtype=np.uint8)
    for c in range(1, VOC_NUM_CLASSES):
        boundary = np.zeros(mask.shape, dtype=bool)
        if c in present:
            region = mask == c
            boundary = region & ~scipy.ndimage.binary_erosion(region)
        boundaries[c - 1, 0] = scipy.sparse.csc_matrix(boundary)
    gt = {"Boundaries": boundaries, "Segmentation": mask, "CategoriesPresent": present.reshape(-1, 1)}
    scipy.io.savemat(path, {"GTcls": gt}, do_compression=True)


def save_palette_png(path: Path, mask: np.ndarray) -> None:
    image = Image.fromarray(mask).convert("P")  # an "L" array keeps its values as palette indices
    image.putpalette(VOC_PALETTE.tobytes())
    image.save(path)


def split_ids(rng: np.random.Generator, train: int, val: int) -> dict[str, list[str]]:
    """VOC and SBD id lists that overlap the way the real ones do; trainaug = `train` ids."""
    ids = [f"{2007 + i % 5}_{i:06d}" for i in range(train + val)]
    rng.shuffle(ids)
    voc_val, rest = ids[:val], ids[val:]
    n_voc_train = max(1, train // 3)
    voc_train, sbd_only = rest[:n_voc_train], rest[n_voc_train:]
    shared_train = voc_train[: n_voc_train // 2]  # annotated by both; VOC's mask wins
    shared_val = voc_val[: max(1, val // 3)]  # in SBD but VOC val: must stay out of trainaug
    sbd = sbd_only + shared_train + shared_val
    rng.shuffle(sbd)
    cut = (3 * len(sbd)) // 4
    return {
        "voc_train": sorted(voc_train),
        "voc_val": sorted(voc_val),
        "sbd_train": sorted(sbd[:cut]),
        "sbd_val": sorted(sbd[cut:]),
    }


def write_list(path: Path, ids: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{i}\n" for i in ids))


def make_demo_data(out: Path | str, seed: int = 0, train: int = 160, val: int = 48) -> Path:
    """Write the raw tree under `out` (see the module docstring) and return `out`."""
    out = Path(out)
    rng = np.random.default_rng(seed)
    splits = split_ids(rng, train, val)
    voc = out / "VOCdevkit" / "VOC2012"
    sbd = out / "VOCdevkit" / "VOCaug" / "dataset"
    for folder in (voc / "JPEGImages", voc / "SegmentationClass", sbd / "cls"):
        folder.mkdir(parents=True, exist_ok=True)

    voc_ids = set(splits["voc_train"] + splits["voc_val"])
    sbd_ids = set(splits["sbd_train"] + splits["sbd_val"])
    for index, image_id in enumerate(sorted(voc_ids | sbd_ids)):
        # Cycle through the classes so every class appears in training and validation.
        count = int(rng.integers(1, 4))
        classes = [(index * 3 + k) % (VOC_NUM_CLASSES - 1) + 1 for k in range(count)]
        image, mask = draw_sample(rng, classes)
        Image.fromarray(image).save(voc / "JPEGImages" / f"{image_id}.jpg", quality=90)
        if image_id in voc_ids:
            save_palette_png(voc / "SegmentationClass" / f"{image_id}.png", void_border(mask))
        if image_id in sbd_ids:
            save_sbd_mat(sbd / "cls" / f"{image_id}.mat", mask)

    write_list(voc / "ImageSets" / "Segmentation" / "train.txt", splits["voc_train"])
    write_list(voc / "ImageSets" / "Segmentation" / "val.txt", splits["voc_val"])
    write_list(sbd / "train.txt", splits["sbd_train"])
    write_list(sbd / "val.txt", splits["sbd_val"])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", default="data/demo", help="folder to write (it will hold VOCdevkit/)")
    parser.add_argument("--seed", type=int, default=0, help="random seed: the same seed gives the same files")
    parser.add_argument("--train", type=int, default=160, help="number of trainaug images")
    parser.add_argument("--val", type=int, default=48, help="number of validation images")
    parser.add_argument(
        "--prepare", action="store_true", help="then prepare it with tools/voc.py (as main.py --demo does)"
    )
    args = parser.parse_args()
    if args.train < 2 or args.val < 1:
        parser.error("--train must be at least 2 and --val at least 1")
    out = make_demo_data(args.out, args.seed, args.train, args.val)
    print(f"demo: wrote {args.train} train + {args.val} val images in the VOC 2012 + SBD formats under {out}")
    if args.prepare:
        report = prepare(out, progress=False)
        print(f"demo: tools/voc.py wrote {report['written']} masks and {report['trainaug']} trainaug ids")


if __name__ == "__main__":
    main()
