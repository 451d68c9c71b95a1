"""A run's records: its checkpoints (written through checkpoints.py), TensorBoard curves and prediction
panel, metrics.jsonl, the split lists, and the JSON line of --eval_only.

Everything lands under <save_dir>/<name>/ and <tensorboard_dir>/<name>/. Under torchrun only rank 0
keeps records: the others hold a RunRecords made with enabled=False, which writes nothing.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch.utils.tensorboard import SummaryWriter
from tqdm import tqdm

from checkpoints import save_training_checkpoint
from dataset import SegmentationDataset
from images import display
from inference import predict_classes
from layouts import colorize
from utils import write_text_atomically


def eval_summary(metrics: dict, class_names: tuple[str, ...]) -> dict:
    """The --eval_only JSON object, keyed by the data set's class names (Dice after the original keys);
    NaN (a class absent from the whole val set) becomes null."""

    def clean(value: float) -> float | None:
        return None if math.isnan(value) else value

    return {
        "mean_iou": clean(metrics["mean_iou"]),
        "pixel_accuracy": clean(metrics["pixel_accuracy"]),
        "mean_accuracy": clean(metrics["mean_accuracy"]),
        "iou": {name: clean(v) for name, v in zip(class_names, metrics["iou"], strict=True)},
        "mean_dice": clean(metrics["mean_dice"]),
        "dice": {name: clean(v) for name, v in zip(class_names, metrics["dice"], strict=True)},
    }


@torch.no_grad()
def prediction_rows(
    model: torch.nn.Module,
    dataset: SegmentationDataset,
    device: torch.device,
    indices: list[int],
    **options,
) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(image, ground truth, prediction) as HxWx3 uint8 arrays in the data set's colours, for the
    images at `indices`, each predicted at its own size as evaluation and tools/predict.py predict it
    (options: those of inference.band_logits)."""
    model.eval()
    colors = dataset.layout.colors
    rows = []
    for i in indices:
        image, mask = dataset[i]
        pred = predict_classes(model, image[None], device, image_format=dataset.format, **options)[0].numpy()
        picture = display(image.permute(1, 2, 0).numpy(), dataset.format)
        rows.append((picture, colorize(mask.numpy(), colors), colorize(pred, colors)))
    return rows


def prediction_panel(
    model: torch.nn.Module, dataset: SegmentationDataset, device: torch.device, count: int = 4, **options
) -> np.ndarray:
    """The first `count` rows of prediction_rows, each row side by side and the rows one under another:
    HxWx3 uint8, TensorBoard's val/predictions."""
    indices = list(range(min(count, len(dataset))))
    rows = [
        np.concatenate(row, axis=1) for row in prediction_rows(model, dataset, device, indices, **options)
    ]
    widest = max(r.shape[1] for r in rows)
    return np.concatenate([np.pad(r, ((0, 4), (0, widest - r.shape[1]), (0, 0))) for r in rows])


def keep_metrics_until(path: Path, epoch: int) -> None:
    """Drop metrics.jsonl lines of epochs after `epoch` (written by a run that died before saving them)."""
    if path.is_file():
        lines = [
            line for line in path.read_text().splitlines() if line and json.loads(line)["epoch"] <= epoch
        ]
        write_text_atomically(path, "".join(f"{line}\n" for line in lines))


class RunRecords:
    """The files and console lines of one training run. `about` is stored in every checkpoint beside the
    training state (model_config, classes, args: plain values only, so checkpoints load with
    weights_only=True). Tracks the best val mean IoU, from `best_miou` on."""

    def __init__(
        self,
        *,
        save_dir: str,
        tensorboard_dir: str,
        name: str,
        epochs: int,
        about: dict,
        start_epoch: int,
        start_step: int,
        best_miou: float,
        resumed: bool,
        enabled: bool = True,
        plan_state: Callable[[], dict] | None = None,
    ) -> None:
        self.run_dir = Path(save_dir) / name
        self.tensorboard_dir, self.epochs, self.about = tensorboard_dir, epochs, about
        self.best_miou, self.enabled, self.plan_state = best_miou, enabled, plan_state
        self.writer = None
        if enabled:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            keep_metrics_until(self.run_dir / "metrics.jsonl", start_epoch)
            # purge_step drops points a killed run logged after its last checkpoint: curves continue cleanly.
            self.writer = SummaryWriter(
                Path(tensorboard_dir) / name, purge_step=start_step if resumed else None
            )

    def write_splits(self, *datasets: SegmentationDataset) -> Path:
        """<run_dir>/splits/<split>.txt: the ids each data set used, one a line (held-out splits are
        computed, so this is where they can be read)."""
        folder = self.run_dir / "splits"
        if self.enabled:
            folder.mkdir(exist_ok=True)
            for dataset in datasets:
                write_text_atomically(folder / f"{dataset.split}.txt", "".join(f"{i}\n" for i in dataset.ids))
        return folder

    def log_train(self, step: int, loss: float, lr: float) -> None:
        if self.writer:
            self.writer.add_scalar("train/loss", loss, step)
            self.writer.add_scalar("train/lr", lr, step)

    def log_validation(
        self,
        epoch: int,
        step: int,
        metrics: dict,
        model: torch.nn.Module,
        val_set: SegmentationDataset,
        device: torch.device,
        **options,
    ) -> None:
        """TensorBoard scalars and prediction panel (of `model`, predicted with inference options), and one
        metrics.jsonl line, for validation after `epoch` epochs."""
        if not self.enabled:
            return
        class_names = val_set.layout.class_names
        self.writer.add_scalar("val/loss", metrics["loss"], step)
        for key in ("mean_iou", "pixel_accuracy", "mean_accuracy", "mean_dice"):
            self.writer.add_scalar(f"val/{key}", metrics[key], step)
        for key in ("iou", "dice"):
            for name, value in zip(class_names, metrics[key], strict=True):
                if not math.isnan(value):
                    self.writer.add_scalar(f"val/{key}/{name}", value, step)
        panel = prediction_panel(model, val_set, device, **options)
        self.writer.add_image("val/predictions", panel, step, dataformats="HWC")
        line = {"epoch": epoch, "step": step, "loss": metrics["loss"], **eval_summary(metrics, class_names)}
        with open(self.run_dir / "metrics.jsonl", "a") as f:
            f.write(json.dumps(line) + "\n")

    def end_epoch(
        self,
        epoch: int,
        step: int,
        seconds: float,
        metrics: dict | None,
        model: torch.nn.Module,
        optimizer: torch.optim.Optimizer,
        scheduler: torch.optim.lr_scheduler.LRScheduler,
        scaler: torch.amp.GradScaler,
        run_time: str = "",
    ) -> None:
        """After `epoch` epochs (validated when metrics is given): last.pth, best.pth when val mean IoU
        improved (a hard link to the same file), and the epoch's console line (with the whole run's
        elapsed and remaining time)."""
        if not self.enabled:
            return
        line = f"epoch {epoch}/{self.epochs}  {seconds:.0f}s" + (f"  (run: {run_time})" if run_time else "")
        is_best = metrics is not None and metrics["mean_iou"] > self.best_miou
        if metrics is not None:
            line += (
                f"  val loss {metrics['loss']:.4f}  mean IoU {metrics['mean_iou']:.4f}  "
                f"pixel acc {metrics['pixel_accuracy']:.4f}"
            )
            names = self.about["classes"]["names"]
            if len(names) == 2:  # a binary data set: the foreground's figures are the ones people quote
                line += f"  {names[1]} IoU {metrics['iou'][1]:.4f} Dice {metrics['dice'][1]:.4f}"
        if is_best:
            self.best_miou = metrics["mean_iou"]
            line += "  (best)"
        best = [self.run_dir / "best.pth"] if is_best else []
        progress = {
            "epoch": epoch,
            "step": step,
            "best_miou": self.best_miou,
            "epoch_step": 0,
            **self._plan(),
        }
        # One write; best.pth a hard link to it.
        save_training_checkpoint(
            [*best, self.run_dir / "last.pth"], model, self.about, optimizer, scheduler, scaler, progress
        )
        self.writer.flush()
        tqdm.write(line)

    def save_step(
        self,
        epochs_done: int,
        step: int,
        batches: int,
        model: torch.nn.Module,
        optimizer: torch.optim.Optimizer,
        scheduler: torch.optim.lr_scheduler.LRScheduler,
        scaler: torch.amp.GradScaler,
    ) -> None:
        """A step checkpoint in last.pth: `batches` of epoch epochs_done + 1 done, `step` in all;
        --resume auto continues with the next batch."""
        if not self.enabled:
            return
        progress = {
            "epoch": epochs_done,
            "step": step,
            "best_miou": self.best_miou,
            "epoch_step": batches,
            **self._plan(),
        }
        save_training_checkpoint(
            [self.run_dir / "last.pth"], model, self.about, optimizer, scheduler, scaler, progress
        )
        self.writer.flush()

    def _plan(self) -> dict:
        return {"plan": self.plan_state()} if self.plan_state else {}

    def close(self) -> None:
        """Close the TensorBoard files and print where everything is."""
        if not self.enabled:
            return
        self.writer.close()
        print(
            f"done: best val mean IoU {self.best_miou:.4f}; checkpoints in {self.run_dir}/ (best.pth, "
            f"last.pth); curves: tensorboard --logdir {self.tensorboard_dir}"
        )
