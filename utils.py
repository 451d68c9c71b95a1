"""Small shared helpers: data set constants, palette, seeding, distributed set-up, checkpoint I/O."""

from __future__ import annotations

import numpy as np

CLASS_NAMES = (
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair",
    "cow", "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa",
    "train", "tvmonitor",
)  # fmt: skip
NUM_CLASSES = len(CLASS_NAMES)
IGNORE_INDEX = 255  # VOC's "void": object borders and difficult regions, never scored or trained on
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class UserError(Exception):
    """Bad input from the user (a path, a file, a flag): shown as one line, exit status 2."""


def voc_palette() -> np.ndarray:
    """The PASCAL VOC colour map: uint8 array 256x3, row i = RGB colour of class index i."""
    palette = np.zeros((256, 3), dtype=np.uint8)
    for index in range(256):
        c, r, g, b = index, 0, 0, 0
        for shift in range(7, -1, -1):  # spread the index bits over the high bits of r, g, b
            r |= (c & 1) << shift
            g |= ((c >> 1) & 1) << shift
            b |= ((c >> 2) & 1) << shift
            c >>= 3
        palette[index] = (r, g, b)
    return palette


VOC_PALETTE = voc_palette()  # VOC_PALETTE[255] == (224, 224, 192), the void colour


def colorize(mask: np.ndarray) -> np.ndarray:
    """Class-index mask HxW (any integer dtype) -> RGB uint8 image HxWx3 in the VOC colours."""
    return VOC_PALETTE[np.asarray(mask, dtype=np.int64) & 255]
