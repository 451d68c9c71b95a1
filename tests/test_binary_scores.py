"""lab/binary_scores.py: pooled F1, sensitivity and specificity with void left out, and per-image Dice."""

import numpy as np
import pytest

from lab.binary_scores import scores


def test_scores_pool_the_pixels_and_leave_void_out():
    truth = np.array([[1, 1, 0, 0], [0, 0, 255, 255]])
    pred = np.array([[1, 0, 1, 0], [0, 0, 1, 1]])  # the void pixels' predictions do not count
    result = scores([(pred, truth)])
    # tp 1, fn 1, fp 1, tn 3
    assert result["f1"] == pytest.approx(0.5) and result["iou"] == pytest.approx(1 / 3)
    assert result["sensitivity"] == pytest.approx(0.5) and result["specificity"] == pytest.approx(0.75)
    assert result["accuracy"] == pytest.approx(4 / 6)


def test_the_mean_image_dice_counts_an_image_without_positives_on_either_side_as_1():
    empty = np.zeros((2, 2), dtype=np.int64)
    half = (np.array([[1, 1], [0, 0]]), np.array([[1, 0], [0, 0]]))  # Dice 2/3
    result = scores([(empty, empty), half])
    assert result["mean_image_dice"] == pytest.approx((1 + 2 / 3) / 2)
    assert result["f1"] == pytest.approx(2 / 3)  # pooled: the empty image adds no positive pixel
