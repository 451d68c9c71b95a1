"""Draw the README's figures into assets/, from the model itself and from a real run's outputs.

    python tools/figures.py architecture                # assets/architecture.png, from model.py
    python tools/figures.py run --name demo             # assets/demo_curves.png, assets/demo_predictions.png
    python tools/figures.py run --name camvid --data_dir data/camvid --split test

`run` reads <tensorboard_dir>/<name> (the event files), <save_dir>/<name>/best.pth and --count images of
--split spread evenly over its list; after `python main.py --demo` the defaults point at that run.
Needs matplotlib (`pip install matplotlib`; requirements-dev.txt has it): without it, one line says so.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

try:
    import matplotlib
except ImportError:  # not in requirements.txt: only this maintainers' figure tool draws with it
    print("error: tools/figures.py draws with matplotlib: pip install matplotlib", file=sys.stderr)
    sys.exit(2)

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from matplotlib.patches import FancyArrowPatch, Rectangle  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from checkpoints import load_checkpoint, load_model  # noqa: E402
from dataset import SegmentationDataset  # noqa: E402
from inference import InferenceOptions  # noqa: E402
from model import build_model, model_config  # noqa: E402
from records import prediction_rows  # noqa: E402
from utils import select_compute  # noqa: E402

ASSETS = Path(__file__).resolve().parents[1] / "assets"
BLOCKS = ("inc", "down1", "down2", "down3", "down4", "up1", "up2", "up3", "up4", "outc")


def block_shapes(model: torch.nn.Module, size: int = 512) -> dict[str, tuple[int, int, int]]:
    """Output (channels, height, width) of each named block, read off a forward pass with hooks."""
    shapes = {}
    hooks = [
        getattr(model, name).register_forward_hook(
            lambda _m, _i, out, name=name: shapes.__setitem__(name, tuple(out.shape[1:]))
        )
        for name in BLOCKS
    ]
    with torch.no_grad():
        model.eval()(torch.zeros(1, 3, size, size))
    for hook in hooks:
        hook.remove()
    return shapes


def draw_architecture(model: torch.nn.Module, path: Path) -> None:
    shapes = block_shapes(model)
    fig, ax = plt.subplots(figsize=(12, 6.5))
    levels = {
        "inc": 0,
        "down1": 1,
        "down2": 2,
        "down3": 3,
        "down4": 4,
        "up1": 3,
        "up2": 2,
        "up3": 1,
        "up4": 0,
    }
    levels["outc"] = 0
    centres = {}
    for k, name in enumerate(BLOCKS):
        channels, height, width = shapes[name]
        x, y = k * 1.2, -levels[name] * 1.3
        box_w = 0.25 + 0.55 * np.log2(channels + 1) / np.log2(max(c for c, _, _ in shapes.values()) + 1)
        colour = "#f6d365" if name == "outc" else "#a1c4fd" if name.startswith("up") else "#c2e9fb"
        ax.add_patch(Rectangle((x - box_w / 2, y - 0.4), box_w, 0.8, facecolor=colour, edgecolor="#333"))
        ax.text(x, y + 0.12, name, ha="center", va="center", fontsize=9, weight="bold")
        ax.text(x, y - 0.15, f"{channels}ch\n{height}x{width}", ha="center", va="center", fontsize=7.5)
        centres[name] = (x, y, box_w)
    arrow = dict(arrowstyle="-|>", mutation_scale=10, color="#333")
    for a, b in zip(BLOCKS, BLOCKS[1:], strict=False):
        (xa, ya, wa), (xb, yb, wb) = centres[a], centres[b]
        ax.add_patch(FancyArrowPatch((xa + wa / 2, ya), (xb - wb / 2, yb), **arrow))
    for down, up in (("inc", "up4"), ("down1", "up3"), ("down2", "up2"), ("down3", "up1")):
        (xa, ya, wa), (xb, yb, wb) = centres[down], centres[up]
        skip = {**arrow, "color": "#888", "linestyle": "--"}
        ax.add_patch(FancyArrowPatch((xa + wa / 2, ya + 0.3), (xb - wb / 2, yb + 0.3), **skip))
    params = sum(p.numel() for p in model.parameters()) / 1e6
    ax.set_title(
        f"UNet(base_channels={shapes['inc'][0]}, num_classes={shapes['outc'][0]}): {params:.1f} M "
        "parameters, for a 512x512 input\n"
        "down: 2x2 max-pool + 2x(3x3 conv, BN, ReLU);  "
        "up: 2x2 transposed conv, concatenate the skip (dashed), 2x(3x3 conv, BN, ReLU);  outc: 1x1 conv",
        fontsize=10,
    )
    ax.set_xlim(-0.8, len(BLOCKS) * 1.2 - 0.4)
    ax.set_ylim(-4 * 1.3 - 0.7, 0.8)
    ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def read_scalars(log_dir: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(log_dir), size_guidance={"scalars": 0})
    events.Reload()
    tags = events.Tags()["scalars"]
    if not tags:
        raise SystemExit(
            f"error: no TensorBoard scalars under {log_dir}: train first (python main.py --demo)"
        )
    return {
        tag: tuple(np.array(v) for v in zip(*[(e.step, e.value) for e in events.Scalars(tag)], strict=True))
        for tag in tags
    }


def draw_curves(scalars: dict, path: Path, title: str, class_weights: str = "none", loss: str = "ce") -> None:
    """Loss (train and val) and validation metrics against the step; class_weights and loss: the run's
    flags (the training loss is then weighted, or has Dice added; the val loss is always plain
    cross-entropy)."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    train_label = "train loss: cross-entropy" + (" + Dice" if loss == "ce+dice" else "")
    train_label += f", {class_weights} weights" if class_weights != "none" else ""
    for tag, label in (("train/loss", train_label), ("val/loss", "val loss: cross-entropy")):
        left.plot(*scalars[tag], label=label, marker="o" if tag.startswith("val") else None, markersize=3)
    left.set_yscale("log")
    left.set_xlabel("step")
    left.set_title("loss (void ignored)")
    left.legend()
    for tag in ("val/mean_iou", "val/pixel_accuracy", "val/mean_accuracy"):
        right.plot(*scalars[tag], label=tag.split("/")[1], marker="o", markersize=3)
    right.set_ylim(0, 1)
    right.set_xlabel("step")
    right.set_title("validation metrics")
    right.legend(loc="lower right")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def draw_predictions(
    checkpoint_path: Path, data_dir: str, path: Path, count: int = 6, split: str = "val"
) -> None:
    """Image, ground truth and prediction of `count` images of `split`, spread evenly over its list,
    the images read as the checkpoint takes them (its channels and normalisation)."""
    device, amp_dtype, channels_last = select_compute("auto", "auto", "auto")
    model, *_, image_format = load_model(checkpoint_path, device, channels_last)
    dataset = SegmentationDataset(data_dir, split, train=False, image_format=image_format)
    indices = np.linspace(0, len(dataset) - 1, min(count, len(dataset))).round().astype(int).tolist()
    options = InferenceOptions(amp_dtype=amp_dtype, channels_last=channels_last)
    rows = prediction_rows(model, dataset, device, indices, options)
    fig, axes = plt.subplots(len(rows), 3, figsize=(7.5, 2.3 * len(rows)), squeeze=False)
    for k, row in enumerate(rows):
        for ax, panel, title in zip(axes[k], row, ("image", "ground truth", "prediction"), strict=True):
            ax.imshow(panel)
            ax.axis("off")
            if k == 0:
                ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="figure", required=True)
    sub.add_parser("architecture", help="assets/architecture.png from model.py")
    run = sub.add_parser("run", help="curves and predictions of a finished run")
    run.add_argument("--name", default="demo")
    run.add_argument("--save_dir", default="experiments/")
    run.add_argument("--tensorboard_dir", default="runs/")
    run.add_argument("--data_dir", default="data/demo")
    run.add_argument("--split", default="val", help="the split list the prediction grid draws from")
    run.add_argument("--count", type=int, default=6, help="images in the prediction grid")
    args = parser.parse_args()
    ASSETS.mkdir(exist_ok=True)
    if args.figure == "architecture":
        draw_architecture(build_model(model_config("unet", 3, 21, 64)), ASSETS / "architecture.png")
        print(f"wrote {ASSETS / 'architecture.png'}")
    else:
        curves, predictions = ASSETS / f"{args.name}_curves.png", ASSETS / f"{args.name}_predictions.png"
        checkpoint = Path(args.save_dir) / args.name / "best.pth"
        flags = load_checkpoint(checkpoint).get("args", {})
        scalars = read_scalars(Path(args.tensorboard_dir) / args.name)
        draw_curves(
            scalars, curves, f"run '{args.name}'", flags.get("class_weights", "none"), flags.get("loss", "ce")
        )
        draw_predictions(checkpoint, args.data_dir, predictions, args.count, args.split)
        print(f"wrote {curves} and {predictions}")


if __name__ == "__main__":
    main()
