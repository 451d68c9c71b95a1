"""Train and validate a BatchNorm U-Net on PASCAL VOC 2012 + SBD (trainaug) or your own labelled
images (labelme, CVAT, the plain layout), logging to TensorBoard.

python main.py --demo                              # synthetic data, CPU, a few minutes
python main.py --data_dir data/ --epochs 100       # VOC-aug, after `python tools/voc.py`
python main.py --data_dir my_labelme_export/       # your own data: the layout is recognised
torchrun --nproc_per_node 4 main.py ...            # several GPUs (--batch_size is per GPU)
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel
from torch.utils.tensorboard import SummaryWriter
from tqdm import tqdm

from dataset import SegmentationDataset, make_loader, set_epoch, to_device
from inference import add_inference_flags, band_logits, inference_options, predict_classes
from layouts import IGNORE_INDEX, DataLayout, check_checkpoint_classes, colorize, describe
from metrics import ConfusionMatrix
from model import UNet, fused_for_inference
from utils import (
    UserError,
    autocast,
    broadcast_buffers,
    init_distributed,
    load_checkpoint,
    save_atomically,
    seed_everything,
    select_amp,
    select_channels_last,
    select_device,
    user_error_message,
    write_text_atomically,
)

DEMO_DEFAULTS = {  # --demo: a small U-Net on tools/demo_data.py's images, a few minutes on a CPU
    "name": "demo",
    "epochs": 20,
    "batch_size": 8,
    "crop_size": 96,
    "scale": (0.75, 1.5),
    "base_channels": 16,
    "optimizer": "adamw",
    "lr": 3e-3,
    "weight_decay": 1e-4,
    "warmup_epochs": 1,
    "print_freq": 5,
}


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--data_dir",
        default="data/",
        help="the data set: a folder holding VOCdevkit/ (prepared by tools/voc.py), a labelme or CVAT "
        "export, or the plain layout (README: Train on your own data)",
    )
    parser.add_argument("--save_dir", default="experiments/", help="checkpoints go to <save_dir>/<name>/")
    parser.add_argument(
        "--tensorboard_dir", default="runs/", help="TensorBoard logs go to <tensorboard_dir>/<name>/"
    )
    parser.add_argument("--name", default="unet", help="run name")
    # Data
    parser.add_argument("--batch_size", type=int, default=8, help="images per step and per process")
    parser.add_argument("--epochs", type=int, default=100, help="passes over the training set")
    parser.add_argument("--crop_size", type=int, default=320, help="training crop side in pixels")
    parser.add_argument(
        "--scale",
        type=float,
        nargs=2,
        default=(0.5, 2.0),
        metavar=("MIN", "MAX"),
        help="random scale range of training images",
    )
    parser.add_argument(
        "--val_split", default="val", help="the split list validated on (e.g. test, with --eval_only)"
    )
    parser.add_argument(
        "--num_workers",
        type=int,
        default=-1,
        help="data loader processes per process (0 = main process; -1 = 8 on a GPU, 0 on a CPU)",
    )
    # Model
    parser.add_argument("--base_channels", type=int, default=64, help="U-Net width (64 = the paper's)")
    parser.add_argument(
        "--sync_bn", action="store_true", help="synchronise BatchNorm statistics across processes"
    )
    # Optimiser and schedule
    parser.add_argument(
        "--optimizer", choices=("sgd", "adamw"), default="sgd", help="SGD with momentum, or AdamW"
    )
    parser.add_argument("--lr", type=float, default=0.01, help="peak learning rate")
    parser.add_argument("--momentum", type=float, default=0.9, help="SGD momentum")
    parser.add_argument(
        "--weight_decay", type=float, default=1e-4, help="on conv weights (not BN, not biases)"
    )
    parser.add_argument("--warmup_epochs", type=float, default=1.0, help="linear warm-up, then poly decay")
    parser.add_argument("--poly_power", type=float, default=0.9, help="lr = peak * (1 - progress) ** power")
    parser.add_argument(
        "--class_weights",
        choices=("none", "median_freq"),
        default="none",
        help="loss weight of each class; median_freq: median frequency / class frequency (SegNet's "
        "balancing), counted on the training masks",
    )
    # Speed
    parser.add_argument(
        "--device", choices=("auto", "cpu", "cuda"), default="auto", help="auto: CUDA when present"
    )
    parser.add_argument(
        "--amp",
        choices=("auto", "off", "bf16", "fp16"),
        default="auto",
        help="mixed precision; auto: bf16 where the GPU or CPU supports it natively, else fp16 "
        "on GPUs and off on CPUs",
    )
    parser.add_argument(
        "--channels_last",
        choices=("auto", "on", "off"),
        default="auto",
        help="NHWC memory format; auto: on whenever mixed precision is on",
    )
    parser.add_argument("--compile", action="store_true", help="torch.compile the model")
    # Runs
    parser.add_argument(
        "--resume", default="", help="checkpoint to continue from, or 'auto' for the run's last.pth"
    )
    parser.add_argument(
        "--eval_only", action="store_true", help="validate the --resume checkpoint and print JSON"
    )
    add_inference_flags(parser)
    parser.add_argument(
        "--seed", type=int, default=0, help="seeds the weights, the shuffle and the augmentation"
    )
    parser.add_argument("--deterministic", action="store_true", help="reproducible kernels (slower on GPUs)")
    parser.add_argument(
        "--print_freq", type=int, default=20, help="steps between loss reads and TensorBoard points"
    )
    parser.add_argument(
        "--val_every", type=int, default=1, help="validate every N epochs (and after the last)"
    )
    parser.add_argument(
        "--demo",
        action="store_true",
        help="generate and prepare a synthetic data set under <data_dir>/demo and train a small U-Net on it",
    )
    return parser


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = get_args_parser()
    args = parser.parse_args(argv)
    if args.demo:  # demo settings replace the defaults; flags given on the command line still win
        parser.set_defaults(**DEMO_DEFAULTS)
        args = parser.parse_args(argv)
        args.data_dir = str(Path(args.data_dir) / "demo")
    if args.tta and not args.eval_only:
        parser.error("--tta applies to --eval_only (validation during training stays plain)")
    if args.eval_only and not args.resume:
        parser.error("--eval_only needs --resume PATH (the checkpoint to evaluate)")
    return args


def prepare_demo_data(data_dir: Path) -> None:
    """Generate and prepare the synthetic data set, unless it is already there."""
    from tools.demo_data import make_demo_data
    from tools.voc import prepare

    if not (data_dir / "VOCdevkit" / "VOC2012" / "ImageSets" / "Segmentation" / "trainaug.txt").is_file():
        print(f"demo: writing a synthetic VOC 2012 + SBD data set to {data_dir}")
        make_demo_data(data_dir)
        report = prepare(data_dir, progress=False)
        print(f"demo: tools/voc.py wrote {report['written']} masks and {report['trainaug']} trainaug ids")


def get_val_dataset(layout: DataLayout, args: argparse.Namespace) -> SegmentationDataset:
    val = SegmentationDataset(layout, args.val_split, train=False)
    val.scan_masks()  # a bad mask stops the run here, before anything is written
    return val


def get_train_dataset(layout: DataLayout, args: argparse.Namespace) -> tuple[SegmentationDataset, np.ndarray]:
    """The training split and its pixel counts (images x classes), read once: a bad mask stops the run."""
    train = SegmentationDataset(
        layout, train=True, crop_size=args.crop_size, scale=tuple(args.scale), seed=args.seed
    )
    return train, train.scan_masks()


def get_class_weights(counts: np.ndarray, mode: str) -> torch.Tensor | None:
    """None for --class_weights none. median_freq (Eigen & Fergus 2015, SegNet): the frequency of a
    class is its pixels over the labelled pixels of the images where it appears; its weight is the
    median frequency over its own. A class no training image holds gets weight 0."""
    if mode == "none":
        return None
    present = counts > 0
    pixels = counts.sum(0)
    seen = pixels > 0
    freq = pixels[seen] / (counts.sum(1, keepdims=True) * present).sum(0)[seen]
    weights = np.zeros(counts.shape[1])
    weights[seen] = np.median(freq) / freq
    return torch.tensor(weights, dtype=torch.float32)


def get_optimizer(model: torch.nn.Module, args: argparse.Namespace) -> torch.optim.Optimizer:
    decay = [p for p in model.parameters() if p.ndim > 1]  # conv weights; BatchNorm and biases get none
    no_decay = [p for p in model.parameters() if p.ndim <= 1]
    groups = [{"params": decay, "weight_decay": args.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    # The fused update (one kernel for all parameters), on CPU as on CUDA: faster than the default
    # per-parameter loop on both.
    if args.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=args.lr, momentum=args.momentum, fused=True)
    return torch.optim.AdamW(groups, lr=args.lr, fused=True)


def get_scheduler(optimizer: torch.optim.Optimizer, steps_per_epoch: int, args: argparse.Namespace):
    total = max(1, args.epochs * steps_per_epoch)
    warmup = min(int(args.warmup_epochs * steps_per_epoch), total - 1)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return max(0.0, 1 - (step - warmup) / (total - warmup)) ** args.poly_power

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def criterion(
    logits: torch.Tensor,
    masks: torch.Tensor,
    weight: torch.Tensor | None = None,
    reduction: str = "mean",
) -> torch.Tensor:
    """Cross-entropy over non-void pixels (their mean, or sum; weighted by class when `weight` is
    given), in float32 whatever the autocast precision."""
    return F.cross_entropy(
        logits.float(), masks, weight=weight, ignore_index=IGNORE_INDEX, reduction=reduction
    )


class NonFiniteLoss(Exception):
    pass


def train_step(model, images, masks, optimizer, scaler, amp_dtype, class_weights=None) -> torch.Tensor:
    """Forward, backward and update on one normalised batch; returns the loss, still on the device."""
    with autocast(images.device, amp_dtype):
        loss = criterion(model(images), masks, class_weights)
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    scaler.step(optimizer)
    scaler.update()
    return loss.detach()


def train_one_epoch(
    model, optimizer, scheduler, scaler, loader, device, epoch, step, args, writer, class_weights=None
) -> int:
    """One pass over the training loader; returns the global step. Reads the loss back from the device
    only every --print_freq steps, so the step never waits for the host."""
    model.train()
    set_epoch(loader, epoch)
    running = torch.zeros((), device=device)
    first_bad_step = torch.full((), -1, device=device, dtype=torch.long)  # found without a host sync
    total = len(loader) * args.batch_size * args.world_size
    desc = f"train {epoch + 1}/{args.epochs}"
    with tqdm(
        total=total, desc=desc, unit="img", disable=args.rank != 0, dynamic_ncols=True, leave=False
    ) as bar:
        for i, (images, masks) in enumerate(loader):
            images, masks = to_device(images, masks, device, args.channels_last_on)
            loss = train_step(model, images, masks, optimizer, scaler, args.amp_dtype, class_weights)
            scheduler.step()
            step += 1
            running += loss
            first_bad_step = torch.where((first_bad_step < 0) & ~torch.isfinite(loss), step, first_bad_step)
            bar.update(len(images) * args.world_size)
            if (i + 1) % args.print_freq == 0 or i + 1 == len(loader):
                check_finite(first_bad_step, epoch)
                mean_loss = running.item() / (i % args.print_freq + 1)
                running.zero_()
                lr = optimizer.param_groups[0]["lr"]
                bar.set_postfix(loss=f"{mean_loss:.4f}", lr=f"{lr:.2e}")
                if writer:
                    writer.add_scalar("train/loss", mean_loss, step)
                    writer.add_scalar("train/lr", lr, step)
    return step


def check_finite(first_bad_step: torch.Tensor, epoch: int) -> None:
    bad = first_bad_step
    if dist.is_initialized():
        bad = bad.clone()
        dist.all_reduce(bad, op=dist.ReduceOp.MAX)
    if bad.item() >= 0:
        raise NonFiniteLoss(f"non-finite loss at epoch {epoch + 1}, step {bad.item()}")


@torch.no_grad()
def evaluate(model, loader, device, args) -> dict:
    """Metrics of one confusion matrix over the whole validation set, and the pixel-mean loss; each
    image predicted whole (or in tiles above --tile) at its own size, as tools/predict.py predicts it.
    Pass fused_for_inference(model): the same numbers as the model in eval mode, faster."""
    model.eval()
    confusion = ConfusionMatrix(loader.dataset.layout.num_classes, IGNORE_INDEX)
    loss_sum = torch.zeros((), device=device, dtype=torch.float64)
    pixels = torch.zeros((), device=device, dtype=torch.float64)
    total = len(loader.dataset)  # every rank's share together: the bar counts for all processes
    options = inference_options(args, args.amp_dtype, args.channels_last_on)
    with tqdm(
        total=total, desc="val", unit="img", disable=args.rank != 0, dynamic_ncols=True, leave=False
    ) as bar:
        for i, (images, masks) in enumerate(loader):
            masks = masks.to(device, non_blocking=True).long()
            for top, bottom, logits in band_logits(model, images, device, **options):
                rows = masks[:, top:bottom]
                loss_sum += criterion(logits, rows, reduction="sum")
                pixels += (rows != IGNORE_INDEX).sum()
                confusion.update(logits.argmax(1), rows)
            bar.update(len(images) * args.world_size)
            if (i + 1) % args.print_freq == 0:
                bar.set_postfix(loss=f"{(loss_sum / pixels.clamp(min=1)).item():.4f}")
    confusion.all_reduce()
    if dist.is_initialized():
        dist.all_reduce(loss_sum)
        dist.all_reduce(pixels)
    metrics = confusion.compute()
    metrics["loss"] = (loss_sum / pixels.clamp(min=1)).item()
    return metrics


@torch.no_grad()
def prediction_rows(model, dataset: SegmentationDataset, device, count: int, **options) -> list:
    """(image, ground truth, prediction) as HxWx3 uint8 arrays in the data set's colours, for the first
    `count` validation images, each predicted at its own size as evaluate and tools/predict.py do
    (options: those of inference.band_logits)."""
    model.eval()
    colors = dataset.layout.colors
    rows = []
    for i in range(min(count, len(dataset))):
        image, mask = dataset[i]
        pred = predict_classes(model, image[None], device, **options)[0].numpy()
        rows.append((image.permute(1, 2, 0).numpy(), colorize(mask.numpy(), colors), colorize(pred, colors)))
    return rows


def prediction_panel(model, dataset: SegmentationDataset, device, args, count: int = 4) -> np.ndarray:
    """The rows of prediction_rows side by side and one under another: HxWx3 uint8 for TensorBoard."""
    rows = [
        np.concatenate(row, axis=1)
        for row in prediction_rows(
            model, dataset, device, count, **inference_options(args, args.amp_dtype, args.channels_last_on)
        )
    ]
    widest = max(r.shape[1] for r in rows)
    return np.concatenate([np.pad(r, ((0, 4), (0, widest - r.shape[1]), (0, 0))) for r in rows])


def log_validation(writer, metrics: dict, class_names: tuple[str, ...], step: int) -> None:
    writer.add_scalar("val/loss", metrics["loss"], step)
    for key in ("mean_iou", "pixel_accuracy", "mean_accuracy"):
        writer.add_scalar(f"val/{key}", metrics[key], step)
    for name, iou in zip(class_names, metrics["iou"], strict=True):
        if not math.isnan(iou):
            writer.add_scalar(f"val/iou/{name}", iou, step)


def summary(metrics: dict, class_names: tuple[str, ...]) -> dict:
    """The --eval_only JSON object, keyed by the data set's class names; NaN (a class absent from the
    whole val set) becomes null."""

    def clean(value: float) -> float | None:
        return None if math.isnan(value) else value

    return {
        "mean_iou": clean(metrics["mean_iou"]),
        "pixel_accuracy": clean(metrics["pixel_accuracy"]),
        "mean_accuracy": clean(metrics["mean_accuracy"]),
        "iou": {name: clean(v) for name, v in zip(class_names, metrics["iou"], strict=True)},
    }


def keep_metrics_until(path: Path, epoch: int) -> None:
    """Drop metrics.jsonl lines of epochs after `epoch` (written by a run that died before saving them)."""
    if path.is_file():
        lines = [
            line for line in path.read_text().splitlines() if line and json.loads(line)["epoch"] <= epoch
        ]
        write_text_atomically(path, "".join(f"{line}\n" for line in lines))


def setup(args: argparse.Namespace) -> tuple[torch.device, int]:
    """Processes, device, seeds and precision; fills in args.rank, world_size, amp_dtype, channels_last_on."""
    args.rank, local_rank, args.world_size = init_distributed()
    device = select_device(args.device, local_rank)
    seed_everything(args.seed, args.deterministic)
    args.amp_dtype = select_amp(args.amp, device)
    args.channels_last_on = select_channels_last(args.channels_last, args.amp_dtype)
    if args.num_workers < 0:
        # On a CPU the workers would take cores from the compute threads: load in the main process.
        args.num_workers = min(8, os.cpu_count() or 1) if device.type == "cuda" else 0
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    if args.sync_bn and device.type != "cuda":
        raise UserError("--sync_bn needs GPUs (PyTorch's SyncBatchNorm is CUDA-only): drop it on a CPU")
    return device, local_rank


def load_model(
    args: argparse.Namespace, layout: DataLayout, device: torch.device
) -> tuple[UNet, dict, dict | None]:
    """The U-Net for `layout`'s classes on `device`, from the --resume checkpoint when there is one;
    returns it, its config and the checkpoint (None for a new run)."""
    run_dir = Path(args.save_dir) / args.name
    checkpoint = None
    resume = run_dir / "last.pth" if args.resume == "auto" else Path(args.resume) if args.resume else None
    if resume is not None and (args.resume != "auto" or resume.is_file()):
        checkpoint = load_checkpoint(resume)
        check_checkpoint_classes(checkpoint, resume, layout)
    elif resume is not None and args.rank == 0:
        print(f"--resume auto: no {resume} yet, starting a new run")
    config = {"in_channels": 3, "num_classes": layout.num_classes, "base_channels": args.base_channels}
    if checkpoint:
        config = checkpoint["model_config"]
    model = UNet(**config)
    if checkpoint:
        model.load_state_dict(checkpoint["model"])
    if args.sync_bn and dist.is_initialized():
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    model.to(device, memory_format=torch.channels_last if args.channels_last_on else torch.contiguous_format)
    return model, config, checkpoint


def log_validation_epoch(writer, run_dir: Path, model, val_set, device, args, epoch: int, step: int, metrics):
    """TensorBoard scalars and prediction panel, and one metrics.jsonl line; returns the console text."""
    class_names = val_set.layout.class_names
    log_validation(writer, metrics, class_names, step)
    writer.add_image(
        "val/predictions", prediction_panel(model, val_set, device, args), step, dataformats="HWC"
    )
    line = {"epoch": epoch + 1, "step": step, "loss": metrics["loss"], **summary(metrics, class_names)}
    with open(run_dir / "metrics.jsonl", "a") as f:
        f.write(json.dumps(line) + "\n")
    return (
        f"  val loss {metrics['loss']:.4f}  mean IoU {metrics['mean_iou']:.4f}  "
        f"pixel acc {metrics['pixel_accuracy']:.4f}"
    )


def main(args: argparse.Namespace) -> None:
    device, local_rank = setup(args)
    run_dir = Path(args.save_dir) / args.name
    if args.demo and args.rank == 0:
        prepare_demo_data(Path(args.data_dir))
    if dist.is_initialized():
        dist.barrier()
    layout = describe(args.data_dir)
    model, model_config, checkpoint = load_model(args, layout, device)

    val_set = get_val_dataset(layout, args)
    val_loader = make_loader(val_set, args.batch_size, args.num_workers)
    if args.eval_only:
        metrics = evaluate(fused_for_inference(model), val_loader, device, args)
        if args.rank == 0:
            print(json.dumps(summary(metrics, layout.class_names)))
        return

    train_set, class_counts = get_train_dataset(layout, args)
    class_weights = get_class_weights(class_counts, args.class_weights)
    if class_weights is not None:
        class_weights = class_weights.to(device)
    train_loader = make_loader(train_set, args.batch_size, args.num_workers, seed=args.seed)
    if len(train_loader) == 0:
        raise UserError(
            f"--batch_size {args.batch_size} is larger than this process's share of the "
            f"{len(train_set)} training images: lower it"
        )
    optimizer = get_optimizer(model, args)
    scheduler = get_scheduler(optimizer, len(train_loader), args)
    scaler = torch.amp.GradScaler(device.type, enabled=args.amp_dtype == torch.float16)
    start_epoch, step, best_miou = 0, 0, -1.0
    if checkpoint and "optimizer" in checkpoint:
        optimizer.load_state_dict(checkpoint["optimizer"])
        scheduler.load_state_dict(checkpoint["scheduler"])
        scaler.load_state_dict(checkpoint["scaler"])
        start_epoch, step, best_miou = checkpoint["epoch"], checkpoint["step"], checkpoint["best_miou"]

    train_model = model
    if dist.is_initialized():
        train_model = DistributedDataParallel(
            model, device_ids=[local_rank] if device.type == "cuda" else None
        )
    if args.compile:
        train_model = torch.compile(train_model)

    writer = None
    if args.rank == 0:
        run_dir.mkdir(parents=True, exist_ok=True)
        write_split_lists(run_dir / "splits", train_set, val_set)
        keep_metrics_until(run_dir / "metrics.jsonl", start_epoch)
        # purge_step drops points a killed run logged after its last checkpoint: the curves continue cleanly.
        writer = SummaryWriter(
            Path(args.tensorboard_dir) / args.name, purge_step=step if checkpoint else None
        )
        amp_name = {None: "off", torch.bfloat16: "bf16", torch.float16: "fp16"}[args.amp_dtype]
        held_out = " (val held out by hash)" if layout.holds_out() else ""
        print(
            f"{args.name}: {layout.kind} data set, {layout.num_classes} classes, {len(train_set)} "
            f"{train_set.split} / {len(val_set)} {val_set.split} images{held_out}, lists in "
            f"{run_dir / 'splits'}/; {device}, amp {amp_name}, "
            f"channels_last {args.channels_last_on}, {args.world_size} process(es), "
            f"{sum(p.numel() for p in model.parameters()) / 1e6:.2f} M parameters"
            + (f", resuming after epoch {start_epoch}" if checkpoint else "")
        )

    for epoch in range(start_epoch, args.epochs):
        start = time.perf_counter()
        step = train_one_epoch(
            train_model,
            optimizer,
            scheduler,
            scaler,
            train_loader,
            device,
            epoch,
            step,
            args,
            writer,
            class_weights,
        )
        broadcast_buffers(model)  # every process now holds the checkpoint's BatchNorm statistics
        validate = (epoch + 1) % args.val_every == 0 or epoch + 1 == args.epochs
        metrics = None
        if validate:
            inference_model = fused_for_inference(model)  # folded once, for the metrics and the panel
            metrics = evaluate(inference_model, val_loader, device, args)
        if args.rank != 0:
            continue
        line = f"epoch {epoch + 1}/{args.epochs}  {time.perf_counter() - start:.0f}s"
        if metrics is not None:
            line += log_validation_epoch(
                writer, run_dir, inference_model, val_set, device, args, epoch, step, metrics
            )
        is_best = metrics is not None and metrics["mean_iou"] > best_miou
        if is_best:
            best_miou = metrics["mean_iou"]
            line += "  (best)"
        state = {
            "model": model_state(model),
            "model_config": model_config,
            "classes": layout.class_table(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "scaler": scaler.state_dict(),
            "epoch": epoch + 1,
            "step": step,
            "best_miou": best_miou,
            "args": plain_args(args),
        }
        best_path = [run_dir / "best.pth"] if is_best else []
        save_atomically(state, *best_path, run_dir / "last.pth")  # one write; best.pth a hard link
        writer.flush()
        tqdm.write(line)

    if writer:
        writer.close()
        print(
            f"done: best val mean IoU {best_miou:.4f}; checkpoints in {run_dir}/ (best.pth, last.pth); "
            f"curves: tensorboard --logdir {args.tensorboard_dir}"
        )


def write_split_lists(folder: Path, *datasets: SegmentationDataset) -> None:
    """<folder>/<split>.txt: the ids each data set used, one a line (held-out splits are computed)."""
    folder.mkdir(exist_ok=True)
    for dataset in datasets:
        write_text_atomically(folder / f"{dataset.split}.txt", "".join(f"{i}\n" for i in dataset.ids))


def model_state(model: torch.nn.Module) -> dict:
    """State dict with plain BatchNorm names even when SyncBatchNorm was used (same keys either way)."""
    return {k: v.detach().cpu() for k, v in model.state_dict().items()}


def plain_args(args: argparse.Namespace) -> dict:
    """The flags as plain values, loadable with weights_only=True."""
    return {
        k: (list(v) if isinstance(v, tuple) else v)
        for k, v in vars(args).items()
        if isinstance(v, (str, int, float, bool, list, tuple, type(None)))
    }


def run(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        main(args)
    except UserError as error:
        print(f"error: {user_error_message(error)}", file=sys.stderr)
        return 2
    except NonFiniteLoss as error:
        print(
            f"error: {error}; stopped, the last good checkpoint is untouched (try a lower --lr)",
            file=sys.stderr,
        )
        return 1
    except KeyboardInterrupt:
        print(
            "\ninterrupted: last.pth holds the last finished epoch; continue with --resume auto",
            file=sys.stderr,
        )
        return 130
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(run())
