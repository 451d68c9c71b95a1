"""The recipe a run plans from the data and the machine when --time comes without one (no @recipe file):
each flag the command line does not give is chosen by one rule of RULES, printed with its reason, and
the whole recipe is written to the run folder as recipe.txt (`python main.py @<run>/recipe.txt` re-runs
it). The rules are this table, not a search: they restate what the hand-made recipes of recipes/ found
on their validation splits (docs/results/planned.md).

    facts = data_facts(train_set, counts, image_format)      # sizes, channels, classes, class shares
    choices = data_choices(facts, device)                     # every rule but the width
    width = width_choice(facts, batch, seconds, step_time)   # the widest U-Net the budget trains enough
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from dataset import SegmentationDataset, to_device
from images import ImageFormat
from training import train_step
from utils import Runtime

CROP_LIMITS = {"cpu": 256, "cuda": 512}  # the largest training crop on each device
BATCHES = {"cpu": 4, "cuda": 16}
WIDTHS = (16, 32, 64)  # --base_channels tried, narrowest first
MIN_STEPS = 1200  # a width is chosen only if the budget trains it at least this many steps ...
MIN_PASSES = 20  # ... and this many passes over the training images
DICE_SHARE = 0.2  # Dice is added to the loss when the rarest class holds less than this of the pixels
WEIGHTS_SHARE = 0.01  # ENet's class weights when, with 3 classes or more, the rarest holds less
TRAIN_SHARE = 0.9  # of the time left, what the width rule counts for training (the rest: validation)

RULES = (
    ("--crop_size", "the largest multiple of 32 up to the images' median short side, at most 256 on a "
     "CPU and 512 on a GPU"),
    ("--scale", "0.5-1.25 when the median short side is at least three crops (large images are also "
     "seen zoomed out), else 0.75-1.25"),
    ("--batch_size", "4 on a CPU, 16 on a GPU"),
    ("--optimizer", "AdamW at --lr 1e-3: what every hand-made recipe here trains with"),
    ("--loss", "ce+dice when the rarest class holds less than 20% of the labelled pixels, else ce"),
    ("--class_weights", "enet with 3 classes or more when the rarest holds less than 1%, else none"),
    ("--color_jitter", "0.3 for 8-bit RGB images that have an up (photographs of scenes), else 0"),
    ("--vflip --rot90", "on when the data set's format says its images have no up (fundus, endoscopy, "
     "dermoscopy, microscopy, aerial)"),
    ("--base_channels", "the widest of 16, 32 and 64 whose measured step time trains at least 1,200 "
     "steps and 20 passes over the training images in the time left (else 16)"),
    ("--epochs, --val_every", "from the budget (schedule.py): validations take at most 10% of it"),
)  # fmt: skip


@dataclass(frozen=True)
class DataFacts:
    """What the rules read from the training split."""

    images: int
    short_side: int  # median of the images' shorter sides, pixels
    channels: int
    rgb8: bool  # 8-bit RGB (photographs)
    classes: int
    rarest_share: float  # the rarest class's share of the labelled pixels
    upright: bool  # the format's images have an up (layouts.DataLayout.upright)


@dataclass(frozen=True)
class Choice:
    dest: str  # the argparse destination (crop_size)
    value: object  # as argparse holds it
    reason: str


def data_facts(train_set: SegmentationDataset, counts: np.ndarray, fmt: ImageFormat) -> DataFacts:
    """The facts of a training set from its images' headers and its masks' pixel counts (images x
    classes, void not counted)."""
    sizes = train_set.image_sizes()
    pixels = counts.sum(0)
    return DataFacts(
        images=len(train_set),
        short_side=fmt.size or int(np.median([min(size) for size in sizes])),
        channels=fmt.channels,
        rgb8=fmt.is_rgb8,
        classes=len(pixels),
        rarest_share=float(pixels.min() / max(pixels.sum(), 1)),
        upright=train_set.layout.upright,
    )


def data_choices(facts: DataFacts, device: str) -> list[Choice]:
    """Every rule of RULES but the width's and the schedule's, for `facts` on `device` (cpu, cuda)."""
    crop = max(64, min(CROP_LIMITS[device], facts.short_side // 32 * 32))
    wide = facts.short_side >= 3 * crop
    side = f"median short side {facts.short_side} px"
    rare = f"rarest class {facts.rarest_share:.1%} of the pixels"
    jitter = facts.rgb8 and facts.upright
    turns = not facts.upright
    colour = "not 8-bit RGB" if not facts.rgb8 else "8-bit RGB " + ("with an up" if jitter else "with no up")
    return [
        Choice("crop_size", crop, f"{side}; at most {CROP_LIMITS[device]} on {device}"),
        Choice("scale", (0.5, 1.25) if wide else (0.75, 1.25), f"{side}, crop {crop}"),
        Choice("batch_size", BATCHES[device], f"on {device}"),
        Choice("optimizer", "adamw", "every hand-made recipe"),
        Choice("lr", 1e-3, "AdamW's"),
        Choice("loss", "ce+dice" if facts.rarest_share < DICE_SHARE else "ce", rare),
        Choice(
            "class_weights",
            "enet" if facts.classes > 2 and facts.rarest_share < WEIGHTS_SHARE else "none",
            f"{facts.classes} classes, {rare}",
        ),
        Choice(
            "color_jitter",
            0.3 if jitter else 0.0,
            colour + (": photographs of scenes" if jitter else ": not photographs of scenes"),
        ),
        Choice("vflip", turns, "images with no up" if turns else "images have an up"),
        Choice("rot90", turns, "images with no up" if turns else "images have an up"),
    ]


def width_choice(
    facts: DataFacts, batch_size: int, seconds: float, step_time: Callable[[int], float]
) -> Choice:
    """The widest of WIDTHS that `seconds` of training (TRAIN_SHARE of them) give MIN_STEPS and
    MIN_PASSES at the step time step_time(width) measures (a wider one is measured only while the
    narrower fits); the reason says what each measured width would give."""
    chosen, lines = WIDTHS[0], []
    for width in WIDTHS:
        step_s = step_time(width)
        steps = int(TRAIN_SHARE * seconds / step_s)
        passes = steps * batch_size / max(facts.images, 1)
        lines.append(f"{width}: {step_s:.3g} s a step, {steps} steps, {passes:.0f} passes")
        if steps < MIN_STEPS or passes < MIN_PASSES:
            break
        chosen = width
    fits = chosen > WIDTHS[0] or len(lines) > 1
    reason = f"the widest that trains {MIN_STEPS} steps and {MIN_PASSES} passes" + (
        "" if fits else " (none does: the narrowest)"
    )
    return Choice("base_channels", chosen, f"{reason}; measured: {'; '.join(lines)}")


def seconds_per_step(
    model: torch.nn.Module,
    loader: torch.utils.data.DataLoader,
    runtime: Runtime,
    steps: int = 3,
    untimed: int = 2,
) -> float:
    """Wall seconds of one training step of `model` (an AdamW step, data loading included), the mean
    of `steps` after `untimed` ones (the first steps allocate and warm caches). The model's weights
    change; pass a throwaway one."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    scaler = torch.amp.GradScaler(runtime.device.type, enabled=runtime.amp_dtype == torch.float16)
    model.train()
    batches = iter(loader)
    for i in range(untimed + steps):
        if i == untimed:
            if runtime.device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
        images, masks = next(batches)
        images, masks = to_device(images, masks, runtime.device, runtime.channels_last, loader.dataset.format)
        train_step(model, images, masks, optimizer, scaler, runtime.amp_dtype).item()
    return (time.perf_counter() - start) / steps


def recipe_text(lines: list[tuple[str, str]], command: str) -> str:
    """recipe.txt: a header naming the command that planned it, then one `--flag value  # why` a line
    (`# --flag off: why` for a switch planned off)."""
    header = [
        f"# Planned by `{command}`.",
        "# Re-run: python main.py @<this file> --name <a new run name>; flags after it override it.",
    ]
    return "\n".join([*header, *(f"{flag}  # {why}" if why else flag for flag, why in lines)]) + "\n"


def flag_line(dest: str, value: object) -> str:
    """A recipe line's flag and value(s) as argparse reads them back ("" for a switch that is off)."""
    if isinstance(value, bool):
        return f"--{dest}" if value else ""
    if isinstance(value, (tuple, list)):
        return f"--{dest} " + " ".join(f"{v:g}" if isinstance(v, float) else str(v) for v in value)
    if isinstance(value, float):
        return f"--{dest} {value:g}"
    return f"--{dest} {value}"
