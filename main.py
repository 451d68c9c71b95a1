"""Train and validate a BatchNorm U-Net on PASCAL VOC 2012 + SBD (trainaug) or your own labelled
images (labelme, CVAT, the plain layout), logging to TensorBoard.

python main.py --demo                              # synthetic data, CPU, a few minutes
python main.py --data_dir data/ --epochs 100       # VOC-aug, after `python tools/voc.py`
python main.py --data_dir my_labelme_export/       # your own data: the layout is recognised
python main.py @recipes/camvid.txt --epochs 80     # a recipe file; flags after it override it
torchrun --nproc_per_node 4 main.py ...            # several GPUs (--batch_size is per GPU)
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader
from tqdm import tqdm

from checkpoints import find_checkpoint, model_from_checkpoint, restore_training
from dataset import PixelCounts, SegmentationDataset, check_masks, make_loader, pixel_report
from images import ImageFormat, image_format
from inference import InferenceOptions, add_inference_flags, inference_options
from layouts import DataLayout, describe
from model import (
    build_model,
    describe_model,
    encoder_of,
    first_conv_adaptation,
    fused_for_inference,
    load_encoder_weights,
    model_config,
    pretrained_mean_std,
    sync_batchnorm,
)
from planning import Choice, data_choices, data_facts, flag_line, recipe_text, seconds_per_step, width_choice
from records import RunRecords, TrainingState, epoch_line, eval_summary, prediction_panel
from schedule import (
    EVAL_COST,
    PlanKeeper,
    budget_plan,
    clock_time,
    epochs_plan,
    plan_from_state,
    scheduler,
)
from training import (
    Criterion,
    EpochObserver,
    Interruption,
    NonFiniteLoss,
    Stopped,
    evaluate,
    get_class_weights,
    get_criterion,
    train_one_epoch,
)
from utils import (
    AMP_DTYPES,
    Runtime,
    UserError,
    amp_name,
    broadcast_buffers,
    duration_seconds,
    exit_status,
    process_age,
    setup_runtime,
    write_text_atomically,
)

ROOT = Path(__file__).resolve().parent
DEMO_RECIPE = ROOT / "recipes" / "demo.txt"
NOT_RECIPE = {
    "help",
    "name",
    "save_dir",
    "tensorboard_dir",
    "resume",
    "eval_only",
    "demo",
    "epochs",
}  # not in recipe.txt


@dataclass(frozen=True)
class Command:
    """How main.py was called: for --time's planned recipe (flags given win; a recipe file plans none)
    and for its wall-time budget (counted from the command's start)."""

    given: frozenset[str] = frozenset()  # argparse destinations given on the command line or in a recipe
    recipe: bool = True  # a recipe file (@file, or --demo's) is in use
    text: str = "python main.py"
    started: float = field(default_factory=time.monotonic)


def recipe_line(line: str) -> list[str]:
    """One line of a recipe file (`python main.py @recipes/camvid.txt`): flags and values split on
    spaces, `#` to the end of the line a comment."""
    return line.split("#", 1)[0].split()


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter, fromfile_prefix_chars="@"
    )
    parser.convert_arg_line_to_args = recipe_line
    parser.add_argument(
        "--data_dir",
        default="data/",
        help="the data set: a folder holding VOCdevkit/ (prepared by tools/voc.py), a labelme, CVAT or "
        "Roboflow export, a public release as unpacked (Kvasir-SEG, ISIC 2018, Carvana, Oxford-IIIT Pet, "
        "DSB 2018, DRIVE, Cityscapes, ADE20K, ISBI 2012), images and masks that pair by name, or the plain "
        "layout (README: Train on your own data)",
    )
    parser.add_argument(
        "--split_dir",
        help="a folder of split lists (<split>.txt, one id a line) that replace the data set's own: a "
        "fixed train/val/test of a release without one (a run writes the lists it used to its splits/)",
    )
    parser.add_argument(
        "--masks",
        help="which masks to read where several pair with the images by name: their suffix (_2ndHO, .vk) "
        "or folder (manual1, leftMask); the run lists the choices",
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
        "--resize",
        type=int,
        default=0,
        metavar="SIZE",
        help="train and predict on every image resized to SIZE x SIZE (aspect not kept; --scale and "
        "--crop_size then apply to the resized image), logits resized back: for photographs of varying "
        "size whose objects fill the frame (endoscopy, dermoscopy); 0: images at their own size",
    )
    parser.add_argument(
        "--as_rgb",
        action="store_true",
        help="read every image as 8-bit RGB with ImageNet's normalisation, as photographs (grayscale "
        "copied into 3 channels, 16-bit scaled to 8 bits), instead of as stored",
    )
    parser.add_argument(
        "--keep_alpha",
        action="store_true",
        help="keep an alpha channel as a 4th input channel (default: dropped)",
    )
    parser.add_argument(
        "--color_jitter",
        type=float,
        default=0.0,
        help="spread x of the random brightness, contrast and saturation factors of training crops, each "
        "in [1-x, 1+x] (0 = off)",
    )
    parser.add_argument(
        "--vflip",
        action="store_true",
        help="random vertical flips of training crops (for images with no 'up')",
    )
    parser.add_argument(
        "--rot90", action="store_true", help="random 90-degree rotations of training crops (square crops)"
    )
    parser.add_argument(
        "--elastic",
        type=float,
        default=0.0,
        metavar="SIGMA",
        help="elastic deformation of training crops: random displacements on a 3x3 grid with standard "
        "deviation SIGMA pixels (the U-Net paper's 10; 0 = off)",
    )
    parser.add_argument(
        "--min_epoch_images",
        type=int,
        default=256,
        help="a training set smaller than this is repeated (newly shuffled and augmented) until an epoch "
        "holds at least this many images, so small data sets get enough steps (0 = one pass)",
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
    parser.add_argument(
        "--encoder",
        default="unet",
        metavar="NAME",
        help="unet: the U-Net from scratch; or a timm model (resnet34, efficientnet_b0, convnext_tiny, ...) "
        "as the encoder of a U-Net decoder",
    )
    parser.add_argument(
        "--encoder_weights",
        metavar="WEIGHTS",
        help="imagenet (the default with an --encoder: timm's weights, fetched once into the Hugging Face "
        "cache), none (random), or FILE (a state dict of that timm model)",
    )
    parser.add_argument(
        "--encoder_lr",
        type=float,
        default=1.0,
        metavar="SCALE",
        help="the encoder's learning rate as a multiple of --lr (its own parameter group)",
    )
    parser.add_argument(
        "--base_channels", type=int, default=64, help="U-Net width (64 = the paper's; --encoder unet only)"
    )
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
        "--loss",
        choices=("ce", "ce+dice"),
        default="ce",
        help="cross-entropy, or cross-entropy plus soft Dice (mean over classes); void pixels excluded",
    )
    parser.add_argument(
        "--class_weights",
        choices=("none", "median_freq", "enet"),
        default="none",
        help="loss weight of each class, counted on the training masks; median_freq: median "
        "frequency / class frequency (SegNet's balancing); enet: 1 / ln(1.02 + class share of the "
        "pixels), milder (ENet's)",
    )
    # Speed
    parser.add_argument(
        "--device", choices=("auto", "cpu", "cuda"), default="auto", help="auto: CUDA when present"
    )
    parser.add_argument(
        "--amp",
        choices=("auto", *AMP_DTYPES),
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
        "--time",
        type=duration_seconds,
        default=0.0,
        metavar="DURATION",
        help="a wall-time budget (20m, 1.5h): the run plans its steps (and --epochs, --val_every) to end "
        "in it, validation included; without a recipe file it also plans the flags not given, prints "
        "why, and writes them to <save_dir>/<name>/recipe.txt (docs/results/planned.md)",
    )
    parser.add_argument(
        "--save_every",
        type=duration_seconds,
        default=0.0,
        metavar="DURATION",
        help="also write a step checkpoint (last.pth) this often (30m, 1h; 0 = only after each epoch, on "
        "SIGTERM and on Ctrl-C): SIGKILL then loses at most that much",
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
    argv = sys.argv[1:] if argv is None else argv
    args = parser.parse_args(argv)
    if args.demo:  # the demo's recipe first: flags given on the command line still win
        args = parser.parse_args([f"@{DEMO_RECIPE}", *argv])
        args.data_dir = str(Path(args.data_dir) / "demo")
    if args.elastic < 0 or args.min_epoch_images < 0:
        flag = "--elastic" if args.elastic < 0 else "--min_epoch_images"
        parser.error(f"{flag} must be 0 (off) or more")
    if args.color_jitter < 0:
        parser.error(f"--color_jitter {args.color_jitter}: give a factor spread of 0 (off) or more, e.g. 0.3")
    if args.tta and not args.eval_only:
        parser.error("--tta applies to --eval_only (validation during training stays plain)")
    if args.eval_only and not args.resume:
        parser.error("--eval_only needs --resume PATH (the checkpoint to evaluate)")
    if args.eval_only:  # flags that only shape training (a planned recipe.txt holds --time) do not block it
        args.time = 0.0
    if args.encoder == "unet" and args.encoder_weights not in (None, "none"):
        parser.error("--encoder_weights needs an --encoder (resnet34, ...): the U-Net starts from scratch")
    if args.encoder_weights is None:
        args.encoder_weights = "none" if args.encoder == "unet" else "imagenet"
    if args.resize < 0 or 0 < args.resize < 16:
        parser.error(f"--resize {args.resize}: give a side of 16 pixels or more (0: each image its own size)")
    if args.encoder_lr < 0:
        parser.error(f"--encoder_lr {args.encoder_lr}: give a multiple of --lr of 0 (frozen) or more")
    if not args.resume and int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")) > 0:
        args.resume = "auto"  # torchrun restarted the group after a failure: continue, do not start over
    return args


def get_layout(args: argparse.Namespace, is_main: bool) -> DataLayout:
    """The data set's description; with --demo, rank 0 first writes the synthetic data set (once)."""
    failed = False
    if args.demo and is_main and not demo_is_ready(args.data_dir):
        print(f"demo: writing a synthetic VOC 2012 + SBD data set to {args.data_dir}", flush=True)
        command = [sys.executable, str(ROOT / "tools" / "demo_data.py"), "--out", args.data_dir, "--prepare"]
        failed = subprocess.run(command).returncode != 0
    if dist.is_initialized():  # the other ranks wait for rank 0's data set, and learn whether it failed
        flag = torch.tensor([failed], dtype=torch.int32)
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        failed = bool(flag)
    if failed:
        raise UserError(f"tools/demo_data.py could not write {args.data_dir}: see its message above")
    layout = describe(args.data_dir, args.masks)
    return layout.with_split_lists(Path(args.split_dir)) if args.split_dir else layout


def demo_is_ready(data_dir: str) -> bool:
    """True once the demo's data set is written and prepared: it describes, with a training split."""
    try:
        layout = describe(data_dir)
        return bool(layout.split_ids(layout.train_split))
    except UserError:
        return False


def get_image_format(args: argparse.Namespace, layout: DataLayout, checkpoint: dict | None) -> ImageFormat:
    """The images' channels, dtype and normalisation: the checkpoint's when there is one, 8-bit RGB with
    --as_rgb, else from the training images (images.image_format)."""
    if checkpoint:
        return ImageFormat.from_dict(checkpoint.get("image"))
    if args.as_rgb:
        fmt = ImageFormat(rule="8-bit RGB, ImageNet mean and std (--as_rgb)")
    else:
        paths = [layout.image_path(i) for i in layout.split_ids(layout.train_split) if i in layout.images]
        fmt = image_format(paths, args.keep_alpha)
    if args.resize:
        fmt = replace(fmt, size=args.resize, rule=f"{fmt.rule}; resized to {args.resize}x{args.resize}")
    pretrained = pretrained_mean_std(model_config(args.encoder, 3, 1, 1))
    if pretrained is None:
        return fmt  # the U-Net's
    if fmt.channels != 3 and args.encoder_weights != "none":
        return replace(fmt, rule=f"{fmt.rule}; {first_conv_adaptation(fmt.channels)}")
    if not fmt.is_rgb8:
        return fmt  # measured per channel for every other kind of image
    mean, std = pretrained
    rule = fmt.rule.replace("ImageNet mean and std", f"the mean and std {args.encoder} was pretrained with")
    return replace(fmt, mean=mean, std=std, rule=rule)


def get_val_dataset(layout: DataLayout, args: argparse.Namespace, fmt: ImageFormat) -> SegmentationDataset:
    val = SegmentationDataset(layout, args.val_split, train=False, image_format=fmt)
    val.scan_masks()  # a bad mask stops the run here, before anything is written
    return val


def get_train_dataset(layout: DataLayout, args: argparse.Namespace, fmt: ImageFormat) -> SegmentationDataset:
    return SegmentationDataset(
        layout,
        train=True,
        crop_size=args.crop_size,
        scale=tuple(args.scale),
        seed=args.seed,
        color_jitter=args.color_jitter,
        vflip=args.vflip,
        rot90=args.rot90,
        elastic=args.elastic,
        image_format=fmt,
    )


def get_train_loader(
    train_set: SegmentationDataset, args: argparse.Namespace, runtime: Runtime
) -> DataLoader:
    loader = make_loader(train_set, args.batch_size, runtime.num_workers, args.seed, args.min_epoch_images)
    if len(loader) == 0:
        raise UserError(
            f"--batch_size {args.batch_size} is larger than this process's share of the "
            f"{len(train_set)} training images: lower it"
        )
    return loader


def get_model(
    args: argparse.Namespace, num_classes: int, in_channels: int, checkpoint: dict | None, runtime: Runtime
) -> tuple[torch.nn.Module, dict, str]:
    """The network, its config and where its encoder's weights came from (the file; "" for none): the
    checkpoint's when resuming (nothing is fetched), else a new one of --encoder (and --base_channels),
    its encoder loaded from --encoder_weights."""
    weights = ""
    if checkpoint:
        config = checkpoint["model_config"]
        model = model_from_checkpoint(checkpoint, args.resume)
    else:
        config = model_config(args.encoder, in_channels, num_classes, args.base_channels)
        model = build_model(config)
        if encoder_of(model) is not None and args.encoder_weights != "none":
            weights = load_encoder_weights(model, args.encoder_weights)
    if args.sync_bn:
        if runtime.device.type != "cuda":
            raise UserError("--sync_bn needs GPUs (PyTorch's SyncBatchNorm is CUDA-only): drop it on a CPU")
        if dist.is_initialized():
            model = sync_batchnorm(model)
    memory_format = torch.channels_last if runtime.channels_last else torch.contiguous_format
    return model.to(runtime.device, memory_format=memory_format), config, weights


def get_train_model(model: torch.nn.Module, args: argparse.Namespace, runtime: Runtime) -> torch.nn.Module:
    """The model as the training step calls it: wrapped in DDP under torchrun, compiled with --compile."""
    if dist.is_initialized():
        cuda = runtime.device.type == "cuda"
        model = DistributedDataParallel(model, device_ids=[runtime.local_rank] if cuda else None)
    return torch.compile(model) if args.compile else model


def get_optimizer(model: torch.nn.Module, args: argparse.Namespace) -> torch.optim.Optimizer:
    """SGD or AdamW over the decoder (or the whole U-Net) at --lr and a pretrained encoder at --lr x
    --encoder_lr; weight decay on convolution and linear weights only (not BatchNorm, not biases)."""
    encoder = encoder_of(model)
    pretrained = {id(p) for p in encoder.parameters()} if encoder is not None else set()
    groups = []
    for in_encoder, lr in ((False, args.lr), (True, args.lr * args.encoder_lr)):
        params = [p for p in model.parameters() if (id(p) in pretrained) == in_encoder]
        if params:  # the U-Net has no encoder group: its checkpoints keep their two groups
            decay = [p for p in params if p.ndim > 1]
            groups.append({"params": decay, "weight_decay": args.weight_decay, "lr": lr})
            groups.append({"params": [p for p in params if p.ndim <= 1], "weight_decay": 0.0, "lr": lr})
    # The fused update (one kernel for all parameters), on CPU as on CUDA: faster than the default
    # per-parameter loop on both.
    if args.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=args.lr, momentum=args.momentum, fused=True)
    return torch.optim.AdamW(groups, lr=args.lr, fused=True)


def main(args: argparse.Namespace, command: Command | None = None) -> None:
    command = command or Command()
    runtime = setup_runtime(
        args.device, args.amp, args.channels_last, args.num_workers, args.seed, args.deterministic
    )
    is_main = runtime.rank == 0  # rank 0 alone prints and writes
    layout = get_layout(args, is_main)
    run_dir = Path(args.save_dir) / args.name
    checkpoint = find_checkpoint(args.resume, run_dir, layout)
    if args.resume == "auto" and checkpoint is None and is_main:
        print(f"--resume auto: no {run_dir / 'last.pth'} yet, starting a new run")
    fmt = get_image_format(args, layout, checkpoint)
    planned = plan_recipe(args, command, layout, fmt, runtime, checkpoint)
    model, config, weights = get_model(args, layout.num_classes, fmt.channels, checkpoint, runtime)
    options = inference_options(args, runtime.amp_dtype, runtime.channels_last)
    val_set = get_val_dataset(layout, args, fmt)
    val_loader = make_loader(val_set, args.batch_size, runtime.num_workers)
    if args.eval_only:
        metrics = evaluate(fused_for_inference(model), val_loader, runtime, args.print_freq, options)
        if is_main:
            print(json.dumps(eval_summary(metrics, layout.class_names)))
        return
    train_set = get_train_dataset(layout, args, fmt)
    counts = train_set.scan_masks()  # a bad mask stops the run here, before anything is written
    check_masks(layout, counts, train_set.split)
    train_loader = get_train_loader(train_set, args, runtime)
    about = {
        "model_config": config,
        "classes": layout.class_table(),
        "data": layout.about(),
        "image": fmt.as_dict(),
        "args": vars(args),
        "planned": [choice.dest for choice in planned],
        "encoder_weights": weights or (checkpoint or {}).get("encoder_weights", ""),
    }
    run = get_run(
        args, command, runtime, model, about, checkpoint, (train_loader, val_loader), counts, options
    )
    if is_main:
        start_records(run, layout, counts, planned, command)
    train(run)


@dataclass
class Run:
    """What the epoch loop works with, and where it stands (epoch: epochs done; epoch_step: batches
    of the next epoch done, for a step checkpoint's resume)."""

    args: argparse.Namespace
    runtime: Runtime
    state: TrainingState
    train_model: torch.nn.Module  # the model as the step calls it (DDP, compiled)
    train_loader: DataLoader
    val_loader: DataLoader
    options: InferenceOptions
    criterion: Criterion  # the training loss, class weights included
    keeper: PlanKeeper
    interruption: Interruption
    epoch: int
    step: int
    best_miou: float
    epoch_step: int
    resumed: bool
    records: RunRecords | None = None  # rank 0's


def get_run(
    args: argparse.Namespace,
    command: Command,
    runtime: Runtime,
    model: torch.nn.Module,
    about: dict,
    checkpoint: dict | None,
    loaders: tuple[DataLoader, DataLoader],
    counts: PixelCounts,
    options: InferenceOptions,
) -> Run:
    """The criterion, the optimiser, the plan and its schedule, the grad scaler, restored from
    `checkpoint` when resuming, and the model as the step calls it."""
    train_loader, val_loader = loaders
    class_weights = get_class_weights(counts.classes, args.class_weights, runtime.device)
    optimizer = get_optimizer(model, args)
    keeper = get_plan(args, command, checkpoint, train_loader, val_loader.dataset)
    lr_scheduler = scheduler(optimizer, keeper)  # the keeper's plan: linear warm-up, then poly decay
    scaler = torch.amp.GradScaler(runtime.device.type, enabled=runtime.amp_dtype == torch.float16)
    epoch, step, best_miou, epoch_step = restore_training(checkpoint, optimizer, lr_scheduler, scaler)
    keeper.restart(step)
    return Run(
        args=args,
        runtime=runtime,
        state=TrainingState(model, optimizer, lr_scheduler, scaler, about),
        train_model=get_train_model(model, args, runtime),
        train_loader=train_loader,
        val_loader=val_loader,
        options=options,
        criterion=get_criterion(args.loss, class_weights),
        keeper=keeper,
        interruption=Interruption(args.save_every),  # SIGTERM and Ctrl-C stop after the step in progress
        epoch=epoch,
        step=step,
        best_miou=best_miou,
        epoch_step=epoch_step,
        resumed=checkpoint is not None,
    )


def start_records(
    run: Run, layout: DataLayout, counts: PixelCounts, planned: list[Choice], command: Command
) -> None:
    """Rank 0: the run's records (splits, a planned recipe), and the lines a run starts with."""
    args = run.args
    run_dir = Path(args.save_dir) / args.name
    records = RunRecords(run_dir, Path(args.tensorboard_dir) / args.name, run.epoch, run.step, run.resumed)
    datasets = (run.train_loader.dataset, run.val_loader.dataset)
    splits = records.write_splits(*datasets)
    if planned and not run.resumed:
        recipe = recipe_text(recipe_lines(args, command, planned), command.text)
        write_text_atomically(run_dir / "recipe.txt", recipe)
    resumed_at = (run.epoch, run.epoch_step) if run.resumed else None
    print(run_header(args.name, layout, datasets, splits, run.runtime, run.state.model, resumed_at))
    if encoder_of(run.state.model) is not None:
        print(model_line(run.state.about, run.resumed))
    print(data_report(layout, counts, run.train_loader, args.min_epoch_images))
    print(plan_lines(args, command, planned, run.keeper, run_dir))
    run.records = records


def train(run: Run) -> None:
    """The epoch loop: train, validate, log, save, in that order, until the plan's last step."""
    keeper, records = run.keeper, run.records
    epoch, step = run.epoch, run.step
    while step < keeper.plan.total_steps:
        start = time.perf_counter()
        step = train_epoch(run, epoch, step)
        show(keeper.epoch_trained(step), run)  # under --time the plan may end the run here
        broadcast_buffers(run.state.model)  # every process now holds the checkpoint's BatchNorm statistics
        metrics = None
        if keeper.plan.validates(epoch + 1):  # every val_every epochs, and the last (cut or not)
            metrics = validate(run, epoch + 1, step)
        seconds = time.perf_counter() - start
        best = metrics is not None and metrics["mean_iou"] > run.best_miou
        run.best_miou = metrics["mean_iou"] if best else run.best_miou
        if records:
            records.save(run.state, progress(run, epoch + 1, step, 0), best)
            names = run.val_loader.dataset.layout.class_names
            line = epoch_line(epoch + 1, keeper.plan.epochs, seconds, metrics, names, best, keeper.text(step))
            tqdm.write(line)
        keeper.epoch_ended(time.perf_counter() - start - seconds)
        if run.interruption.signal:  # caught during validation or the save: the epoch's checkpoint is written
            raise Stopped(run.interruption.signal)
        epoch += 1
    if records:
        records.close(run.best_miou, run.args.tensorboard_dir)


def train_epoch(run: Run, epoch: int, step: int) -> int:
    """One epoch's steps (those after a step checkpoint's, in the epoch resumed); returns the step."""
    records = run.records

    def save_step(step: int, batches: int) -> None:
        if records:
            records.save(run.state, progress(run, epoch, step, batches))

    observer = EpochObserver(
        keeper=run.keeper,
        interruption=run.interruption,
        log=records.log_train if records else lambda *values: None,
        save_step=save_step,
        print_freq=run.args.print_freq,
    )
    run.keeper.begin_epoch(step)
    state = run.state
    skip = run.epoch_step if epoch == run.epoch else 0
    return train_one_epoch(
        run.train_model, run.criterion, state.optimizer, state.scheduler, state.scaler, run.train_loader,
        run.runtime, observer, epoch=epoch, step=step, skip=skip,
    )  # fmt: skip


def validate(run: Run, epoch: int, step: int) -> dict:
    """The metrics after `epoch` epochs, logged (rank 0) with the prediction panel; timed for the plan."""
    start = time.perf_counter()
    inference_model = fused_for_inference(run.state.model)  # folded once, for the metrics and the panel
    metrics = evaluate(inference_model, run.val_loader, run.runtime, run.args.print_freq, run.options)
    if run.records:
        val_set = run.val_loader.dataset
        panel = prediction_panel(inference_model, val_set, run.runtime.device, run.options)
        run.records.log_validation(epoch, step, metrics, val_set.layout.class_names, panel)
    run.keeper.validated(time.perf_counter() - start)
    return metrics


def progress(run: Run, epochs_done: int, step: int, batches: int) -> dict:
    """Where a checkpoint stands: epochs done, steps, best val mean IoU, batches of the next epoch done
    (a step checkpoint's), and the plan."""
    return {
        "epoch": epochs_done,
        "step": step,
        "best_miou": run.best_miou,
        "epoch_step": batches,
        "plan": run.keeper.state(),
    }


def show(message: str, run: Run) -> None:
    if message and run.records:
        print(message)


def plan_recipe(
    args: argparse.Namespace,
    command: Command,
    layout: DataLayout,
    fmt: ImageFormat,
    runtime: Runtime,
    checkpoint: dict | None,
) -> list[Choice]:
    """Under --time without a recipe file: the flags the command does not give, chosen by the rules of
    planning.RULES from the training set and the step time measured here, and set on `args`. A resumed
    run takes the choices its checkpoint made."""
    if not args.time or command.recipe:
        return []
    if checkpoint and checkpoint.get("planned"):
        choices = [Choice(dest, checkpoint["args"][dest], "as planned") for dest in checkpoint["planned"]]
        return set_choices(args, choices)
    train_set = get_train_dataset(layout, args, fmt)
    facts = data_facts(train_set, train_set.scan_masks().classes, fmt)
    choices = set_choices(
        args, [c for c in data_choices(facts, runtime.device.type) if c.dest not in command.given]
    )
    if "base_channels" in command.given or args.encoder != "unet":  # the width rule is the U-Net's
        return choices

    def step_time(width: int) -> float:
        # Throwaway models on a forked RNG: the run's own weights are then drawn as a run of the
        # written recipe draws them.
        with torch.random.fork_rng(devices=[runtime.device] if runtime.device.type == "cuda" else []):
            loader = get_train_loader(get_train_dataset(layout, args, fmt), args, runtime)
            model = build_model(model_config("unet", fmt.channels, layout.num_classes, width))
            memory_format = torch.channels_last if runtime.channels_last else torch.contiguous_format
            return seconds_per_step(model.to(runtime.device, memory_format=memory_format), loader, runtime)

    left = args.time - (time.monotonic() - command.started)
    width = [width_choice(facts, args.batch_size, left, step_time)]
    if dist.is_initialized():  # rank 0's measurement decides for every process
        dist.broadcast_object_list(width, 0)
    return [*choices, *set_choices(args, width)]


def set_choices(args: argparse.Namespace, choices: list[Choice]) -> list[Choice]:
    for choice in choices:
        setattr(args, choice.dest, choice.value)
    return choices


def get_plan(
    args: argparse.Namespace,
    command: Command,
    checkpoint: dict | None,
    train_loader: DataLoader,
    val_set: SegmentationDataset,
) -> PlanKeeper:
    """The run's plan: of --epochs, or fitted to --time (a resumed --time run continues its own plan,
    the seconds already spent counted). A validation is estimated at schedule.EVAL_COST of a training
    pixel until one is timed."""
    steps_per_epoch = len(train_loader)
    state = (checkpoint or {}).get("plan") or {}
    if not (args.time or state.get("budget")):
        plan = epochs_plan(args.epochs, steps_per_epoch, args.warmup_epochs, args.val_every, args.poly_power)
        return PlanKeeper(plan, command.started)
    val_pixels = sum(h * w for h, w in val_set.image_sizes())
    val_steps = EVAL_COST * val_pixels / (args.batch_size * args.crop_size**2)
    if state.get("budget"):
        plan, spent = plan_from_state(state)
        plan = replace(plan, budget=args.time or plan.budget)
        return PlanKeeper(plan, command.started, spent, val_steps=val_steps)
    free = "val_every" not in command.given
    plan = budget_plan(args.time, steps_per_epoch, args.warmup_epochs, args.val_every, args.poly_power, free)
    return PlanKeeper(plan, command.started, val_steps=val_steps)


def plan_lines(
    args: argparse.Namespace, command: Command, planned: list[Choice], keeper: PlanKeeper, run_dir: Path
) -> str:
    """What the run prints of its plan: the schedule (under --time: when it is fitted) and the flags it
    chose, with their reasons."""
    if not args.time:
        return f"plan: {keeper.plan.text()}"
    lines = []
    if planned:
        lines.append(f"planned from the data and this machine (also in {run_dir / 'recipe.txt'}):")
        lines += [
            f"  {flag_line(c.dest, getattr(args, c.dest)) or '--' + c.dest + ' off'}: {c.reason}"
            for c in planned
        ]
    if "epochs" in command.given:
        lines.append(f"--epochs {args.epochs} is not used: --time plans the epochs")
    lines.append(
        f"--time {clock_time(args.time)}: the steps are planned from the first {args.print_freq} timed"
    )
    return "\n".join(lines)


def recipe_lines(args: argparse.Namespace, command: Command, planned: list[Choice]) -> list[tuple[str, str]]:
    """recipe.txt's (flag, reason) lines, in the parser's order: --data_dir, the flags given and those
    planned (a switch planned off as a comment)."""
    reasons = {choice.dest: choice.reason for choice in planned}
    lines = []
    for action in get_args_parser()._actions:
        dest = action.dest
        if dest in NOT_RECIPE or not (dest in reasons or dest in command.given or dest == "data_dir"):
            continue
        flag = flag_line(dest, getattr(args, dest)) if dest != "time" else f"--time {args.time:g}s"
        why = reasons.get(dest, "")
        lines.append((flag, why) if flag else (f"# --{dest} off: {why}", ""))
    return lines


def data_report(layout: DataLayout, counts: PixelCounts, loader: DataLoader, min_epoch_images: int) -> str:
    """The lines after the run header: how mask values became classes (and the format's notes), each
    class's share of the training pixels, warnings, the images' format, and how many passes an epoch is."""
    lines = [
        f"mask values: {layout.value_rule}",
        *layout.notes,
        *pixel_report(layout, counts, loader.dataset.split),
        f"images: {loader.dataset.format.rule}",
    ]
    if loader.sampler.passes > 1:
        lines.append(
            f"an epoch is {loader.sampler.passes} passes over the {len(loader.dataset)} training images "
            f"({len(loader)} steps; --min_epoch_images {min_epoch_images})"
        )
    return "\n".join(lines)


def run_header(
    name: str,
    layout: DataLayout,
    datasets: tuple[SegmentationDataset, SegmentationDataset],
    splits: Path,
    runtime: Runtime,
    model: torch.nn.Module,
    resumed_at: tuple[int, int] | None,
) -> str:
    """The run's first line: data (train and val sets, and how many images they share), device,
    precision, processes, model size, and the epoch a resumed run continues after (None: a new run)."""
    train_set, val_set = datasets
    shared = len(set(train_set.ids) & set(val_set.ids))  # a retrain on everything, or a wrong split list
    if shared:
        held_out = f" ({shared} of the val images also trained on: val is no hold-out)"
    else:
        held_out = " (val held out by hash)" if layout.hold_out else ""
    parameters = sum(p.numel() for p in model.parameters()) / 1e6
    return (
        f"{name}: {layout.kind} data set, {layout.num_classes} classes, {len(train_set)} "
        f"{train_set.split} / {len(val_set)} {val_set.split} images{held_out}, lists in {splits}/; "
        f"{runtime.device}, amp {amp_name(runtime.amp_dtype)}, channels_last {runtime.channels_last}, "
        f"{runtime.world_size} process(es), {parameters:.2f} M parameters"
        + (f", resuming {resumed_text(*resumed_at)}" if resumed_at is not None else "")
    )


def model_line(about: dict, resumed: bool) -> str:
    """The line of a model with a pretrained encoder: which, and where its weights came from."""
    weights = about["encoder_weights"]
    start = f"pretrained weights from {weights}" if weights else "random weights (--encoder_weights none)"
    return f"model: {describe_model(about['model_config'])}, its encoder started from {start}" + (
        "; resumed from the checkpoint" if resumed else ""
    )


def resumed_text(epochs_done: int, batches: int) -> str:
    return f"in epoch {epochs_done + 1} after its step {batches}" if batches else f"after epoch {epochs_done}"


def get_command(argv: list[str], started: float) -> Command:
    """The destinations of the flags `argv` gives (those of its recipe files included), and whether a
    recipe file is among them."""
    parser = get_args_parser()
    for action in parser._actions:
        action.default = argparse.SUPPRESS
    given = frozenset(vars(parser.parse_args(argv)))
    recipe = any(arg.startswith("@") for arg in argv) or "demo" in given
    return Command(given, recipe, shlex.join(["python", "main.py", *argv]), started)


def cli(argv: list[str] | None = None) -> int:
    """main.py's command line: exit status 0, 1 (non-finite loss), 2 (bad input), 130 (Ctrl-C) or 143
    (SIGTERM)."""
    started = time.monotonic() - process_age()  # --time counts the whole command
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    command = get_command(argv, started)
    try:
        return exit_status(lambda: main(args, command))
    except NonFiniteLoss as error:
        print(
            f"error: {error}; stopped, the last good checkpoint is untouched (try a lower --lr)",
            file=sys.stderr,
        )
        return 1
    except Stopped as error:
        print(
            f"\nstopped by {error}: last.pth holds the step in progress; continue with --resume auto",
            file=sys.stderr,
        )
        return 143 if str(error) == "SIGTERM" else 130
    except KeyboardInterrupt:
        print(
            "\ninterrupted: last.pth holds the last finished epoch; continue with --resume auto",
            file=sys.stderr,
        )
        return 130
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


if __name__ == "__main__":
    sys.exit(cli())
