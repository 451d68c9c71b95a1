"""Generated trees for lab/benchmark.py, VOC-sized and built fast: raw SBD masks (the work of
tools/voc.py) and a prepared tree (the work of the data pipeline)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from layouts import VOC_NUM_CLASSES
from tools.demo_data import draw_sample, save_sbd_mat, write_list


def make_sbd_tree(root: Path, files: int, seed: int = 0) -> Path:
    """`files` SBD masks of VOC's usual size (500x375, a few ellipses) in the raw layout of tools/voc.py,
    and empty VOC lists: the work of converting the full SBD (lab/benchmark.py voc)."""
    rng = np.random.default_rng(seed)
    voc, sbd = root / "VOCdevkit/VOC2012", root / "VOCdevkit/VOCaug/dataset"
    (voc / "SegmentationClass").mkdir(parents=True)
    (voc / "ImageSets/Segmentation").mkdir(parents=True)
    (sbd / "cls").mkdir(parents=True)
    yy, xx = np.mgrid[:375, :500]
    ids = [f"2008_{i:06d}" for i in range(files)]
    for image_id in ids:
        mask = np.zeros((375, 500), dtype=np.uint8)
        for c in rng.integers(1, VOC_NUM_CLASSES, size=rng.integers(1, 4)):
            cy, cx, ry, rx = (
                rng.uniform(50, 325),
                rng.uniform(50, 450),
                rng.uniform(20, 150),
                rng.uniform(20, 200),
            )
            mask[((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1] = c
        save_sbd_mat(sbd / "cls" / f"{image_id}.mat", mask)
    write_list(sbd / "train.txt", ids)
    for path in (
        sbd / "val.txt",
        voc / "ImageSets/Segmentation/train.txt",
        voc / "ImageSets/Segmentation/val.txt",
    ):
        write_list(path, [])
    return root


def make_prepared_tree(root: Path, images: int, seed: int = 0) -> Path:
    """A tree as tools/voc.py leaves it (JPEGImages, SegmentationClassAug, trainaug.txt) of `images`
    drawings at VOC's sizes (500x375, some portrait): the data pipeline's work (lab/benchmark.py)."""
    rng = np.random.default_rng(seed)
    voc = root / "VOCdevkit/VOC2012"
    for folder in ("JPEGImages", "SegmentationClassAug", "ImageSets/Segmentation"):
        (voc / folder).mkdir(parents=True)
    ids = [f"2008_{i:06d}" for i in range(images)]
    for image_id in ids:
        image, mask = draw_sample(rng, [int(c) for c in rng.integers(1, VOC_NUM_CLASSES, size=3)])
        size = (500, 375) if rng.random() < 0.7 else (375, 500)  # landscape or portrait, like VOC
        Image.fromarray(image).resize(size, Image.BILINEAR).save(
            voc / f"JPEGImages/{image_id}.jpg", quality=90
        )
        Image.fromarray(mask).resize(size, Image.NEAREST).save(voc / f"SegmentationClassAug/{image_id}.png")
    write_list(voc / "ImageSets/Segmentation/trainaug.txt", ids)
    return root
