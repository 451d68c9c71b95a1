"""Shared test helpers: running the scripts, and small data sets in the formats of VOC, labelme, CVAT and
the plain layout (the demo data sets themselves are fixtures, in conftest.py)."""

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]


def copy_tree(source: Path, dest: Path) -> Path:
    shutil.copytree(source, dest)
    return dest


def run_script(*args: str, cwd: Path = ROOT, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout)


def prepared_tree(root: Path, samples: dict, splits: dict) -> Path:
    """A prepared tree (what tools/voc.py leaves) from arrays: samples maps id -> (RGB HxWx3, mask HxW)."""
    voc = root / "VOCdevkit" / "VOC2012"
    for folder in ("JPEGImages", "SegmentationClassAug", "ImageSets/Segmentation"):
        (voc / folder).mkdir(parents=True, exist_ok=True)
    for image_id, (image, mask) in samples.items():
        Image.fromarray(np.asarray(image, dtype=np.uint8)).save(
            voc / "JPEGImages" / f"{image_id}.jpg", quality=95
        )
        Image.fromarray(np.asarray(mask, dtype=np.uint8), mode="L").save(
            voc / "SegmentationClassAug" / f"{image_id}.png"
        )
    for split, ids in splits.items():
        (voc / "ImageSets" / "Segmentation" / f"{split}.txt").write_text("".join(f"{i}\n" for i in ids))
    return root


# Exports of the annotation tools, written the way the tools write them.

OWN_CLASSES = ("_background_", "road", "potted plant", "tv/monitor")  # labelme keeps spaces and slashes
CVAT_COLORS = ((0, 0, 0), (250, 50, 83), (36, 179, 83), (61, 61, 245))


def own_sample(rng: np.random.Generator, size=(48, 64)) -> tuple[np.ndarray, np.ndarray]:
    """An RGB image HxWx3 and its class mask HxW: rectangles whose colour tells their class."""
    height, width = size
    mask = np.zeros(size, dtype=np.uint8)
    for c in range(1, len(OWN_CLASSES)):
        y, x = rng.integers(0, height - 12), rng.integers(0, width - 12)
        mask[y : y + rng.integers(8, 20), x : x + rng.integers(8, 24)] = c
    image = (np.array(CVAT_COLORS, dtype=np.uint8)[mask] // 2 + 60).astype(np.uint8)
    return image, mask


def labelme_export(root: Path, count: int = 12, newer: bool = False, seed: int = 0) -> Path:
    """What labelme's examples/semantic_segmentation/labelme2voc.py writes: JPEGImages/<id>.jpg (the
    image bytes as labelme stored them, so some are PNGs behind a .jpg name), palette PNGs with the VOC
    colour map in SegmentationClassPNG/ (SegmentationClass/ in newer labelme) beside .npy arrays,
    255 = __ignore__, and class_names.txt without a final newline."""
    from layouts import VOC_PALETTE

    rng = np.random.default_rng(seed)
    masks = root / ("SegmentationClass" if newer else "SegmentationClassPNG")
    for folder in ("JPEGImages", "SegmentationClass", masks.name):
        (root / folder).mkdir(parents=True, exist_ok=True)
    (root / "class_names.txt").write_text("\n".join(OWN_CLASSES))
    for k in range(count):
        image, mask = own_sample(rng)
        mask[:2] = 255  # an __ignore__ stripe
        Image.fromarray(image).save(
            root / "JPEGImages" / f"img_{k:03d}.jpg", format="PNG" if k % 3 else "JPEG"
        )
        label = Image.fromarray(mask, mode="P")
        label.putpalette(VOC_PALETTE.tobytes())
        label.save(masks / f"img_{k:03d}.png")
        np.save(
            root / "SegmentationClass" / f"img_{k:03d}.npy", np.where(mask == 255, -1, mask).astype(np.int32)
        )
    return root


def cvat_export(root: Path, count: int = 12, seed: int = 1) -> Path:
    """CVAT's "Segmentation mask 1.1" export saved with its images: labelmap.txt, RGB class masks in
    SegmentationClass/, instance masks in SegmentationObject/, ImageSets/Segmentation/default.txt."""
    rng = np.random.default_rng(seed)
    for folder in ("JPEGImages", "SegmentationClass", "SegmentationObject", "ImageSets/Segmentation"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    names = ["background", *OWN_CLASSES[1:]]
    (root / "labelmap.txt").write_text(
        "# label:color_rgb:parts:actions\n"
        + "".join(f"{n}:{r},{g},{b}::\n" for n, (r, g, b) in zip(names, CVAT_COLORS, strict=True))
    )
    ids = [f"frame_{k:06d}" for k in range(count)]
    for image_id in ids:
        image, mask = own_sample(rng)
        Image.fromarray(image).save(root / "JPEGImages" / f"{image_id}.jpg", quality=95)
        Image.fromarray(np.array(CVAT_COLORS, dtype=np.uint8)[mask]).save(
            root / "SegmentationClass" / f"{image_id}.png"
        )
        Image.fromarray((mask > 0).astype(np.uint8) * 255).save(
            root / "SegmentationObject" / f"{image_id}.png"
        )
    (root / "ImageSets/Segmentation/default.txt").write_text("".join(f"{i}\n" for i in ids))
    return root


def plain_layout(root: Path, splits: dict[str, int], seed: int = 2) -> Path:
    """The project's plain layout: classes.txt (name: r,g,b), images/, masks/ (index PNGs), splits/."""
    rng = np.random.default_rng(seed)
    for folder in ("images", "masks", "splits"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    (root / "classes.txt").write_text(
        "".join(f"{n}: {r},{g},{b}\n" for n, (r, g, b) in zip(OWN_CLASSES, CVAT_COLORS, strict=True))
    )
    for split, count in splits.items():
        ids = [f"{split}{k}" for k in range(count)]
        for image_id in ids:
            image, mask = own_sample(rng)
            Image.fromarray(image).save(root / "images" / f"{image_id}.png")
            Image.fromarray(mask, mode="L").save(root / "masks" / f"{image_id}.png")
        (root / "splits" / f"{split}.txt").write_text("".join(f"{i}\n" for i in ids))
    return root


def binary_layout(
    root: Path,
    count: int = 12,
    suffix: str = ".png",
    values: tuple[int, int] = (0, 255),
    tag: str = "",
    classes: str | None = None,
    splits: dict[str, list[int]] | None = None,
    seed: int = 3,
) -> Path:
    """Binary data as U-Net users store it: grayscale images/<id>.png (bright blobs on a dark, noisy
    field) and masks/<id><tag><suffix> holding values[0] (background) and values[1] (blobs), 16-bit where
    a value exceeds 255 (PNG, GIF, TIFF or BMP, as PIL writes them); classes.txt with the given text, and
    splits/<split>.txt listing the given sample numbers."""
    rng = np.random.default_rng(seed)
    for folder in ("images", "masks"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    dtype = np.uint16 if max(values) > 255 else np.uint8
    for k in range(count):
        blobs = np.zeros((48, 64), dtype=bool)
        for _ in range(3):
            y, x = rng.integers(6, 42), rng.integers(6, 58)
            yy, xx = np.ogrid[:48, :64]
            blobs |= (yy - y) ** 2 + (xx - x) ** 2 < rng.integers(16, 60)
        image = np.where(blobs, 190, 50) + rng.integers(0, 30, blobs.shape)
        Image.fromarray(image.astype(np.uint8), mode="L").save(root / "images" / f"s{k:02d}.png")
        mask = np.where(blobs, values[1], values[0]).astype(dtype)
        Image.fromarray(mask).save(root / "masks" / f"s{k:02d}{tag}{suffix}")
    if classes is not None:
        (root / "classes.txt").write_text(classes)
    for split, numbers in (splits or {}).items():
        (root / "splits").mkdir(exist_ok=True)
        (root / "splits" / f"{split}.txt").write_text("".join(f"s{k:02d}\n" for k in numbers))
    return root
