"""Score binary predictions of ISBI 2012 slices against their labels, as docs/results/isbi2012.md reports.

    python tools/predict.py --checkpoint experiments/isbi2012/best.pth --input held_out/ --output pred/
    python lab/isbi_scores.py --pred pred/ --labels data/isbi2012/masks --ids 25 26 27 28 29

Both folders hold 0/255 PNGs (0 = membrane, 255 = cell), as the challenge stores its labels and as
tools/predict.py writes them for this data set. Printed, over the listed slices:

- membrane IoU and Dice, from one confusion matrix over all their pixels (as main.py --eval_only);
- pixel error: the fraction of pixels whose class is wrong (1 - pixel accuracy);
- adapted Rand error (scikit-image's `adapted_rand_error`, SNEMI3D's definition) of the cell class's
  connected components (4-connectivity; membrane pixels are the background label 0 that the measure
  ignores in the truth), per slice, then averaged. The U-Net paper's Rand error was computed by the
  challenge on thinned probability maps and the best threshold: a different measure on other images.

Needs scikit-image (requirements-dev.txt). Prints a table and one JSON line.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image
from skimage.measure import label
from skimage.metrics import adapted_rand_error


def read_binary(path: Path) -> np.ndarray:
    """A 0/255 mask PNG -> bool HxW, True = cell (255)."""
    if not path.is_file():
        sys.exit(f"error: {path} not found: predict or copy every slice of --ids first")
    values = np.array(Image.open(path))
    if not set(np.unique(values)) <= {0, 255}:
        sys.exit(f"error: {path} holds values other than 0 and 255: it is not a binary ISBI mask")
    return values == 255


def scores(predicted: list[np.ndarray], truth: list[np.ndarray]) -> dict:
    """Membrane IoU, Dice and pixel error over all slices; adapted Rand error per slice and its mean."""
    pred, true = np.stack(predicted), np.stack(truth)
    membrane_pred, membrane_true = ~pred, ~true
    overlap = np.sum(membrane_pred & membrane_true)
    union = np.sum(membrane_pred | membrane_true)
    rand = [
        adapted_rand_error(label(t, connectivity=1), label(p, connectivity=1))[0]
        for p, t in zip(predicted, truth, strict=True)
    ]
    return {
        "membrane_iou": float(overlap / union),
        "membrane_dice": float(2 * overlap / (membrane_pred.sum() + membrane_true.sum())),
        "pixel_error": float(np.mean(pred != true)),
        "adapted_rand_error": float(np.mean(rand)),
        "adapted_rand_error_per_slice": [float(r) for r in rand],
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pred", required=True, help="folder of predicted <id>.png (0/255)")
    parser.add_argument("--labels", required=True, help="folder of label <id>.png (0/255)")
    parser.add_argument("--ids", nargs="+", required=True, help="the slices to score")
    args = parser.parse_args()
    predicted = [read_binary(Path(args.pred) / f"{i}.png") for i in args.ids]
    truth = [read_binary(Path(args.labels) / f"{i}.png") for i in args.ids]
    result = {"slices": args.ids, **scores(predicted, truth)}
    for key in ("membrane_iou", "membrane_dice", "pixel_error", "adapted_rand_error"):
        print(f"{key:20s} {result[key]:.4f}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
