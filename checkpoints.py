"""Checkpoints of main.py, in one place: what they hold, saving, loading (pickle disabled), restoring a
run, checking their classes against a data set, and building the model they describe.

    checkpoint = load_checkpoint(path)               # a dict of tensors and plain values
    model = model_from_checkpoint(checkpoint, path)  # the trained network, on the CPU
    names, colors = checkpoint_classes(checkpoint)   # and checkpoint_values(checkpoint): the mask values

A checkpoint holds "model" (the state dict: the whole network, pretrained encoder included, so nothing is
fetched to load it), "model_config" (its architecture and arguments: model.build_model; without an
architecture, a UNet's), "classes" (names,
colours and mask values of the data set), "data" (the format recognised and its value rule), "image"
(channels, dtype and normalisation of the images it takes), "args" (the run's flags) and, for
training, "optimizer", "scheduler", "scaler", "epoch" (epochs done), "step", "best_miou" and
"epoch_step" (batches of the next epoch done: a step checkpoint, on SIGTERM, Ctrl-C or --save_every).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from images import ImageFormat
from layouts import VOC_CLASS_NAMES, VOC_NUM_CLASSES, VOC_PALETTE, DataLayout, mapping_text
from model import build_model, fused_for_inference
from utils import UserError, save_atomically


def load_checkpoint(path: Path) -> dict:
    """Load a checkpoint of main.py with pickle disabled; UserError if it is missing or of the wrong kind."""
    if not path.is_file():
        raise UserError(
            f"checkpoint {path} not found: pass the path of a last.pth or best.pth, or use --resume auto"
        )
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise UserError(f"cannot load checkpoint {path}: {error}".splitlines()[0]) from None
    if not isinstance(checkpoint, dict) or not {"model", "model_config"} <= checkpoint.keys():
        raise UserError(f"{path} is not a checkpoint written by main.py (no model / model_config)")
    return checkpoint


def model_state(model: torch.nn.Module) -> dict:
    """State dict on the CPU, with plain BatchNorm names even when SyncBatchNorm was used."""
    return {k: v.detach().cpu() for k, v in model.state_dict().items()}


def save_training_checkpoint(
    paths: list[Path],
    model: torch.nn.Module,
    about: dict,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    scaler: torch.amp.GradScaler,
    progress: dict,
) -> None:
    """Write the training state to every path in one atomic save (the others hard links). `about`:
    model_config, classes and args; `progress`: epoch, step and best_miou."""
    state = {
        "model": model_state(model),
        **about,
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "scaler": scaler.state_dict(),
        **progress,
    }
    save_atomically(state, *paths)


def restore_training(
    checkpoint: dict | None,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    scaler: torch.amp.GradScaler,
) -> tuple[int, int, float, int]:
    """Load the optimiser, schedule and grad scaler of a training checkpoint; returns (epochs done,
    steps done, best val mean IoU, batches done of the next epoch: a step checkpoint's), (0, 0, -1.0, 0)
    for a new run."""
    if not checkpoint or "optimizer" not in checkpoint:
        return 0, 0, -1.0, 0
    optimizer.load_state_dict(checkpoint["optimizer"])
    scheduler.load_state_dict(checkpoint["scheduler"])
    scaler.load_state_dict(checkpoint["scaler"])
    return checkpoint["epoch"], checkpoint["step"], checkpoint["best_miou"], checkpoint.get("epoch_step", 0)


def find_checkpoint(resume: str, run_dir: Path, layout: DataLayout) -> dict | None:
    """The checkpoint --resume names (PATH, or 'auto': <run_dir>/last.pth when it exists), checked
    against the data set's classes; None for a new run."""
    if not resume:
        return None
    path = run_dir / "last.pth" if resume == "auto" else Path(resume)
    if resume == "auto" and not path.is_file():
        return None
    checkpoint = load_checkpoint(path)
    check_checkpoint_classes(checkpoint, path, layout)
    return checkpoint


# Classes


def checkpoint_classes(checkpoint: dict) -> tuple[tuple[str, ...], np.ndarray]:
    """The class names and colours a checkpoint of main.py was trained with (VOC's for checkpoints
    written before checkpoints stored them)."""
    table = checkpoint.get("classes") or {"names": VOC_CLASS_NAMES, "colors": VOC_PALETTE[:VOC_NUM_CLASSES]}
    return tuple(table["names"]), np.asarray(table["colors"], dtype=np.uint8).reshape(-1, 3)


def checkpoint_values(checkpoint: dict) -> tuple[int, ...]:
    """Each class's value in the masks of the data set a checkpoint was trained on (its index for
    checkpoints written before checkpoints stored the values)."""
    names, _ = checkpoint_classes(checkpoint)
    return tuple((checkpoint.get("classes") or {}).get("values") or range(len(names)))


def check_checkpoint_classes(checkpoint: dict, path: Path, layout: DataLayout) -> None:
    """UserError naming both class lists (or value mappings) when `checkpoint` was trained on other
    classes than `layout`'s."""
    names, _ = checkpoint_classes(checkpoint)
    if names == layout.class_names and checkpoint_values(checkpoint) != layout.mask_values:
        trained = mapping_text(names, checkpoint_values(checkpoint))
        raise UserError(
            f"checkpoint {path} was trained with mask values {trained} "
            f"but data set {layout.root} has {mapping_text(names, layout.mask_values)}: state the values in "
            f"{layout.root / 'classes.txt'} as `name = value` lines"
        )
    if names != layout.class_names:

        def shown(items: tuple[str, ...]) -> str:
            return ", ".join(items[:6]) + (", ..." if len(items) > 6 else "")

        raise UserError(
            f"checkpoint {path} was trained on {len(names)} classes ({shown(names)}) but data set "
            f"{layout.root} has {layout.num_classes} ({shown(layout.class_names)}): pass the --data_dir "
            "it was trained on, or a checkpoint trained on this data set"
        )


# Models


def model_from_checkpoint(checkpoint: dict, path: Path | str) -> torch.nn.Module:
    """The network a loaded checkpoint describes, with its weights, on the CPU, as trained (not folded)."""
    model = build_model(checkpoint["model_config"])
    try:
        model.load_state_dict(checkpoint["model"])
    except RuntimeError as error:
        raise UserError(f"{path} does not fit the model it describes: {str(error).splitlines()[0]}") from None
    return model


def load_model(
    path: Path, device: torch.device, channels_last: bool = False
) -> tuple[torch.nn.Module, tuple[str, ...], np.ndarray, tuple[int, ...], ImageFormat]:
    """The checkpoint's network, folded for inference on `device` in the memory format main.py validates
    in, its classes' names, colours (C x 3) and values in the data set's masks, and the images it takes."""
    checkpoint = load_checkpoint(path)
    names, colors = checkpoint_classes(checkpoint)
    if len(names) != checkpoint["model_config"]["num_classes"]:
        raise UserError(
            f"{path} names {len(names)} classes but its network has "
            f"{checkpoint['model_config']['num_classes']} outputs: it was not written by main.py"
        )
    model = model_from_checkpoint(checkpoint, path)
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    model = fused_for_inference(model.to(device, memory_format=memory_format))
    return model, names, colors, checkpoint_values(checkpoint), ImageFormat.from_dict(checkpoint.get("image"))
