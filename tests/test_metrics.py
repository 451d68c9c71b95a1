import math

import numpy as np
import pytest
import torch
from PIL import Image

from layouts import VOC_CLASS_NAMES as CLASS_NAMES
from metrics import ConfusionMatrix


def reference_metrics(pred: np.ndarray, target: np.ndarray, num_classes: int, ignore_index: int) -> dict:
    """Independent computation: count pixel pairs class by class with NumPy."""
    keep = target != ignore_index
    pred, target = pred[keep], target[keep]
    iou, acc, dice = [], [], []
    for c in range(num_classes):
        tp = np.sum((pred == c) & (target == c))
        in_target = np.sum(target == c)
        in_pred = np.sum(pred == c)
        union = in_target + in_pred - tp
        fp, fn = in_pred - tp, in_target - tp
        iou.append(tp / union if union else math.nan)
        acc.append(tp / in_target if in_target else math.nan)
        dice.append(2 * tp / (2 * tp + fp + fn) if union else math.nan)  # F1
    return {
        "pixel_accuracy": float(np.mean(pred == target)),
        "mean_accuracy": float(np.nanmean(acc)),
        "mean_iou": float(np.nanmean(iou)),
        "mean_dice": float(np.nanmean(dice)),
        "iou": iou,
        "accuracy": acc,
        "dice": dice,
    }


def random_batch(rng: np.random.Generator, shape, num_classes=21, absent=(4, 7), void_fraction=0.2):
    """Targets with void pixels and some classes absent from both targets and predictions."""
    present = [c for c in range(num_classes) if c not in absent]
    target = rng.choice(present, size=shape)
    target[rng.random(shape) < void_fraction] = 255
    pred = np.where(rng.random(shape) < 0.6, target, rng.choice(present, size=shape))
    pred[pred == 255] = 0
    return pred, target


def assert_metrics_close(got: dict, want: dict) -> None:
    for key in ("pixel_accuracy", "mean_accuracy", "mean_iou", "mean_dice"):
        assert got[key] == pytest.approx(want[key], rel=1e-12)
    for key in ("iou", "accuracy", "dice"):
        np.testing.assert_allclose(got[key], want[key], rtol=1e-12)


def test_matches_independent_computation_with_void_and_absent_classes():
    rng = np.random.default_rng(0)
    pred, target = random_batch(rng, (4, 37, 53))
    cm = ConfusionMatrix(num_classes=21, ignore_index=255)
    cm.update(torch.from_numpy(pred), torch.from_numpy(target))
    got = cm.compute()
    assert_metrics_close(got, reference_metrics(pred, target, 21, 255))
    assert math.isnan(got["iou"][4]) and math.isnan(got["accuracy"][7])
    assert all(isinstance(v, float) for v in got["iou"] + [got["mean_iou"], got["pixel_accuracy"]])


def test_several_updates_equal_one_update():
    rng = np.random.default_rng(1)
    pred, target = random_batch(rng, (6, 20, 30))
    together = ConfusionMatrix(num_classes=21)
    together.update(torch.from_numpy(pred), torch.from_numpy(target))
    apart = ConfusionMatrix(num_classes=21)
    for i in range(6):  # one image at a time: per-image averaging would give different numbers
        apart.update(torch.from_numpy(pred[i]), torch.from_numpy(target[i]))
    assert torch.equal(together.mat, apart.mat)


def test_per_class_values_on_a_hand_made_example():
    target = torch.tensor([[0, 0, 1, 1], [2, 2, 255, 255]])
    pred = torch.tensor([[0, 1, 1, 1], [2, 0, 1, 2]])
    cm = ConfusionMatrix(num_classes=3)
    cm.update(pred, target)
    got = cm.compute()
    # class 0: tp 1, target 2, pred 2 -> iou 1/3, acc 1/2; class 1: tp 2, target 2, pred 3 -> 2/3, 1;
    # class 2: tp 1, target 2, pred 1 -> 1/2, 1/2. The two void pixels count nowhere.
    assert got["iou"] == pytest.approx([1 / 3, 2 / 3, 1 / 2])
    assert got["accuracy"] == pytest.approx([1 / 2, 1, 1 / 2])
    assert got["pixel_accuracy"] == pytest.approx(4 / 6)
    assert got["mean_iou"] == pytest.approx((1 / 3 + 2 / 3 + 1 / 2) / 3)
    assert got["mean_accuracy"] == pytest.approx(2 / 3)
    # Dice = 2 tp / (target + pred): class 0: 2/4, class 1: 4/5, class 2: 2/3.
    assert got["dice"] == pytest.approx([1 / 2, 4 / 5, 2 / 3])
    assert got["mean_dice"] == pytest.approx((1 / 2 + 4 / 5 + 2 / 3) / 3)


def test_void_pixels_are_not_counted():
    cm = ConfusionMatrix(num_classes=21)
    target = torch.full((10, 10), 255)
    target[0, 0] = 3
    cm.update(torch.zeros(10, 10, dtype=torch.long), target)
    assert cm.mat.sum().item() == 1 and cm.mat[3, 0].item() == 1


def test_shape_mismatch_is_a_value_error():
    cm = ConfusionMatrix(num_classes=21)
    with pytest.raises(ValueError, match="same shape"):
        cm.update(torch.zeros(2, 5, 5, dtype=torch.long), torch.zeros(2, 5, 6, dtype=torch.long))


def test_reset_clears_counts_and_empty_matrix_gives_nan():
    cm = ConfusionMatrix(num_classes=21)
    assert math.isnan(cm.compute()["mean_iou"])
    cm.update(torch.ones(3, 3, dtype=torch.long), torch.ones(3, 3, dtype=torch.long))
    assert cm.compute()["mean_iou"] == 1.0
    cm.reset()
    assert cm.mat.sum().item() == 0
    assert math.isnan(cm.compute()["pixel_accuracy"])


def test_all_reduce_without_distributed_is_a_no_op():
    cm = ConfusionMatrix(num_classes=21)
    cm.update(torch.ones(3, 3, dtype=torch.long), torch.ones(3, 3, dtype=torch.long))
    before = cm.mat.clone()
    cm.all_reduce()
    assert torch.equal(cm.mat, before)


def test_uint8_masks_from_the_real_voc_annotation(samples):
    mask = np.array(Image.open(samples / "VOC2012/SegmentationClass/2007_000032.png"))
    target = torch.from_numpy(mask)  # uint8 with a 255 border
    cm = ConfusionMatrix(num_classes=len(CLASS_NAMES))
    cm.update(target.clone(), target)
    got = cm.compute()
    assert got["pixel_accuracy"] == 1.0 and got["mean_iou"] == 1.0
    present = [CLASS_NAMES[i] for i, v in enumerate(got["iou"]) if not math.isnan(v)]
    assert present == ["background", "aeroplane", "person"]
    assert cm.mat.sum().item() == int(np.sum(mask != 255))
