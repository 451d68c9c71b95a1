"""Throughput figures, measured side by side in one run; prints a table and one JSON line.

python lab/benchmark.py voc     tools/voc.py against the reference converter
python lab/benchmark.py data    dataset.py against a torchvision-references-style pipeline
python lab/benchmark.py depth   dataset.py on 3-channel 8-bit and 1-channel 16-bit versions of one set
python lab/benchmark.py model   the training step and validation at several precisions and formats
python lab/benchmark.py train   the data pipeline alone, end to end, and the model step alone
python lab/benchmark.py cpu     whole main.py runs on a CPU against a plain fp32 NCHW loop
python lab/benchmark.py coco    tools/coco.py on generated COCO exports of real photographs
python lab/benchmark.py budget  main.py under --time: the whole command's wall time against its budget
python lab/benchmark.py start   the data layer's start (recognise, read every mask) on a generated ADE20K
                                layout, with an empty scan cache and again with the cache of the first
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import scipy.io
import torch
from PIL import Image
from torch.utils.data import DataLoader

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from dataset import SegmentationDataset, make_loader, set_epoch, to_device  # noqa: E402
from images import image_format  # noqa: E402
from lab.trees import make_prepared_tree, make_sbd_tree  # noqa: E402
from layouts import IGNORE_INDEX, VOC_NUM_CLASSES, describe  # noqa: E402
from main import recipe_line  # noqa: E402
from metrics import ConfusionMatrix  # noqa: E402
from model import build_model, model_config  # noqa: E402
from tools.demo_data import draw_sample, make_demo_data  # noqa: E402
from tools.voc import prepare  # noqa: E402
from training import train_step  # noqa: E402
from utils import (  # noqa: E402
    AMP_DTYPES,
    IMAGENET_MEAN,
    IMAGENET_STD,
    UserError,
    duration_seconds,
    exit_status,
    select_device,
)


def recipe_flags(path: Path) -> dict[str, list[str]]:
    """A recipe file's flags (without the dashes) and their values, as text."""
    flags: dict[str, list[str]] = {}
    for line in path.read_text().splitlines():
        flag, *values = recipe_line(line) or [""]  # main.py's reading of a recipe line
        if flag:
            flags[flag.removeprefix("--")] = values
    return flags


DEMO = recipe_flags(Path(__file__).resolve().parents[1] / "recipes" / "demo.txt")  # main.py --demo's flags
DEMO_SCALE = tuple(float(v) for v in DEMO["scale"])

BF16_PEAK_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0, "L40S": 362.0, "L4": 121.0, "A10": 125.0}
PRECISIONS = {"fp32": None, **{name: dtype for name, dtype in AMP_DTYPES.items() if dtype}}
MEMORY_FORMATS = {"nchw": torch.contiguous_format, "channels_last": torch.channels_last}
# The shape of a `cpu`-mode run, shared by main.py and the plain loop: flag, type, default (the demo's
# settings, for 3 epochs).
RUN_SHAPE = (
    ("--epochs", int, 3),
    *(
        (f"--{name}", kind, kind(DEMO[name][0]))
        for name, kind in (("batch_size", int), ("crop_size", int), ("base_channels", int), ("lr", float))
    ),
)
# The runs `cpu` can time (--runs): their label and main.py's flags beyond the shared ones; plain is the
# plain loop, the baseline.
CPU_RUNS = {
    "main": ("main.py, default CPU settings (bf16, channels last, no workers)", []),
    "workers": ("main.py --num_workers 1", "--num_workers 1".split()),
    "fp32": ("main.py --amp off --channels_last off (fp32 NCHW)", "--amp off --channels_last off".split()),
    "plain": ("plain loop: fp32 NCHW, PIL augmentation in the main process", None),
}


# Shared helpers


def print_table(rows: list[dict]) -> None:
    keys = list(rows[0])
    widths = [max(len(k), *(len(str(r[k])) for r in rows)) for k in keys]
    print("  ".join(k.ljust(w) for k, w in zip(keys, widths, strict=True)))
    for row in rows:
        print("  ".join(str(row[k]).ljust(w) for k, w in zip(keys, widths, strict=True)))


def rate(per_second: float) -> float:
    """Three significant figures, so that slow CPU rates (0.337 images/s) keep their precision."""
    return float(f"{per_second:.3g}")


def timed_seconds(run: Callable[[], object]) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_interleaved(runs: list, device: torch.device, steps: int, rounds: int) -> list[float]:
    """Median seconds per call of each run. The runs take turns, `rounds` times over, so a slow spell
    of the machine (a shared VM drifts by up to about 25%) hits every setting alike."""
    seconds = [[] for _ in runs]
    for _ in range(rounds):
        for times, run in zip(seconds, runs, strict=True):
            sync(device)
            start = time.perf_counter()
            for _ in range(steps):
                run()
            sync(device)
            times.append((time.perf_counter() - start) / steps)
    return [statistics.median(times) for times in seconds]


LOCK_PATH = Path(tempfile.gettempdir()) / "unet-benchmark.lock"


@contextlib.contextmanager
def running_alone(path: Path = LOCK_PATH) -> Iterator[None]:
    """Hold an exclusive lock while benchmarking: a second lab/benchmark.py on the machine exits
    instead of timing beside this one (two PyTorch processes that share the cores both measure wrong)."""
    with open(path, "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UserError(
                f"another lab/benchmark.py is running on this machine (lock {path}): wait for it to "
                "finish; two benchmarks at once share the cores and time nothing"
            ) from None
        yield


# voc: tools/voc.py against the reference converter


def reference_convert(root: Path, out: Path) -> None:
    """The plain approach: one process, scipy.io.loadmat and a PIL save per file."""
    out.mkdir(exist_ok=True)
    for path in sorted((root / "VOCdevkit/VOCaug/dataset/cls").iterdir()):
        segmentation = scipy.io.loadmat(path)["GTcls"][0, 0]["Segmentation"]
        Image.fromarray(segmentation).save(out / f"{path.stem}.png")


def bench_voc(args: argparse.Namespace) -> dict:
    """tools/voc.py (one process, every core, a re-run) against the reference converter, in files/s."""
    cores = os.cpu_count() or 1
    with tempfile.TemporaryDirectory() as tmp:
        root = make_sbd_tree(Path(tmp), args.files)
        rows = []

        def timed(name: str, processes: int, run: Callable[[], object]) -> None:
            seconds = timed_seconds(run)
            files_per_second = args.files / seconds
            rows.append(
                {
                    "converter": name,
                    "processes": processes,
                    "seconds": round(seconds, 2),
                    "files/s": round(files_per_second, 1),
                    "files/s per process": round(files_per_second / processes, 1),
                }
            )

        timed("reference (loadmat + PIL save)", 1, lambda: reference_convert(root, Path(tmp) / "reference"))
        timed("tools/voc.py --workers 1", 1, lambda: prepare(root, workers=1, force=True, progress=False))
        timed(
            f"tools/voc.py --workers {cores}",
            cores,
            lambda: prepare(root, workers=cores, force=True, progress=False),
        )
        timed(
            "tools/voc.py re-run (all up to date)",
            cores,
            lambda: prepare(root, workers=cores, progress=False),
        )
    print_table(rows)
    return {"benchmark": "voc", "files": args.files, "cores": cores, "rows": rows}


# data: dataset.py against a torchvision-references-style pipeline, one process


def reference_sample(
    image_path: Path, mask_path: Path, rng: np.random.Generator, crop: int, scale: tuple[float, float]
) -> tuple[torch.Tensor, torch.Tensor]:
    """torchvision references/segmentation style: PIL resize of the whole image, pad, crop, flip,
    to-tensor and normalise in the worker."""
    import torchvision.transforms.functional as TF

    image, mask = Image.open(image_path).convert("RGB"), Image.open(mask_path)
    s = rng.uniform(*scale)
    size = (round(image.height * s), round(image.width * s))
    image = TF.resize(image, size, interpolation=TF.InterpolationMode.BILINEAR)
    mask = TF.resize(mask, size, interpolation=TF.InterpolationMode.NEAREST)
    pad_h, pad_w = max(crop - size[0], 0), max(crop - size[1], 0)
    image = TF.pad(image, [0, 0, pad_w, pad_h], fill=0)
    mask = TF.pad(mask, [0, 0, pad_w, pad_h], fill=IGNORE_INDEX)
    top, left = rng.integers(0, image.height - crop + 1), rng.integers(0, image.width - crop + 1)
    image, mask = TF.crop(image, top, left, crop, crop), TF.crop(mask, top, left, crop, crop)
    if rng.random() < 0.5:
        image, mask = TF.hflip(image), TF.hflip(mask)
    image = TF.normalize(TF.to_tensor(image), IMAGENET_MEAN, IMAGENET_STD)
    return image, torch.as_tensor(np.array(mask), dtype=torch.int64)


def bench_data(args: argparse.Namespace) -> dict:
    """Images/s of one process (the work of one loader worker) at the training crop: the reference, and
    dataset.py without and with the U-Net paper's augmentations (--vflip --rot90, --elastic 10)."""
    torch.set_num_threads(1)  # a loader worker runs single-threaded
    with tempfile.TemporaryDirectory() as tmp:
        root = make_prepared_tree(Path(tmp), args.images)
        ds = SegmentationDataset(root, "trainaug", train=True, crop_size=args.crop_size)
        rng = np.random.default_rng(0)

        def reference() -> None:
            for image_path, mask_path in zip(ds.images, ds.masks, strict=True):
                reference_sample(image_path, mask_path, rng, args.crop_size, ds.scale)

        def ours(**augmentations) -> Callable[[], None]:
            dataset = SegmentationDataset(
                root, "trainaug", train=True, crop_size=args.crop_size, **augmentations
            )
            return lambda: [dataset[i] for i in range(len(dataset))]

        pipelines = (
            ("torchvision-references style", reference),
            ("dataset.py", ours()),
            ("dataset.py --vflip --rot90", ours(vflip=True, rot90=True)),
            ("dataset.py --elastic 10", ours(elastic=10.0)),
            ("dataset.py --vflip --rot90 --elastic 10", ours(vflip=True, rot90=True, elastic=10.0)),
        )
        rows = []
        for name, run in pipelines:
            run()  # warm the file cache and the code paths
            seconds = min(timed_seconds(run) for _ in range(args.repeats))
            rows.append(
                {"pipeline": name, "crop": args.crop_size, "images/s per worker": round(len(ds) / seconds, 1)}
            )
    for row in rows:
        row["speed-up"] = round(row["images/s per worker"] / rows[0]["images/s per worker"], 2)
    print_table(rows)
    return {"benchmark": "data", "images": len(ds), "rows": rows}


def make_depth_trees(root: Path, images: int, seed: int = 0) -> dict[str, Path]:
    """The same drawings at VOC's 500x375 as two plain layouts: 3-channel 8-bit PNGs, and 1-channel 16-bit
    PNGs (their grey level times 257 plus noise: a 16-bit microscope's range)."""
    rng = np.random.default_rng(seed)
    trees = {kind: root / kind for kind in ("rgb8", "grey16")}
    for tree in trees.values():
        (tree / "images").mkdir(parents=True)
        (tree / "masks").mkdir()
    for k in range(images):
        image, mask = draw_sample(rng, [int(c) for c in rng.integers(1, 5, size=3)])
        image = np.asarray(Image.fromarray(image).resize((500, 375), Image.BILINEAR))
        mask = np.asarray(Image.fromarray(mask).resize((500, 375), Image.NEAREST))
        grey = image.mean(-1) * 257 + rng.integers(0, 257, image.shape[:2])
        Image.fromarray(image).save(trees["rgb8"] / "images" / f"{k:05d}.png")
        Image.fromarray(np.clip(grey, 0, 65535).astype(np.uint16)).save(
            trees["grey16"] / "images" / f"{k:05d}.png"
        )
        for tree in trees.values():
            Image.fromarray(np.where(mask == 255, 0, mask).astype(np.uint8)).save(
                tree / "masks" / f"{k:05d}.png"
            )
    return trees


def bench_depth(args: argparse.Namespace) -> dict:
    """Images/s of one process (one loader worker's work) at the training crop, on 3-channel 8-bit and
    1-channel 16-bit versions of the same images, each read in its own format (images.image_format)."""
    torch.set_num_threads(1)  # a loader worker runs single-threaded
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for kind, tree in make_depth_trees(Path(tmp), args.images).items():
            layout = describe(tree)
            fmt = image_format([layout.image_path(i) for i in layout.all_ids()])
            dataset = SegmentationDataset(
                layout, "train", train=True, crop_size=args.crop_size, image_format=fmt
            )
            run = lambda dataset=dataset: [dataset[i] for i in range(len(dataset))]  # noqa: E731
            run()  # warm the file cache and the code paths
            seconds = min(timed_seconds(run) for _ in range(args.repeats))
            rows.append({"images": kind, "format": fmt.rule.split(";")[0], "crop": args.crop_size,
                         "images/s per worker": round(len(dataset) / seconds, 1)})  # fmt: skip
    print_table(rows)
    return {"benchmark": "depth", "rows": rows}


# model: the training step and validation at several settings


def peak_tflops(device: torch.device, override: float) -> float | None:
    if override:
        return override
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((v for k, v in BF16_PEAK_TFLOPS.items() if k in name), None)


def step_flops(
    model: torch.nn.Module,
    images: torch.Tensor,
    masks: torch.Tensor,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    amp_dtype: torch.dtype | None,
) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        train_step(model, images, masks, optimizer, scaler, amp_dtype)
    return float(counter.get_total_flops())


def training_setup(
    device: torch.device,
    amp_dtype: torch.dtype | None,
    fmt: torch.memory_format,
    args: argparse.Namespace,
    in_channels: int = 3,
    encoder: str = "unet",
) -> tuple[torch.nn.Module, torch.optim.Optimizer, torch.amp.GradScaler]:
    """The model of --encoder (the U-Net of --base_channels, or a timm encoder's U-Net) in training mode,
    its optimiser (fused, as in main.py) and grad scaler."""
    torch.manual_seed(0)
    config = model_config(encoder, in_channels, VOC_NUM_CLASSES, args.base_channels)
    model = build_model(config).to(device, memory_format=fmt).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9, fused=True)
    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)
    return model, optimizer, scaler


def model_step_setting(
    device: torch.device,
    precision: str,
    memory_format: str,
    compiled: str,
    args: argparse.Namespace,
    in_channels: int = 3,
    encoder: str = "unet",
) -> tuple[str, dict, float, Callable[[], None]]:
    """main.py's train_step at one setting on synthetic normalised images, warmed up. Returns the
    setting's name (with the encoder, and the input channels when they are not 3), its warm-up figures,
    its FLOPs per step and a function that runs one step."""

    amp_dtype = PRECISIONS[precision]
    fmt = MEMORY_FORMATS[memory_format]
    resident = torch.cuda.memory_allocated(device) if device.type == "cuda" else 0  # earlier settings
    model, optimizer, scaler = training_setup(device, amp_dtype, fmt, args, in_channels, encoder)
    images = torch.randn(
        args.batch_size, in_channels, args.crop_size, args.crop_size, device=device
    ).contiguous(memory_format=fmt)
    masks = torch.randint(
        0, VOC_NUM_CLASSES, (args.batch_size, args.crop_size, args.crop_size), device=device
    )
    flops = step_flops(model, images, masks, optimizer, scaler, amp_dtype)
    step_model = torch.compile(model) if compiled == "on" else model

    def step() -> None:
        train_step(step_model, images, masks, optimizer, scaler, amp_dtype)

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    start = time.perf_counter()
    for _ in range(args.warmup):
        step()
    sync(device)
    warmup_seconds = time.perf_counter() - start
    peak = (torch.cuda.max_memory_allocated(device) - resident) / 2**30 if device.type == "cuda" else None
    info = {
        "warm-up s": round(warmup_seconds, 1),
        "GFLOP/img": round(flops / args.batch_size / 1e9, 1),
        "peak GiB": round(peak, 2) if peak is not None else "-",
    }
    name = ("" if encoder == "unet" else f"{encoder} ") + f"{precision} {memory_format} compile={compiled}"
    return name + (f", {in_channels} input channel(s)" if in_channels != 3 else ""), info, flops, step


def validation_setting(
    device: torch.device, precision: str, memory_format: str, args: argparse.Namespace, encoder: str = "unet"
) -> Callable[[], None]:
    """One validation batch as main.py runs it: the folded-BatchNorm model on val_size images in the
    autocast precision, argmax and the confusion matrix on the device. Returns a function for it."""
    from model import fused_for_inference
    from utils import autocast

    torch.manual_seed(0)
    fmt = MEMORY_FORMATS[memory_format]
    config = model_config(encoder, 3, VOC_NUM_CLASSES, args.base_channels)
    model = fused_for_inference(build_model(config).to(device, memory_format=fmt))
    images = torch.randn(args.batch_size, 3, args.val_size, args.val_size, device=device).contiguous(
        memory_format=fmt
    )
    masks = torch.randint(0, VOC_NUM_CLASSES, (args.batch_size, args.val_size, args.val_size), device=device)
    confusion = ConfusionMatrix(VOC_NUM_CLASSES)

    @torch.no_grad()
    def step() -> None:
        with autocast(device, PRECISIONS[precision]):
            confusion.update(model(images).argmax(1), masks)

    for _ in range(args.warmup):
        step()
    return step


def bench_model(args: argparse.Namespace) -> dict:
    device = select_device(args.device, 0)
    peak = peak_tflops(device, args.peak_tflops)
    settings = [
        model_step_setting(device, precision, memory_format, compiled, args, int(channels), encoder)
        for encoder in args.encoder.split(",")
        for precision in args.precision.split(",")
        for memory_format in args.memory_format.split(",")
        for compiled in args.compile.split(",")
        for channels in args.in_channels.split(",")
    ]
    seconds = time_interleaved([step for *_, step in settings], device, args.steps, args.rounds)
    rows = [
        {
            "setting": name,
            "images/s": rate(args.batch_size / s),
            "ms/step": round(s * 1000, 1),
            **info,
            "MFU %": round(100 * flops / s / (peak * 1e12), 1) if peak else "-",
            "vs first": round(seconds[0] / s, 2),
        }
        for (name, info, flops, _), s in zip(settings, seconds, strict=True)
    ]
    del settings  # free the training settings' memory before validation
    formats = [
        (e, p, m)
        for e in args.encoder.split(",")
        for p in args.precision.split(",")
        for m in args.memory_format.split(",")
    ]
    val_steps = [validation_setting(device, p, m, args, e) for e, p, m in formats]
    val_seconds = time_interleaved(val_steps, device, args.steps, args.rounds)
    val_rows = [
        {"setting": ("" if e == "unet" else f"{e} ") + f"{p} {m}", "val images/s": rate(args.batch_size / s)}
        for (e, p, m), s in zip(formats, val_seconds, strict=True)
    ]
    print(
        f"model step: {device} ({torch.cuda.get_device_name(device) if device.type == 'cuda' else 'CPU'}), "
        f"torch {torch.__version__}, batch {args.batch_size}, crop {args.crop_size}, "
        f"base_channels {args.base_channels}; median of {args.rounds} rounds of {args.steps} steps"
    )
    print_table(rows)
    print(f"\nvalidation on {args.val_size}x{args.val_size} images, batch {args.batch_size}:")
    print_table(val_rows)
    return {
        "benchmark": "model",
        "device": str(device),
        "torch": torch.__version__,
        "rows": rows,
        "validation": val_rows,
        "val_size": args.val_size,
        "batch_size": args.batch_size,
        "crop_size": args.crop_size,
        "base_channels": args.base_channels,
    }


# train: the data pipeline alone, end to end, and the model step alone


def bench_train(args: argparse.Namespace) -> dict:
    """Data pipeline alone, end to end, and the model step alone, at one setting."""
    device = select_device(args.device, 0)
    precision, memory_format = args.precision.split(",")[0], args.memory_format.split(",")[0]
    amp_dtype = PRECISIONS[precision]
    channels_last = memory_format == "channels_last"
    with tempfile.TemporaryDirectory() as tmp:
        root = make_prepared_tree(Path(tmp), args.images)
        dataset = SegmentationDataset(root, "trainaug", train=True, crop_size=args.crop_size)
        loader = make_loader(dataset, args.batch_size, args.num_workers)
        rows = []

        def timed_pass(name: str, work: Callable, loader: DataLoader = loader) -> None:
            set_epoch(loader, 0)
            for _ in work(iter(loader), args.warmup):  # start the workers, warm the caches
                pass
            sync(device)
            start = time.perf_counter()
            count = sum(work(iter(loader), args.steps))
            sync(device)
            rows.append({"what": name, "images/s": rate(count / (time.perf_counter() - start))})

        def data_only(batches: Iterator, steps: int) -> Iterator[int]:
            for _, (images, _masks) in zip(range(steps), batches, strict=False):
                yield len(images)

        model, optimizer, scaler = training_setup(device, amp_dtype, MEMORY_FORMATS[memory_format], args)

        def end_to_end(batches: Iterator, steps: int) -> Iterator[int]:
            for _, (images, masks) in zip(range(steps), batches, strict=False):
                images, masks = to_device(images, masks, device, channels_last)
                train_step(model, images, masks, optimizer, scaler, amp_dtype)
                yield len(images)

        # What one worker delivers: the same pipeline in this process.
        timed_pass("data pipeline alone, per worker", data_only, make_loader(dataset, args.batch_size, 0))
        timed_pass(f"data pipeline alone ({args.num_workers} workers)", data_only)
        timed_pass("end to end (loader + step)", end_to_end)
    *_, step = model_step_setting(device, precision, memory_format, "off", args)
    [seconds] = time_interleaved([step], device, args.steps, 1)
    rows.append({"what": "model step alone (synthetic)", "images/s": rate(args.batch_size / seconds)})
    for row in rows:
        row["vs model alone"] = round(row["images/s"] / rows[-1]["images/s"], 2)
    setting = f"batch {args.batch_size}, crop {args.crop_size}, base_channels {args.base_channels}"
    print(f"{device}, {setting}, {precision} {memory_format}, {len(dataset)} generated 500x375 images")
    print_table(rows)
    return {"benchmark": "train", "device": str(device), "rows": rows}


# cpu: whole main.py runs against a plain fp32 NCHW loop (and plain: that loop, in its own process)


def plain_run(data_dir: Path, args: argparse.Namespace) -> float:
    """The plain loop: fp32, NCHW, PIL augmentation in the main process, one batch at a time; the same
    model, optimiser, data, crop, batch and epochs as main.py. Returns the final val mean IoU."""
    torch.manual_seed(0)
    model = build_model(model_config("unet", 3, VOC_NUM_CLASSES, args.base_channels))
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr)
    train = SegmentationDataset(data_dir, "trainaug", train=True, crop_size=args.crop_size)
    val = SegmentationDataset(data_dir, "val", train=False)
    rng = np.random.default_rng(0)
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    for _ in range(args.epochs):
        model.train()
        order = rng.permutation(len(train))
        for start in range(0, len(order) - args.batch_size + 1, args.batch_size):
            samples = [
                reference_sample(
                    train.images[i], train.masks[i], rng, args.crop_size, tuple(map(float, DEMO["scale"]))
                )
                for i in order[start : start + args.batch_size]
            ]
            images, masks = (torch.stack(t) for t in zip(*samples, strict=True))
            loss = torch.nn.functional.cross_entropy(model(images), masks, ignore_index=IGNORE_INDEX)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        model.eval()
        confusion = ConfusionMatrix(VOC_NUM_CLASSES)
        with torch.no_grad():
            for image, mask in (val[i] for i in range(len(val))):  # one at a time: sizes differ
                images = (image[None].float() / 255 - mean) / std
                confusion.update(model(images).argmax(1)[0], mask.long())
    return confusion.compute()["mean_iou"]


def cpu_runs(text: str) -> list[str]:
    names = text.split(",")
    if set(names) - CPU_RUNS.keys() or names[-1] != "plain" or len(set(names)) < len(names):
        raise argparse.ArgumentTypeError(
            f"{text!r}: give different runs from {', '.join(CPU_RUNS)}, with plain last "
            "(the speed-ups are against it)"
        )
    return names


def cpu_row(name: str, seconds: list[float], stdout: str, tmp: Path) -> dict:
    """A `cpu` table row: the run's median seconds and final val mean IoU (the plain loop prints it)."""
    if name == "plain":
        miou = json.loads(stdout.strip().splitlines()[-1])["mean_iou"]
    else:
        lines = (tmp / "exp" / f"run-{name}" / "metrics.jsonl").read_text().splitlines()
        miou = json.loads(lines[-1])["mean_iou"]
    return {
        "run": CPU_RUNS[name][0],
        "seconds": round(statistics.median(seconds), 1),
        "each run": " ".join(f"{x:.1f}" for x in seconds),
        "final val mean IoU": round(miou, 3),
    }


def bench_cpu(args: argparse.Namespace) -> dict:
    """Whole runs, each in a fresh process and timed from its start (imports included): main.py with its
    default CPU settings, main.py with parts of them turned off, and the plain loop."""
    root = Path(__file__).resolve().parents[1]
    with tempfile.TemporaryDirectory() as tmp:
        data = make_demo_data(Path(tmp) / "data")
        prepare(data, progress=False)
        shape = [text for flag, _, _ in RUN_SHAPE for text in (flag, str(getattr(args, flag[2:])))]
        shape += ["--data_dir", str(data)]
        output = ["--save_dir", f"{tmp}/exp", "--tensorboard_dir", f"{tmp}/tb"]
        demo = ["--optimizer", *DEMO["optimizer"], "--scale", *DEMO["scale"], "--min_epoch_images", "0"]
        # No warm-up: the plain loop has none.
        common = [*shape, *output, *demo, *"--device cpu --warmup_epochs 0".split()]

        def command(name: str) -> list[str]:
            if name == "plain":
                return ["lab/benchmark.py", "plain", *shape]
            return ["main.py", *common, *CPU_RUNS[name][1], "--name", f"run-{name}"]

        # An untimed first run: the first process to start pays for cold caches (the files, the Python
        # and torch modules), whichever it is. A small model does that as well as the real one.
        warm = ["main.py", *common, *"--epochs 1 --base_channels 8 --crop_size 64 --name warm-up".split()]
        subprocess.run([sys.executable, *warm], cwd=root, capture_output=True, check=True)
        seconds, stdout = {name: [] for name in args.runs}, {}
        for _ in range(args.repeats):  # the runs take turns, so a slow spell of the machine hits all
            for name in args.runs:
                start = time.perf_counter()
                done = subprocess.run(
                    [sys.executable, *command(name)], cwd=root, capture_output=True, text=True
                )
                seconds[name].append(time.perf_counter() - start)
                if done.returncode:
                    raise SystemExit(f"{CPU_RUNS[name][0]} failed:\n{done.stderr[-2000:]}")
                stdout[name] = done.stdout
        rows = [cpu_row(name, seconds[name], stdout[name], Path(tmp)) for name in args.runs]
    for row in rows:
        row["speed-up vs plain"] = round(rows[-1]["seconds"] / row["seconds"], 2)
    print(
        f"{args.epochs} epochs of 160 train + 48 val demo images, batch {args.batch_size}, "
        f"crop {args.crop_size}, base_channels {args.base_channels}, {os.cpu_count()} cores, "
        f"torch {torch.__version__}; median of {args.repeats} runs each"
    )
    print_table(rows)
    return {"benchmark": "cpu", "epochs": args.epochs, "rows": rows}


# coco: tools/coco.py's speed and memory on exports of growing size


COCO_CATEGORIES = ("car", "person", "tree", "sign", "road")
CAMVID_PHOTOS = Path(__file__).resolve().parents[2] / "shared" / "data" / "camvid" / "train"
RUN_MEASURED = """
import resource, runpy, sys
sys.argv = sys.argv[1:]
try:
    runpy.run_path(sys.argv[0], run_name="__main__")
except SystemExit as end:
    status = end.code or 0
else:
    status = 0
peaks = [resource.getrusage(who).ru_maxrss for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
print("PEAK_KB", *peaks)
sys.exit(status)
"""


def random_polygon(rng: np.random.Generator, width: int, height: int) -> list[float]:
    """A star-shaped polygon of 6-20 points around a random centre, inside the image."""
    points = int(rng.integers(6, 21))
    cx, cy = rng.uniform(0.1, 0.9) * width, rng.uniform(0.1, 0.9) * height  # never a sliver on an edge
    angles = np.sort(rng.uniform(0, 2 * np.pi, points))
    radii = rng.uniform(5, min(width, height) / 4, points)
    xs = np.clip(cx + radii * np.cos(angles), 0, width - 1)
    ys = np.clip(cy + radii * np.sin(angles), 0, height - 1)
    return np.stack([xs, ys], 1).ravel().round(1).tolist()


def make_coco_export(root: Path, photos: list[Path], images: int, seed: int = 0) -> Path:
    """A COCO instances JSON over `images` real photographs (linked, cycling through `photos`), each
    with 3-8 random polygon objects of five categories; returns the JSON's path."""
    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True)
    records, annotations = [], []
    for k in range(images):
        photo = photos[k % len(photos)]
        name = f"photo_{k:05d}{photo.suffix}"
        (root / "images" / name).symlink_to(photo.resolve())
        with Image.open(photo) as opened:
            width, height = opened.size
        records.append({"id": k, "file_name": name, "width": width, "height": height})
        for _ in range(rng.integers(3, 9)):
            polygon = random_polygon(rng, width, height)
            xs, ys = np.array(polygon[0::2]), np.array(polygon[1::2])
            area = 0.5 * abs(np.dot(xs, np.roll(ys, 1)) - np.dot(ys, np.roll(xs, 1)))  # shoelace
            annotations.append({"id": len(annotations), "image_id": k, "category_id": int(rng.integers(1, 6)),
                                "segmentation": [polygon], "area": float(area), "iscrowd": 0})  # fmt: skip
    categories = [{"id": k + 1, "name": name} for k, name in enumerate(COCO_CATEGORIES)]
    path = root / "instances.json"
    path.write_text(json.dumps({"images": records, "annotations": annotations, "categories": categories}))
    return path


def bench_coco(args: argparse.Namespace) -> dict:
    """tools/coco.py on generated exports of each size: images/s and peak memory (the main process holds
    the JSON and the plan; each worker one image at a time)."""
    photos = sorted(p for p in Path(args.photos).rglob("*") if p.suffix.lower() in (".png", ".jpg", ".jpeg"))
    if not photos:
        raise UserError(f"--photos {args.photos} holds no photographs: pass a folder of real images (CamVid)")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for images in args.images:
            root = Path(tmp) / f"export{images}"
            json_path = make_coco_export(root, photos, images)
            command = [sys.executable, "-c", RUN_MEASURED, "tools/coco.py", "--annotations", str(json_path),
                       "--images", str(root / "images"), "--data_dir", str(root / "out"),
                       "--workers", str(args.workers)]  # fmt: skip
            start = time.perf_counter()
            result = subprocess.run(command, capture_output=True, text=True, cwd=Path(__file__).parents[1])
            seconds = time.perf_counter() - start
            if result.returncode != 0:
                raise UserError(f"tools/coco.py failed on the generated export: {result.stderr[-500:]}")
            main_kb, worker_kb = (int(v) for v in result.stdout.split("PEAK_KB")[1].split())
            rows.append({
                "images": images, "JSON MB": round(json_path.stat().st_size / 2**20, 1),
                "seconds": round(seconds, 1), "images/s": rate(images / seconds),
                "peak MB main": round(main_kb / 1024), "peak MB worker": round(worker_kb / 1024),
            })  # fmt: skip
    workers = args.workers or os.cpu_count()
    print(f"tools/coco.py --workers {workers}, {len(photos)} photographs from {args.photos}")
    print_table(rows)
    return {"benchmark": "coco", "rows": rows}


def make_ade20k_tree(root: Path, masks: int, size: int, seed: int = 0) -> Path:
    """ADEChallengeData2016/ with `masks` training pairs (90%) and validation pairs (10%) of size x size."""
    rng = np.random.default_rng(seed)
    data = root / "ADEChallengeData2016"
    rows = ["Idx\tRatio\tTrain\tVal\tName", *(f"{k}\t0.01\t1\t1\tclass{k}" for k in range(1, 151))]
    data.mkdir(parents=True)
    (data / "objectInfo150.txt").write_text("\n".join(rows) + "\n")
    for k in range(masks):
        split = "validation" if k % 10 == 9 else "training"
        for folder in ("images", "annotations"):
            (data / folder / split).mkdir(parents=True, exist_ok=True)
        labels = np.kron(rng.integers(0, 151, (4, 4)), np.ones((size // 4, size // 4), np.int64)).astype(
            np.uint8
        )
        Image.fromarray(labels).save(data / "annotations" / split / f"ADE_{k:08d}.png")
        Image.fromarray(np.dstack([labels] * 3)).save(data / "images" / split / f"ADE_{k:08d}.jpg")
    return data


def data_layer_start(data: Path) -> float:
    """Seconds from nothing to a training run's data checked: recognise the folder, read (or find in the
    cache) every training and validation mask, as main.py does before its first step."""
    start = time.perf_counter()
    layout = describe(data)
    SegmentationDataset(layout, train=True).scan_masks()
    SegmentationDataset(layout, train=False).scan_masks()
    return time.perf_counter() - start


def bench_start(args: argparse.Namespace) -> dict:
    """The first start (empty cache) and the second (the first's cache) on one generated set."""
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        data = make_ade20k_tree(Path(tmp), args.masks, args.size)
        os.environ["UNET_CACHE_DIR"] = str(Path(tmp) / "cache")
        for name in ("first start (empty cache)", "second start (cached scan)"):
            rows.append({"run": name, "masks": args.masks, "seconds": round(data_layer_start(data), 2)})
    print(f"ADE20K layout, {args.masks} masks of {args.size}x{args.size}, {os.cpu_count()} cores")
    print_table(rows)
    return {"benchmark": "start", "rows": rows}


def budget_run(argv: list[str], run_dir: Path) -> dict:
    """One main.py command under --time: its wall seconds, and what its last checkpoint says of the plan."""
    start = time.perf_counter()
    subprocess.run([sys.executable, "main.py", *argv], cwd=ROOT, check=True, capture_output=True)
    seconds = time.perf_counter() - start
    checkpoint = torch.load(run_dir / "last.pth", map_location="cpu", weights_only=True)
    return {
        "wall s": round(seconds, 1),
        "steps": checkpoint["step"],
        "epochs": checkpoint["epoch"],
        "final lr": checkpoint["scheduler"]["_last_lr"][0],
    }


def bench_budget(args: argparse.Namespace) -> dict:
    """main.py --time T on the demo data set, with the demo's recipe (the steps planned) and with none
    (the recipe planned too): the whole command's wall time against T."""
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        out = ["--save_dir", f"{tmp}/exp", "--tensorboard_dir", f"{tmp}/tb"]
        subprocess.run(
            [sys.executable, "tools/demo_data.py", "--out", f"{tmp}/demo", "--prepare"],
            cwd=ROOT,
            check=True,
            capture_output=True,
        )
        for budget in args.times:
            seconds = duration_seconds(budget)
            for run, extra in (("demo recipe", ["@recipes/demo.txt"]), ("planned", [])):
                name = f"{run.split()[0]}-{budget}"
                argv = [*extra, "--data_dir", f"{tmp}/demo", "--time", budget, "--name", name, *out]
                row = {"run": run, "budget s": seconds, **budget_run(argv, Path(tmp) / "exp" / name)}
                row["wall / budget"] = round(row["wall s"] / seconds, 3)
                rows.append(row)
    print(f"main.py --time on the demo data set, {os.cpu_count()} cores, torch {torch.__version__}")
    print_table(rows)
    return {"benchmark": "budget", "rows": rows}


PEAK_OF_CHILD = (  # runs a command and prints its peak resident KiB (rusage of the one child it waited for)
    "import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True, capture_output=True); "
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
)


def predict_peak(checkpoint: Path, image: Path, out: Path, extra: list[str]) -> tuple[float, float]:
    """(peak resident GiB, wall seconds) of one tools/predict.py process."""
    command = [sys.executable, "tools/predict.py", "--checkpoint", str(checkpoint), "--input", str(image)]
    start = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-c", PEAK_OF_CHILD, *command, "--output", str(out), *extra],
        cwd=ROOT, check=True, capture_output=True, text=True,
    )  # fmt: skip
    return int(result.stdout.split()[-1]) / 2**20, time.perf_counter() - start


def bench_predict(args: argparse.Namespace) -> dict:
    """Peak memory of tools/predict.py on one generated photograph of --size (default 6000x4000, 24
    megapixels) with a U-Net of --base_channels and --classes (random weights), at each --amp, in
    fresh processes."""
    width, height = args.size
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        rng = np.random.default_rng(0)
        photo = Path(tmp) / "photo.jpg"
        small = rng.integers(0, 256, (height // 8, width // 8, 3), dtype=np.uint8)
        Image.fromarray(small).resize((width, height), Image.BILINEAR).save(photo, quality=90)
        checkpoint = Path(tmp) / "best.pth"
        config = model_config("unet", 3, args.classes, args.base_channels)
        names = [f"class_{k}" for k in range(args.classes)]
        colors = [[k, k, k] for k in range(args.classes)]
        classes = {"names": names, "colors": colors}
        state = {"model": build_model(config).state_dict(), "model_config": config, "classes": classes}
        torch.save(state, checkpoint)
        for amp in args.amp:
            peak, seconds = predict_peak(checkpoint, photo, Path(tmp) / f"out-{amp}", ["--amp", amp])
            rows.append({"--amp": amp, "peak GiB": round(peak, 2), "seconds": round(seconds, 1)})
    print(
        f"tools/predict.py on a {width}x{height} JPEG, U-Net of {args.base_channels} base channels and "
        f"{args.classes} classes, default --tile, torch {torch.__version__}, {os.cpu_count()} cores"
    )
    print_table(rows)
    return {"benchmark": "predict", "size": [width, height], "rows": rows}


def bench_plain(args: argparse.Namespace) -> dict:
    return {"mean_iou": plain_run(Path(args.data_dir), args)}


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    voc = sub.add_parser("voc", help="tools/voc.py against the reference converter")
    voc.add_argument("--files", type=int, default=2000, help="number of generated 500x375 SBD masks")
    data = sub.add_parser("data", help="dataset.py against a torchvision-references pipeline")
    data.add_argument("--images", type=int, default=200, help="number of generated 500x375 images")
    data.add_argument("--crop_size", type=int, default=320)
    data.add_argument("--repeats", type=int, default=3, help="best of this many passes")
    depth = sub.add_parser("depth", help="dataset.py on 3-channel 8-bit and 1-channel 16-bit images")
    depth.add_argument("--images", type=int, default=200, help="number of generated 500x375 images")
    depth.add_argument("--crop_size", type=int, default=320)
    depth.add_argument("--repeats", type=int, default=3, help="best of this many passes")
    for name, help_text in (("model", "model step alone"), ("train", "data pipeline, end to end, model")):
        mode = sub.add_parser(name, help=help_text)
        mode.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
        mode.add_argument("--batch_size", type=int, default=16)
        mode.add_argument("--crop_size", type=int, default=256)
        mode.add_argument("--base_channels", type=int, default=64)
        mode.add_argument("--precision", default="bf16", help="comma-separated: fp32, bf16, fp16")
        mode.add_argument(
            "--memory_format", default="channels_last", help="comma-separated: nchw, channels_last"
        )
        mode.add_argument("--compile", default="off", help="comma-separated: off, on")
        mode.add_argument("--warmup", type=int, default=5, help="untimed steps first")
        mode.add_argument("--steps", type=int, default=10, help="timed steps a round")
        mode.add_argument(
            "--rounds", type=int, default=3, help="settings take turns this many times; the median counts"
        )
        mode.add_argument(
            "--peak_tflops", type=float, default=0, help="bf16 peak of the GPU, if not in the table"
        )
        mode.add_argument(
            "--val_size", type=int, default=512, help="side of the synthetic square validation images"
        )
        if name == "model":
            mode.add_argument("--in_channels", default="3", help="comma-separated input channels, e.g. 3,1")
            mode.add_argument(
                "--encoder",
                default="unet",
                help="comma-separated models as main.py --encoder names them, e.g. unet,resnet34 (random "
                "weights)",
            )
        if name == "train":
            mode.add_argument("--num_workers", type=int, default=8)
            mode.add_argument("--images", type=int, default=400, help="generated 500x375 images")
    cpu = sub.add_parser("cpu", help="main.py on a CPU against a plain fp32 NCHW loop")
    cpu.add_argument("--repeats", type=int, default=1, help="runs of each, in turns; the median counts")
    cpu.add_argument(
        "--runs",
        type=cpu_runs,
        default="main,workers,fp32,plain",
        help="comma-separated runs to time, plain (the baseline) last: "
        + "; ".join(f"{name} = {label}" for name, (label, _) in CPU_RUNS.items()),
    )
    coco = sub.add_parser("coco", help="tools/coco.py on generated COCO exports of real photographs")
    coco.add_argument(
        "--photos", default=str(CAMVID_PHOTOS), help="a folder of real photographs, e.g. CamVid's train/"
    )
    coco.add_argument("--images", type=int, nargs="+", default=[500, 2000], help="export sizes to convert")
    coco.add_argument("--workers", type=int, default=0, help="tools/coco.py --workers (0 = one per core)")
    start = sub.add_parser("start", help="the data layer's first and second start on a generated set")
    start.add_argument("--masks", type=int, default=20000, help="generated ADE20K masks (10%% validation)")
    start.add_argument("--size", type=int, default=128, help="side of the generated masks")
    budget = sub.add_parser("budget", help="main.py under --time: wall time against the budget")
    budget.add_argument("--times", nargs="+", default=["1m", "3m"], help="budgets (--time values)")
    predict = sub.add_parser("predict", help="tools/predict.py's peak memory on a 24-megapixel photograph")
    predict.add_argument("--size", type=int, nargs=2, default=(6000, 4000), metavar=("WIDTH", "HEIGHT"))
    predict.add_argument("--base_channels", type=int, default=8)
    predict.add_argument("--classes", type=int, default=21)
    predict.add_argument("--amp", nargs="+", default=["off", "bf16"], help="--amp settings to measure")
    plain = sub.add_parser("plain", help="(used by `cpu`) the plain loop alone, on --data_dir")
    plain.add_argument("--data_dir", required=True)
    for mode in (cpu, plain):
        for flag, kind, default in RUN_SHAPE:
            mode.add_argument(flag, type=kind, default=default)
    return parser


def main() -> None:
    args = get_args_parser().parse_args()
    modes = {
        "voc": bench_voc,
        "data": bench_data,
        "model": bench_model,
        "train": bench_train,
        "cpu": bench_cpu,
        "plain": bench_plain,
        "coco": bench_coco,
        "start": bench_start,
        "depth": bench_depth,
        "budget": bench_budget,
        "predict": bench_predict,
    }
    if args.command == "plain":  # started by `cpu`, which holds the lock
        result = modes[args.command](args)
    else:
        with running_alone():
            result = modes[args.command](args)
    print(json.dumps(result))


if __name__ == "__main__":
    sys.exit(exit_status(main))
