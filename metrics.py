"""Segmentation metrics from one confusion matrix accumulated over a whole data set."""

from __future__ import annotations

import math

import torch
import torch.distributed as dist

from layouts import IGNORE_INDEX


class ConfusionMatrix:
    """Counts (target class, predicted class) pixel pairs; rows are targets, columns predictions.

    Pixels whose target is ``ignore_index`` are not counted. The counts live on the device of the
    first update and ``update`` never waits for the device, so it can run inside a GPU loop.
    """

    def __init__(self, num_classes: int, ignore_index: int = IGNORE_INDEX) -> None:
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.mat: torch.Tensor | None = None  # num_classes x num_classes, int64

    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        """Add integer class maps ``pred`` and ``target`` of equal shape (any shape)."""
        if pred.shape != target.shape:
            raise ValueError(
                f"pred and target must have the same shape, got {tuple(pred.shape)} and {tuple(target.shape)}"
            )
        n = self.num_classes
        if self.mat is None:
            self.mat = torch.zeros(n, n, dtype=torch.int64, device=target.device)
        target = target.reshape(-1).long()
        index = target * n + pred.reshape(-1).long()
        # Ignored pixels go to one extra bin that is dropped. A scatter-add into a fixed-size buffer,
        # unlike torch.bincount (which reads the maximum back to the host on CUDA), never syncs.
        index = torch.where(target == self.ignore_index, n * n, index)
        counts = torch.zeros(n * n + 1, dtype=torch.int64, device=index.device)
        counts.index_add_(0, index, torch.ones_like(index))
        self.mat += counts[: n * n].view(n, n)

    def all_reduce(self) -> None:
        """Sum the counts of every process when torch.distributed is initialised; else do nothing."""
        if not (dist.is_available() and dist.is_initialized()):
            return
        if self.mat is None:  # a process that saw no images still has to take part
            device = (
                torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else "cpu"
            )
            self.mat = torch.zeros(self.num_classes, self.num_classes, dtype=torch.int64, device=device)
        dist.all_reduce(self.mat)

    def compute(self) -> dict:
        """pixel_accuracy, mean_accuracy, mean_iou, mean_dice (floats) and per-class iou, accuracy, dice
        (lists); dice = 2 TP / (target + predicted pixels), the F1 score.

        A class with a zero denominator gets NaN and is left out of the means.
        """
        n = self.num_classes
        mat = torch.zeros(n, n, dtype=torch.float64) if self.mat is None else self.mat.double().cpu()
        diag = mat.diag()
        target_total = mat.sum(1)
        predicted_total = mat.sum(0)
        accuracy = diag / target_total  # 0/0 = NaN for a class with no pixels
        iou = diag / (target_total + predicted_total - diag)
        dice = 2 * diag / (target_total + predicted_total)  # F1 of each class
        total = mat.sum().item()
        return {
            "pixel_accuracy": diag.sum().item() / total if total else math.nan,
            "mean_accuracy": accuracy.nanmean().item(),
            "mean_iou": iou.nanmean().item(),
            "iou": iou.tolist(),
            "accuracy": accuracy.tolist(),
            "mean_dice": dice.nanmean().item(),
            "dice": dice.tolist(),
        }

    def reset(self) -> None:
        if self.mat is not None:
            self.mat.zero_()
