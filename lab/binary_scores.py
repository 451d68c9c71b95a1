"""Score binary predictions of one split of a data set against its masks, as the DRIVE and Kvasir-SEG
reports (docs/results/) give them:

    python tools/predict.py --checkpoint experiments/drive/best.pth --input <the split's images> --output p/
    python lab/binary_scores.py --data_dir ../shared/data/drive --split test --pred p/

The masks are read through the data layer (layouts.describe), so void pixels (outside DRIVE's field of
view) are left out exactly as main.py --eval_only leaves them out; predictions are the PNGs that
tools/predict.py writes, in the data set's own values, named after each image. The positive class is the
second (vessel, polyp). Printed, over the split's pixels pooled: F1 (= Dice of the positive class), IoU,
sensitivity, specificity and accuracy; and the mean over images of each image's Dice (how polyp papers
report "mean Dice"; an image with no positive pixel in truth and prediction counts 1). A table, then one
JSON line.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from layouts import IGNORE_INDEX, describe  # noqa: E402


def read_prediction(path: Path, values: tuple[int, ...]) -> np.ndarray:
    """A predicted mask in the data set's values -> class indices (0/1)."""
    if not path.is_file():
        sys.exit(f"error: {path} not found: predict every image of the split into --pred first")
    stored = np.array(Image.open(path))
    classes = np.full(stored.shape, -1, dtype=np.int64)
    for index, value in enumerate(values):
        classes[stored == value] = index
    if (classes < 0).any():
        sys.exit(f"error: {path} holds values other than {values}: not a prediction of this data set")
    return classes


def scores(pairs: list[tuple[np.ndarray, np.ndarray]]) -> dict:
    """Pooled confusion counts of (prediction, truth) pairs with void dropped, and per-image Dice."""
    tp = fp = fn = tn = 0
    dice = []
    for pred, truth in pairs:
        keep = truth != IGNORE_INDEX
        p, t = pred[keep] == 1, truth[keep] == 1
        counts = (np.sum(p & t), np.sum(p & ~t), np.sum(~p & t), np.sum(~p & ~t))
        tp, fp, fn, tn = (a + int(b) for a, b in zip((tp, fp, fn, tn), counts, strict=True))
        dice.append(1.0 if p.sum() + t.sum() == 0 else 2 * counts[0] / (p.sum() + t.sum()))
    return {
        "f1": 2 * tp / (2 * tp + fp + fn),
        "iou": tp / (tp + fp + fn),
        "sensitivity": tp / (tp + fn),
        "specificity": tn / (tn + fp),
        "accuracy": (tp + tn) / (tp + fp + fn + tn),
        "mean_image_dice": float(np.mean(dice)),
        "images": len(pairs),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data_dir", required=True, help="the data set, as main.py --data_dir")
    parser.add_argument("--split", default="test", help="the split to score (its ids, from the data set)")
    parser.add_argument("--split_dir", help="split lists that override the data set's, as main.py's flag")
    parser.add_argument("--pred", required=True, help="folder of the predicted <image name>.png")
    args = parser.parse_args()
    layout = describe(args.data_dir)
    if args.split_dir:
        layout = layout.with_split_lists(Path(args.split_dir))
    pairs = [
        (
            read_prediction(Path(args.pred) / f"{layout.image_path(i).stem}.png", layout.values),
            layout.read_mask(i),
        )
        for i in layout.split_ids(args.split)
    ]
    result = {"split": args.split, **scores(pairs)}
    for key in ("f1", "iou", "sensitivity", "specificity", "accuracy", "mean_image_dice"):
        print(f"{key:16s} {result[key]:.4f}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
