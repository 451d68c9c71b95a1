"""A run's records: its checkpoints (written through checkpoints.py), TensorBoard curves and prediction
panel, metrics.jsonl, the split lists, the epoch's console line, and the JSON line of --eval_only.

Everything lands under <save_dir>/<name>/ and <tensorboard_dir>/<name>/. Under torchrun only rank 0
makes a RunRecords (main.py: `if is_main:`).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.tensorboard import SummaryWriter

from checkpoints import save_training_checkpoint
from dataset import SegmentationDataset
from images import display
from inference import InferenceOptions, predict_classes
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
    options: InferenceOptions,
) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(image, ground truth, prediction) as HxWx3 uint8 arrays in the data set's colours, for the
    images at `indices`, each predicted at its own size as evaluation and tools/predict.py predict it."""
    model.eval()
    colors = dataset.layout.colors
    rows = []
    for i in indices:
        image, mask = dataset[i]
        pred = predict_classes(model, image[None], device, options, dataset.format)[0].numpy()
        picture = display(image.permute(1, 2, 0).numpy(), dataset.format)
        rows.append((picture, colorize(mask.numpy(), colors), colorize(pred, colors)))
    return rows


def prediction_panel(
    model: torch.nn.Module,
    dataset: SegmentationDataset,
    device: torch.device,
    options: InferenceOptions,
    count: int = 4,
) -> np.ndarray:
    """The first `count` rows of prediction_rows, each row side by side and the rows one under another:
    HxWx3 uint8, TensorBoard's val/predictions."""
    indices = list(range(min(count, len(dataset))))
    rows = [np.concatenate(row, axis=1) for row in prediction_rows(model, dataset, device, indices, options)]
    widest = max(r.shape[1] for r in rows)
    return np.concatenate([np.pad(r, ((0, 4), (0, widest - r.shape[1]), (0, 0))) for r in rows])


def keep_metrics_until(path: Path, epoch: int) -> None:
    """Drop metrics.jsonl lines of epochs after `epoch` (written by a run that died before saving them)."""
    if path.is_file():
        lines = [
            line for line in path.read_text().splitlines() if line and json.loads(line)["epoch"] <= epoch
        ]
        write_text_atomically(path, "".join(f"{line}\n" for line in lines))


@dataclass(frozen=True)
class TrainingState:
    """What a training checkpoint saves beside `about` (model_config, classes, data, image, args: plain
    values only, so checkpoints load with weights_only=True)."""

    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler
    about: dict


class RunRecords:
    """The files of one training run, written by rank 0 alone: <run_dir>/ (checkpoints, metrics.jsonl,
    splits/) and <tensorboard_dir>/<name>/ (curves and the prediction panel)."""

    def __init__(
        self, run_dir: Path, tensorboard_dir: Path, start_epoch: int, start_step: int, resumed: bool
    ):
        self.run_dir = run_dir
        run_dir.mkdir(parents=True, exist_ok=True)
        keep_metrics_until(run_dir / "metrics.jsonl", start_epoch)
        # purge_step drops points a killed run logged after its last checkpoint: curves continue cleanly.
        self.writer = SummaryWriter(tensorboard_dir, purge_step=start_step if resumed else None)

    def write_splits(self, *datasets: SegmentationDataset) -> Path:
        """<run_dir>/splits/<split>.txt: the ids each data set used, one a line (held-out splits are
        computed, so this is where they can be read)."""
        folder = self.run_dir / "splits"
        folder.mkdir(exist_ok=True)
        for dataset in datasets:
            write_text_atomically(folder / f"{dataset.split}.txt", "".join(f"{i}\n" for i in dataset.ids))
        return folder

    def log_train(self, step: int, loss: float, lr: float) -> None:
        self.writer.add_scalar("train/loss", loss, step)
        self.writer.add_scalar("train/lr", lr, step)

    def log_validation(
        self, epoch: int, step: int, metrics: dict, class_names: tuple[str, ...], panel: np.ndarray
    ) -> None:
        """TensorBoard scalars and the prediction panel (HxWx3 uint8), and one metrics.jsonl line, for
        validation after `epoch` epochs."""
        self.writer.add_scalar("val/loss", metrics["loss"], step)
        for key in ("mean_iou", "pixel_accuracy", "mean_accuracy", "mean_dice"):
            self.writer.add_scalar(f"val/{key}", metrics[key], step)
        for key in ("iou", "dice"):
            for name, value in zip(class_names, metrics[key], strict=True):
                if not math.isnan(value):
                    self.writer.add_scalar(f"val/{key}/{name}", value, step)
        self.writer.add_image("val/predictions", panel, step, dataformats="HWC")
        line = {"epoch": epoch, "step": step, "loss": metrics["loss"], **eval_summary(metrics, class_names)}
        with open(self.run_dir / "metrics.jsonl", "a") as f:
            f.write(json.dumps(line) + "\n")

    def save(self, state: TrainingState, progress: dict, best: bool = False) -> None:
        """last.pth (and best.pth, a hard link to the same file, when `best`), in one atomic write.
        progress: epoch (epochs done), step, best_miou, epoch_step (batches of the next epoch done: a
        step checkpoint's), plan."""
        paths = [*([self.run_dir / "best.pth"] if best else []), self.run_dir / "last.pth"]
        save_training_checkpoint(
            paths, state.model, state.about, state.optimizer, state.scheduler, state.scaler, progress
        )
        self.writer.flush()

    def close(self, best_miou: float, tensorboard_dir: str) -> None:
        """Close the TensorBoard files and print where everything is."""
        self.writer.close()
        print(
            f"done: best val mean IoU {best_miou:.4f}; checkpoints in {self.run_dir}/ (best.pth, "
            f"last.pth); curves: tensorboard --logdir {tensorboard_dir}"
        )


def epoch_line(
    epoch: int,
    epochs: int,
    seconds: float,
    metrics: dict | None,
    class_names: tuple[str, ...],
    best: bool,
    run: str,
) -> str:
    """The console line after `epoch` of `epochs` (validated when metrics is given), with the whole
    run's elapsed and remaining time; for two classes the second class's IoU and Dice (the figures
    people quote for a binary data set)."""
    line = f"epoch {epoch}/{epochs}  {seconds:.0f}s  (run: {run})"
    if metrics is not None:
        line += (
            f"  val loss {metrics['loss']:.4f}  mean IoU {metrics['mean_iou']:.4f}  "
            f"pixel acc {metrics['pixel_accuracy']:.4f}"
        )
        if len(class_names) == 2:
            line += f"  {class_names[1]} IoU {metrics['iou'][1]:.4f} Dice {metrics['dice'][1]:.4f}"
    return line + ("  (best)" if best else "")
